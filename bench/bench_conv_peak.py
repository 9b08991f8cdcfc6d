"""How close the CPU's convolutions already run to the core's peak: GFLOP/s of a 3x3 convolution's
forward + backward (input and weight gradients) at the shapes of a 32 px StyleGAN2 with 256 channels,
batch 16, with oneDNN (PyTorch's default on x86) and without it (im2col + GEMM), interleaved;
``--bf16`` adds oneDNN under bfloat16 autocast (other numerics: for what a lower precision would buy);
``--winograd`` adds Winograd's F(4x4, 3x3) written as matrix products (fp32, 4x fewer multiplies in
the channel products, other rounding: for what an algorithm with fewer FLOP would buy), with its
error against float64 beside oneDNN's.

    .venv/bin/python bench/bench_conv_peak.py [--threads 1] [--repeats 7] [--bf16] [--winograd]

Training at that configuration spends ~86% of its time in these convolutions (docs/training.md,
Speed), so their rate bounds what any rewrite of the rest can gain. A forward pass is
2 * N * H * W * Cout * Cin * 9 FLOP; the backward costs twice that (one product for the input's
gradient, one for the weight's). The rates printed are that count over the time taken, for every
way alike, so a faster algorithm shows as a rate above the peak.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def _kron(rows: list[list[float]]) -> torch.Tensor:
    m = torch.tensor(rows, dtype=torch.float64)
    return torch.kron(m, m).float()


# Winograd F(4x4, 3x3) with the points 0, +-1, +-2 and infinity (Lavin & Gray 2016): a 6x6 input tile d
# and a 3x3 filter g give the 4x4 output tile A^T [(G g G^T) * (B^T d B)] A. Kronecker products turn
# each two-sided transform into one matrix product over the flattened tiles.
WINO_B = _kron([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])  # fmt: skip
WINO_G = _kron([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])  # fmt: skip
WINO_A = _kron([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])


def winograd_conv3x3(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, w, padding=1)`` for H and W divisible by 4, as Winograd F(4x4, 3x3) in matrix products."""
    n, c, h, wd = x.shape
    co, th, tw = w.shape[0], h // 4, wd // 4
    tiles = F.pad(x, (1, 1, 1, 1)).transpose(0, 1).unfold(2, 6, 4).unfold(3, 6, 4).reshape(-1, 36)
    v = (WINO_B @ tiles.T).view(36, c, n * th * tw)  # input tiles, transformed: (point, channel, tile)
    u = (WINO_G @ w.reshape(co * c, 9).T).view(36, co, c)  # filters, transformed
    m = torch.bmm(u, v)  # the channel products: one (co x c) @ (c x tiles) per point
    y = (WINO_A @ m.view(36, -1)).view(4, 4, co, n, th, tw)
    return y.permute(3, 2, 4, 0, 5, 1).reshape(n, co, h, wd)


def conv_step(x: torch.Tensor, w: torch.Tensor, winograd: bool = False) -> float:
    t0 = time.perf_counter()
    y = winograd_conv3x3(x, w) if winograd else F.conv2d(x, w, padding=1)
    y.backward(torch.ones_like(y))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--bf16", action="store_true", help="also time oneDNN under bfloat16 autocast")
    ap.add_argument("--winograd", action="store_true", help="also time Winograd F(4x4, 3x3) as matrix products")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, c = args.batch, args.channels
    print(f"3x3 conv {c}->{c}, batch {n}, forward + backward, {args.threads} thread(s), median of {args.repeats}")
    for res in (32, 16, 8, 4):
        x = torch.randn(n, c, res, res, requires_grad=True)
        w = torch.randn(c, c, 3, 3, requires_grad=True)
        flop = 3 * 2 * n * res * res * c * c * 9
        ways = [("oneDNN", True, False, False), ("im2col+GEMM", False, False, False)]
        ways += [("oneDNN bf16", True, True, False)] if args.bf16 else []
        ways += [("Winograd", True, False, True)] if args.winograd else []
        times: dict[str, list[float]] = {name: [] for name, *_ in ways}
        for _ in range(args.repeats):
            for name, enabled, bf16, wino in ways:
                with torch.backends.mkldnn.flags(enabled=enabled), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    conv_step(x, w, wino)  # warm this path's caches and weight layout
                    times[name].append(conv_step(x, w, wino))
                x.grad = w.grad = None
        row = ", ".join(f"{k} {statistics.median(v) * 1e3:7.1f} ms = {flop / statistics.median(v) / 1e9:5.1f} GFLOP/s"
                        for k, v in times.items())  # fmt: skip
        print(f"  {res:>2} px: {row}")
        if args.winograd:
            with torch.no_grad():
                exact = F.conv2d(x.double(), w.double(), padding=1)
                scale = exact.abs().max()
                direct, wino = (float((y.double() - exact).abs().max() / scale)
                                for y in (F.conv2d(x, w, padding=1), winograd_conv3x3(x, w)))  # fmt: skip
            print(f"         largest error / largest output, against float64: oneDNN {direct:.1e}, Winograd {wino:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
