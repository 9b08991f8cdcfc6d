"""The visualizer's memory over hours: RSS of ``ada-viz`` following live trainings, sampled, with
its slope.

    .venv/bin/python bench/bench_viz_soak.py --runs FOLDER [--hours 2] [--sample 30] [--log soak.csv]

It opens the newest run directory under FOLDER (a run.json at most two levels down) in a real
window (Xvfb if there is no DISPLAY) on the Training view, so the app follows that run's live
weights and snapshots as the trainer writes them and plots its stream. Whenever a newer run appears
(a queue of trainings writing into FOLDER), it opens that one through the Snapshot panel as a user
would (xdotool: click the path, type, Enter). Every ``--sample`` seconds it records VmRSS and VmHWM;
at the end it prints the peak, the least-squares slope over the whole soak and over its second half
(MiB per hour), and how many runs and weight loads the app went through.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memory import memory_mib, report  # noqa: E402  (bench/ is on sys.path: scripts run from it)

from tests.viz.conftest import read_state, start_xvfb  # noqa: E402


def newest_run(folder: Path) -> Path | None:
    runs = [p.parent for pattern in ("*/run.json", "*/*/run.json") for p in folder.glob(pattern)]
    return max(runs, key=lambda p: (p / "run.json").stat().st_mtime, default=None)


def open_run(env: dict[str, str], window: str, state: Path, run: Path) -> None:
    """Type the run's path into the Snapshot panel and press Enter, as a user would."""
    st = read_state(state)
    if st is None or "snapshot_path" not in st.get("rects", {}):
        raise RuntimeError("the Snapshot panel's path field is not on screen")
    x0, y0, x1, y1 = st["rects"]["snapshot_path"]

    def xdo(*args: str) -> None:
        subprocess.run(["xdotool", *args], env=env, check=True, timeout=20)

    xdo("mousemove", "--window", window, str(int(x0 + 20)), str(int((y0 + y1) / 2)))
    time.sleep(0.3)
    xdo("click", "1")
    time.sleep(0.3)
    xdo("key", "--clearmodifiers", "ctrl+a")
    xdo("type", "--delay", "5", str(run))
    xdo("key", "Return")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder the trainings write their run directories into")
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--sample", type=float, default=30.0, help="seconds between memory samples")
    ap.add_argument("--log", type=Path, help="also write the samples here as CSV (seconds, rss, hwm, run)")
    args = ap.parse_args()
    first = newest_run(args.runs)
    if first is None:
        raise SystemExit(f"--runs {args.runs}: no run directory (run.json) there; start a training first")
    if shutil.which("xdotool") is None:
        raise SystemExit("xdotool is needed to open the next run as a user would (apt-get install xdotool)")
    env = dict(os.environ)
    xvfb = None
    if not env.get("DISPLAY"):
        try:
            xvfb, env["DISPLAY"] = start_xvfb()
        except (FileNotFoundError, RuntimeError) as e:
            raise SystemExit(f"no DISPLAY, and {e}: install xvfb or run inside a desktop session") from None
    samples: list[tuple[float, float, float, str]] = []
    runs, loads = [first], set()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        cmd = [sys.executable, str(REPO / "launch_viz.py"), str(first), "--view", "training", "--no-attach-last",
               "--debug-state", str(state), "--debug-every", "4"]
        proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = args.log.open("w") if args.log else None
        try:
            deadline = time.monotonic() + 60
            while read_state(state) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench_viz_soak: the app did not start")
                time.sleep(0.5)
            window = subprocess.run(["xdotool", "search", "--name", "ADA Studio"], env=env, capture_output=True,
                                    text=True).stdout.split()[0]  # fmt: skip
            t0 = time.monotonic()
            while (now := time.monotonic()) - t0 < args.hours * 3600:
                if proc.poll() is not None:
                    raise SystemExit(f"bench_viz_soak: the app exited ({proc.returncode}) after {now - t0:.0f} s")
                newest = newest_run(args.runs)
                if newest is not None and newest != runs[-1]:
                    open_run(env, window, state, newest)
                    runs.append(newest)
                st = read_state(state) or {}
                status = str(st.get("status") or "")
                if status.startswith("loaded "):  # "loaded NAME: ..., KIMG kimg in MS ms": one per load
                    loads.add(status)
                rss, hwm = memory_mib(proc.pid)
                samples.append((now - t0, rss, hwm, runs[-1].name))
                if log is not None:
                    log.write(f"{now - t0:.0f},{rss:.1f},{hwm:.1f},{runs[-1]}\n")
                    log.flush()
                time.sleep(args.sample)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if log is not None:
                log.close()
            if xvfb is not None:
                xvfb.terminate()
    points = [(t, rss) for t, rss, _, _ in samples]
    print(f"{len(samples)} samples over {points[-1][0] / 3600:.2f} h, {len(runs)} runs opened, "
          f"{len(loads)} weight loads seen at the samples")  # fmt: skip
    print(report(points, samples[-1][2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
