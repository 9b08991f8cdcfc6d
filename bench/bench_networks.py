"""Network speed on this machine (run by hand): G inference and one G+D training step with R1.

    .venv/bin/python bench/bench_networks.py [--profile] [--threads N]

Prints medians over repeats. Channel counts are the public 'auto' preset's (channel_base 16384,
channel_max 512, z = w = 512, mapping depth 2), which is what users' checkpoints look like.
"""

from __future__ import annotations

import argparse

import torch
from timing import median_time  # bench/ is on sys.path: scripts run from it

from core.networks import Discriminator, Generator
from core.networks.presets import resolve_cfg


def build(cfg: str, res: int) -> tuple[Generator, Discriminator]:
    spec = resolve_cfg(cfg, res)
    G = Generator(**spec.G_kwargs(0, res, 3))
    D = Discriminator(**spec.D_kwargs(0, res, 3))
    return G, D


def bench_inference(res: int, batch: int, repeats: int) -> float:
    G, _ = build("auto", res)
    G.eval()
    z = torch.randn(batch, G.z_dim)

    @torch.inference_mode()
    def run() -> None:
        G(z, None, noise_mode="const")

    return batch / median_time(run, repeats)


def bench_train_step(cfg: str, res: int, batch: int, repeats: int) -> float:
    """Gmain + Dmain + Dreg (R1) forward+backward, as one training step without amortisation."""
    G, D = build(cfg, res)
    G.train()
    D.train()
    z = torch.randn(batch, G.z_dim)
    reals = torch.randn(batch, 3, res, res)

    def run() -> None:
        img = G(z, None)
        torch.nn.functional.softplus(-D(img, None)).mean().backward()
        logits = D(img.detach(), None)
        x = reals.detach().requires_grad_(True)
        real_logits = D(x, None)
        (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
        loss = torch.nn.functional.softplus(logits).mean() + torch.nn.functional.softplus(-real_logits).mean()
        (loss + grad.square().sum([1, 2, 3]).mean()).backward()

    return median_time(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of the 32 px step")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["inference", "train"], help="run one half of the benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for res, batch in [(32, 16), (64, 8), (256, 2)] if args.only != "train" else []:
        ips = bench_inference(res, batch, args.repeats)
        print(f"G inference  auto {res:4d}px batch {batch:2d}: {ips:8.1f} img/s (median of {args.repeats})")
    for cfg in ("auto", "cpu32") if args.only != "inference" else []:
        sec = bench_train_step(cfg, 32, 16, args.repeats)
        print(f"G+D fwd+bwd with R1 {cfg:5s} 32px batch 16: {sec * 1000:8.1f} ms/step (median of {args.repeats})")
    if args.profile:
        G, D = build("auto", 32)
        from torch.profiler import profile

        bench_train_step("auto", 32, 16, 1)
        with profile() as prof:
            bench_train_step("auto", 32, 16, 1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
