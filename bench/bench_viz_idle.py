"""What an untouched visualizer costs: CPU time and frames per second of ``ada-viz`` left alone,
drawing every frame (``--fps-idle 0``, the old behaviour) and idling (the default), alternated.

    .venv/bin/python bench/bench_viz_idle.py [--run RUN_DIR] [--view training] [--seconds 30] [--repeats 3]

Without a DISPLAY it starts Xvfb (Mesa llvmpipe draws every frame on the CPU, like a machine
without a GPU). CPU time is the app process's user + system time from /proc over the window of
``--seconds`` after a warm-up, so it counts the drawing, the run polling and the OpenGL driver's
threads; the result is in percent of one core. Frames come from ``--debug-state``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.viz.conftest import read_state, start_xvfb  # noqa: E402

RECORDED_RUN = REPO / "tests" / "fixtures" / "recorded_run" / "00000-digits-demo"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def frames(state: Path) -> int:
    for _ in range(50):  # the app may be replacing the file this instant
        if (st := read_state(state)) is not None:
            return int(st["frame"])
        time.sleep(0.1)
    raise RuntimeError(f"{state}: no debug state")


def measure(args: argparse.Namespace, extra: list[str], env: dict[str, str], tmp: Path) -> tuple[float, float]:
    """(CPU % of one core, frames per second) of one app left alone."""
    state = tmp / "state.json"
    state.unlink(missing_ok=True)
    cmd = [sys.executable, str(REPO / "launch_viz.py"), "--run", str(args.run), "--view", args.view, *extra,
           "--debug-state", str(state), "--debug-every", "1", "--no-attach-last"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.2)
        time.sleep(args.warmup)
        c0, f0, t0 = cpu_seconds(proc.pid), frames(state), time.monotonic()
        time.sleep(args.seconds)
        c1, f1, t1 = cpu_seconds(proc.pid), frames(state), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 100 * (c1 - c0) / (t1 - t0), (f1 - f0) / (t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=RECORDED_RUN, help="run directory the app attaches to")
    ap.add_argument("--view", default="training", choices=("generator", "augment", "training"))
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per launch")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after the first frame before measuring")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ)
    xvfb = None
    if not env.get("DISPLAY"):
        try:
            xvfb, env["DISPLAY"] = start_xvfb()
        except (FileNotFoundError, RuntimeError) as e:
            raise SystemExit(f"no DISPLAY, and {e}: install xvfb or run inside a desktop session") from None
    results: dict[str, list[tuple[float, float]]] = {"--fps-idle 0": [], "default": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeats):
                results["--fps-idle 0"].append(measure(args, ["--fps-idle", "0"], env, Path(tmp)))
                results["default"].append(measure(args, [], env, Path(tmp)))
    finally:
        if xvfb is not None:
            xvfb.terminate()
    for name, rows in results.items():
        cpu = statistics.median(r[0] for r in rows)
        fps = statistics.median(r[1] for r in rows)
        each = ", ".join(f"{c:.1f}" for c, _ in rows)
        print(f"{name:>14}: CPU {cpu:5.1f}% of one core (each: {each}), {fps:5.1f} frames/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
