"""Throughput of the ADA augmentation pipe (run by hand): ``.venv/bin/python bench/bench_augment.py``.

Measures images/s of the bgc pipe at p = 0.6 on 32x3x64x64 and 8x3x256x256, forward and
forward+backward, against two baselines written here:

* ``naive``: a straightforward reading of the paper: one anti-aliased resampling per geometric
  op (pad, upsample, grid_sample, downsample with core.ops, for every image), and each colour op
  applied as its own pass.
* ``single``: the public tool's execution: all geometric ops in one matrix and one resampling of
  the whole batch (reflect padding to the batch's largest excursion, core.ops up/downsampling),
  one colour matrix applied to every image.

Also the cost at p = 0 and of APA per batch. Prints medians over ``--repeats`` runs; baselines
and our pipe are interleaved so that load from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.augment import AugmentPipe, apa_replace
from core.augment import geometry as geo
from core.augment.wavelets import geom_lowpass
from core.ops import downsample2d, grid_sample, setup_filter, upsample2d

# --------------------------------------------------------------------------------------------------
# Baselines


def _public_resample(images: torch.Tensor, g_inv: torch.Tensor, lowpass: torch.Tensor) -> torch.Tensor:
    """One resampling as the public tool does it (batch-wide reflect padding, zero-stuffed conv)."""
    n, c, h, w = images.shape
    g_inv = g_inv.double()
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=torch.float64)
    src = (g_inv @ corners.t())[:, :2, :]
    lo, hi = (-src).amax(dim=(0, 2)), src.amax(dim=(0, 2))
    extra = torch.tensor([6 - cx, 6 - cy], dtype=torch.float64)
    limit = torch.tensor([w - 1, h - 1], dtype=torch.float64)
    lo = (lo + extra).clamp(min=0).minimum(limit).ceil().long().tolist()
    hi = (hi + extra).clamp(min=0).minimum(limit).ceil().long().tolist()
    x = F.pad(images, [lo[0], hi[0], lo[1], hi[1]], mode="reflect")
    g = geo.translate_const((lo[0] - hi[0]) / 2, (lo[1] - hi[1]) / 2, g_inv) @ g_inv
    x = upsample2d(x, lowpass, up=2)
    g = geo.scale_const(2, 2, g) @ g @ geo.scale_const(0.5, 0.5, g)
    g = geo.translate_const(-0.5, -0.5, g) @ g @ geo.translate_const(0.5, 0.5, g)
    shape = [n, c, (h + 6) * 2, (w + 6) * 2]
    g = geo.scale_const(2 / x.shape[3], 2 / x.shape[2], g) @ g @ geo.scale_const(shape[3] / 2, shape[2] / 2, g)
    grid = F.affine_grid(g[:, :2, :].to(images.dtype), shape, align_corners=False)
    return downsample2d(grid_sample(x, grid), lowpass, down=2, padding=-6, flip_filter=True)


def _draw_bgc(n: int, p: float, h: int, w: int) -> dict[str, torch.Tensor]:
    """The bgc parameter draws (same distributions as AugmentPipe), identity where an op is off."""

    def fire(value: torch.Tensor, identity: float) -> torch.Tensor:
        return torch.where(torch.rand(n) < p, value, torch.full_like(value, identity))

    p_rot = 1 - math.sqrt(max(1 - p, 0))
    return {
        "xflip": fire(torch.floor(torch.rand(n) * 2), 0).double(),
        "rot90": fire(torch.floor(torch.rand(n) * 4), 0).double(),
        "xint_x": fire(torch.round((torch.rand(n) * 2 - 1) * 0.125 * w), 0).double(),
        "xint_y": fire(torch.round((torch.rand(n) * 2 - 1) * 0.125 * h), 0).double(),
        "scale": fire(torch.exp2(torch.randn(n) * 0.2), 1).double(),
        "rot_pre": torch.where(torch.rand(n) < p_rot, (torch.rand(n) * 2 - 1) * math.pi, 0).double(),
        "aniso": fire(torch.exp2(torch.randn(n) * 0.2), 1).double(),
        "rot_post": torch.where(torch.rand(n) < p_rot, (torch.rand(n) * 2 - 1) * math.pi, 0).double(),
        "xfrac_x": fire(torch.randn(n) * 0.125 * w, 0).double(),
        "xfrac_y": fire(torch.randn(n) * 0.125 * h, 0).double(),
        "brightness": fire(torch.randn(n) * 0.2, 0),
        "contrast": fire(torch.exp2(torch.randn(n) * 0.5), 1),
        "lumaflip": fire(torch.floor(torch.rand(n) * 2), 0),
        "hue": fire((torch.rand(n) * 2 - 1) * math.pi, 0),
        "saturation": fire(torch.exp2(torch.randn(n)), 1),
    }


def _geom_matrices(d: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    one = torch.ones_like(d["xflip"])
    return [
        geo.scale2d(1 - 2 * d["xflip"], one),
        geo.rotate90_2d(d["rot90"]),
        geo.translate2d(-d["xint_x"], -d["xint_y"]),
        geo.scale2d(1 / d["scale"], 1 / d["scale"]),
        geo.rotate2d(d["rot_pre"]),
        geo.scale2d(1 / d["aniso"], d["aniso"]),
        geo.rotate2d(d["rot_post"]),
        geo.translate2d(-d["xfrac_x"], -d["xfrac_y"]),
    ]


def _colour_per_op(x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    def b(v: torch.Tensor) -> torch.Tensor:
        return v.to(x.dtype)[:, None, None, None]

    x = x + b(d["brightness"])
    x = x * b(d["contrast"])
    luma = x.mean(dim=1, keepdim=True)
    x = x - 2 * luma * b(d["lumaflip"])  # Householder reflection of the luma component
    luma = x.mean(dim=1, keepdim=True)
    chroma = x - luma
    theta = d["hue"].to(x.dtype)
    v = torch.full((3,), 1 / math.sqrt(3), dtype=x.dtype)
    cross = torch.linalg.cross(v.expand_as(chroma.movedim(1, -1)), chroma.movedim(1, -1)).movedim(-1, 1)
    x = luma + chroma * b(torch.cos(theta)) + cross * b(torch.sin(theta))  # Rodrigues on the chroma
    luma = x.mean(dim=1, keepdim=True)
    return luma + (x - luma) * b(d["saturation"])


def naive_augment(x: torch.Tensor, p: float, lowpass: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    d = _draw_bgc(n, p, h, w)
    for m in _geom_matrices(d):
        x = _public_resample(x, m, lowpass)
    return _colour_per_op(x, d)


def single_pass_augment(x: torch.Tensor, p: float, lowpass: torch.Tensor, pipe: AugmentPipe) -> torch.Tensor:
    n, _, h, w = x.shape
    d = _draw_bgc(n, p, h, w)
    g = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    for m in _geom_matrices(d):
        g = g @ m
    x = _public_resample(x, g, lowpass)
    plan, _ = pipe._plan(x.shape, p, None, None)  # one colour matrix per image, applied to all
    c = plan.color.to(x.dtype)
    return torch.baddbmm(c[:, :3, 3:], c[:, :3, :3], x.reshape(n, 3, h * w)).reshape(x.shape)


# --------------------------------------------------------------------------------------------------
# Timing


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _fwd_bwd(aug: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], object]:
    def run() -> None:
        xg = x.detach().requires_grad_(True)
        aug(xg).square().mean().backward()

    return run


def bench_shape(shape: tuple[int, int, int, int], p: float, repeats: int, baselines: bool) -> None:
    torch.manual_seed(0)
    x = torch.rand(shape) * 2 - 1
    pipe = AugmentPipe.from_preset("bgc", p=p)
    lowpass = setup_filter(list(geom_lowpass()))
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"ours": pipe}
    if baselines:
        variants["single"] = lambda t: single_pass_augment(t, p, lowpass, pipe)
        variants["naive"] = lambda t: naive_augment(t, p, lowpass)
    for mode in ("forward", "fwd+bwd"):
        times: dict[str, list[float]] = {k: [] for k in variants}
        for aug in variants.values():  # warm-up: builds and caches the filter matrices
            _time(lambda a=aug: a(x)) if mode == "forward" else _time(_fwd_bwd(aug, x))
        for _ in range(repeats):
            for name, aug in variants.items():
                with torch.no_grad() if mode == "forward" else torch.enable_grad():
                    times[name].append(_time(lambda a=aug: a(x)) if mode == "forward" else _time(_fwd_bwd(aug, x)))
        ours = statistics.median(times["ours"])
        line = [f"{str(list(shape)):>18} p={p:.1f} {mode:8s} ours {ours * 1e3:8.1f} ms ({shape[0] / ours:7.1f} img/s)"]
        for name in variants:
            if name != "ours":
                t = statistics.median(times[name])
                line.append(f"{name} {t * 1e3:8.1f} ms (x{t / ours:.1f})")
        print("  ".join(line), flush=True)


def bench_cheap(shape: tuple[int, int, int, int], repeats: int) -> None:
    x = torch.rand(shape) * 2 - 1
    pipe = AugmentPipe.from_preset("bgc", p=0.0)
    t = statistics.median(_time(lambda: pipe(x)) for _ in range(max(repeats, 20)))
    print(f"{str(list(shape)):>18} p=0   forward  ours {t * 1e6:8.1f} us (returns the input tensor)")
    fakes = torch.rand(shape) * 2 - 1
    t = statistics.median(_time(lambda: apa_replace(x, fakes, 0.3)) for _ in range(max(repeats, 20)))
    print(f"{str(list(shape)):>18} APA p=0.3        {t * 1e6:8.1f} us per batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-baselines", action="store_true", help="time only our pipe")
    parser.add_argument("--p", type=float, default=0.6)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} runs")
    for shape in ((32, 3, 64, 64), (8, 3, 256, 256)):
        bench_shape(shape, args.p, args.repeats, not args.no_baselines)
    for shape in ((32, 3, 64, 64), (8, 3, 256, 256)):
        bench_cheap(shape, args.repeats)


if __name__ == "__main__":
    main()
