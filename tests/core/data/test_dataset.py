"""ImageDataset: folders, zips, labels, mirror, subset, and the errors users hit."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import DatasetError, ImageDataset, resolve_data_path
from core.data.dataset import BUILTIN_DIR
from tests.core.data.helpers import index_image, write_folder, zip_folder


def identities(ds: ImageDataset) -> list[int]:
    return [int(ds.get_image(i)[0, 0, 0]) for i in range(len(ds))]


def test_folder_recursive_and_zip_agree(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "toy", 6, labels=[0, 1, 2, 0, 1, 2])
    from_dir = ImageDataset(folder, use_labels=True)
    from_zip = ImageDataset(zip_folder(folder, tmp_path / "toy.zip"), use_labels=True)
    assert len(from_dir) == len(from_zip) == 6
    assert sorted(identities(from_dir)) == list(range(6))  # subfolder images found too
    for i in range(6):
        np.testing.assert_array_equal(from_dir[i][0], from_zip[i][0])
        np.testing.assert_array_equal(from_dir[i][1], from_zip[i][1])
    image, label = from_zip[0]
    assert image.dtype == np.uint8 and image.shape == (3, 8, 8)
    assert (from_zip.resolution, from_zip.num_channels, from_zip.name) == (8, 3, "toy")
    assert from_dir.name == "toy"


def test_labels_are_one_hot_and_follow_file_names(tmp_path: Path) -> None:
    classes = [3, 1, 4, 1, 5, 0]
    ds = ImageDataset(write_folder(tmp_path / "d", 6, labels=classes), use_labels=True)
    assert ds.has_labels and ds.label_dim == 6
    for i in range(len(ds)):
        label = ds.get_label(i)
        assert label.dtype == np.float32 and label.sum() == 1
        assert label.argmax() == classes[identities(ds)[i]] == ds.get_class(i)
    unlabelled = ImageDataset(tmp_path / "d")
    assert unlabelled.label_dim == 0 and not unlabelled.has_labels and unlabelled[0][1].shape == (0,)


def test_label_problems_are_clear(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", 4)
    with pytest.raises(DatasetError, match="labels requested.*dataset.json"):
        ImageDataset(folder, use_labels=True)
    (folder / "dataset.json").write_text(json.dumps({"labels": [["img000.png", 1]]}))
    with pytest.raises(DatasetError, match=r"no label for image 'img002.png' \(3 unlabelled"):
        ImageDataset(folder, use_labels=True)
    (folder / "dataset.json").write_text(json.dumps({"labels": None}))
    with pytest.raises(DatasetError, match="null"):
        ImageDataset(folder, use_labels=True)


def test_mirror_appends_flipped_copies_after_subset(tmp_path: Path) -> None:
    ds = ImageDataset(write_folder(tmp_path / "d", 10), subset=4, seed=3, mirror=True)
    assert len(ds) == 8
    for i in range(4):
        original, flipped = ds.get_image(i), ds.get_image(i + 4)
        np.testing.assert_array_equal(flipped, original[:, :, ::-1])
        assert not np.array_equal(flipped, original)  # the ramp channel makes flips visible
    assert identities(ds)[:4] == identities(ds)[4:]


def test_subset_is_seeded(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", 20)
    picks = [identities(ImageDataset(folder, subset=5, seed=s)) for s in (0, 0, 1)]
    assert picks[0] == picks[1] and len(set(picks[0])) == 5
    assert picks[0] != picks[2]
    assert len(ImageDataset(folder, subset=50)) == 20  # larger than the dataset: all of it


def test_raw_indices_name_the_files_a_subset_kept(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", 20)
    full, part = ImageDataset(folder), ImageDataset(folder, subset=5, seed=2)
    kept = part.raw_indices
    assert len(set(kept.tolist())) == 5 and kept.min() >= 0 and kept.max() < 20
    for i, raw in enumerate(kept):
        np.testing.assert_array_equal(part.get_image(i), full.get_image(int(raw)))
    before = kept.tolist()
    kept[:] = 0  # a copy: the dataset's own selection stays as it was
    assert part.raw_indices.tolist() == before
    np.testing.assert_array_equal(full.raw_indices, np.arange(20))


def test_load_batch_matches_items_cached_or_not(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", 6, labels=[0, 1, 2, 3, 4, 5])
    streamed = ImageDataset(folder, mirror=True, use_labels=True, cache_limit_mb=0)
    cached = ImageDataset(folder, mirror=True, use_labels=True)
    assert not streamed.preload() and cached.preload()
    idx = np.array([0, 7, 11, 3, 6])
    for ds in (streamed, cached):
        images, labels = ds.load_batch(idx)
        np.testing.assert_array_equal(images, np.stack([ds.get_image(int(i)) for i in idx]))
        np.testing.assert_array_equal(labels, np.stack([ds.get_label(int(i)) for i in idx]))
    np.testing.assert_array_equal(cached.load_batch(idx)[0], streamed.load_batch(idx)[0])


def test_jpeg_webp_and_grayscale(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    Image.fromarray(index_image(0, 16)).save(folder / "a.jpg", quality=95)
    Image.fromarray(index_image(1, 16)).save(folder / "b.webp", lossless=True)
    ds = ImageDataset(folder)
    assert len(ds) == 2 and ds.get_image(1)[0, 0, 0] == 1
    gray = write_folder(tmp_path / "g", 3, channels=1)
    assert ImageDataset(gray).image_shape == (1, 8, 8)


def test_zip_dataset_survives_pickling(tmp_path: Path) -> None:
    ds = ImageDataset(zip_folder(write_folder(tmp_path / "d", 4), tmp_path / "d.zip"))
    ds.get_image(0)  # opens the zip handle
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone.get_image(3), ds.get_image(3))


def test_mismatched_size_names_the_first_offending_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", 5, nested=False)
    Image.fromarray(index_image(9, 16)).save(folder / "img003.png")
    Image.fromarray(index_image(9, 16)).save(folder / "img004.png")
    with pytest.raises(DatasetError) as info:
        ImageDataset(folder)
    message = str(info.value)
    assert "'img003.png' is 16x16" in message and "'img000.png' is 8x8" in message
    assert "img004" not in message and "\n" not in message
    assert "python -m core.data.tool" in message


def test_mismatched_channels_name_the_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", 3, nested=False)
    Image.fromarray(index_image(0, 8)[..., 0]).save(folder / "img002.png")
    with pytest.raises(DatasetError, match=r"'img002.png' is 8x8 with 1 channel\(s\) but 'img000.png'"):
        ImageDataset(folder)


def test_non_square_or_non_power_of_two_gives_the_tool_command(tmp_path: Path) -> None:
    for size, name in (((40, 24), "wide"), ((24, 24), "odd")):
        folder = tmp_path / name
        folder.mkdir()
        Image.new("RGB", size).save(folder / "x.png")
        with pytest.raises(DatasetError) as info:
            ImageDataset(folder)
        expected = (
            f"python -m core.data.tool --source {folder} --dest {tmp_path / (name + '-16.zip')} "
            f"--resolution 16 --transform center-crop"
        )
        assert expected in str(info.value)
        assert f"{size[0]}x{size[1]}" in str(info.value)


def test_resolution_mismatch_and_unsupported_mode(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", 2)
    with pytest.raises(DatasetError, match="resolution=16.*--resolution 16"):
        ImageDataset(folder, resolution=16)
    assert ImageDataset(folder, resolution=8).resolution == 8
    Image.new("RGBA", (8, 8)).save(folder / "img000.png")
    with pytest.raises(DatasetError, match="mode RGBA.*python -m core.data.tool"):
        ImageDataset(folder)


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        ImageDataset(tmp_path / "missing")
    with pytest.raises(
        DatasetError, match="unknown built-in dataset 'builtin:nope'; available: builtin:digits"
    ):
        resolve_data_path("builtin:nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        ImageDataset(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match="not a zip"):
        ImageDataset(tmp_path / "notes.txt")


def test_builtin_digits() -> None:
    assert resolve_data_path("builtin:digits") == BUILTIN_DIR / "digits32.zip"
    assert (BUILTIN_DIR / "digits32.zip").stat().st_size < 4 * 2**20
    ds = ImageDataset("builtin:digits", use_labels=True)
    assert len(ds) == 1797 and ds.resolution == 32 and ds.num_channels == 3 and ds.label_dim == 10
    assert ds.name == "digits32"
    counts = np.bincount([ds.get_class(i) for i in range(len(ds))])
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # the UCI test set
    ds.preload()
    images, _ = ds.load_batch(np.arange(len(ds)))
    assert (images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()  # grey as RGB
    assert images.max() == 255 and images.min() == 0
