"""Extractors, compute_metrics end to end, the feature cache, and the CLI with metrics.jsonl."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from core.data import ImageDataset
from core.metrics import (
    MetricOptions,
    MetricsError,
    RandomConvExtractor,
    compute_metrics,
    run_metrics_for_training,
)
from core.metrics import evaluate as evaluate_module
from core.metrics.extractors import build_extractor, find_detector, to_rgb
from core.networks.stylegan2 import Generator
from tests.core.data.helpers import write_folder

URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


def tiny_generator(c_dim: int = 0) -> Generator:
    torch.manual_seed(0)
    return Generator(
        z_dim=8,
        c_dim=c_dim,
        w_dim=8,
        img_resolution=8,
        img_channels=3,
        mapping_kwargs=dict(num_layers=1),
        synthesis_kwargs=dict(channel_base=64, channel_max=8),
    )


class ReplayGenerator(nn.Module):
    """A 'generator' that hands back the dataset's own images, in order: fakes == reals."""

    def __init__(self, images: np.ndarray) -> None:
        super().__init__()
        self.z_dim, self.c_dim = 4, 0
        self.register_buffer("images", (torch.from_numpy(images).float() - 127.5) / 127.5)
        self.next = 0

    def forward(self, z: torch.Tensor, c: torch.Tensor, **_kwargs: object) -> torch.Tensor:
        picks = torch.arange(self.next, self.next + len(z)) % len(self.images)
        self.next += len(z)
        return self.images[picks]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("m") / "toy", 40, res=8, labels=[i % 4 for i in range(40)])


def options(tmp_path: Path, **kw: object) -> MetricOptions:
    return MetricOptions(
        **{"num_gen": 32, "cache_dir": str(tmp_path / "cache"), "progress": False, "batch": 16, **kw}
    )  # type: ignore[arg-type]


def test_offline_extractor_is_fixed_and_resolution_independent() -> None:
    a, b, other = RandomConvExtractor(0), RandomConvExtractor(0), RandomConvExtractor(1)
    assert a.identity == b.identity != other.identity and a.identity.startswith("offline-randconv-v1-seed0-")
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    torch.testing.assert_close(a(images), b(images))
    assert a(images).shape == (3, a.feature_dim) == (3, 240)
    assert a(torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)).shape == (2, 240)
    gray = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(to_rgb(gray), gray.repeat(1, 3, 1, 1))


def test_missing_inception_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(MetricsError) as info:
        find_detector("inception", None, "fid50k_full")
    message = str(info.value)
    assert "--inception PATH" in message and "ADA_INCEPTION_WEIGHTS" in message and URL in message
    assert "\n" not in message and message.startswith("fid50k_full needs the Inception-v3 weights")
    monkeypatch.setenv("ADA_INCEPTION_WEIGHTS", str(tmp_path / "nope.pt"))
    with pytest.raises(MetricsError, match="nope.pt .* do not exist"):
        find_detector("inception", None, "fid50k_full")


class FakeDetector(nn.Module):
    """Stands in for the public TorchScript file: same call, features = per-channel means and stds."""

    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = images.float()
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 6 features from 32 images: sqrtm warns, stays exact
def test_torchscript_detector_path_and_fid(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(FakeDetector()), str(detector))
    monkeypatch.setenv("ADA_INCEPTION_WEIGHTS", str(detector))
    extractor = build_extractor("inception", torch.device("cpu"), "fid50k_full")
    assert extractor.identity.startswith("inception-")
    assert extractor(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)).shape == (2, 6)
    # Fakes: the reals inverted, replayed in order; FID recomputed here from the detector's features.
    reals = ImageDataset(data).load_batch(np.arange(40))[0]
    G = ReplayGenerator(255 - reals)
    result = compute_metrics(G, str(data), ["fid50k_full", "kid50k_full"], options(tmp_path))
    assert result["fid50k_full"].num_real == 40
    fake_features = FakeDetector()(torch.from_numpy(255 - reals[:32])).double().numpy()
    real_features = FakeDetector()(torch.from_numpy(reals)).double().numpy()
    mu_r, mu_g = real_features.mean(0), fake_features.mean(0)
    cov_r, cov_g = np.cov(real_features, rowvar=False), np.cov(fake_features, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_r @ cov_g).real
    expected = float(np.square(mu_r - mu_g).sum() + np.trace(cov_r + cov_g - 2 * covmean))
    assert expected > 100  # far from zero, so a constant or a sign slip would show
    assert result["fid50k_full"].results["fid50k_full"] == pytest.approx(expected, rel=1e-3)
    assert set(result["kid50k_full"].results) == {"kid50k_full"}
    (tmp_path / "junk.pt").write_bytes(b"not torchscript")
    with pytest.raises(MetricsError, match="junk.pt: not a loadable TorchScript Inception-v3 detector"):
        build_extractor("inception", torch.device("cpu"), "fid50k_full", inception=str(tmp_path / "junk.pt"))


def test_replayed_reals_score_perfectly(data: Path, tmp_path: Path) -> None:
    ds = ImageDataset(data)
    ds.preload()
    G = ReplayGenerator(ds.load_batch(np.arange(len(ds)))[0])
    result = compute_metrics(G, ds, ["fd_offline", "pr_offline"], options(tmp_path, num_gen=40))
    assert abs(result["fd_offline"].results["fd_offline"]) < 1e-6
    assert result["pr_offline"].results == {"pr_offline_precision": 1.0, "pr_offline_recall": 1.0}


def test_compute_metrics_reproducible_and_cached(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    G = tiny_generator()
    names = ["fd_offline", "kid_offline", "pr_offline"]
    first = compute_metrics(G, str(data), names, options(tmp_path))
    cached = list((tmp_path / "cache").glob("toy-offline-*-features.npz"))
    assert len(cached) == 1  # fd, kid and pr share one real feature set
    assert all(np.isfinite(v) for r in first.values() for v in r.results.values())
    assert first["pr_offline"].num_gen == 32 and first["fd_offline"].num_real == 40

    def no_decoding(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("real features were recomputed despite the cache")

    monkeypatch.setattr(evaluate_module, "_real_batches", no_decoding)
    again = compute_metrics(G, str(data), names, options(tmp_path))
    assert {n: r.results for n, r in again.items()} == {n: r.results for n, r in first.items()}
    monkeypatch.undo()
    torch.manual_seed(123)  # the caller's RNG state does not matter (and is left alone)
    state = torch.get_rng_state()
    third = compute_metrics(G, str(data), ["fd_offline"], options(tmp_path, cache_dir=str(tmp_path / "c2")))
    assert third["fd_offline"].results == first["fd_offline"].results
    assert torch.equal(torch.get_rng_state(), state)


def test_cache_key_follows_dataset_content(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "toy", 12, res=8)
    G = tiny_generator()
    compute_metrics(G, str(folder), ["fd_offline"], options(tmp_path, num_gen=8))
    os.utime(folder / "img000.png", ns=(1, 1))  # same bytes, but the folder fingerprint changes
    compute_metrics(G, str(folder), ["fd_offline"], options(tmp_path, num_gen=8))
    assert len(list((tmp_path / "cache").glob("toy-*-stats.npz"))) == 2


def test_conditional_generator_uses_labels_and_checks_them(data: Path, tmp_path: Path) -> None:
    result = compute_metrics(tiny_generator(c_dim=4), str(data), ["fd_offline"], options(tmp_path))
    assert np.isfinite(result["fd_offline"].results["fd_offline"])
    with pytest.raises(MetricsError, match="c_dim=3 but .* has 4 classes"):
        compute_metrics(tiny_generator(c_dim=3), str(data), ["fd_offline"], options(tmp_path))
    with pytest.raises(MetricsError, match="unknown metric 'fid'; choose from fid50k_full"):
        compute_metrics(tiny_generator(), str(data), "fid", options(tmp_path))


def test_run_metrics_for_training_appends_records(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    records = run_metrics_for_training(
        tiny_generator(),
        str(data),
        "fd_offline",
        run_dir=run_dir,
        snapshot="snapshots/network-snapshot-000008.json",
        kimg=8,
        options=options(tmp_path, num_gen=16),
    )
    run_metrics_for_training(
        tiny_generator(),
        str(data),
        "fd_offline",
        run_dir=run_dir,
        kimg=12,
        options=options(tmp_path, num_gen=16),
    )
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines[0] == records[0] and [line["kimg"] for line in lines] == [8, 12]
    assert set(lines[0]) >= {"metric", "results", "snapshot", "kimg", "total_time", "timestamp", "num_gen"}
