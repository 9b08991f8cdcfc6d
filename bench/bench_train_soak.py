"""A training's memory over hours: RSS of ``train_headless.py`` sampled, with its slope.

    .venv/bin/python bench/bench_train_soak.py [--hours 2] [--sample 30] [--duty 1] [--log soak.csv] \\
        -- --data builtin:digits --subset 500 --cfg cpu32 --aug ada --kimg 1000 --tick 0.2

Everything after ``--`` goes to the trainer; without ``--outdir`` it writes into a temporary folder
that is removed at the end. From the trainer's first tick on (start-up is not growth), every
``--sample`` seconds it records the trainer's VmRSS and VmHWM and the ticks it has logged
(events.jsonl); after ``--hours`` it stops the trainer and prints the peak and the least-squares
slope over the whole soak and its second half (MiB per hour).

``--duty F`` (0 < F <= 1) lets the trainer run only F of the wall time (SIGSTOP / SIGCONT every
``--period`` seconds), so a soak of hours can run beside other work on a small machine; memory that
grows with time rather than with work still shows, and the tick count says how much work was done.
Give ``--kimg`` large enough that the training does not finish first.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memory import memory_mib, report  # noqa: E402  (bench/ is on sys.path: scripts run from it)

from core.rundir import RunReader, list_run_dirs  # noqa: E402


class TickCounter:
    """Ticks and kimg the trainer has logged so far, read incrementally from its run's event stream."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.reader: RunReader | None = None
        self.ticks, self.kimg = 0, 0.0

    def update(self) -> tuple[int, float]:
        if self.reader is None:
            runs = list_run_dirs(self.outdir)
            if not runs:  # the trainer has not made its run directory yet
                return 0, 0.0
            self.reader = RunReader(runs[-1])
        for event in self.reader.poll_events():
            if event.get("kind") == "tick":
                self.ticks += 1
                self.kimg = float(event.get("kimg", self.kimg))
        return self.ticks, self.kimg


def main() -> int:
    argv = sys.argv[1:]
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--sample", type=float, default=30.0, help="seconds between memory samples")
    ap.add_argument("--duty", type=float, default=1.0, help="fraction of wall time the trainer may run (0-1]")
    ap.add_argument("--period", type=float, default=2.0, help="seconds of one stop/continue cycle with --duty < 1")
    ap.add_argument("--log", type=Path, help="also write the samples here as CSV (seconds, rss, hwm, ticks, kimg)")
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if not 0 < args.duty <= 1:
        raise SystemExit(f"--duty {args.duty}: give a fraction of the wall time in (0, 1]")
    if not train_args:
        raise SystemExit("give the trainer's options after --, e.g. -- --data builtin:digits --cfg cpu32 --kimg 1000")
    with tempfile.TemporaryDirectory() as tmp:
        if "--outdir" in train_args:
            outdir = Path(train_args[train_args.index("--outdir") + 1])
        else:
            outdir = Path(tmp) / "runs"
            train_args = ["--outdir", str(outdir), *train_args]
        cmd = [sys.executable, str(REPO / "train_headless.py"), *train_args]
        print(" ".join(cmd), flush=True)
        trainer_log = Path(tmp) / "trainer.log"
        with trainer_log.open("w") as out:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
        counter = TickCounter(outdir)
        samples: list[tuple[float, float, float, int, float]] = []
        log = args.log.open("w") if args.log else None
        t0 = time.monotonic()
        next_sample = t0
        try:
            while (now := time.monotonic()) - t0 < args.hours * 3600:
                if proc.poll() is not None:
                    last = trainer_log.read_text().strip().splitlines()[-1:]
                    advice = "; give a larger --kimg for a longer soak" if proc.returncode == 0 else ""
                    raise SystemExit(f"bench_train_soak: the trainer exited ({proc.returncode}) after "
                                     f"{now - t0:.0f} s{': ' + last[0] if last else ''}{advice}")  # fmt: skip
                if now >= next_sample:
                    rss, hwm = memory_mib(proc.pid)
                    ticks, kimg = counter.update()
                    if not ticks:  # still starting up: imports and the first tick's allocations are not growth
                        next_sample = now + 1
                        continue
                    samples.append((now - t0, rss, hwm, ticks, kimg))
                    if log is not None:
                        log.write(f"{now - t0:.0f},{rss:.1f},{hwm:.1f},{ticks},{kimg:.3f}\n")
                        log.flush()
                    next_sample += args.sample
                if args.duty < 1:
                    time.sleep(args.duty * args.period)
                    proc.send_signal(signal.SIGSTOP)
                    time.sleep((1 - args.duty) * args.period)
                    proc.send_signal(signal.SIGCONT)
                else:
                    time.sleep(max(0.0, next_sample - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            if log is not None:
                log.close()
    if len(samples) < 2:
        raise SystemExit("bench_train_soak: fewer than two samples; give a longer --hours or a shorter --sample")
    ticks, kimg = samples[-1][3], samples[-1][4]
    print(f"{len(samples)} samples over {samples[-1][0] / 3600:.2f} h, duty {args.duty:g}: {ticks} ticks logged, "
          f"{kimg:.1f} kimg")  # fmt: skip
    print(report([(t, rss) for t, rss, *_ in samples], samples[-1][2]))  # VmHWM only rises
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
