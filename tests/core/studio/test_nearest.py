"""``nearest``: copies of training images (exact and lightly changed) are flagged, held-out images
are not; the grid, the JSON and the per-snapshot copy score agree.

builtin:digits is split once: 300 images become the training set (a folder), 40 others are held
out; the folder checked holds the held-out images plus planted copies of training images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn

from core.data import ImageDataset
from core.metrics.nearest import (
    COPY_FACTOR,
    NearestOptions,
    copy_fraction,
    copy_score,
    nearest,
    prepare,
    shifted,
)
from core.studio.__main__ import main
from tests.core.studio.conftest import DEMO

TRAIN, HELD_OUT = 300, 40


def _save(path: Path, chw: np.ndarray) -> None:
    PIL.Image.fromarray(np.clip(chw, 0, 255).astype(np.uint8).transpose(1, 2, 0)).save(path)


def _plants(source: list[np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Copies of training images, exact and lightly changed, by the name they are saved under."""
    x = [s.astype(np.float32) for s in source]
    return {
        "copy_exact_a.png": x[0],
        "copy_exact_b.png": x[1],
        "copy_noise_a.png": x[2] + rng.normal(0, 4, x[2].shape),
        "copy_noise_b.png": x[3] + rng.normal(0, 4, x[3].shape),
        "copy_shift_x.png": np.roll(x[4], 1, axis=2),
        "copy_shift_y.png": np.roll(x[5], -1, axis=1),
        "copy_brighter.png": x[6] + 10,
        "copy_darker.png": x[7] * 0.9,
    }


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("nearest")
    digits = ImageDataset("builtin:digits")
    order = np.random.default_rng(0).permutation(len(digits))
    train, held = order[:TRAIN], order[TRAIN : TRAIN + HELD_OUT]
    (root / "train").mkdir()
    (root / "check").mkdir()
    for i in train:
        _save(root / "train" / f"train{i:04d}.png", digits.get_image(int(i)))
    for i in held:
        _save(root / "check" / f"held{i:04d}.png", digits.get_image(int(i)))
    sources = [int(i) for i in train[:8]]
    plants = _plants([digits.get_image(i) for i in sources], np.random.default_rng(1))
    for name, image in plants.items():
        _save(root / "check" / name, image)
    return {
        "root": root,
        "sources": dict(zip(plants, (f"train{i:04d}.png" for i in sources), strict=True)),
    }


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADA_STUDIO_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)


def test_copies_and_only_copies_are_flagged(split, tmp_path, capsys):
    root = split["root"]
    out, out_json = tmp_path / "nn.png", tmp_path / "nn.json"
    args = ["nearest", "--images", str(root / "check"), "--data", str(root / "train"), "--k", "3"]
    assert main([*args, "--out", str(out), "--json", str(out_json)]) == 0
    records = json.loads(out_json.read_text())
    assert len(records) == HELD_OUT + len(split["sources"])
    flagged = {r["image"] for r in records if r["copy"]}
    assert flagged == set(split["sources"]), flagged
    for record in records:
        distances = [n["distance"] for n in record["neighbours"]]
        assert len(distances) == 3 and distances == sorted(distances)
        if record["copy"]:  # the nearest training image is the one it was copied from
            assert record["neighbours"][0]["name"] == split["sources"][record["image"]]
    assert "8 of 48 image(s) flagged" in capsys.readouterr().out
    grid = PIL.Image.open(out)
    assert grid.size[0] == 4 * 64 and grid.size[1] == len(records) * (64 + 12)


def test_the_margin_between_copies_and_held_out_images(split):
    """The threshold sits between the planted copies and the closest held-out image."""
    root = split["root"]
    search = prepare(str(root / "train"), NearestOptions(batch=64))
    files = sorted((root / "check").iterdir())
    images = torch.from_numpy(np.stack([np.array(PIL.Image.open(f)).transpose(2, 0, 1) for f in files]))
    matches = nearest(search, images, [f.name for f in files], k=1)
    copies = [m.distances[0] for m in matches if m.image in split["sources"]]
    held = [m.distances[0] for m in matches if m.image not in split["sources"]]
    threshold = search.reference.threshold
    assert max(copies) < threshold < min(held), (max(copies), threshold, min(held))
    assert threshold == pytest.approx(COPY_FACTOR * np.percentile(search.reference.nearest_other, 1))
    assert copy_fraction(matches) == pytest.approx(len(split["sources"]) / len(files))


class _Memoriser(nn.Module):
    """A "generator" that returns training images: what a fully memorising G would draw."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = images.float() / 127.5 - 1
        self.z_dim, self.c_dim = 4, 0
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, z, c, truncation_psi=1, noise_mode="const"):
        index = (z[:, 0].abs() * 1000).long() % len(self.images)
        return self.images[index]


def test_copy_score_per_snapshot(split):
    """copy_score: 1 for a G that draws training images, and the CLI's share for a real G."""
    train = ImageDataset(str(split["root"] / "train"))
    search = prepare(train, NearestOptions())
    memoriser = _Memoriser(torch.from_numpy(train.load_batch(np.arange(len(train)))[0]))
    assert copy_score(memoriser, search, seeds=range(16)) == 1.0
    from core.studio.common import load_generator

    score = copy_score(load_generator(str(DEMO), torch.device("cpu")), search, seeds=range(8))
    assert 0.0 <= score <= 1.0


def test_network_rows_are_seeds(split, tmp_path):
    out_json = tmp_path / "nn.json"
    args = ["nearest", "--network", str(DEMO), "--data", str(split["root"] / "train"), "--seeds", "0-3",
            "--k", "2", "--out", str(tmp_path / "nn.png"), "--json", str(out_json), "--batch", "4"]
    assert main(args) == 0
    records = json.loads(out_json.read_text())
    assert [r["image"] for r in records] == [0, 1, 2, 3]
    assert all(len(r["neighbours"]) == 2 and isinstance(r["copy"], bool) for r in records)


def test_subset_searches_only_the_images_the_run_trained_on(split, tmp_path):
    out_json = tmp_path / "nn.json"
    args = ["nearest", "--images", str(split["root"] / "check"), "--data", str(split["root"] / "train"),
            "--subset", "25", "--subset-seed", "3", "--k", "3", "--out", str(tmp_path / "nn.png"),
            "--json", str(out_json)]  # fmt: skip
    assert main(args) == 0
    trained = ImageDataset(str(split["root"] / "train"), subset=25, seed=3)
    allowed = {trained.file_name(i) for i in range(len(trained))}
    found = {n["name"] for r in json.loads(out_json.read_text()) for n in r["neighbours"]}
    assert found <= allowed and len(found) > 3
    # planted copies of images outside the subset are no copies of what this run saw
    outside = {name for name, source in split["sources"].items() if source not in allowed}
    flagged = {r["image"] for r in json.loads(out_json.read_text()) if r["copy"]}
    assert outside and not (flagged & outside)


def test_subset_below_one_is_refused_in_one_line(split, tmp_path, capsys):
    args = ["nearest", "--images", str(split["root"] / "check"), "--data", str(split["root"] / "train"),
            "--subset", "0", "--out", str(tmp_path / "nn.png")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--subset 0: must be >= 1" in err[0]


def test_shift_repeats_the_edge():
    x = torch.arange(9, dtype=torch.uint8).reshape(1, 1, 3, 3)
    assert shifted(x, 0, 1)[0, 0].tolist() == [[0, 0, 1], [3, 3, 4], [6, 6, 7]]
    assert shifted(x, -1, 0)[0, 0].tolist() == [[3, 4, 5], [6, 7, 8], [6, 7, 8]]


class _Noise(_Memoriser):
    def forward(self, z, c, truncation_psi=1, noise_mode="const"):
        return torch.rand(len(z), *self.images.shape[1:]) * 2 - 1


def test_copies_offline_is_a_metric_for_snapshots(split, tmp_path):
    """``--metrics copies_offline`` (CLI, and the trainer at each snapshot): the share of fakes
    flagged; 1 for a G that draws training images, 0 for noise; other metrics alongside still work."""
    from core.metrics import MetricOptions, compute_metrics

    train = ImageDataset(str(split["root"] / "train"))
    images = torch.from_numpy(train.load_batch(np.arange(len(train)))[0])
    options = MetricOptions(num_gen=24, batch=8, cache_dir=str(tmp_path / "cache"), progress=False)
    results = compute_metrics(_Memoriser(images), train.spec, ["copies_offline", "fd_offline"], options)
    assert results["copies_offline"].results == {"copies_offline": 1.0}
    assert results["copies_offline"].num_gen == 24 and results["copies_offline"].num_real == TRAIN
    assert np.isfinite(results["fd_offline"].results["fd_offline"])
    noise = compute_metrics(_Noise(images), train.spec, ["copies_offline"], options)
    assert noise["copies_offline"].results == {"copies_offline": 0.0}


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_inception_when_its_file_is_named(split, tmp_path, monkeypatch):
    """The option or the environment variable the metrics use picks Inception; copies_offline
    stays offline; the search runs on whichever extractor was chosen."""
    from core.metrics.nearest import choose_extractor
    from tests.core.metrics.test_evaluate import FakeDetector

    detector = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(FakeDetector()), str(detector))
    assert choose_extractor(NearestOptions()).identity.startswith("offline-")
    assert choose_extractor(NearestOptions(inception=str(detector))).identity.startswith("inception-")
    monkeypatch.setenv("ADA_INCEPTION_WEIGHTS", str(detector))
    assert choose_extractor(NearestOptions()).identity.startswith("inception-")
    assert choose_extractor(NearestOptions(kind="offline")).identity.startswith("offline-")
    out_json = tmp_path / "nn.json"
    args = ["nearest", "--images", str(split["root"] / "check"), "--data", str(split["root"] / "train"),
            "--k", "1", "--out", str(tmp_path / "nn.png"), "--json", str(out_json)]
    assert main(args) == 0
    assert len(json.loads(out_json.read_text())) == HELD_OUT + len(split["sources"])
    # (The fake detector's 6 image statistics are equal for every normalised image, so nothing is
    # flagged here; the test shows which features were used, not how good they are.)
    assert prepare(str(split["root"] / "train")).reference.extractor.startswith("inception-")


def test_the_training_set_is_cached_with_the_metrics_cache(split, tmp_path, monkeypatch):
    from core.metrics import cache

    monkeypatch.setenv("ADA_STUDIO_CACHE", str(tmp_path / "c"))
    first = prepare(str(split["root"] / "train"))
    (entry,) = (cache.cache_dir()).glob("*-nearest.npz")
    assert entry.name.startswith("train-offline-")
    calls = []
    monkeypatch.setattr("core.metrics.nearest.shifted_distances", lambda *a, **k: calls.append(a))
    again = prepare(str(split["root"] / "train"))
    assert calls == []  # nothing recomputed
    assert torch.equal(again.reference.features, first.reference.features)
    assert again.reference.threshold == first.reference.threshold
