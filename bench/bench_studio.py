"""Studio speed on this machine (run by hand): generate throughput and one projection step.

    .venv/bin/python bench/bench_studio.py [--threads N] [--repeats 3] [--seeds 32]

Networks: the shared reference fixture (32 px, channel_base 2048, channel_max 64, z = w = 64,
conv_clamp 256) when ../shared/fixtures holds it, and a randomly initialised ``cpu32`` G (the same
channel counts, no clamp). Generate goes through the tool's own path (seed -> z, G, uint8) for
batch sizes 1, 8 and 32; the projection step is the public projector's step with the pixel
fallback distance, timed as (time of 1 + N steps - time of 1 step) / N so that setup is excluded.
Prints medians over repeats.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
from timing import median_time  # bench/ is on sys.path: scripts run from it; warm-up 1 (oneDNN kernels)
from torch import nn

from core.io.tensors import read_tensor_file
from core.networks import Generator
from core.networks.presets import resolve_cfg
from core.studio.generate import generate_images
from core.studio.project import PixelDistance, ProjectConfig, project

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "sg2_res32_skip_resnet"


def networks() -> dict[str, nn.Module]:
    nets: dict[str, nn.Module] = {}
    if FIXTURE.with_suffix(".json").is_file():
        G = Generator(**json.loads(FIXTURE.with_suffix(".json").read_text())["G_kwargs"])
        tensors, _ = read_tensor_file(FIXTURE.with_suffix(".safetensors"))
        G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
        nets["fixture"] = G
    torch.manual_seed(0)
    nets["cpu32"] = Generator(**resolve_cfg("cpu32", 32).G_kwargs(0, 32, 3))
    return {name: G.eval().requires_grad_(False) for name, G in nets.items()}


def generate_rate(G: nn.Module, batch: int, seeds: int, repeats: int) -> float:
    label = torch.zeros([1, G.c_dim])

    def run() -> None:
        for _ in generate_images(G, list(range(seeds)), label, 0.7, "const", batch):
            pass

    return seeds / median_time(run, repeats)


def projection_step(G: nn.Module, steps: int, repeats: int) -> float:
    target = torch.randint(0, 256, (G.img_channels, G.img_resolution, G.img_resolution), dtype=torch.uint8)
    label = torch.zeros([1, G.c_dim])

    def run(n: int) -> Callable[[], object]:
        return lambda: project(G, target, label, PixelDistance(), ProjectConfig(num_steps=n))

    return (median_time(run(1 + steps), repeats) - median_time(run(1), repeats)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=32, help="images per generate timing")
    parser.add_argument("--steps", type=int, default=20, help="projection steps per timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), medians of {args.repeats}")
    for name, G in networks().items():
        rates = {b: generate_rate(G, b, args.seeds, args.repeats) for b in (1, 8, 32)}
        listed = ", ".join(f"batch {b}: {r:.1f} img/s" for b, r in rates.items())
        print(f"{name}: generate {listed}")
        print(f"{name}: one projection step {projection_step(G, args.steps, args.repeats) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
