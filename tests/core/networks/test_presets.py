"""The --cfg presets reproduce the public table and its worked 'auto' values."""

from __future__ import annotations

import pytest
import torch

from core.networks import Discriminator, Generator
from core.networks.presets import CFG_NAMES, resolve_cfg


@pytest.mark.parametrize("res,mb,gamma,ema", [(128, 32, 0.1024, 10), (256, 16, 0.8192, 5), (512, 8, 6.5536, 2.5),
                                              (1024, 4, 52.4288, 1.25)])
def test_auto_worked_values_on_one_gpu(res: int, mb: int, gamma: float, ema: float) -> None:
    spec = resolve_cfg("auto", res, gpus=1)
    assert spec.batch == mb and spec.batch_gpu == mb
    assert spec.gamma == pytest.approx(gamma) and spec.ema_kimg == pytest.approx(ema)
    assert spec.mbstd_group == min(mb, 4) and spec.map_depth == 2 and spec.ema_rampup == 0.05
    assert spec.channel_base == (32768 if res >= 512 else 16384) and spec.channel_max == 512
    assert spec.lrate == (0.002 if res >= 1024 else 0.0025)


def test_fixed_presets() -> None:
    s = resolve_cfg("stylegan2", 256, gpus=1)
    assert (s.batch, s.batch_gpu, s.gamma, s.ema_kimg, s.map_depth, s.channel_base) == (32, 4, 10, 10, 8, 32768)
    p = resolve_cfg("paper256", 256, gpus=4)
    assert (p.batch, p.batch_gpu, p.mbstd_group, p.fmaps, p.gamma, p.ema_kimg) == (64, 8, 8, 0.5, 1, 20)
    c = resolve_cfg("cifar", 32)
    assert (c.kimg, c.pl_weight, c.style_mixing, c.d_architecture, c.ema_rampup) == (100000, 0, 0, "orig", 0.05)
    for name in CFG_NAMES:
        spec = resolve_cfg(name, 64)
        assert spec.adam_betas == (0.0, 0.99) and spec.adam_eps == 1e-8


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="--cfg: unknown preset 'huge'"):
        resolve_cfg("huge", 64)


def test_cpu32_builds_small_networks() -> None:
    spec = resolve_cfg("cpu32", 32)
    G = Generator(**spec.G_kwargs(c_dim=0, img_resolution=32, img_channels=3))
    D = Discriminator(**spec.D_kwargs(c_dim=0, img_resolution=32, img_channels=3))
    n_params = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    assert n_params < 1_000_000
    img = G(torch.randn(spec.batch_gpu, spec.z_dim), None)
    assert D(img, None).shape == (spec.batch_gpu, 1)
