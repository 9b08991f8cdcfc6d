"""Seconds per kimg of a full training iteration (all phases, lazy regularisation amortised).

    .venv/bin/python bench/bench_train.py                      # both configs, noaug / ada / apa
    .venv/bin/python bench/bench_train.py --config cpu32 --aug apa --cycles 3 --profile
    .venv/bin/python bench/bench_train.py --config cpu32 --aug noaug --compile off,on   # --compile's gain

On a GPU, the public presets at their resolution (synthetic images; the data's content does not
change the cost), eager vs compiled and the fused Triton kernels vs the reference path:

    .venv/bin/python bench/bench_train.py --device cuda --config paper256,cifar,stylegan2 --aug noaug,ada \
        --compile off,on --ops auto,ref

One measurement = a whole number of 16-minibatch cycles (the least common multiple of the R1 and
path-length intervals), so every phase is counted at its real frequency. Prints, per setting, the
median s/kimg over the repeats and the mean time per phase per minibatch.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data import ImageDataset  # noqa: E402
from core.ops._impl import default_impl  # noqa: E402
from core.rundir.schema import timing_stat  # noqa: E402
from core.training.config import DataSpec, TrainingOptions, check_options, resolve_spec  # noqa: E402
from core.training.loop import Trainer  # noqa: E402
from core.training.stats import PHASE_NAMES  # noqa: E402

CYCLE = 16  # minibatches: lcm(G_reg_interval=4, D_reg_interval=16)

CONFIGS = {
    # (a) the small CPU preset
    "cpu32": dict(cfg="cpu32"),
    # (b) 32 px, cbase 8192, cmax 256, z = w = 512, batch 16, mapping depth 2, skip G, resnet D, gamma 0.0064
    "b32": dict(cfg="auto", cbase=8192, cmax=256, batch=16, map_depth=2, gamma=0.0064),
    # the public presets (--cfg), each at the resolution it was made for; batch as on one GPU
    "paper256": dict(cfg="paper256"),
    "paper512": dict(cfg="paper512"),
    "paper1024": dict(cfg="paper1024"),
    "stylegan2": dict(cfg="stylegan2"),
    "cifar": dict(cfg="cifar"),
}
RESOLUTION = {"paper256": 256, "paper512": 512, "paper1024": 1024, "stylegan2": 1024, "cifar": 32}
CPU_CONFIGS = ("cpu32", "b32")
AUGS = {
    "noaug": dict(aug="noaug"),
    "ada": dict(aug="fixed", p=0.5, augpipe="bgc"),  # the ADA pipe at a fixed p, so cost does not drift
    "apa": dict(aug="apa"),  # p is forced to 0.5 below
}


def synthetic_dataset(resolution: int, folder: Path, count: int = 64) -> Path:
    """``count`` smooth random RGB images of ``resolution`` px (the cost of a step does not depend on them)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((resolution, resolution), Image.BICUBIC).save(folder / f"{i:03d}.png")
    return folder


def make_trainer(config: str, aug: str, outdir: Path, compile: str = "off", device: str = "cpu",
                 data: str | None = None) -> Trainer:
    if data is None:
        data = str(synthetic_dataset(RESOLUTION[config], outdir / f"data{RESOLUTION[config]}")) \
            if config in RESOLUTION and RESOLUTION[config] != 32 else "builtin:digits"
    opts = TrainingOptions(outdir=str(outdir), data=data, device=device, kimg=1000, tick=1000,
                           snap=0, workers=0, metrics=[], compile=compile, **CONFIGS[config], **AUGS[aug])
    check_options(opts)
    dataset = ImageDataset(opts.data)
    spec_data = DataSpec(path=opts.data, resolution=dataset.resolution, channels=dataset.num_channels,
                         num_images=len(dataset))
    spec = resolve_spec(opts, spec_data, 1, device)
    from core.training.distributed import DistEnv

    run_dir = outdir / f"{config}-{aug}-compile-{compile}-{len(list(outdir.glob('*-compile-*')))}"
    trainer = Trainer(spec, run_dir, DistEnv(device=torch.device(device)), dataset)
    if aug == "apa":
        trainer.aug.controller.set_fixed(0.5)
        trainer.aug.sync()
    return trainer


def _sync(trainer: Trainer) -> None:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)


def measure(trainer: Trainer, cycles: int, minibatches: int | None = None) -> tuple[float, dict[str, float]]:
    reader_names = [timing_stat(p) for p in PHASE_NAMES]
    from core.training.stats import StatsReader

    reader = StatsReader(trainer.bank, None, names=reader_names)
    n = cycles * CYCLE if minibatches is None else minibatches
    _sync(trainer)
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.step()
    _sync(trainer)
    elapsed = time.perf_counter() - t0
    stats = reader.read()
    per_phase = {name.split("/")[1]: s.mean * s.num / n for name, s in stats.items()}  # ms per minibatch
    return elapsed / (n * trainer.spec.batch / 1000), per_phase


def apa_step_ms(trainer: Trainer, calls: int = 200) -> float:
    """What APA adds to a minibatch, timed alone: one swap per real pass (Dmain always, R1 1 in 16)."""
    from core.augment import apa_replace

    spec = trainer.spec
    shape = [spec.batch_gpu, spec.data.channels, spec.data.resolution, spec.data.resolution]
    reals, fakes = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    t0 = time.perf_counter()
    for _ in range(calls):
        apa_replace(reals, fakes, 0.5)
    per_call = (time.perf_counter() - t0) / calls
    rounds = spec.batch // spec.batch_gpu
    return per_call * rounds * (1 + 1 / 16) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="cpu", help=f"a comma list of {', '.join(CONFIGS)}; 'cpu' = "
                    f"{','.join(CPU_CONFIGS)}, 'public' = the public presets")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--data", default=None, help="a dataset instead of the default (digits at 32 px, synthetic "
                    "images at the presets' resolutions)")
    ap.add_argument("--aug", default="all", help=f"a comma list of {', '.join(AUGS)}, or all")
    ap.add_argument("--compile", default="off", help="a comma list of off, on: the trainer's --compile settings "
                    "to compare (interleaved like the augs)")
    ap.add_argument("--ops", default="auto", help="a comma list of auto, ref: the ops' implementation (auto = the "
                    "fused Triton kernels on CUDA where they passed their self-check; ref = the reference path)")
    ap.add_argument("--cycles", type=int, default=1, help="16-minibatch cycles per repeat")
    ap.add_argument("--minibatches", type=int, default=None, help="measure this many minibatches instead of "
                    "whole cycles (a quick check that a setting runs; phases not at their real frequency)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top ops for one cycle")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    aliases = {"cpu": list(CPU_CONFIGS), "public": list(RESOLUTION), "all": list(CONFIGS)}
    configs = [c for name in args.config.split(",") for c in aliases.get(name, [name])]
    if unknown := [c for c in configs if c not in CONFIGS]:
        ap.error(f"--config: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}, cpu, public or all")
    augs = list(AUGS) if args.aug == "all" else args.aug.split(",")
    if unknown := [a for a in augs if a not in AUGS]:
        ap.error(f"--aug: unknown {', '.join(unknown)}; choose from {', '.join(AUGS)} or all")
    compiles = args.compile.split(",")
    if unknown := [c for c in compiles if c not in ("off", "on")]:
        ap.error(f"--compile: unknown {', '.join(unknown)}; give off, on or off,on")
    ops = args.ops.split(",")
    if unknown := [o for o in ops if o not in ("auto", "ref")]:
        ap.error(f"--ops: unknown {', '.join(unknown)}; give auto, ref or auto,ref")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: this torch sees no CUDA device (torch.cuda.is_available() is False)")
    settings = [Setting(aug, c, o) for aug in augs for c in compiles for o in ops]
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} thread(s)"
    per_repeat = f"{args.minibatches} minibatches" if args.minibatches else f"{args.cycles} x {CYCLE} minibatches"
    print(f"torch {torch.__version__}, {where}, {per_repeat} per repeat")
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            run_config(config, settings, args, Path(tmp))


class Setting(NamedTuple):
    aug: str
    compile: str  # off | on
    ops: str  # auto | ref

    def label(self) -> str:
        return self.aug + ("+compile" if self.compile == "on" else "") + ("+refops" if self.ops == "ref" else "")


def _with_ops(ops: str, fn, *args):  # noqa: ANN001, ANN202
    with default_impl(ops):
        return fn(*args)


def run_config(config: str, settings: list[Setting], args: argparse.Namespace, tmp: Path) -> None:
    # Interleaved repeats: load drifting on a shared machine hits every setting alike.
    trainers = {s: make_trainer(config, s.aug, tmp, compile=s.compile, device=args.device, data=args.data)
                for s in settings}
    for s, trainer in trainers.items():
        t0 = time.perf_counter()
        _with_ops(s.ops, measure, trainer, 0, 2)  # warm-up: allocator, first-call costs, compiling
        print(f"{config:9s} {s.label():22s} warm-up (2 minibatches, compiling included): "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    runs: dict[Setting, list[tuple[float, dict[str, float]]]] = {s: [] for s in settings}
    for _ in range(args.repeats):
        for s, trainer in trainers.items():
            runs[s].append(_with_ops(s.ops, measure, trainer, args.cycles, args.minibatches))
    for s, trainer in trainers.items():
        spk = statistics.median(r[0] for r in runs[s])
        phases = {k: statistics.median(r[1].get(k, 0.0) for r in runs[s]) for k in PHASE_NAMES}
        detail = "  ".join(f"{k} {v:.0f}" for k, v in phases.items())
        per_kimg = "  ".join(f"{k} {v * 1000 / trainer.spec.batch / 1000:.1f}" for k, v in phases.items())
        memory = ""
        if trainer.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(trainer.device) / 2**30
            memory = f"   peak GPU memory {peak:.1f} GiB (all settings)"
        print(f"{config:9s} {s.label():22s} batch {trainer.spec.batch:3d}: {spk:8.2f} s/kimg   "
              f"ms per minibatch: {detail}   s/kimg per phase: {per_kimg}{memory}", flush=True)
    for base in settings:
        for other in settings:
            # Ratios against noaug (same compile and ops), against eager and against the reference ops.
            against = (base.aug == "noaug" and other.aug != "noaug" and other[1:] == base[1:]) or \
                (base.compile == "off" and other == base._replace(compile="on")) or \
                (base.ops == "ref" and other == base._replace(ops="auto"))
            if not against:
                continue
            # Paired ratios (same repeat, adjacent in time) are steadier than ratios of medians.
            ratios = [a[0] / b[0] for a, b in zip(runs[other], runs[base], strict=True)]
            print(f"{config:9s} {other.label()} / {base.label()}: median paired ratio {statistics.median(ratios):.3f}"
                  f" (range {min(ratios):.3f}..{max(ratios):.3f} over {len(ratios)} repeats)")
    apa = next((s for s in settings if s.aug == "apa"), None)
    if apa is not None and any(s.aug == "noaug" for s in settings):
        print(f"{config:9s} apa step alone: {apa_step_ms(trainers[apa]):.3f} ms per minibatch")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        for s, trainer in trainers.items():
            with profile(activities=activities) as prof:
                _with_ops(s.ops, measure, trainer, 1)
            print(f"--- {config} {s.label()}")
            sort = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=sort, row_limit=25))
    for trainer in trainers.values():
        trainer.close()


if __name__ == "__main__":
    main()
