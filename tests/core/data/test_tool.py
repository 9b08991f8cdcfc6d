"""Dataset tool: conversions, bad files, the public layout, atomic output, and CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import ImageDataset
from core.data.tool import main as tool_main

REPO = Path(__file__).resolve().parents[3]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.data.tool", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def messy_source(root: Path) -> Path:
    """Every kind of file a user's folder holds, with labels for the images."""
    root.mkdir()
    Image.new("L", (12, 8), 100).save(root / "gray.png")
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 8, 4))  # top half fully transparent
    rgba.save(root / "rgba.png")
    Image.new("RGB", (8, 8), (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "pal.png")
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(root / "cmyk.jpg")  # red in CMYK
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(root / "deep16.png")  # white, 16-bit gray
    full = root / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(full)
    (root / "truncated.png").write_bytes(full.read_bytes()[:600])
    (root / "garbage.png").write_bytes(b"definitely not a png")
    (root / "notes.txt").write_text("not an image")
    names = [
        "gray.png",
        "rgba.png",
        "pal.png",
        "cmyk.jpg",
        "deep16.png",
        "full.png",
        "truncated.png",
        "garbage.png",
    ]
    (root / "dataset.json").write_text(json.dumps({"labels": [[n, i] for i, n in enumerate(names)]}))
    return root


def test_messy_folder_converts_and_reports_bad_files(tmp_path: Path) -> None:
    source = messy_source(tmp_path / "src")
    dest = tmp_path / "out.zip"
    result = run_tool(
        "--source", str(source), "--dest", str(dest), "--resolution", "8", "--background", "0,255,0"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "wrote 6 images (8x8, 3 channel(s), labels: 6 classes)" in out
    assert "skipped 2 unreadable file(s):" in out
    assert "  garbage.png: " in out and "  truncated.png: " in out and "truncated" in out
    assert "ignored 1 file(s)" in out and "notes.txt" in out

    ds = ImageDataset(dest, use_labels=True)
    assert len(ds) == 6 and ds.num_channels == 3
    by_class = {ds.get_class(i): ds.get_image(i) for i in range(len(ds))}
    # Sorted source order: cmyk, deep16, full, gray, pal, rgba (garbage and truncated skipped).
    assert sorted(by_class) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(by_class[0][:, 4, 4], [100, 100, 100])  # gray, centre-cropped
    np.testing.assert_array_equal(by_class[1][:, 0, 0], [0, 255, 0])  # transparent -> background
    np.testing.assert_array_equal(by_class[1][:, 7, 0], [255, 0, 0])
    np.testing.assert_array_equal(by_class[2][:, 3, 3], [0, 0, 255])  # palette
    assert by_class[3][0].mean() > 200 and by_class[3][1:].mean() < 60  # CMYK red
    np.testing.assert_array_equal(by_class[4], 255)  # 16-bit white scaled, not clipped


def test_public_layout_and_grayscale_kept(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(3):
        Image.new("L", (16, 16), 50 * i).save(source / f"{i}.png")
    dest = tmp_path / "gray.zip"
    assert tool_main(["--source", str(source), "--dest", str(dest), "--resolution", "8"]) == 0
    with zipfile.ZipFile(dest) as zf:
        names = sorted(zf.namelist())
        assert names == [
            "00000/img00000000.png",
            "00000/img00000001.png",
            "00000/img00000002.png",
            "dataset.json",
        ]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        assert json.loads(zf.read("dataset.json")) == {"labels": None}
    ds = ImageDataset(dest)
    assert ds.num_channels == 1 and ds.get_image(2).mean() == 100
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_transforms(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    wide = np.zeros((8, 16, 3), np.uint8)
    wide[:, :4] = 255  # white left quarter
    Image.fromarray(wide).save(source / "wide.png")
    images = {}
    for transform in ("center-crop", "pad", "center-crop-wide"):
        dest = tmp_path / transform
        args = [
            "--source",
            str(source),
            "--dest",
            str(dest),
            "--resolution",
            "8",
            "--transform",
            transform,
            "--resize-filter",
            "box",
            "--background",
            "10,20,30",
        ]
        assert tool_main(args) == 0
        images[transform] = ImageDataset(dest).get_image(0)
    assert images["center-crop"].max() == 0  # the middle half has no white
    pad = images["pad"]  # 16x8 -> 8x4 centred: rows 0-1 and 6-7 are padding
    np.testing.assert_array_equal(pad[:, 0, 0], [10, 20, 30])
    np.testing.assert_array_equal(pad[:, 3, 0], [255, 255, 255])
    np.testing.assert_array_equal(images["center-crop-wide"], pad)  # wide images letterbox the same way


def test_max_images_and_folder_dest(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(5):
        Image.new("RGB", (8, 8), (i, i, i)).save(source / f"{i}.png")
    dest = tmp_path / "out"
    assert (
        tool_main(["--source", str(source), "--dest", str(dest), "--resolution", "4", "--max-images", "3"])
        == 0
    )
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.png")) == [
        "00000/img00000000.png",
        "00000/img00000001.png",
        "00000/img00000002.png",
    ]
    assert tool_main(["--source", str(source), "--dest", str(dest), "--resolution", "4"]) == 2


def test_round_trip_of_our_output_keeps_labels(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(source / f"{i}.png")
    (source / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", i % 2] for i in range(4)]}))
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    assert tool_main(["--source", str(source), "--dest", str(first), "--resolution", "8"]) == 0
    assert tool_main(["--source", str(first), "--dest", str(second), "--resolution", "8"]) == 0
    assert first.read_bytes() == second.read_bytes()  # zip in, same zip out: labels and pixels kept
    ds = ImageDataset(second, use_labels=True)
    assert [ds.get_class(i) for i in range(4)] == [0, 1, 0, 1]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--resolution", "30"], "--resolution must be a power of two >= 4, got 30"),
        (["--resolution", "8", "--max-images", "0"], "--max-images must be >= 1"),
        (["--resolution", "8", "--background", "1,2"], "expected R,G,B with values 0-255"),
        (["--resolution", "8", "--transform", "stretch"], "invalid choice: 'stretch'"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    Image.new("RGB", (8, 8)).save(source / "a.png")
    try:
        code = tool_main(["--source", str(source), "--dest", str(tmp_path / "o.zip"), *args])
    except SystemExit as exit_:  # argparse's own checks exit; ours return
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "o.zip").exists()


def test_unusable_sources_exit_2(tmp_path: Path) -> None:
    result = run_tool(
        "--source", str(tmp_path / "nope"), "--dest", str(tmp_path / "o.zip"), "--resolution", "8"
    )
    assert (
        result.returncode == 2
        and result.stderr.strip() == f"error: --source {tmp_path / 'nope'} does not exist"
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"junk")
    result = run_tool("--source", str(bad), "--dest", str(tmp_path / "o.zip"), "--resolution", "8")
    assert result.returncode == 2 and "no readable images (1 unreadable)" in result.stderr
    assert not (tmp_path / "o.zip").exists() and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("orientation", "red_at"), [(1, (0, 0)), (6, (0, 1)), (8, (1, 0)), (3, (1, 1))])
def test_exif_rotation_is_applied(tmp_path: Path, orientation: int, red_at: tuple[int, int]) -> None:
    """Phone photos store pixels unrotated plus an EXIF Orientation: the dataset gets the upright image."""
    source = tmp_path / "src"
    source.mkdir()
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[...] = (0, 0, 255)
    pixels[:8, :8] = (255, 0, 0)  # red top-left quadrant as stored
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: shown rotated 90 degrees clockwise, 8: counter-clockwise, 3: 180
    Image.fromarray(pixels).save(source / "photo.jpg", quality=95, exif=exif)
    dest = tmp_path / "out.zip"
    result = run_tool("--source", str(source), "--dest", str(dest), "--resolution", "16")
    assert result.returncode == 0, result.stderr
    img = ImageDataset(dest).get_image(0).astype(int)  # CHW
    quadrants = {(r, c): img[:, 8 * r + 2 : 8 * r + 6, 8 * c + 2 : 8 * c + 6].mean(axis=(1, 2))
                 for r in (0, 1) for c in (0, 1)}
    reds = [q for q, (red, _, blue) in quadrants.items() if red > 200 and blue < 60]
    assert reds == [red_at], {q: v.round().tolist() for q, v in quadrants.items()}
