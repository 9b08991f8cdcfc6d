"""Op by op, image by image: our AugmentPipe against the public one with the same drawn parameters.

Distribution tests compare what the ops draw; this compares what they compute. For every op of the
``bgc`` pipe alone, at a few parameter percentiles, the same images go through both pipes with the
same parameters, and three things are compared:

* the output (what D sees),
* the gradient pushed back to the input through the op (what reaches G), for a fixed random
  cotangent,
* the R1 term's gradient with respect to a small convolutional D's weights (``|d D(aug(x)) / dx|^2``
  differentiated once more: the double backward that R1 takes through the pipe).

The parameters come from each pipe's ``debug_percentile`` q, mapped onto the public conventions:
the public pipe turns a normal draw into ``erfinv(2q - 1) * std`` (ours: the q-quantile,
``sqrt(2) * erfinv(2q - 1) * std``) and rotates once under debug (ours twice, around the
anisotropic scaling), so the public q is chosen to give the same parameter as ours.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada   # once, anywhere
    python bench/bench_pipe_ops_match.py --public /tmp/sg2ada --data ~/data/emoji32

Differences at float32 rounding (~1e-5) mean the op computes the same thing in both pipes.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_public_augment import import_public_pipe, public_kwargs  # noqa: E402

from core.augment.pipeline import COLOR_OPS, GEOM_OPS, PRESETS, AugmentPipe  # noqa: E402
from core.data import ImageDataset  # noqa: E402
from core.io.images import from_uint8  # noqa: E402

NORMAL_OPS = {"scale", "aniso", "xfrac", "brightness", "contrast", "saturation"}


def public_percentile(op: str, q: float) -> float:
    """The public debug_percentile that draws the parameter ours draws at q."""
    if op in NORMAL_OPS:
        return 0.5 * (1 + math.erf(math.sqrt(2) * float(torch.erfinv(torch.tensor(2 * q - 1.0)))))
    return q


def our_percentile(op: str, q: float) -> float:
    # Ours rotates by the drawn angle before and after the anisotropic scaling: half the angle each.
    return (2 * q + 1) / 4 if op == "rotate" else q


def small_D(channels: int) -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.Softplus(), nn.Conv2d(8, 1, 3, padding=1))


def compare(pipe: nn.Module, images: torch.Tensor, q: float, cot: torch.Tensor, D: nn.Module
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Output, input gradient and the R1 term's gradient w.r.t. D's weights."""
    x = images.clone().requires_grad_(True)
    y = pipe(x, debug_percentile=q)
    (grad,) = torch.autograd.grad((y * cot).sum(), x, retain_graph=True)
    (r1,) = torch.autograd.grad(D(y).sum(), x, create_graph=True)
    params = list(D.parameters())
    dr1 = torch.autograd.grad(r1.square().sum(), params, allow_unused=True)
    dr1 = [g if g is not None else torch.zeros_like(p) for g, p in zip(dr1, params, strict=True)]  # unused: 0
    flat = torch.cat([g.flatten() for g in dr1])
    return y.detach(), grad, flat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--public", type=Path, required=True, help="a stylegan2-ada-pytorch checkout")
    ap.add_argument("--data", default="builtin:digits", help="images to push through (a folder, zip or builtin:)")
    ap.add_argument("--num", type=int, default=8, help="images")
    ap.add_argument("--ops", default=",".join(GEOM_OPS + COLOR_OPS), help="comma list of ops")
    ap.add_argument("--q", default="0.2,0.6,0.9", help="parameter percentiles")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    public_cls = import_public_pipe(args.public.expanduser().resolve())
    dataset = ImageDataset(args.data)
    images = from_uint8(torch.stack([torch.as_tensor(dataset[i][0]) for i in range(min(args.num, len(dataset)))]))
    cot = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    D = small_D(images.shape[1])
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    unknown = sorted(set(ops) - set(GEOM_OPS + COLOR_OPS))
    if unknown:
        raise SystemExit(f"--ops: unknown op(s) {', '.join(unknown)}; choose from {', '.join(GEOM_OPS + COLOR_OPS)}")
    print(f"{len(images)} images of {args.data}, {tuple(images.shape[1:])}; largest differences, ours - public, "
          "relative to the public value's largest magnitude")
    print(f"  {'op':>11} {'q':>5}  {'output':>9}  {'input grad':>10}  {'R1 grad':>9}")
    for op in ops:
        mult = {k: float(k == op) for k in PRESETS["bgc"]}
        for q in (float(v) for v in args.q.split(",")):
            ours = AugmentPipe(**mult, p=1.0)
            public = public_cls(**public_kwargs(ours))
            public.p.fill_(1.0)
            a = compare(ours, images, our_percentile(op, q), cot, D)
            b = compare(public, images, public_percentile(op, q), cot, D)
            rel = [float((u - v).abs().max() / v.abs().max().clamp(min=1e-12)) for u, v in zip(a, b, strict=True)]
            print(f"  {op:>11} {q:5.2f}  {rel[0]:9.1e}  {rel[1]:10.1e}  {rel[2]:9.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
