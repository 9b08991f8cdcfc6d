"""Write a small, realistic run directory for GUI tests: tests/fixtures/recorded_run/00000-digits-demo.

This is a SYNTHETIC recording for tests, not a real training. Nothing is trained: the numbers
follow the shapes a real ADA run shows over its first 40 kimg (p rising from 0 toward ~0.3, r_t
rising then hovering near its 0.6 target, noisy losses and penalties, steady sec/kimg), and every
file is written through core.training.rundir.RunWriter, so the layout, event fields and file
guarantees are exactly the trainer's. Contents:

- run.json, log.txt, events.jsonl (status started/paused/resumed/finished, ~200 "stats", a
  "tick" every 4 kimg, two "control" events, previews, one "metric"), control.json;
- previews/fakes-<KKKKKK>.png: a 4x4 grid from a tiny randomly initialised 32 px Generator on a
  fixed z grid, its weights nudged between previews so the grids differ;
- previews/reals-augmented-<KKKKKK>.png: builtin:digits images with x-flips/90-degree turns at
  probability p (a numpy stand-in for the augment pipe);
- live/G_ema.*: that tiny generator.

Time stamps come from a fixed clock, so regenerating changes only random ids and control.json's t.
Replace this with a real recording (train_headless.py on builtin:digits) once the trainer runs.

    .venv/bin/python scripts/record_demo_run.py [--out tests/fixtures/recorded_run] [--force]
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.data.dataset import ImageDataset  # noqa: E402
from core.networks import Generator  # noqa: E402
from core.training.control import ControlRequest, write_control  # noqa: E402
from core.training.rundir import (  # noqa: E402
    STAT_LOSS_D,
    STAT_LOSS_G,
    STAT_P,
    STAT_PL,
    STAT_R1,
    STAT_RT,
    STAT_SEC_PER_KIMG,
    RunWriter,
    image_grid,
    new_run_dir,
)

log = logging.getLogger("record_demo_run")

DESC = "digits-demo"
T0 = 1_735_689_600.0  # 2025-01-01 00:00 UTC: a fixed clock keeps the recording reproducible
TOTAL_KIMG = 40.0
STATS_EVENTS = 200  # one every 0.2 kimg
TICK_EVERY = 20  # stats events per tick: a tick every 4 kimg, as in the public trainer
PREVIEW_EVERY = 100  # previews at 0, 20 and 40 kimg
PAUSE_AFTER, PAUSE_S = 120, 45.0  # paused by the GUI at 24 kimg for 45 s
GRID = 4  # 4x4 previews


class FakeClock:
    """Unix time of the recording: advanced by the simulated seconds per kimg."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def tiny_generator(seed: int) -> Generator:
    torch.manual_seed(seed)
    G = Generator(
        z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
        mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 128, "channel_max": 16},
    )
    return G.eval().requires_grad_(False)


def fakes_grid(G: Generator, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return image_grid(G(z, None, noise_mode="const"), cols=GRID)


def reals_augmented_grid(reals: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """x-flip and 90-degree turns, each with probability p: what D would see at this p."""
    out = []
    for img in reals:  # CHW uint8
        if rng.random() < p:
            img = img[:, :, ::-1]
        if rng.random() < p:
            img = np.rot90(img, k=int(rng.integers(1, 4)), axes=(1, 2))
        out.append(img)
    return image_grid(np.stack(out).astype(np.float32), cols=GRID, drange=(0, 255))


def curves(rng: np.random.Generator) -> list[dict[str, float]]:
    """Stat values at each stats event: p, r_t, losses, penalties, timing (shapes of a real run)."""
    rows = []
    p_noise = 0.0
    for i in range(1, STATS_EVENTS + 1):
        kimg = i * TOTAL_KIMG / STATS_EVENTS
        # r_t climbs as D starts to overfit, then ADA holds it near the target.
        r_t = 0.6 * (1 - math.exp(-kimg / 3)) + rng.normal(0, 0.005 + 0.03 * min(1.0, kimg / 3))
        # p: ADA's steps add up to a slow rise toward ~0.3; correlated noise from the sign heuristic.
        p_noise = 0.9 * p_noise + rng.normal(0, 0.004)
        p = max(0.0, 0.32 * (1 - math.exp(-kimg / 14)) + p_noise)
        rows.append({
            "kimg": kimg,
            STAT_P: p,
            STAT_RT: r_t,
            STAT_LOSS_G: 0.9 + 0.5 * math.exp(-kimg / 10) + rng.normal(0, 0.08),
            STAT_LOSS_D: 1.15 - 0.2 * math.exp(-kimg / 10) + rng.normal(0, 0.05),
            "Loss/scores/real": 0.4 + 0.3 * (1 - math.exp(-kimg / 5)) + rng.normal(0, 0.1),
            "Loss/scores/fake": -0.4 - 0.3 * (1 - math.exp(-kimg / 5)) + rng.normal(0, 0.1),
            STAT_R1: 0.05 + 0.15 * (1 - math.exp(-kimg / 8)) + abs(rng.normal(0, 0.02)),
            STAT_PL: 0.3 * math.exp(-kimg / 15) + 0.05 + abs(rng.normal(0, 0.01)),
            STAT_SEC_PER_KIMG: 9.0 + rng.normal(0, 0.4),
        })
    return rows


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 5) for k, v in values.items()}


def record(out: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    clock = FakeClock(T0)
    run_dir = new_run_dir(out, DESC)
    writer = RunWriter(run_dir, clock=clock, background=False)  # events in a reproducible order
    writer.host = "synthetic-recording"  # no real host: readers never probe this pid for liveness
    handler = writer.log_handler(fmt="%(levelname)s %(name)s: %(message)s")
    log.addHandler(handler)
    try:
        _record(writer, clock, rng, seed)
    finally:
        log.removeHandler(handler)
        writer.close()
    return run_dir


def _record(writer: RunWriter, clock: FakeClock, rng: np.random.Generator, seed: int) -> None:
    run_dir = writer.run_dir
    assert run_dir is not None
    G = tiny_generator(seed)
    z = torch.randn([GRID * GRID, G.z_dim], generator=torch.Generator().manual_seed(seed))
    dataset = ImageDataset("builtin:digits")
    reals = dataset.load_batch(rng.choice(len(dataset), GRID * GRID, replace=False))[0]
    writer.write_run_json({
        "synthetic_recording": "scripts/record_demo_run.py: not a real training; for GUI tests",
        "data": "builtin:digits", "outdir": "tests/fixtures/recorded_run", "cfg": "cpu32",
        "kimg": int(TOTAL_KIMG), "batch": 16, "gamma": 0.05, "aug": "ada", "target": 0.6, "augpipe": "bgc",
        "seed": seed, "G_kwargs": G.init_kwargs,
    })
    writer.status("started", 0.0, f"{TOTAL_KIMG:g} kimg on 1 cpu process (synthetic recording)")
    log.info("training for %g kimg", TOTAL_KIMG)
    writer.write_preview("fakes", 0.0, fakes_grid(G, z))
    writer.write_preview("reals-augmented", 0.0, reals_augmented_grid(reals, 0.0, rng))
    tick, last = 0, None
    for i, row in enumerate(curves(rng), start=1):
        kimg = row.pop("kimg")
        clock.t += row[STAT_SEC_PER_KIMG] * TOTAL_KIMG / STATS_EVENTS
        writer.stats(kimg, _rounded({**row, "Progress/tick": tick}))
        last = row
        if i == PAUSE_AFTER:
            _pause_and_resume(writer, clock, kimg)
        if i % TICK_EVERY == 0:
            tick += 1
            sec_per_tick = row[STAT_SEC_PER_KIMG] * TOTAL_KIMG / STATS_EVENTS * TICK_EVERY
            writer.event("tick", kimg, tick=tick, **_rounded({**row, "Timing/sec_per_tick": sec_per_tick}))
            log.info("tick %d  kimg %.1f  sec/tick %.1f  sec/kimg %.2f  p %.3f  r_t %.3f",
                     tick, kimg, sec_per_tick, row[STAT_SEC_PER_KIMG], row[STAT_P], row[STAT_RT])
        if i % PREVIEW_EVERY == 0:
            _drift(G, rng)
            writer.write_preview("fakes", kimg, fakes_grid(G, z))
            writer.write_preview("reals-augmented", kimg, reals_augmented_grid(reals, row[STAT_P], rng))
    assert last is not None
    writer.write_live(G, TOTAL_KIMG, force=True)
    writer.metric(TOTAL_KIMG, "fid50k_full", {"fid50k_full": 187.3}, snapshot=None)
    log.info("done: %g kimg, final p %.3f", TOTAL_KIMG, last[STAT_P])
    writer.status("finished", TOTAL_KIMG, "reached 40 kimg")


def _pause_and_resume(writer: RunWriter, clock: FakeClock, kimg: float) -> None:
    """What a GUI pause looks like: control.json seq 1 (pause), seq 2 (resume), both applied."""
    assert writer.run_dir is not None
    write_control(writer.run_dir, ControlRequest(pause=True))
    writer.control_applied(kimg, 1, {"pause": True})
    writer.status("paused", kimg, "paused by control.json")
    log.info("paused by control.json (seq 1)")
    clock.t += PAUSE_S
    write_control(writer.run_dir, ControlRequest(pause=False))
    writer.control_applied(kimg, 2, {"pause": False})
    writer.status("resumed", kimg, f"resumed after {PAUSE_S:.1f} s")
    log.info("resumed after %.1f s (seq 2)", PAUSE_S)


def _drift(G: Generator, rng: np.random.Generator) -> None:
    """Nudge the weights so consecutive previews differ, as they do while training."""
    with torch.no_grad():
        for param in G.parameters():
            noise = torch.from_numpy(rng.normal(0, 0.15, param.shape).astype(np.float32))
            param.add_(noise * (param.abs().mean() + 1e-3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "recorded_run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help=f"replace an existing 00000-{DESC}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    target = args.out / f"00000-{DESC}"
    if target.exists():
        if not args.force:
            print(f"record_demo_run: {target} exists; pass --force to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(target)
    run_dir = record(args.out, args.seed)
    if run_dir != target:
        print(f"record_demo_run: {args.out} holds other runs, so this one is {run_dir.name}", file=sys.stderr)
    size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    print(f"wrote {run_dir} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
