"""GUI frame rate while the studio tools run: idle, during a video export, during a projection.

    .venv/bin/python bench/bench_viz_jobs.py [--repeats 3] [--network PATH] [--steps 1000] [--seconds 40]

The real app in a private Xvfb (Mesa llvmpipe), on the bundled demo generator (32 px), driven as
a person would (xdotool types into the Video export and Projection panels and clicks their
buttons). Each round measures, in this order: idle (nothing running, 10 s), a video export
(``--seconds`` of 30 fps frames to an .mp4) and a projection (``--steps``, pixel fallback). For each
window: the mean frame rate (frames / wall time between the job's first progress report and the
moment it is 90 % done, read from --debug-state) and the Performance panel's median frame rate
over its last 240 frames at that moment. Prints each round and the medians over rounds, with the
load average. The app runs with its default 60 fps cap.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "viz" / "demo" / "digits32-demo.json"

from tests.viz.conftest import app_env, close_app, launch, read_state, start_xvfb  # noqa: E402

State = dict[str, Any]


class Driven:
    """The app in a window, its --debug-state, and xdotool input."""

    def __init__(self, args: list[str], folder: Path) -> None:
        self.xvfb, display = start_xvfb()
        self.env = app_env(folder, display)
        self.state_file = folder / "state.json"
        # --fps-idle 0: the frame rate of a window in use (a user dragging a slider), not of an idle one
        self.proc = launch([*args, "--debug-state", str(self.state_file), "--debug-every", "2", "--no-attach-last",
                            "--fps-idle", "0"], self.env)  # fmt: skip
        found = self.until(lambda: self._windows(), 120, "the app window")
        self.window = found[0]
        self.until(lambda: (st := self.state()) is not None and st["frame"] > 8 and st["generator_image"],
                   120, "a first image")  # fmt: skip

    def _windows(self) -> list[str]:
        out = subprocess.run(["xdotool", "search", "--name", "ADA Studio"], env=self.env, capture_output=True,
                             text=True)  # fmt: skip
        return out.stdout.split()

    def state(self) -> State | None:
        return read_state(self.state_file)

    def until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                sys.exit(f"bench_viz_jobs: the app exited while waiting for {what}")
            time.sleep(0.05)
        sys.exit(f"bench_viz_jobs: timed out waiting for {what}")

    def fresh(self) -> State:
        st = self.until(self.state, 60, "the debug state")
        return self.until(lambda: (s := self.state()) is not None and s["frame"] > st["frame"] and s, 60, "a frame")

    def click(self, rect_name: str, fx: float = 0.5) -> None:
        x0, y0, x1, y1 = self.fresh()["rects"][rect_name]
        self._xdotool("mousemove", "--window", self.window, str(int(x0 + (x1 - x0) * fx)), str(int((y0 + y1) / 2)))
        self.fresh()
        self._xdotool("mousedown", "1")
        self.fresh()
        self._xdotool("mouseup", "1")
        self.fresh()

    def type_into(self, rect_name: str, text: str, read: Callable[[State], Any]) -> None:
        for _ in range(3):  # a loaded machine may drop a keystroke between frames: check, retry
            self.click(rect_name, fx=0.2)
            self._xdotool("key", "--clearmodifiers", "ctrl+a")
            self._xdotool("type", "--delay", "40", text)
            self._xdotool("key", "Return")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                st = self.state()
                if st is not None and str(read(st)) == text:
                    return
                time.sleep(0.1)
        sys.exit(f"bench_viz_jobs: could not type {text!r} into {rect_name}")

    def _xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=20)

    def close(self) -> None:
        close_app(self.proc)
        self.xvfb.terminate()


def window(app: Driven, started: Callable[[State], bool], nearly_done: Callable[[State], bool]) -> tuple[float, float]:
    """(mean fps, the Performance panel's median fps) between two states of a job."""
    first = app.until(lambda: (st := app.state()) is not None and started(st) and st, 600, "the job's start")
    t0 = time.monotonic()
    last = app.until(lambda: (st := app.state()) is not None and nearly_done(st) and st, 1800, "the job's end")
    t1 = time.monotonic()
    return (last["frame"] - first["frame"]) / (t1 - t0), last["perf"]["fps"]


def idle(app: Driven, seconds: float) -> tuple[float, float]:
    first, t0 = app.fresh(), time.monotonic()
    time.sleep(seconds)
    last, t1 = app.fresh(), time.monotonic()
    return (last["frame"] - first["frame"]) / (t1 - t0), last["perf"]["fps"]


def _progress(st: State, key: str) -> float:
    p = st[key]["progress"]
    return p["done"] / p["total"] if p and st[key]["running"] else -1.0


def export_round(app: Driven, out: Path) -> tuple[float, float]:
    out.unlink(missing_ok=True)
    app.click("video_export")
    measured = window(app, lambda st: _progress(st, "video") > 0, lambda st: _progress(st, "video") >= 0.9)
    app.until(lambda: (st := app.state()) is not None and not st["video"]["running"], 600, "the export's end")
    return measured


def projection_round(app: Driven) -> tuple[float, float]:
    app.click("proj_run")
    measured = window(app, lambda st: _progress(st, "projection") > 0,
                      lambda st: _progress(st, "projection") >= 0.9)  # fmt: skip
    app.until(lambda: (st := app.state()) is not None and not st["projection"]["running"], 600, "the projection's end")
    return measured


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--network", type=Path, default=DEMO)
    ap.add_argument("--steps", type=int, default=1000, help="projection steps")
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the exported video (30 fps)")
    a = ap.parse_args()
    if shutil.which("xdotool") is None:
        sys.exit("bench_viz_jobs: xdotool is not installed")
    folder = Path(tempfile.mkdtemp(prefix="bench_viz_jobs-"))
    target = folder / "target.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(target)
    print(f"load before: {os.getloadavg()}", flush=True)
    app = Driven([str(a.network), "--panels", "video,projection", "--grid", "1x1"], folder)
    rows: dict[str, list[tuple[float, float]]] = {"idle": [], "video export": [], "projection": []}
    try:
        app.type_into("video_out", str(folder / "walk.mp4"), lambda st: st["video"]["out"])
        app.type_into("video_seconds", f"{a.seconds:.1f}", lambda st: f"{st['video']['seconds']:.1f}")
        app.type_into("proj_target", str(target), lambda st: st["projection"]["target"])
        app.type_into("proj_outdir", str(folder / "proj"), lambda st: st["projection"]["outdir"])
        app.type_into("proj_steps", str(a.steps), lambda st: st["projection"]["steps"])
        for i in range(a.repeats):
            for name, run in (("idle", lambda: idle(app, 10.0)),
                              ("video export", lambda: export_round(app, folder / "walk.mp4")),
                              ("projection", lambda: projection_round(app))):  # fmt: skip
                rows[name].append(run())
                mean, median = rows[name][-1]
                print(f"round {i + 1}, {name}: {mean:.1f} fps mean, {median:.1f} fps median, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    finally:
        app.close()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nmedians over {a.repeats} rounds (load after: {os.getloadavg()}):")
    for name, values in rows.items():
        print(f"  {name}: {statistics.median(v[0] for v in values):.1f} fps mean, "
              f"{statistics.median(v[1] for v in values):.1f} fps median frame rate")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
