"""Leak indicators on builtin:digits: "fakes" made by flipping or turning held-out reals light up the
right op and only it; plain held-out reals light up nothing; an op the data already contains reads 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import ImageDataset
from core.metrics import MetricsError
from core.metrics.evaluate import METRIC_HELP, metric_help
from core.metrics.extractors import LayoutExtractor
from core.metrics.leaks import build_reference, check_ops, leak_values, ops_in_use, transform

OPS = ["xflip", "rotate90", "rotate", "brightness", "contrast"]
TRAIN = 1200  # training digits; the other 597 are held out and become the "fakes"
FAKES = 300
LIT = 0.6  # a leaking op reads at least this ...
DARK = 0.2  # ... and every other op at most this


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageDataset, torch.Tensor, Path]:
    train = ImageDataset("builtin:digits", subset=TRAIN, seed=5)
    everything = ImageDataset("builtin:digits")
    held = np.setdiff1d(np.arange(len(everything)), train.raw_indices)[:FAKES]
    return train, torch.from_numpy(everything.load_batch(held)[0]), tmp_path_factory.mktemp("cache")


def leaks(dataset: ImageDataset, fakes: torch.Tensor, cache: Path) -> dict[str, float]:
    extractor = LayoutExtractor()
    reference = build_reference(dataset, OPS, extractor, cache_dir=str(cache))
    return {k.removeprefix("leak/"): v for k, v in leak_values(reference, extractor(fakes)).items()}


def lit(values: dict[str, float]) -> list[str]:
    assert all(v <= DARK or v >= LIT for v in values.values()), values  # no in-between readings
    return [op for op, v in values.items() if v >= LIT]


def test_held_out_reals_light_up_nothing(digits: tuple[ImageDataset, torch.Tensor, Path]) -> None:
    dataset, held, cache = digits
    values = leaks(dataset, held, cache)
    assert list(values) == OPS
    assert lit(values) == []


def test_flipped_reals_light_up_xflip_only(digits: tuple[ImageDataset, torch.Tensor, Path]) -> None:
    dataset, held, cache = digits
    assert lit(leaks(dataset, torch.flip(held, dims=[3]), cache)) == ["xflip"]


def test_turned_reals_light_up_rotate90_only(digits: tuple[ImageDataset, torch.Tensor, Path]) -> None:
    dataset, held, cache = digits
    assert lit(leaks(dataset, torch.rot90(held, 1, dims=[2, 3]), cache)) == ["rotate90"]


def test_half_flipped_fakes_read_about_half(digits: tuple[ImageDataset, torch.Tensor, Path]) -> None:
    dataset, held, cache = digits
    half = torch.cat([held[: FAKES // 2], torch.flip(held[FAKES // 2 :], dims=[3])])
    assert leaks(dataset, half, cache)["xflip"] == pytest.approx(0.5, abs=0.15)


def test_brightened_reals_light_up_brightness(digits: tuple[ImageDataset, torch.Tensor, Path]) -> None:
    dataset, held, cache = digits
    values = leaks(dataset, transform(held, "brightness", None, seed=9), cache)
    assert values["brightness"] > 0.5 and max(values["xflip"], values["rotate90"], values["rotate"]) < 0.1


def test_an_op_the_data_already_has_reads_zero(tmp_path: Path) -> None:
    # Digits, each flipped or not by a coin: flipping does not change this data's distribution.
    everything = ImageDataset("builtin:digits")
    images = torch.from_numpy(everything.load_batch(np.arange(len(everything)))[0])
    coin = torch.rand(len(images), generator=torch.Generator().manual_seed(1)) < 0.5
    images = torch.where(coin[:, None, None, None], torch.flip(images, dims=[3]), images)
    folder = tmp_path / "symmetric"
    _write_pngs(folder, images[:TRAIN])
    dataset = ImageDataset(str(folder))
    held = images[TRAIN : TRAIN + FAKES]
    for fakes in (held, torch.flip(held, dims=[3])):
        values = leaks(dataset, fakes, tmp_path / "cache")
        assert values["xflip"] < 0.12, values


def _write_pngs(folder: Path, images: torch.Tensor) -> None:
    from PIL import Image

    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"img{i:05d}.png")


def test_ops_in_use_and_op_names() -> None:
    assert ops_in_use({"xflip": 1, "rotate90": 0, "hue": 1, "noise": 1}, channels=3) == ["xflip", "hue"]
    assert ops_in_use({"xflip": 1, "hue": 1, "saturation": 1}, channels=1) == ["xflip"]
    assert check_ops(["hue", "xflip"]) == ["xflip", "hue"]
    with pytest.raises(MetricsError, match="unknown op 'blur'"):
        check_ops(["xflip", "blur"])


def test_every_metric_and_leak_key_has_help() -> None:
    from core.metrics.evaluate import METRICS

    for name in METRICS:
        assert metric_help(name) or metric_help(f"{name}_precision"), name
    assert "xflip" in metric_help("leak/xflip") and metric_help("copies_offline") == METRIC_HELP["copies_offline"]
