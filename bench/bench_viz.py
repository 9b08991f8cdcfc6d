"""Visualizer timings in a real window (Xvfb + Mesa llvmpipe): frame rate idle and while a training
runs in the background, and seed change -> new image on screen at 32 and 64 px.

    .venv/bin/python bench/bench_viz.py [--frames 300] [--no-training] [--layers-only]

Every figure is a median over the app's last 240 frames / images (the Performance panel's
numbers, read from --debug-state or printed by --benchmark). "fps uncapped" runs the frame loop
without its 60 fps limit, to show the headroom; "fps capped" is what a user gets by default.
Latency is measured from the moment the seed changes (the frame that handles the input) to the
end of the frame that presents the new image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURE = REPO.parent / "shared" / "fixtures" / "sg2_res32_skip_resnet.snapshot.pkl"


def snapshot_64(folder: Path) -> Path:
    """The fixture generator's architecture at 64 px, random weights (timing only)."""
    import torch

    from core.networks.checkpoint import save_checkpoint
    from core.networks.stylegan2 import Generator

    kwargs = json.loads(FIXTURE.with_name("sg2_res32_skip_resnet.json").read_text())["G_kwargs"]
    torch.manual_seed(0)
    G = Generator(**{**kwargs, "img_resolution": 64})
    return save_checkpoint(folder / "bench-64px", G_ema=G, kimg=0.0)


def run_app(args: list[str], env: dict[str, str], tmp: Path) -> dict[str, float]:
    state = tmp / "state.json"
    state.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(REPO / "launch_viz.py"),
        *args,
        "--debug-state",
        str(state),
        "--debug-every",
        "20",
        "--no-attach-last",
        "--fps-idle",  # frame rates of an app drawing every frame; bench_viz_idle.py measures idling
        "0",
    ]
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"bench_viz: the app failed ({out.returncode}): {out.stderr[-2000:]}")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else json.loads(state.read_text())["perf"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per measurement")
    ap.add_argument(
        "--no-training", action="store_true", help="skip the measurements with a training running"
    )
    ap.add_argument(
        "--layers-only", action="store_true", help="only the layer view measurements (no training, no 64 px)"
    )
    a = ap.parse_args()
    if not FIXTURE.is_file():
        sys.exit(f"bench_viz: fixture {FIXTURE} not found")
    from tests.viz.conftest import start_xvfb  # the GUI tests' private display

    try:
        xvfb, display = start_xvfb()
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f"bench_viz: {e}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_viz-"))
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env.update(DISPLAY=display, XDG_CONFIG_HOME=str(tmp / "config"))
    rows: list[tuple[str, str, dict[str, float]]] = []
    frames = ["--max-frames", str(a.frames)]
    snap64 = snapshot_64(tmp)

    def measure(name: str, args: list[str]) -> None:
        cmd = "launch_viz.py " + " ".join(args)
        rows.append((name, cmd, run_app(args, env, tmp)))
        r = rows[-1][2]
        print(
            f"{name:38s} fps {r['fps']:6.1f}  frame {r['frame_ms']:6.1f} ms  "
            f"render {r['render_ms']:6.1f} ms  "
            f"latency {r['latency_ms']:6.1f} ms",
            flush=True,
        )

    def suite(tag: str, extra: list[str]) -> None:
        measure(f"idle, uncapped{tag}", [str(FIXTURE), "--fps-cap", "0", *frames, *extra])
        measure(f"idle, capped 60{tag}", [str(FIXTURE), *frames, *extra])
        measure(f"seed change 32 px{tag}", [str(FIXTURE), "--benchmark", *frames, *extra])
        measure(f"seed change 64 px{tag}", [str(snap64), "--benchmark", *frames, *extra])

    def layer_suite() -> None:
        # The Layers panel open (its list and stats table drawn each frame) and a layer shown (hooks
        # and channel statistics on each render, in the worker); the first line is the same panels
        # showing the output, for comparison.
        layer = ["--layer", "b16.conv1", "--panels", "seeds,layers"]
        measure("layers panel, output shown, capped 60", [str(FIXTURE), *frames, "--panels", "seeds,layers"])
        measure("layer view, capped 60", [str(FIXTURE), *frames, *layer])
        measure("layer view, uncapped", [str(FIXTURE), "--fps-cap", "0", *frames, *layer])
        measure("layer view, seed change 32 px", [str(FIXTURE), "--benchmark", *frames, *layer])

    trainer = None
    try:
        if a.layers_only:
            layer_suite()
            return _report(rows)
        suite("", [])
        layer_suite()
        if not a.no_training:
            from viz.run_client import RunClient, StartOptions

            client = RunClient()
            client.start(StartOptions(outdir=str(tmp / "runs"), kimg=1000, extra_args="--metrics none"))
            trainer = client
            deadline = time.monotonic() + 180
            while client.reader is None and client.error is None and time.monotonic() < deadline:
                client.poll()
                time.sleep(0.5)
            if client.reader is None:
                sys.exit(f"bench_viz: the trainer did not start: {client.error}")
            time.sleep(10)  # past start-up, into steady training
            suite(", training", ["--run", str(client.run_dir)])
            measure("monitor view, training", ["--run", str(client.run_dir), "--view", "training", *frames])
    finally:
        if trainer is not None and trainer.trainer_running():
            trainer.stop()
            try:
                trainer.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                trainer.proc.kill()
        xvfb.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    return _report(rows)


def _report(rows: list[tuple[str, str, dict[str, float]]]) -> int:
    print("\nmedians (command: .venv/bin/python bench/bench_viz.py):")
    for name, cmd, r in rows:
        print(
            f"  {name}: fps {r['fps']:.1f}, frame {r['frame_ms']:.1f} ms, "
            f"latency {r['latency_ms']:.1f} ms   [{cmd}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
