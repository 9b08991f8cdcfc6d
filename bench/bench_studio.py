"""Studio speed on this machine (run by hand): generate throughput and one projection step.

    .venv/bin/python bench/bench_studio.py [--threads N] [--repeats 3] [--seeds 32] [--public PATH]

Networks: the shared reference fixture (32 px, channel_base 2048, channel_max 64, z = w = 64,
conv_clamp 256) when ../shared/fixtures holds it, and a randomly initialised ``cpu32`` G (the same
channel counts, no clamp). Generate goes through the tool's own path (seed -> z, G, uint8) for
batch sizes 1, 8 and 32; the projection step is the public projector's step with the pixel
fallback distance, timed as (time of 1 + N steps - time of 1 step) / N so that setup is excluded.
Prints medians over repeats.

``--public PATH`` (a checkout of NVlabs/stylegan2-ada-pytorch; its generate.py needs ``click`` and
its dnnlib ``requests`` importable, e.g. ``pip install --target DIR click requests`` and
``PYTHONPATH=DIR``) also times the public generate.py against ``python -m core.studio generate``
on the same file: the fixture's weights in the public networks, pickled by the public code (a
real public .pkl, which our safe importer reads without running its embedded source). Both run
in this process, end to end (load, seeds, PNG files); the time per image is (time of 1 + N seeds
- time of 1 seed) / N, so loading is excluded; runs alternate between the tools (interleaved)
and the medians are printed, with the largest pixel difference between the two tools' PNGs.
generate.py asks for ``torch.device('cuda')``; it is given the CPU instead (its custom ops take
their reference PyTorch path there). Nothing of the public code is copied into this repository.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pickle
import shutil
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL.Image
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


# ---------------------------------------------------------------------------------------------
# The public generate.py beside ours


def public_pkl(public: Path, folder: Path) -> Path:
    """The fixture's G and D in the public classes, pickled by the public code (source embedded)."""
    sys.path.insert(0, str(public))
    from training import networks as public_networks  # the checkout's own module

    meta = json.loads(FIXTURE.with_suffix(".json").read_text())
    tensors, _ = read_tensor_file(FIXTURE.with_suffix(".safetensors"))
    nets = {}
    for name, cls in (("G", public_networks.Generator), ("D", public_networks.Discriminator)):
        net = cls(**meta[f"{name}_kwargs"])
        net.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith(name + ".")})
        nets[name] = net.eval().requires_grad_(False)
    path = folder / "fixture-public.pkl"
    data = {"G": nets["G"], "D": nets["D"], "G_ema": nets["G"], "augment_pipe": None, "training_set_kwargs": None}
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path


class _CpuTorch(types.ModuleType):
    """torch, except that ``torch.device(...)`` is the CPU: generate.py hard-codes 'cuda'."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> object:
        return getattr(torch, name)

    @staticmethod
    def device(*_args: object) -> torch.device:
        return torch.device("cpu")


def generate_tools(pkl: Path, folder: Path, batches: tuple[int, ...]) -> dict[str, Callable[[int], Path]]:
    """Name -> run(n): generate seeds 0..n-1 at psi 0.7, const noise, into a fresh folder; returns it."""
    import generate as public_generate  # from --public (on sys.path)

    from core.studio.__main__ import main as studio_main

    public_generate.torch = _CpuTorch()

    def public(n: int) -> Path:
        out = _fresh(folder / "public")
        args = [f"--network={pkl}", f"--seeds=0-{n - 1}", "--trunc=0.7", "--noise-mode=const", f"--outdir={out}"]
        with contextlib.redirect_stdout(io.StringIO()):  # one line per seed
            public_generate.generate_images.main(args, standalone_mode=False)
        return out

    def ours(batch: int) -> Callable[[int], Path]:
        def run(n: int) -> Path:
            out = _fresh(folder / f"ours{batch}")
            args = ["generate", "--network", str(pkl), "--seeds", f"0-{n - 1}", "--trunc", "0.7",
                    "--noise-mode", "const", "--batch", str(batch), "--outdir", str(out)]  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()):  # its "wrote N image(s)" line
                status = studio_main(args)
            if status != 0:
                sys.exit("bench_studio: core.studio generate failed")
            return out

        return run

    return {"public generate.py": public, **{f"core.studio generate --batch {b}": ours(b) for b in batches}}


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def compare_with_public(public: Path, seeds: int, repeats: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_studio-"))
    try:
        tools = generate_tools(public_pkl(public, folder), folder, (1, 8, 32))
        for run in tools.values():  # warm-up (oneDNN kernels, imports) and the outputs to compare
            run(seeds)
        times: dict[str, dict[int, list[float]]] = {name: {1: [], 1 + seeds: []} for name in tools}
        for _ in range(repeats):  # interleaved: every tool once per round, so load changes hit all
            for name, run in tools.items():
                for n in (1, 1 + seeds):
                    t0 = time.perf_counter()
                    run(n)
                    times[name][n].append(time.perf_counter() - t0)
        for name, t in times.items():
            per_image = (statistics.median(t[1 + seeds]) - statistics.median(t[1])) / seeds
            print(f"fixture, {name}: {1 / per_image:.1f} img/s ({per_image * 1000:.2f} ms per image, PNG written)")
        for batch in (1, 8, 32):
            diff = _max_pixel_difference(folder / "public", folder / f"ours{batch}")
            print(f"max pixel difference, public vs --batch {batch}: {diff}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _max_pixel_difference(a: Path, b: Path) -> int:
    names = sorted(p.name for p in a.glob("seed*.png"))
    assert names == sorted(p.name for p in b.glob("seed*.png")), "the two tools wrote different files"
    return max(int(np.abs(np.asarray(PIL.Image.open(a / n), dtype=int) - np.asarray(PIL.Image.open(b / n))).max())
               for n in names)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=32, help="images per generate timing")
    parser.add_argument("--steps", type=int, default=20, help="projection steps per timing")
    parser.add_argument("--public", type=Path, help="a stylegan2-ada-pytorch checkout: time its generate.py too")
    parser.add_argument("--only-public", action="store_true", help="with --public: skip the other timings")
    args = parser.parse_args()
    if args.public is not None and not (args.public / "generate.py").is_file():
        sys.exit(f"bench_studio: --public {args.public}: no generate.py there (a stylegan2-ada-pytorch checkout)")
    if args.public is not None and not FIXTURE.with_suffix(".json").is_file():
        sys.exit(f"bench_studio: --public needs the shared fixture {FIXTURE}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), medians of {args.repeats}")
    if args.public is not None:
        compare_with_public(args.public.resolve(), args.seeds, args.repeats)
        if args.only_public:
            return
    for name, G in networks().items():
        rates = {b: generate_rate(G, b, args.seeds, args.repeats) for b in (1, 8, 32)}
        listed = ", ".join(f"batch {b}: {r:.1f} img/s" for b, r in rates.items())
        print(f"{name}: generate {listed}")
        print(f"{name}: one projection step {projection_step(G, args.steps, args.repeats) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
