"""Seconds per kimg of a full training iteration (all phases, lazy regularisation amortised).

    .venv/bin/python bench/bench_train.py                      # both configs, noaug / ada / apa
    .venv/bin/python bench/bench_train.py --config cpu32 --aug apa --cycles 3 --profile
    .venv/bin/python bench/bench_train.py --config cpu32 --aug noaug --compile off,on   # --compile's gain

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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data import ImageDataset  # noqa: E402
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
}
AUGS = {
    "noaug": dict(aug="noaug"),
    "ada": dict(aug="fixed", p=0.5, augpipe="bgc"),  # the ADA pipe at a fixed p, so cost does not drift
    "apa": dict(aug="apa"),  # p is forced to 0.5 below
}


def make_trainer(config: str, aug: str, outdir: Path, compile: str = "off") -> Trainer:
    opts = TrainingOptions(outdir=str(outdir), data="builtin:digits", device="cpu", kimg=1000, tick=1000,
                           snap=0, workers=0, metrics=[], compile=compile, **CONFIGS[config], **AUGS[aug])
    check_options(opts)
    dataset = ImageDataset(opts.data)
    data = DataSpec(path=opts.data, resolution=dataset.resolution, channels=dataset.num_channels,
                    num_images=len(dataset))
    spec = resolve_spec(opts, data, 1, "cpu")
    from core.training.distributed import DistEnv

    run_dir = outdir / f"{config}-{aug}-compile-{compile}"
    trainer = Trainer(spec, run_dir, DistEnv(), dataset)
    if aug == "apa":
        trainer.aug.controller.set_fixed(0.5)
        trainer.aug.sync()
    return trainer


def measure(trainer: Trainer, cycles: int, minibatches: int | None = None) -> tuple[float, dict[str, float]]:
    reader_names = [timing_stat(p) for p in PHASE_NAMES]
    from core.training.stats import StatsReader

    reader = StatsReader(trainer.bank, None, names=reader_names)
    n = cycles * CYCLE if minibatches is None else minibatches
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.step()
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
    ap.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    ap.add_argument("--aug", default="all", help=f"a comma list of {', '.join(AUGS)}, or all")
    ap.add_argument("--compile", default="off", help="a comma list of off, on: the trainer's --compile settings "
                    "to compare (interleaved like the augs)")
    ap.add_argument("--cycles", type=int, default=1, help="16-minibatch cycles per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top ops for one cycle")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    configs = list(CONFIGS) if args.config == "all" else [args.config]
    augs = list(AUGS) if args.aug == "all" else args.aug.split(",")
    if unknown := [a for a in augs if a not in AUGS]:
        ap.error(f"--aug: unknown {', '.join(unknown)}; choose from {', '.join(AUGS)} or all")
    compiles = args.compile.split(",")
    if unknown := [c for c in compiles if c not in ("off", "on")]:
        ap.error(f"--compile: unknown {', '.join(unknown)}; give off, on or off,on")
    settings = [(aug, c) for aug in augs for c in compiles]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.cycles} x {CYCLE} minibatches per repeat")
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            run_config(config, settings, args, Path(tmp))


def label(setting: tuple[str, str]) -> str:
    aug, compiled = setting
    return aug if compiled == "off" else f"{aug}+compile"


def run_config(config: str, settings: list[tuple[str, str]], args: argparse.Namespace, tmp: Path) -> None:
    # Interleaved repeats: load drifting on a shared machine hits every setting alike.
    trainers = {s: make_trainer(config, s[0], tmp, compile=s[1]) for s in settings}
    for s, trainer in trainers.items():
        t0 = time.perf_counter()
        measure(trainer, 0, minibatches=2)  # warm-up: allocator, first-call costs, compiling
        print(f"{config:6s} {label(s):14s} warm-up (2 minibatches, compiling included): "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    runs: dict[tuple[str, str], list[tuple[float, dict[str, float]]]] = {s: [] for s in settings}
    for _ in range(args.repeats):
        for s, trainer in trainers.items():
            runs[s].append(measure(trainer, args.cycles))
    for s, trainer in trainers.items():
        spk = statistics.median(r[0] for r in runs[s])
        phases = {k: statistics.median(r[1].get(k, 0.0) for r in runs[s]) for k in PHASE_NAMES}
        detail = "  ".join(f"{k} {v:.0f}" for k, v in phases.items())
        per_kimg = "  ".join(f"{k} {v * 1000 / trainer.spec.batch / 1000:.1f}" for k, v in phases.items())
        print(f"{config:6s} {label(s):14s} batch {trainer.spec.batch:3d}: {spk:8.2f} s/kimg   "
              f"ms per minibatch: {detail}   s/kimg per phase: {per_kimg}", flush=True)
    for base in settings:
        for other in settings:
            # Ratios against noaug (same --compile) and against eager (same aug).
            if base == other or not ((base[0] == "noaug" and other[1] == base[1]) or
                                     (base[1] == "off" and other == (base[0], "on"))):
                continue
            # Paired ratios (same repeat, adjacent in time) are steadier than ratios of medians.
            ratios = [a[0] / b[0] for a, b in zip(runs[other], runs[base], strict=True)]
            print(f"{config:6s} {label(other)} / {label(base)}: median paired ratio {statistics.median(ratios):.3f}"
                  f" (range {min(ratios):.3f}..{max(ratios):.3f} over {len(ratios)} repeats)")
    apa = next((s for s in settings if s[0] == "apa"), None)
    if apa is not None and any(s[0] == "noaug" for s in settings):
        print(f"{config:6s} apa step alone: {apa_step_ms(trainers[apa]):.3f} ms per minibatch")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for s, trainer in trainers.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                measure(trainer, 1)
            print(f"--- {config} {label(s)}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    for trainer in trainers.values():
        trainer.close()


if __name__ == "__main__":
    main()
