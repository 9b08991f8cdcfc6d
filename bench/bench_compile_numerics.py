"""How far Gmain's gradients are from a float64 run of the same step: eager float32 against compiled.

    .venv/bin/python bench/bench_compile_numerics.py                       # --compile as shipped
    .venv/bin/python bench/bench_compile_numerics.py --layout-optimization  # Inductor's CPU default

One Gmain step (mapping, G.synthesis with const noise, D, non-saturating loss) on the cpu32 networks
with every noise strength set to 0.1. The float64 reference is the same step with the networks in
float64: the networks cast to float32 by name, so for the reference run that name resolves to
float64 in core.networks.stylegan2 (bench only). Prints the relative L2 error of G's whole gradient
and the worst tensors by max error over their own largest element.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import make_trainer  # noqa: E402

import core.networks.stylegan2 as stylegan2  # noqa: E402

Grads = dict[str, torch.Tensor]


def gmain_grads(
    G: torch.nn.Module, D: torch.nn.Module, synthesis: Callable[..., torch.Tensor], z: torch.Tensor, c: torch.Tensor
) -> Grads:
    G.requires_grad_(True)
    G.zero_grad(set_to_none=True)
    ws = G.mapping(z, c, skip_w_avg_update=True)
    F.softplus(-D(synthesis(ws, noise_mode="const"), c)).mean().backward()
    G.requires_grad_(False)
    return {n: p.grad.double() for n, p in G.named_parameters()}


def float64_reference(G: torch.nn.Module, D: torch.nn.Module, z: torch.Tensor, c: torch.Tensor) -> Grads:
    class Float64Torch(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            return torch.float64 if name == "float32" else getattr(torch, name)

    saved = stylegan2.torch
    stylegan2.torch = Float64Torch("torch")
    try:
        G64, D64 = copy.deepcopy(G).double(), copy.deepcopy(D).double()
        return gmain_grads(G64, D64, G64.synthesis, z.double(), c.double())
    finally:
        stylegan2.torch = saved


def report(tag: str, got: Grads, ref: Grads) -> None:
    flat_ref = torch.cat([g.flatten() for g in ref.values()])
    flat = torch.cat([got[k].flatten() for k in ref])
    worst = sorted(((got[k] - ref[k]).abs().max().item() / (ref[k].abs().max().item() + 1e-30), k) for k in ref)
    print(f"{tag:28s} relative L2 {((flat - flat_ref).norm() / flat_ref.norm()).item():.2e}; worst: "
          + ", ".join(f"{k} {e:.1e}" for e, k in worst[::-1][:3]), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layout-optimization", action="store_true", help="leave Inductor's CPU layout optimisation on")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer("cpu32", "noaug", Path(tmp))
        G, D = trainer.G, trainer.D
        torch.manual_seed(1)
        with torch.no_grad():
            for name, p in G.named_parameters():
                if name.endswith("noise_strength"):
                    p.fill_(0.1)
        z = torch.randn(trainer.spec.batch_gpu, G.z_dim)
        c = torch.zeros(z.shape[0], 0)
        ref = float64_reference(G, D, z, c)
        report("eager float32", gmain_grads(G, D, G.synthesis, z, c), ref)
        options = {"fallback_random": True, "layout_optimization": args.layout_optimization}
        synthesis = torch.compile(G.synthesis.forward, dynamic=False, options=options)
        t0 = time.perf_counter()
        got = gmain_grads(G, D, synthesis, z, c)
        report(f"compiled synthesis, layout opt {'on' if args.layout_optimization else 'off'}", got, ref)
        print(f"(compiling and the first step: {time.perf_counter() - t0:.0f} s)")
        trainer.close()


if __name__ == "__main__":
    main()
