"""ADA's augmentation pipeline: 15 ops in the paper's order, each firing per image with p * multiplier.

Order and execution (Karras et al. 2020, appendix B, as the public pipeline runs it):

    xflip, rotate90, xint, scale, rotate, aniso, xfrac  -> one 3x3 matrix, ONE resampling pass
    brightness, contrast, lumaflip, hue, saturation     -> one 4x4 colour matrix, one batched matmul
    imgfilter (4 octave bands)                          -> one per-image separable 43-tap filter
    noise, cutout

What makes it fast (bench/bench_augment.py has the figures and two baselines):

* p = 0 returns the input tensor itself: nothing is drawn or computed.
* A stage touches only the images whose draws are not all identity. Images whose only move is a
  whole-pixel shift are copied with one gather, not resampled (the resampling would give the same
  pixels: its filter pair reconstructs perfectly on the pixel grid).
* The resampling (geometry.Resampler) upsamples one period of the mirrored image instead of a
  reflect-padded canvas sized for the batch's most extreme transform, and runs the separable
  wavelet up/down filters as banded GEMMs, which BLAS does far faster than CPU depthwise convs.
* Colour is one 3x4 matrix per image (one batched matmul); the 4-band filter is one combined
  43-tap separable filter per image.

Where the result differs from the public tool, and where it does not:

* Not in what the ops compute: each op gives the public pipe's output, input gradient and R1
  double backward to float rounding (bench/bench_pipe_ops_match.py). That includes flips and
  quarter turns, which go through the resampling as in the public tool rather than being copied:
  its sym6 filter is not symmetric, so a mirrored or turned image comes out gently low-passed at
  its finest detail (x-flip: amplitude 0.93 at 0.42 cycles/pixel, 0.87 at Nyquist). One difference
  fewer to rule out when a run differs from a public one.
* Where the public tool's padding is clamped (extreme zoom-out plus rotation) it samples zeros;
  here the mirror image continues. Elsewhere the two agree to float rounding (tested).
* Parameter draws come from per-op streams (below), so the random numbers differ; the
  distributions are the same.

Reproducibility: every op draws from its own random stream, seeded from one 63-bit number taken
from the caller's generator (or torch's global one). The same images, seed and settings give
bit-identical output, and switching one op on or off does not change the draws of the others,
so a preview stays recognisable while the user moves sliders.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from core.augment import geometry as geo
from core.augment.wavelets import BAND_EXPECTED_POWER, NUM_BANDS, filter_bank, geom_lowpass

log = logging.getLogger(__name__)

BLIT_OPS = ("xflip", "rotate90", "xint")
GENERAL_GEOM_OPS = ("scale", "rotate", "aniso", "xfrac")
GEOM_OPS = BLIT_OPS + GENERAL_GEOM_OPS
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OP_NAMES = GEOM_OPS + COLOR_OPS + ("imgfilter", "noise", "cutout")
BAND_NAMES = tuple(f"imgfilter_band{i}" for i in range(NUM_BANDS))
MULTIPLIER_NAMES = OP_NAMES + BAND_NAMES


def _preset(*groups: tuple[str, ...]) -> Mapping[str, float]:
    enabled = {op for group in groups for op in group}
    return MappingProxyType({op: float(op in enabled) for op in OP_NAMES})


_FILTER, _NOISE, _CUTOUT = ("imgfilter",), ("noise",), ("cutout",)
# Read-only: the GUI and the CLI import these.
PRESETS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "blit": _preset(BLIT_OPS),
        "geom": _preset(GENERAL_GEOM_OPS),
        "color": _preset(COLOR_OPS),
        "filter": _preset(_FILTER),
        "noise": _preset(_NOISE),
        "cutout": _preset(_CUTOUT),
        "bg": _preset(GEOM_OPS),
        "bgc": _preset(GEOM_OPS, COLOR_OPS),
        "bgcf": _preset(GEOM_OPS, COLOR_OPS, _FILTER),
        "bgcfn": _preset(GEOM_OPS, COLOR_OPS, _FILTER, _NOISE),
        "bgcfnc": _preset(GEOM_OPS, COLOR_OPS, _FILTER, _NOISE, _CUTOUT),
    }
)


@dataclass
class AugmentStrengths:
    """Strength knobs, with the public names and defaults (fractions of the image size, log2 stds,
    or multiples of pi for the angles)."""

    xint_max: float = 0.125
    scale_std: float = 0.2
    rotate_max: float = 1.0
    aniso_std: float = 0.2
    xfrac_std: float = 0.125
    brightness_std: float = 0.2
    contrast_std: float = 0.5
    hue_max: float = 1.0
    saturation_std: float = 1.0
    imgfilter_std: float = 1.0
    noise_std: float = 0.1
    cutout_size: float = 0.5

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = float(getattr(self, field.name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"AugmentPipe: {field.name} must be a finite number >= 0, got {value}")
            setattr(self, field.name, value)


STRENGTH_NAMES = tuple(f.name for f in dataclasses.fields(AugmentStrengths))


def _check_multiplier(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"AugmentPipe: multiplier {name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"AugmentPipe: multiplier {name} must be a finite number >= 0, got {value}")
    return value


# --------------------------------------------------------------------------------------------------
# Random draws


class _Draws:
    """Per-op random streams for one call. ``debug_percentile`` q replaces every uniform draw by q
    and every normal draw by its q-quantile, and makes every enabled op fire (for showing what an
    op does at a given strength)."""

    def __init__(self, generator: torch.Generator | None, debug_percentile: float | None) -> None:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        # Two 31-bit draws: randint over a 62-bit range is ~50x slower on the global CPU generator.
        hi, lo = torch.randint(0, 2**31, (2,), generator=generator, device=gen_device).tolist()
        self.base_seed = (hi << 31) | lo
        self._gen = torch.Generator()
        self.q = debug_percentile
        if debug_percentile is not None and not 0 <= debug_percentile <= 1:
            raise ValueError(f"AugmentPipe: debug_percentile must be in [0, 1], got {debug_percentile}")

    def seed_for(self, stream: int) -> int:
        # Golden-ratio stride keeps the streams' seeds far apart for neighbouring base seeds.
        return (self.base_seed + 0x9E3779B97F4A7C15 * (stream + 1)) % 2**63

    def select(self, stream: int) -> None:
        self._gen.manual_seed(self.seed_for(stream))

    def uniform(self, *shape: int) -> torch.Tensor:
        if self.q is not None:
            return torch.full(shape, self.q)
        return torch.rand(shape, generator=self._gen)

    def normal(self, *shape: int) -> torch.Tensor:
        if self.q is not None:
            q = min(max(self.q, 1e-6), 1 - 1e-6)
            return torch.full(shape, math.sqrt(2) * float(torch.erfinv(torch.tensor(2 * q - 1))))
        return torch.randn(shape, generator=self._gen)

    def fires(self, n: int, prob: float) -> torch.Tensor:
        if self.q is not None:
            return torch.ones(n, dtype=torch.bool)
        return torch.rand(n, generator=self._gen) < prob

    def pixel_noise(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device=like.device)
        gen.manual_seed(self.seed_for(len(OP_NAMES)))
        return torch.randn(shape, generator=gen, device=like.device, dtype=like.dtype)


# --------------------------------------------------------------------------------------------------
# The plan: everything drawn for one batch, before any pixel is touched


@dataclass
class _Plan:
    n: int
    g_inv: torch.Tensor | None = None  # [N, 3, 3] float64
    exact_blit: torch.Tensor | None = None  # [N] bool: nothing but a whole-pixel shift moved the image
    color: torch.Tensor | None = None  # [N, 4, 4] float64
    band_gains: torch.Tensor | None = None  # [N, 4] float64
    noise_sigma: torch.Tensor | None = None  # [N]
    cutout: tuple[torch.Tensor, torch.Tensor] | None = None  # centre [N, 2], size [N]
    # op -> (fired [N] bool, {param: [N] tensor}) for explain()
    record: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]] = dataclasses.field(default_factory=dict)

    def explain(self) -> list[dict[str, dict[str, Any]]]:
        out: list[dict[str, dict[str, Any]]] = [{} for _ in range(self.n)]
        for op in OP_NAMES:
            if op not in self.record:
                continue
            fired, params = self.record[op]
            for i in torch.nonzero(fired).flatten().tolist():
                # NaN marks a parameter that does not apply to this image (a rotation that did not fire).
                out[i][op] = {k: _plain(v[i]) for k, v in params.items() if not bool(v[i].isnan().any())}
        return out


def _plain(v: torch.Tensor) -> float | int | list[float]:
    if v.ndim > 0:
        return [float(e) for e in v]
    if v.dtype in (torch.int64, torch.int32, torch.bool):
        return int(v)
    return float(v)


def _where(fired: torch.Tensor, value: torch.Tensor, identity: float) -> torch.Tensor:
    mask = fired.reshape(fired.shape + (1,) * (value.ndim - fired.ndim))
    return torch.where(mask, value, torch.full_like(value, identity))


def _plan_geometry(plan: _Plan, draws: _Draws, m: Mapping[str, float], s: AugmentStrengths, p: float,
                   h: int, w: int) -> None:  # fmt: skip
    n = plan.n
    g = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    resampled = torch.zeros(n, dtype=torch.bool)  # images that a whole-pixel copy cannot do
    stream = {op: OP_NAMES.index(op) for op in GEOM_OPS}
    if m["xflip"] > 0:
        draws.select(stream["xflip"])
        i = torch.floor(draws.uniform(n) * 2)
        fired = draws.fires(n, p * m["xflip"])
        i = _where(fired, i, 0).double()
        g = g @ geo.scale2d(1 - 2 * i, torch.ones_like(i))
        resampled |= i.long() == 1  # flips and turns are resampled, as in the public pipe (docstring)
        plan.record["xflip"] = (fired, {"i": i.long()})
    if m["rotate90"] > 0:
        draws.select(stream["rotate90"])
        i = torch.floor(draws.uniform(n) * 4)
        fired = draws.fires(n, p * m["rotate90"])
        i = _where(fired, i, 0).double()
        g = g @ geo.rotate90_2d(i)  # G_inv @ rotate_inv(-i*90deg): content turns by i*90deg
        resampled |= i.long() % 4 != 0
        plan.record["rotate90"] = (fired, {"i": i.long()})
    if m["xint"] > 0:
        draws.select(stream["xint"])
        t = (draws.uniform(n, 2) * 2 - 1) * s.xint_max
        fired = draws.fires(n, p * m["xint"])
        t = _where(fired, t, 0).double()
        tx, ty = torch.round(t[:, 0] * w), torch.round(t[:, 1] * h)
        g = g @ geo.translate2d(-tx, -ty)
        plan.record["xint"] = (fired, {"tx_px": tx.long(), "ty_px": ty.long()})
    if m["scale"] > 0:
        draws.select(stream["scale"])
        sc = torch.exp2(draws.normal(n) * s.scale_std)
        fired = draws.fires(n, p * m["scale"])
        sc = _where(fired, sc, 1).double()
        g = g @ geo.scale2d(1 / sc, 1 / sc)
        resampled |= fired
        plan.record["scale"] = (fired, {"s": sc})
    # Two rotations (around the anisotropic scaling), each with p_rot so that P(any) = p * rotate.
    p_rot = 1 - math.sqrt(min(max(1 - m["rotate"] * p, 0.0), 1.0))
    pre = post = None
    if m["rotate"] > 0:
        draws.select(stream["rotate"])
        pre = ((draws.uniform(n) * 2 - 1) * math.pi * s.rotate_max, draws.fires(n, p_rot))
        post = ((draws.uniform(n) * 2 - 1) * math.pi * s.rotate_max, draws.fires(n, p_rot))
        g = g @ geo.rotate2d(_where(pre[1], pre[0], 0).double())
    if m["aniso"] > 0:
        draws.select(stream["aniso"])
        sc = torch.exp2(draws.normal(n) * s.aniso_std)
        fired = draws.fires(n, p * m["aniso"])
        sc = _where(fired, sc, 1).double()
        g = g @ geo.scale2d(1 / sc, sc)
        resampled |= fired
        plan.record["aniso"] = (fired, {"s": sc})
    if pre is not None and post is not None:
        g = g @ geo.rotate2d(_where(post[1], post[0], 0).double())
        resampled |= pre[1] | post[1]
        nan = torch.full((n,), math.nan)
        pre_deg = torch.where(pre[1], pre[0] * geo.DEG_PER_RAD, nan)
        post_deg = torch.where(post[1], post[0] * geo.DEG_PER_RAD, nan)
        total = pre_deg.nan_to_num(0) + post_deg.nan_to_num(0)
        params = {"angle_deg": total, "pre_deg": pre_deg, "post_deg": post_deg}
        plan.record["rotate"] = (pre[1] | post[1], params)
    if m["xfrac"] > 0:
        draws.select(stream["xfrac"])
        t = draws.normal(n, 2) * s.xfrac_std
        fired = draws.fires(n, p * m["xfrac"])
        t = _where(fired, t, 0).double()
        g = g @ geo.translate2d(-t[:, 0] * w, -t[:, 1] * h)
        resampled |= fired
        plan.record["xfrac"] = (fired, {"tx_px": t[:, 0] * w, "ty_px": t[:, 1] * h})
    if any(m[op] > 0 for op in GEOM_OPS):
        plan.g_inv, plan.exact_blit = g, ~resampled


_LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64) / math.sqrt(3)


def _rotate_about_luma(theta: torch.Tensor) -> torch.Tensor:
    """[N, 4, 4] rotations by theta about the luma axis (Rodrigues' formula)."""
    v = _LUMA[:3]
    cross = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=torch.float64)
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    r = c * torch.eye(3, dtype=torch.float64) + s * cross + (1 - c) * torch.outer(v, v)
    out = torch.eye(4, dtype=torch.float64).repeat(theta.shape[0], 1, 1)
    out[:, :3, :3] = r
    return out


def _plan_color(plan: _Plan, draws: _Draws, m: Mapping[str, float], s: AugmentStrengths, p: float,
                channels: int) -> None:  # fmt: skip
    n = plan.n
    eye = torch.eye(4, dtype=torch.float64)
    c = eye.expand(n, 4, 4)
    vv = torch.outer(_LUMA, _LUMA)
    stream = {op: OP_NAMES.index(op) for op in COLOR_OPS}
    if m["brightness"] > 0:
        draws.select(stream["brightness"])
        b = draws.normal(n) * s.brightness_std
        fired = draws.fires(n, p * m["brightness"])
        b = _where(fired, b, 0).double()
        offset = eye.repeat(n, 1, 1)
        offset[:, :3, 3] = b[:, None]
        c = offset @ c
        plan.record["brightness"] = (fired, {"b": b})
    if m["contrast"] > 0:
        draws.select(stream["contrast"])
        k = torch.exp2(draws.normal(n) * s.contrast_std)
        fired = draws.fires(n, p * m["contrast"])
        k = _where(fired, k, 1).double()
        c = torch.diag_embed(torch.stack([k, k, k, torch.ones_like(k)], dim=1)) @ c
        plan.record["contrast"] = (fired, {"c": k})
    if m["lumaflip"] > 0:
        draws.select(stream["lumaflip"])
        i = torch.floor(draws.uniform(n) * 2)
        fired = draws.fires(n, p * m["lumaflip"])
        i = _where(fired, i, 0).double()
        c = (eye - 2 * vv * i[:, None, None]) @ c  # Householder reflection of the luma component
        plan.record["lumaflip"] = (fired, {"i": i.long()})
    if m["hue"] > 0 and channels > 1:
        draws.select(stream["hue"])
        theta = (draws.uniform(n) * 2 - 1) * math.pi * s.hue_max
        fired = draws.fires(n, p * m["hue"])
        theta = _where(fired, theta, 0).double()
        c = _rotate_about_luma(theta) @ c
        plan.record["hue"] = (fired, {"angle_deg": theta * geo.DEG_PER_RAD})
    if m["saturation"] > 0 and channels > 1:
        draws.select(stream["saturation"])
        k = torch.exp2(draws.normal(n) * s.saturation_std)
        fired = draws.fires(n, p * m["saturation"])
        k = _where(fired, k, 1).double()
        sat = vv + (eye - vv) * k[:, None, None]
        sat[:, 3, 3] = 1  # the homogeneous coordinate is not a colour
        c = sat @ c
        plan.record["saturation"] = (fired, {"s": k})
    if any(m[op] > 0 for op in COLOR_OPS):
        plan.color = c


def _plan_rest(plan: _Plan, draws: _Draws, m: Mapping[str, float], s: AugmentStrengths, p: float) -> None:
    n = plan.n
    if m["imgfilter"] > 0:
        draws.select(OP_NAMES.index("imgfilter"))
        power = torch.tensor(BAND_EXPECTED_POWER, dtype=torch.float64)
        gains = torch.ones(n, NUM_BANDS, dtype=torch.float64)
        fired_any = torch.zeros(n, dtype=torch.bool)
        band_gain = torch.ones(n, NUM_BANDS, dtype=torch.float64)
        for band, name in enumerate(BAND_NAMES):
            t_i = torch.exp2(draws.normal(n) * s.imgfilter_std)
            fired = draws.fires(n, p * m["imgfilter"] * m[name])
            t = torch.ones(n, NUM_BANDS, dtype=torch.float64)
            t[:, band] = _where(fired, t_i, 1).double()
            band_gain[:, band] = t[:, band]
            # Divide by the expected output power so the image keeps its energy on average.
            gains = gains * t / (power * t.square()).sum(dim=1, keepdim=True).sqrt()
            fired_any |= fired
        plan.band_gains = torch.where(fired_any[:, None], gains, torch.ones_like(gains))
        plan.record["imgfilter"] = (fired_any, {"band_gains": band_gain, "gains": plan.band_gains})
    if m["noise"] > 0:
        draws.select(OP_NAMES.index("noise"))
        sigma = draws.normal(n).abs() * s.noise_std
        fired = draws.fires(n, p * m["noise"])
        plan.noise_sigma = _where(fired, sigma, 0)
        plan.record["noise"] = (fired, {"sigma": plan.noise_sigma})
    if m["cutout"] > 0:
        draws.select(OP_NAMES.index("cutout"))
        fired = draws.fires(n, p * m["cutout"])
        centre = draws.uniform(n, 2)
        size = _where(fired, torch.full((n,), s.cutout_size), 0)
        plan.cutout = (centre, size)
        plan.record["cutout"] = (fired, {"cx": centre[:, 0], "cy": centre[:, 1], "size": size})


# --------------------------------------------------------------------------------------------------
# Execution


def _on_subset(x: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
               ) -> torch.Tensor:  # fmt: skip
    """Applies ``fn(images, index)`` only to the images selected by the CPU bool ``mask``."""
    if bool(mask.all()):
        return fn(x, torch.arange(x.shape[0]))
    index = torch.nonzero(mask).flatten()
    dev_index = index.to(x.device)
    return x.index_copy(0, dev_index, fn(x.index_select(0, dev_index), index))


def _apply_color(x: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    color = color.to(device=x.device, dtype=x.dtype)
    if c == 3:
        flat = torch.baddbmm(color[:, :3, 3:], color[:, :3, :3], x.reshape(n, 3, h * w))
        return flat.reshape(n, c, h, w)
    # One channel: a grey image is the RGB image (v, v, v); the output grey is the mean of R, G, B.
    rows = color[:, :3, :].mean(dim=1)
    gain, offset = rows[:, :3].sum(dim=1), rows[:, 3]
    return x * gain[:, None, None, None] + offset[:, None, None, None]


def _apply_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Per-image separable filtering with ``taps`` [N, T] after reflect padding."""
    n, c, h, w = x.shape
    pad = taps.shape[1] // 2
    weight = taps.to(device=x.device, dtype=x.dtype).repeat_interleave(c, dim=0)  # [N*C, T]
    y = geo.reflect_pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad))
    y = torch.nn.functional.conv2d(y, weight[:, None, None, :], groups=n * c)
    y = torch.nn.functional.conv2d(y, weight[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def _cutout_mask(centre: torch.Tensor, size: torch.Tensor, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    centre = centre.to(device=like.device, dtype=like.dtype)
    half = (size / 2).to(device=like.device, dtype=like.dtype)[:, None, None, None]
    xs = ((torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) / w).reshape(1, 1, 1, w)
    ys = ((torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) / h).reshape(1, 1, h, 1)
    outside_x = (xs - centre[:, 0, None, None, None]).abs() >= half
    outside_y = (ys - centre[:, 1, None, None, None]).abs() >= half
    return (outside_x | outside_y).to(like.dtype)


# --------------------------------------------------------------------------------------------------
# The module


class AugmentPipe(torch.nn.Module):
    """ADA augmentation. Keyword names and defaults are the public ones; multiplier 0 switches an op
    off (it is then skipped entirely), and every op fires per image with probability p * multiplier.

    ``pipe.p`` is a scalar buffer (set it with ``pipe.p.copy_(...)``, e.g. from AdaController).
    Call ``pipe(images)`` for training, ``pipe(images, generator=g)`` for a reproducible preview and
    ``pipe(images, generator=g, explain=True)`` to also get, per image, the ops that fired and
    their parameters. Images are [N, C, H, W] in [-1, 1]; colour ops need C = 1 or 3.

    explain() entries (only ops that fired; a fired op may still draw its identity, e.g. i = 0):
    xflip {i}, rotate90 {i: quarter turns counter-clockwise as displayed}, xint {tx_px, ty_px},
    scale {s}, rotate {angle_deg, pre_deg?, post_deg?} (counter-clockwise as displayed),
    aniso {s: x scaled by s, y by 1/s}, xfrac {tx_px, ty_px}, brightness {b}, contrast {c},
    lumaflip {i}, hue {angle_deg}, saturation {s}, imgfilter {band_gains: the 4 drawn gains,
    gains: after energy normalisation}, noise {sigma}, cutout {cx, cy, size} (fractions of W, H).
    """

    def __init__(
        self,
        xflip: float = 0, rotate90: float = 0, xint: float = 0, xint_max: float = 0.125,
        scale: float = 0, rotate: float = 0, aniso: float = 0, xfrac: float = 0,
        scale_std: float = 0.2, rotate_max: float = 1, aniso_std: float = 0.2, xfrac_std: float = 0.125,
        brightness: float = 0, contrast: float = 0, lumaflip: float = 0, hue: float = 0, saturation: float = 0,
        brightness_std: float = 0.2, contrast_std: float = 0.5, hue_max: float = 1, saturation_std: float = 1,
        imgfilter: float = 0, imgfilter_bands: tuple[float, ...] | list[float] = (1, 1, 1, 1),
        imgfilter_std: float = 1, noise: float = 0, cutout: float = 0, noise_std: float = 0.1,
        cutout_size: float = 0.5, p: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__()
        args = locals()
        if len(imgfilter_bands) != NUM_BANDS:
            raise ValueError(f"AugmentPipe: imgfilter_bands needs {NUM_BANDS} values, got {list(imgfilter_bands)}")
        self._mult = {op: _check_multiplier(op, args[op]) for op in OP_NAMES}
        self._mult.update({b: _check_multiplier(b, v) for b, v in zip(BAND_NAMES, imgfilter_bands, strict=True)})
        self._strengths = AugmentStrengths(**{k: args[k] for k in STRENGTH_NAMES})
        self.register_buffer("p", torch.tensor(float(p), dtype=torch.float32))
        # float64 so that settings survive a state_dict round trip exactly.
        self.register_buffer("multiplier_values", torch.zeros(len(MULTIPLIER_NAMES), dtype=torch.float64))
        self.register_buffer("strength_values", torch.zeros(len(STRENGTH_NAMES), dtype=torch.float64))
        # Derived constants (not state): the filter bank is combined per image on the CPU.
        self._bank = torch.tensor(filter_bank(), dtype=torch.float64)
        self._resampler = geo.Resampler(geom_lowpass())
        self._sync_buffers()
        self.set_p(p)

    # ---- settings ------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> AugmentPipe:
        """A pipe with the preset's ops at multiplier 1; ``overrides`` are any constructor keywords."""
        if name not in PRESETS:
            raise ValueError(f"AugmentPipe: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def multipliers(self) -> dict[str, float]:
        """All op multipliers (OP_NAMES order) and the 4 filter-band multipliers (BAND_NAMES)."""
        return dict(self._mult)

    def set_multipliers(self, values: Mapping[str, float]) -> None:
        """Changes some multipliers (by name, see MULTIPLIER_NAMES); all or nothing on bad input."""
        unknown = sorted(set(values) - set(MULTIPLIER_NAMES))
        if unknown:
            raise ValueError(
                f"AugmentPipe: unknown multiplier(s) {', '.join(unknown)}; valid: {', '.join(MULTIPLIER_NAMES)}"
            )
        checked = {k: _check_multiplier(k, v) for k, v in values.items()}
        self._mult.update(checked)
        self._sync_buffers()

    def strengths(self) -> dict[str, float]:
        return dataclasses.asdict(self._strengths)

    def set_strengths(self, values: Mapping[str, float]) -> None:
        """Changes some strength knobs (STRENGTH_NAMES), or the band multipliers via ``imgfilter_bands``."""
        values = dict(values)
        if "imgfilter_bands" in values:
            bands = list(values.pop("imgfilter_bands"))
            if len(bands) != NUM_BANDS:
                raise ValueError(f"AugmentPipe: imgfilter_bands needs {NUM_BANDS} values, got {bands}")
            self.set_multipliers(dict(zip(BAND_NAMES, bands, strict=True)))
        unknown = sorted(set(values) - set(STRENGTH_NAMES))
        if unknown:
            raise ValueError(
                f"AugmentPipe: unknown strength(s) {', '.join(unknown)}; valid: {', '.join(STRENGTH_NAMES)}"
            )
        self._strengths = AugmentStrengths(**{**dataclasses.asdict(self._strengths), **values})
        self._sync_buffers()

    def set_p(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"AugmentPipe: p must be a finite number >= 0, got {value}")
        self.p.fill_(value)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The public constructor keywords that rebuild this pipe's current settings (without p)."""
        kwargs: dict[str, Any] = {op: self._mult[op] for op in OP_NAMES}
        kwargs.update(self.strengths())
        kwargs["imgfilter_bands"] = [self._mult[b] for b in BAND_NAMES]
        return kwargs

    def settings(self) -> dict[str, Any]:
        """JSON-able snapshot: multipliers, strengths and p (for checkpoints and control.json)."""
        return {"multipliers": self.multipliers(), "strengths": self.strengths(), "p": float(self.p)}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AugmentPipe:
        unknown = sorted(set(settings) - {"multipliers", "strengths", "p"})
        if unknown:
            raise ValueError(f"AugmentPipe settings: unknown key(s) {', '.join(unknown)}; "
                             "expected multipliers, strengths, p")  # fmt: skip
        pipe = cls(p=float(settings.get("p", 1.0)))
        pipe.set_multipliers(settings.get("multipliers", {}))
        pipe.set_strengths(settings.get("strengths", {}))
        return pipe

    def extra_repr(self) -> str:
        on = [f"{k}={v:g}" for k, v in self._mult.items() if v > 0 and k in OP_NAMES]
        return f"p={float(self.p):.4f}, " + (", ".join(on) if on else "all ops off")

    # ---- state_dict ----------------------------------------------------------------------------

    def _sync_buffers(self) -> None:
        with torch.no_grad():
            mult = [self._mult[k] for k in MULTIPLIER_NAMES]
            strengths = [getattr(self._strengths, k) for k in STRENGTH_NAMES]
            self.multiplier_values.copy_(torch.tensor(mult, dtype=torch.float64))
            self.strength_values.copy_(torch.tensor(strengths, dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:  # fmt: skip
        # Public snapshots store the two filters (derived constants here) and no multipliers (they
        # live in the constructor keywords): accept such a state as it is.
        for legacy in ("Hz_geom", "Hz_fbank"):
            state_dict.pop(prefix + legacy, None)
        for name in ("multiplier_values", "strength_values"):
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone())
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        values = self.multiplier_values.tolist()
        self._mult = {k: _check_multiplier(k, v) for k, v in zip(MULTIPLIER_NAMES, values, strict=True)}
        self._strengths = AugmentStrengths(**dict(zip(STRENGTH_NAMES, self.strength_values.tolist(), strict=True)))

    # ---- forward -------------------------------------------------------------------------------

    def enabled_ops(self) -> list[str]:
        return [op for op in OP_NAMES if self._mult[op] > 0]

    def forward(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        explain: bool = False,
        debug_percentile: float | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[dict[str, dict[str, Any]]]]:
        """Augments ``images``; with ``explain`` returns ``(images, per-image dict of fired ops)``."""
        if images.ndim != 4:
            raise ValueError(f"AugmentPipe: expected images [N, C, H, W], got shape {tuple(images.shape)}")
        p = float(self.p)
        if (p == 0 and debug_percentile is None) or not self.enabled_ops():
            return (images, [{} for _ in range(images.shape[0])]) if explain else images
        plan, draws = self._plan(images.shape, p, generator, debug_percentile)
        out = self._execute(images, plan, draws)
        return (out, plan.explain()) if explain else out

    def explain(
        self, images: torch.Tensor, generator: torch.Generator | None = None, debug_percentile: float | None = None
    ) -> tuple[torch.Tensor, list[dict[str, dict[str, Any]]]]:
        """``pipe(images, generator, explain=True)``: the images and what was applied to each."""
        return self.forward(images, generator=generator, explain=True, debug_percentile=debug_percentile)

    def _plan(self, shape: torch.Size, p: float, generator: torch.Generator | None,
              debug_percentile: float | None) -> tuple[_Plan, _Draws]:  # fmt: skip
        n, c, h, w = shape
        needs_rgb = [op for op in ("hue", "saturation") if self._mult[op] > 0]
        colour_on = any(self._mult[op] > 0 for op in COLOR_OPS)
        if colour_on and c not in (1, 3):
            raise ValueError(f"AugmentPipe: colour ops need 1 or 3 channels, got {c}; set their multipliers to 0")
        if needs_rgb and c == 1:
            log.debug("AugmentPipe: %s skipped for 1-channel images", ", ".join(needs_rgb))
        draws = _Draws(generator, debug_percentile)
        plan = _Plan(n=n)
        _plan_geometry(plan, draws, self._mult, self._strengths, p, h, w)
        _plan_color(plan, draws, self._mult, self._strengths, p, c)
        _plan_rest(plan, draws, self._mult, self._strengths, p)
        return plan, draws

    def _execute(self, images: torch.Tensor, plan: _Plan, draws: _Draws) -> torch.Tensor:
        # Work in fp32 (fp64 stays fp64): reduced-precision images only come back in their dtype.
        x = images if images.dtype in (torch.float32, torch.float64) else images.float()
        x = self._geometry(x, plan)
        if plan.color is not None:
            moved = ~geo.is_identity(plan.color)
            if bool(moved.any()):
                x = _on_subset(x, moved, lambda xs, i: _apply_color(xs, plan.color[i]))
        if plan.band_gains is not None:
            moved = (plan.band_gains != 1).any(dim=1)
            if bool(moved.any()):
                taps = plan.band_gains @ self._bank
                x = _on_subset(x, moved, lambda xs, i: _apply_filter(xs, taps[i]))
        if plan.noise_sigma is not None:
            moved = plan.noise_sigma > 0
            if bool(moved.any()):
                sigma = plan.noise_sigma[moved].to(device=x.device, dtype=x.dtype)[:, None, None, None]
                noise = draws.pixel_noise((int(moved.sum()), *x.shape[1:]), x) * sigma
                x = _on_subset(x, moved, lambda xs, i: xs + noise)
        if plan.cutout is not None:
            centre, size = plan.cutout
            moved = size > 0
            if bool(moved.any()):
                h, w = x.shape[2:]
                x = _on_subset(x, moved, lambda xs, i: xs * _cutout_mask(centre[i], size[i], h, w, xs))
        return x if x.dtype == images.dtype else x.to(images.dtype)

    def _geometry(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        if plan.g_inv is None or plan.exact_blit is None:
            return x
        moved = ~geo.is_identity(plan.g_inv)
        blit_only = moved & plan.exact_blit
        needs_resample = moved & ~blit_only
        g_inv = plan.g_inv
        if bool(blit_only.any()):
            x = _on_subset(x, blit_only, lambda xs, i: geo.blit(xs, g_inv[i]))
        if bool(needs_resample.any()):
            x = _on_subset(x, needs_resample, lambda xs, i: self._resampler(xs, g_inv[i]))
        return x
