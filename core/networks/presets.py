"""Training configurations by name: the public ``--cfg`` presets and a small CPU preset.

Numbers of the public presets follow StyleGAN2-ADA's train.py (see shared/reference). ``cpu32``
is ours: a 32 px model small enough to train on a 2-core laptop CPU at well under 30 s per kimg.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CfgSpec:
    """A resolved preset: everything the training loop needs to build networks and optimisers."""

    name: str
    ref_gpus: int
    kimg: int
    batch: int  # global minibatch
    batch_gpu: int  # per-GPU minibatch (gradient accumulation when batch > batch_gpu * gpus)
    mbstd_group: int
    fmaps: float
    lrate: float
    gamma: float
    ema_kimg: float
    ema_rampup: float | None
    map_depth: int
    channel_base: int
    channel_max: int
    num_fp16_res: int
    conv_clamp: float | None
    z_dim: int = 512
    w_dim: int = 512
    pl_weight: float = 2.0
    style_mixing: float = 0.9
    g_architecture: str = "skip"
    d_architecture: str = "resnet"
    adam_betas: tuple[float, float] = (0.0, 0.99)
    adam_eps: float = 1e-8
    # ADA/APA: p can move by 1 in this many kimg (--ada-kimg). The public 500 suits runs of
    # thousands of kimg; a preset for short runs needs a faster p, or p never gets anywhere.
    ada_kimg: float = 500.0

    def G_kwargs(self, c_dim: int, img_resolution: int, img_channels: int) -> dict[str, Any]:
        return dict(
            z_dim=self.z_dim, c_dim=c_dim, w_dim=self.w_dim, img_resolution=img_resolution,
            img_channels=img_channels, mapping_kwargs=dict(num_layers=self.map_depth),
            synthesis_kwargs=dict(
                channel_base=self.channel_base, channel_max=self.channel_max, num_fp16_res=self.num_fp16_res,
                conv_clamp=self.conv_clamp, architecture=self.g_architecture,
            ),
        )

    def D_kwargs(self, c_dim: int, img_resolution: int, img_channels: int) -> dict[str, Any]:
        return dict(
            c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
            architecture=self.d_architecture, channel_base=self.channel_base, channel_max=self.channel_max,
            num_fp16_res=self.num_fp16_res, conv_clamp=self.conv_clamp,
            epilogue_kwargs=dict(mbstd_group_size=self.mbstd_group),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Row:
    ref_gpus: int  # 0 = the number of GPUs in use
    kimg: int
    mb: int
    mbstd: int
    fmaps: float
    lrate: float
    gamma: float
    ema: float
    ramp: float | None
    map: int


# The public table (train.py of stylegan2-ada-pytorch). 'auto' is computed from the resolution.
_PUBLIC: dict[str, _Row] = {
    "stylegan2": _Row(8, 25000, 32, 4, 1, 0.002, 10, 10, None, 8),
    "paper256": _Row(8, 25000, 64, 8, 0.5, 0.0025, 1, 20, None, 8),
    "paper512": _Row(8, 25000, 64, 8, 1, 0.0025, 0.5, 20, None, 8),
    "paper1024": _Row(8, 25000, 32, 4, 1, 0.002, 2, 10, None, 8),
    "cifar": _Row(2, 100000, 64, 32, 1, 0.0025, 0.01, 500, 0.05, 2),
}

CFG_NAMES = ("auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar", "cpu32")


def _auto_row(resolution: int, gpus: int) -> _Row:
    mb = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return _Row(
        ref_gpus=gpus, kimg=25000, mb=mb, mbstd=min(mb // gpus, 4), fmaps=1 if resolution >= 512 else 0.5,
        lrate=0.002 if resolution >= 1024 else 0.0025, gamma=0.0002 * resolution**2 / mb, ema=mb * 10 / 32,
        ramp=0.05, map=2,
    )


def resolve_cfg(name: str, resolution: int, gpus: int = 1) -> CfgSpec:
    """Resolves preset ``name`` for a dataset of ``resolution`` px trained on ``gpus`` devices."""
    if name not in CFG_NAMES:
        raise ValueError(f"--cfg: unknown preset {name!r}; choose one of {', '.join(CFG_NAMES)}")
    if gpus < 1:
        raise ValueError(f"--gpus must be >= 1, got {gpus}")
    if name == "cpu32":
        return cpu32(gpus)
    row = _auto_row(resolution, gpus) if name == "auto" else _PUBLIC[name]
    spec = CfgSpec(
        name=name, ref_gpus=row.ref_gpus, kimg=row.kimg, batch=row.mb, batch_gpu=row.mb // row.ref_gpus,
        mbstd_group=row.mbstd, fmaps=row.fmaps, lrate=row.lrate, gamma=row.gamma, ema_kimg=row.ema,
        ema_rampup=row.ramp, map_depth=row.map, channel_base=int(row.fmaps * 32768), channel_max=512,
        num_fp16_res=4, conv_clamp=256,
    )
    if name == "cifar":
        spec = CfgSpec(**{**asdict(spec), "pl_weight": 0.0, "style_mixing": 0.0, "d_architecture": "orig"})
    return spec


def cpu32(gpus: int = 1) -> CfgSpec:
    """Small 32 px model for a laptop CPU: channels 64 at every resolution, z = w = 64, batch 16,
    and p that can cross its range in 100 kimg.

    Measured with bench/bench_networks.py and the training benchmark; see README for figures.
    Everything runs in float32 (no fp16 layers, no clamp needed).
    """
    batch = 16
    return CfgSpec(
        name="cpu32", ref_gpus=gpus, kimg=200, batch=batch, batch_gpu=max(batch // gpus, 1), mbstd_group=4,
        fmaps=2048 / 32768, lrate=0.0025, gamma=0.0002 * 32**2 / batch, ema_kimg=batch * 10 / 32, ema_rampup=0.05,
        map_depth=2, channel_base=2048, channel_max=64, num_fp16_res=0, conv_clamp=None, z_dim=64, w_dim=64,
        # cpu32 runs last tens of kimg (the GUI's New run: 20): at 500, p could move by 0.04 in such
        # a run. 100 let p rise and settle on builtin:digits (docs/training.md, runs of 2026-12-03).
        ada_kimg=100.0,
    )


def ada_kimg_default(name: str) -> float:
    """The preset's --ada-kimg default (it does not depend on the resolution or the GPU count)."""
    return resolve_cfg(name, 256).ada_kimg
