"""Record a real training run for the GUI and run-dir tests: tests/fixtures/recorded_run/00000-digits-demo.

What the recording is: a real ``train_headless.py`` run, started and steered exactly as the GUI
does it (``viz.run_client.RunClient``: same command builder, same environment, same control.json
writer). The trainer command (``--outdir`` relative to the repository root, which is its cwd):

    <python> <repo>/train_headless.py --outdir tests/fixtures/recorded_run --data builtin:digits --cfg cpu32
        --aug ada --kimg 5 --target 0.6 --augpipe bgc --subset 16 --cmax 8 --map-depth 1 --tick 0.5
        --ada-kimg 5 --snap 0 --preview-ticks 5 --metrics fd_offline,kid_offline --device cpu --workers 0
        --seed 0 --desc demo

i.e. the cpu32 preset shrunk to 8 feature maps and a one-layer mapping network (so live/G_ema is
~75 KB), trained for 5 kimg on 16 digits (a limited-data run: D overfits at once, so r_t sits above
the target and ADA raises p from 0, by up to 0.2 per kimg), a tick every 0.5 kimg (11 ticks),
previews at ticks 0, 5 and 10, a "stats" event every 2 s (the default), and the two offline metrics
(random-conv features, no download, ~15 s) on the final snapshot. While it trains, the script acts
as the GUI:

- at kimg >= 1.5 it presses Pause (control.json seq 1), waits until the trainer reports "paused",
  holds 3 s, presses Resume (seq 2);
- at kimg >= 3 it sends the augmentation panel's settings (``AugmentPreviewState``: the bgc
  multipliers, mode ada) with the ADA target raised to 0.75 (seq 3).

So events.jsonl holds status started/paused/resumed/finished, three "control" events (seq 1-3,
applied {"pause": true}, {"pause": false}, {"target": 0.75}), stats/tick/preview/snapshot events and
two "metric" events. Then the script prunes what the tests do not need and what is big: snapshots/
(the kept final snapshot, the rolling resume checkpoint and latest.json, ~1 MB, removed together,
so ``RunReader.latest_snapshot()`` is None and a GUI takes the live weights), tb/, and the
launcher's log beside the run; the "snapshot" events and metrics.jsonl still name the removed
snapshot (they are the run's history). It renames the run directory (the trainer named it
``<NNNNN>-digits-subset16-cpu32-kimg5-ada-target0.6-bgc-demo``) to ``00000-digits-demo``; log.txt
keeps the paths the trainer printed. What stays: run.json, log.txt, events.jsonl, metrics.jsonl,
control.json, previews/*.png, live/G_ema.{safetensors,json}. The result is checked with RunReader
and must stay under the 300 KB the fixture test allows.

Not bit-reproducible: the kimg at which the requests land, the stats event times and sec/kimg
depend on the machine's speed; the procedure, options and seeds are fixed. The checked-in
recording was made on a shared 2-core CPU with OMP_NUM_THREADS=1:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/record_demo_run.py --force
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.rundir import RunReader, list_run_dirs  # noqa: E402
from viz.run_client import RunClient, StartOptions, trainer_command  # noqa: E402
from viz.widgets.augment_preview import AugmentPreviewState  # noqa: E402

log = logging.getLogger("record_demo_run")

NAME = "00000-digits-demo"
SIZE_CAP = 300 * 1024  # tests/core/training/test_rundir_fixture.py
TRAIN = StartOptions(data="builtin:digits", cfg="cpu32", aug="ada", augpipe="bgc", target=0.6, kimg=5.0)
EXTRA_ARGS = (
    "--subset 16 --cmax 8 --map-depth 1 --tick 0.5 --ada-kimg 5 --snap 0 --preview-ticks 5 "
    "--metrics fd_offline,kid_offline --device cpu --workers 0 --seed 0 --desc demo"
)
PAUSE_AT_KIMG, PAUSE_S = 1.5, 3.0
TARGET_AT_KIMG, NEW_TARGET = 3.0, 0.75
PRUNED = ("snapshots", "tb")
POLL_S = 0.2


class RecordingError(RuntimeError):
    """The recording did not go as planned; the message says what happened."""


class Follower:
    """The events of the run the client watches, collected as they arrive, with a bounded wait."""

    def __init__(self, client: RunClient, deadline: float) -> None:
        self.client = client
        self.deadline = deadline
        self.events: list[dict[str, Any]] = []

    @property
    def kimg(self) -> float:
        return max((float(e["kimg"]) for e in self.events if e.get("kind") == "stats"), default=0.0)

    def states(self) -> list[str]:
        return [str(e.get("state")) for e in self.events if e.get("kind") == "status"]

    def wait(self, done: Callable[[], bool], what: str) -> None:
        while True:
            self.client.check_launch()
            self.events += self.client.poll()
            if done():
                return
            if self.client.error:
                raise RecordingError(self.client.error)
            ended = {"finished", "stopped", "failed"} & set(self.states())
            if ended or (self.client.proc is not None and self.client.proc.poll() is not None):
                raise RecordingError(f"the run ended ({', '.join(ended) or 'process exited'}) before {what}")
            if time.monotonic() > self.deadline:
                raise RecordingError(f"timed out waiting for {what}")
            time.sleep(POLL_S)

    def wait_for_end(self) -> str:
        """The final status, once the trainer process has exited."""
        proc = self.client.proc
        assert proc is not None
        remaining = max(self.deadline - time.monotonic(), 1.0)
        try:
            code = proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            raise RecordingError(f"the trainer did not finish within {remaining:.0f} s") from None
        self.events += self.client.poll()
        states = self.states()
        if code != 0 or not states or states[-1] != "finished":
            raise RecordingError(f"the trainer exited with {code}, last status {states[-1:] or 'none'}")
        return states[-1]


def drive(client: RunClient, follow: Follower) -> None:
    """Pause, resume and send augmentation settings the way the GUI's buttons do."""
    follow.wait(lambda: client.reader is not None, "the run directory to appear")
    follow.wait(lambda: follow.kimg >= PAUSE_AT_KIMG, f"kimg {PAUSE_AT_KIMG}")
    seq = client.pause()
    log.info("pause requested (seq %d) at kimg %.3f", seq, follow.kimg)
    follow.wait(lambda: "paused" in follow.states(), "the trainer to pause")
    time.sleep(PAUSE_S)
    seq = client.resume()
    log.info("resume requested (seq %d)", seq)
    follow.wait(lambda: "resumed" in follow.states(), "the trainer to resume")
    follow.wait(lambda: follow.kimg >= TARGET_AT_KIMG, f"kimg {TARGET_AT_KIMG}")
    panel = AugmentPreviewState(target=NEW_TARGET)  # the augmentation panel's settings, target moved
    seq = client.send_augment(panel.multipliers, panel.aug_mode, panel.target, panel.p)
    log.info("augmentation settings sent (seq %d, target %g) at kimg %.3f", seq, NEW_TARGET, follow.kimg)
    follow.wait(lambda: client.applied_at(seq, follow.events) is not None, f"control request {seq} to apply")
    follow.wait_for_end()


def prune(run_dir: Path) -> None:
    for name in PRUNED:
        shutil.rmtree(run_dir / name, ignore_errors=True)


def check(run_dir: Path) -> dict[str, Any]:
    """Read the pruned run back the way the GUI does; raise if anything is off."""
    from core.networks import Generator

    reader = RunReader(run_dir)
    events = reader.poll_events()
    lines = [ln for ln in (run_dir / "events.jsonl").read_text().splitlines() if ln.strip()]
    problems = []
    if len(events) != len(lines):
        problems.append(f"RunReader read {len(events)} of {len(lines)} event lines")
    if reader.status().state != "finished":
        problems.append(f"status is {reader.status().state}, not finished")
    if reader.latest_snapshot() is not None:
        problems.append("a snapshot is still there")
    states = [e["state"] for e in events if e["kind"] == "status"]
    if states != ["started", "paused", "resumed", "finished"]:
        problems.append(f"status sequence {states}")
    controls = [(e["seq"], e["applied"]) for e in events if e["kind"] == "control"]
    if controls != [(1, {"pause": True}), (2, {"pause": False}), (3, {"target": NEW_TARGET})]:
        problems.append(f"control events {controls}")
    missing = [e["file"] for e in events if e["kind"] == "preview" and not (run_dir / e["file"]).is_file()]
    if missing:
        problems.append(f"preview files missing: {missing}")
    hidden = [str(p) for p in run_dir.rglob(".*")]
    if hidden:
        problems.append(f"temporary files left: {hidden}")
    live = reader.live_weights()
    if live is None:
        problems.append("no live weights")
    else:
        Generator(**live.kwargs).load_state_dict(live.state_dict, strict=True)
    if problems:
        raise RecordingError(f"{run_dir}: " + "; ".join(problems))
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    p = [e["Progress/augment"] for e in events if e["kind"] == "stats"]
    return {"kimg": reader.status().kimg, "events": kinds, "p": (min(p), max(p)), "states": states}


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def record(out: Path, timeout_s: float) -> Path:
    """Train, drive, prune and check a new run in ``out``; returns its (trainer-named) directory."""
    rel_out = os.path.relpath(out, REPO) if out.is_relative_to(REPO) else str(out)
    opts = StartOptions(**{**TRAIN.__dict__, "outdir": rel_out, "extra_args": EXTRA_ARGS})
    log.info("trainer command: %s", " ".join(trainer_command(opts, python="<python>")))
    launch_logs = set(out.glob("launch-*.log"))
    client = RunClient()
    follow = Follower(client, time.monotonic() + timeout_s)
    client.start(opts)
    try:
        drive(client, follow)
    except BaseException:
        _end_trainer(client)
        if client.run_dir is not None:
            shutil.rmtree(client.run_dir, ignore_errors=True)
        raise
    finally:
        for path in set(out.glob("launch-*.log")) - launch_logs:
            path.unlink()
    assert client.run_dir is not None
    run_dir = client.run_dir
    prune(run_dir)
    return run_dir


def _end_trainer(client: RunClient) -> None:
    """Stop the trainer this script started (its own session, so its group id is its pid)."""
    proc = client.proc
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "recorded_run")
    parser.add_argument("--force", action="store_true", help=f"replace an existing {NAME}")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the whole recording may take")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out.resolve()
    target = out / NAME
    if target.exists() and not args.force:
        print(f"record_demo_run: {target} exists; pass --force to replace it", file=sys.stderr)
        return 2
    others = [d.name for d in list_run_dirs(out) if d != target]
    if others:
        print(f"record_demo_run: {out} holds other runs ({', '.join(others)}); use an empty --out",
              file=sys.stderr)
        return 2
    os.chdir(REPO)  # RunClient resolves --outdir here and starts the trainer here
    try:
        run_dir = record(out, args.timeout)
        summary = check(run_dir)
    except RecordingError as exc:
        print(f"record_demo_run: {exc}", file=sys.stderr)
        return 1
    size = size_of(run_dir)
    if size >= SIZE_CAP:
        print(f"record_demo_run: {run_dir} is {size / 1024:.0f} KiB, over the {SIZE_CAP // 1024} KiB the "
              "fixture test allows; left there, the old recording kept", file=sys.stderr)
        return 1
    if target.exists():
        shutil.rmtree(target)
    run_dir.rename(target)
    print(f"wrote {target} ({size / 1024:.0f} KiB): kimg {summary['kimg']:.3f}, p {summary['p'][0]:.3f} to "
          f"{summary['p'][1]:.3f}, status {' -> '.join(summary['states'])}, events {summary['events']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
