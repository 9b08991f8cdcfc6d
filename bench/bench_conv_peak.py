"""How close the CPU's convolutions already run to the core's peak: GFLOP/s of a 3x3 convolution's
forward + backward (input and weight gradients) at the shapes of a 32 px StyleGAN2 with 256 channels,
batch 16, with oneDNN (PyTorch's default on x86) and without it (im2col + GEMM), interleaved;
``--bf16`` adds oneDNN under bfloat16 autocast (other numerics: for what a lower precision would buy).

    .venv/bin/python bench/bench_conv_peak.py [--threads 1] [--repeats 7] [--bf16]

Training at that configuration spends ~86% of its time in these convolutions (docs/training.md,
Speed), so their rate bounds what any rewrite of the rest can gain. A forward pass is
2 * N * H * W * Cout * Cin * 9 FLOP; the backward costs twice that (one product for the input's
gradient, one for the weight's).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def conv_step(x: torch.Tensor, w: torch.Tensor) -> float:
    t0 = time.perf_counter()
    y = F.conv2d(x, w, padding=1)
    y.backward(torch.ones_like(y))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--bf16", action="store_true", help="also time oneDNN under bfloat16 autocast")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, c = args.batch, args.channels
    print(f"3x3 conv {c}->{c}, batch {n}, forward + backward, {args.threads} thread(s), median of {args.repeats}")
    for res in (32, 16, 8, 4):
        x = torch.randn(n, c, res, res, requires_grad=True)
        w = torch.randn(c, c, 3, 3, requires_grad=True)
        flop = 3 * 2 * n * res * res * c * c * 9
        ways = [("oneDNN", True, False), ("im2col+GEMM", False, False)]
        ways += [("oneDNN bf16", True, True)] if args.bf16 else []
        times: dict[str, list[float]] = {name: [] for name, _, _ in ways}
        for _ in range(args.repeats):
            for name, enabled, bf16 in ways:
                with torch.backends.mkldnn.flags(enabled=enabled), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    conv_step(x, w)  # warm this path's caches and weight layout
                    times[name].append(conv_step(x, w))
                x.grad = w.grad = None
        row = ", ".join(f"{k} {statistics.median(v) * 1e3:7.1f} ms = {flop / statistics.median(v) / 1e9:5.1f} GFLOP/s"
                        for k, v in times.items())  # fmt: skip
        print(f"  {res:>2} px: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
