"""Run directories with metrics, written through core.rundir's RunWriter as a trainer would: status and
stats events every 0.5 kimg, and at every snapshot the offline metrics, the copy score and the leak
indicators. The numbers are made up but shaped like limited-data runs: without augmentation FD
turns back up and the copy score climbs as D overfits; ADA keeps improving but leaks rotate90 while
p is high; APA neither overfits nor leaks. Used by the monitor's logic and GUI tests (and the docs
screenshot)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.rundir import RunWriter, layout, schema

SNAPSHOT_EVERY = 4.0  # kimg
LEAK_OPS = ("xflip", "rotate90", "brightness")


def _p(aug: str, kimg: float) -> float:
    if aug == "noaug":
        return 0.0
    ceiling = 0.55 if aug == "ada" else 0.35
    return ceiling * (1 - math.exp(-kimg / 10))


def _fd(aug: str, kimg: float) -> float:
    overfit = {"noaug": 0.9, "ada": 0.08, "apa": 0.05}[aug] * max(kimg - 12, 0.0)
    return 10 + 90 * math.exp(-kimg / 8) + overfit


def _copies(aug: str, kimg: float) -> float:
    rate = {"noaug": 0.022, "ada": 0.004, "apa": 0.002}[aug]
    return min(1.0, rate * max(kimg - 8, 0.0))


def _leak(aug: str, op: str, kimg: float) -> float:
    if aug == "ada" and op == "rotate90":
        return 0.4 * _p(aug, kimg) ** 2 * kimg / 10
    return 0.004 * (1 + math.sin(kimg + len(op)))


def record_run(run_dir: Path, aug: str, kimg: float = 40.0, snapshot_every: float = SNAPSHOT_EVERY,
               leaks: bool = True, clock_start: float = 1.8e9, start: float = 0.0, resume: Path | None = None) -> Path:
    """Write a finished run of ``kimg`` kimg with augmentation ``aug`` ("noaug", "ada" or "apa"); with
    ``resume``, a run forked from that run directory at kimg ``start``."""
    ticks = iter(range(10**6))
    rng = np.random.default_rng(len(aug))
    with RunWriter(run_dir, background=False, clock=lambda: clock_start + next(ticks)) as w:
        w.write_run_json({"aug": aug, "kimg": kimg, "data": "builtin:digits",
                          **({"target": 0.6} if aug != "noaug" else {}), **({"resume": str(resume)} if resume else {})})
        w.status("started", start, f"{kimg:g} kimg on 1 cpu process(es)")
        steps = int(round(kimg / 0.5))
        for step in range(int(round(start / 0.5)) + 1, steps + 1):
            k = step * 0.5
            p = _p(aug, k)
            rt = min(1.0, 0.6 + (0.35 if aug == "noaug" else 0.05) * (1 - math.exp(-k / 6)))
            w.stats(k, {
                schema.STAT_P: p, schema.STAT_RT: rt + 0.08 * float(rng.standard_normal()),
                schema.STAT_LOSS_G: 1.0 + 0.2 * float(rng.standard_normal()),
                schema.STAT_LOSS_D: 1.2 + 0.2 * float(rng.standard_normal()),
                schema.STAT_R1: 0.05 + 0.01 * float(rng.random()), schema.STAT_PL: 0.02,
                schema.STAT_SEC_PER_KIMG: 40.0 + float(rng.random()),
            })  # fmt: skip
            if k % snapshot_every == 0:
                record_metrics(w, aug, k, leaks)
        w.status("finished", kimg, f"done at kimg {kimg:g}")
    return run_dir


def snapshot_name(kimg: float) -> str:
    return layout.snapshot_stem(kimg) + ".safetensors"


def record_metrics(w: RunWriter, aug: str, kimg: float, leaks: bool = True) -> None:
    """The metric events of one snapshot, as the trainer writes them."""
    snap = snapshot_name(kimg)
    fd = _fd(aug, kimg)
    w.metric(kimg, "fd_offline", {"fd_offline": fd}, snapshot=snap)
    w.metric(kimg, "kid_offline", {"kid_offline": fd / 2000}, snapshot=snap)
    precision = min(0.95, 0.2 + kimg / 60)
    recall = max(0.05, 0.6 - (0.012 if aug == "noaug" else 0.002) * kimg) * min(1.0, kimg / 8)
    w.metric(kimg, "pr_offline", {"pr_offline_precision": precision, "pr_offline_recall": recall}, snapshot=snap)
    w.metric(kimg, "copies_offline", {"copies_offline": _copies(aug, kimg)}, snapshot=snap)
    if leaks:
        w.metric(kimg, "leaks_offline", {f"leak/{op}": _leak(aug, op, kimg) for op in LEAK_OPS}, snapshot=snap)


def best_kimg(aug: str, kimg: float = 40.0, snapshot_every: float = SNAPSHOT_EVERY) -> float:
    """Where record_run's fd_offline is lowest (the monitor's best snapshot)."""
    points = [snapshot_every * i for i in range(1, int(kimg // snapshot_every) + 1)]
    return min(points, key=lambda k: (_fd(aug, k), k))
