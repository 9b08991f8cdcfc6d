"""The studio tools in the real app under Xvfb: the video keyframe strip, and progress while jobs run.

The app is driven with xdotool as in test_gui_xvfb.py. While a job runs, the --debug-state file
(written every other frame) is read over and over: a panel that only said "running" and then
"done" would leave no intermediate count in it, and these tests would fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.viz.conftest import read_state
from tests.viz.test_gui_xvfb import RunningApp, _close_panel, _open_panel, running_app, type_checked
from viz.renderer import RenderRequest, model_from_generator, render_images

State = dict[str, Any]


@pytest.fixture(scope="module")
def app(xvfb: str, fixture_pkl: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    args = [str(fixture_pkl), "--size", "1280x800", "--fps-cap", "30", "--panels", "seeds,video", "--grid", "1x1",
            "--no-attach-last"]  # fmt: skip
    with running_app(xvfb, tmp_path_factory.mktemp("gui-studio"), args, debug_every=2, screenshots=False,
                     ready=lambda st: st["frame"] >= 6 and st["generator_image"] is not None,
                     what="the first image") as running:  # fmt: skip
        yield running


def _watch(app: RunningApp, done: Callable[[State], bool], timeout: float) -> list[State]:
    """Every debug state written until ``done`` holds (the last one included)."""
    seen: list[State] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = read_state(app.state_file)
        if st is not None and (not seen or st["frame"] > seen[-1]["frame"]):
            seen.append(st)
            if done(st):
                return seen
        assert app.proc.poll() is None, "the app exited"
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s; last state: {seen[-1] if seen else None}")


def _open_strip(app: RunningApp) -> State:
    """Unfold the Video panel's keyframe strip (folded, it is one line)."""
    if "video_add_seed" not in app.fresh_state()["rects"]:
        app.click(app.state()["rects"]["video_strip"], fx=0.2)
    return app.until(lambda s: "video_add_seed" in s["rects"], "the keyframe strip to open")


def _seed_image(fixture_generator: torch.nn.Module, seed: int) -> np.ndarray:
    from viz.renderer import lattice_point

    model = model_from_generator(fixture_generator, "fixture")
    x, y = lattice_point(seed)
    with torch.inference_mode():
        return render_images(model, RenderRequest(model.key, x=x, y=y, noise_mode="const"))


def test_the_keyframe_strip_orders_seeds_and_the_export_counts_frames(
    app: RunningApp, fixture_generator: torch.nn.Module
) -> None:
    _open_strip(app)
    for seed in (5, 9, 2):
        type_checked(app, "seed_input", str(seed), lambda s: s["seed"])
        app.until(lambda s, k=seed: "video_add_seed" in s["rects"] and s["seed"] == k, "the seed on screen")
        before = len(app.state()["video"]["keys"])
        app.click(app.fresh_state()["rects"]["video_add_seed"], fx=0.3)
        app.until(lambda s, n=before: len(s["video"]["keys"]) == n + 1, f"seed {seed} in the strip")
    st = app.until(lambda s: s["video"]["keys"] == ["5", "9", "2"] and s["video"]["selected"] == 2, "three keys")
    app.click(st["rects"]["video_key0"], fx=0.5)  # select seed 5 and move it right: 9, 5, 2
    app.until(lambda s: s["video"]["selected"] == 0, "seed 5 selected")
    app.click(app.fresh_state()["rects"]["video_key_right"])
    st = app.until(lambda s: s["video"]["keys"] == ["9", "5", "2"], "seed 5 moved right")
    app.click(st["rects"]["video_key2"])  # select seed 2 and remove it: 9, 5
    app.until(lambda s: s["video"]["selected"] == 2, "seed 2 selected")
    app.click(app.fresh_state()["rects"]["video_key_remove"])
    app.until(lambda s: s["video"]["keys"] == ["9", "5"], "seed 2 removed")

    out = app.state_file.parent / "strip-frames"
    type_checked(app, "video_out", f"{out}/", lambda s: s["video"]["out"])
    type_checked(app, "video_seconds", "5.0", lambda s: f"{s['video']['seconds']:.1f}")
    type_checked(app, "video_fps", "30", lambda s: f"{s['video']['fps']:.0f}")
    app.click(app.fresh_state()["rects"]["video_export"])
    states = _watch(app, lambda s: s["video"]["message"].startswith("wrote"), timeout=240)
    assert states[-1]["video"]["message"] == f"wrote 150 frames to {out}" and not states[-1]["video"]["error"]
    running = [s["video"]["progress"] for s in states if s["video"]["running"] and s["video"]["progress"]]
    counts = [p["done"] for p in running]
    assert counts == sorted(counts) and all(p["total"] == 150 and p["unit"] == "frames" for p in running)
    assert len({c for c in counts if 0 < c < 150}) >= 2, f"no progress seen while exporting: {counts}"
    assert any("video_progress" in s["rects"] for s in states if s["video"]["running"])  # the bar was drawn
    frames = sorted(out.glob("frame*.png"))
    assert len(frames) == 150
    first, last = (np.asarray(Image.open(f)).astype(int) for f in (frames[0], frames[-1]))
    # The looping walk starts on the strip's first keyframe, seed 9, and comes back towards it.
    assert np.abs(first - _seed_image(fixture_generator, 9).astype(int)).max() <= 1
    assert np.abs(first - _seed_image(fixture_generator, 5).astype(int)).mean() > 5
    assert np.abs(last - first).mean() < np.abs(_seed_image(fixture_generator, 5).astype(int) - first).mean()


def test_a_projection_shows_its_steps_and_image_live_then_becomes_a_keyframe(app: RunningApp) -> None:
    folder = app.state_file.parent
    target, outdir = folder / "target.png", folder / "proj"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(target)
    _close_panel(app, "video", "video_export")
    _close_panel(app, "seeds", "seed_input")
    try:
        _open_panel(app, "projection", "proj_run")
        type_checked(app, "proj_target", str(target), lambda s: s["projection"]["target"])
        type_checked(app, "proj_outdir", str(outdir), lambda s: s["projection"]["outdir"])
        type_checked(app, "proj_steps", "150", lambda s: s["projection"]["steps"])
        app.click(app.fresh_state()["rects"]["proj_run"])
        states = _watch(app, lambda s: s["projection"]["done"] == 1, timeout=300)
        final = states[-1]["projection"]
        assert not final["error"] and "projected_w.npz" in final["message"], final["message"]
        live = [s for s in states if s["projection"]["running"] and s["projection"]["progress"]]
        steps = [s["projection"]["progress"]["done"] for s in live]
        assert steps == sorted(steps) and len({n for n in steps if 0 < n < 150}) >= 2, steps
        assert all(s["projection"]["progress"]["distance"] > 0 for s in live)
        images = {s["projection"]["progress"]["image_md5"] for s in live} - {None}
        assert len(images) >= 2, "the live image did not change while projecting"
        assert any("proj_live_image" in s["rects"] for s in live) and live[-1]["projection"]["curve_points"] >= 2
        assert final["progress"]["done"] == 150 and final["progress"]["image_shape"] == [32, 64, 3]
        ws_file = str(outdir / "projected_w.npz")
        app.until(lambda s: s["generator_image"]["ws_file"] == ws_file, "the projected w on screen")
        _close_panel(app, "projection", "proj_run")
        _open_panel(app, "video", "video_export")
        st = _open_strip(app)
        keys = list(st["video"]["keys"])
        app.click(st["rects"]["video_add_projected"])
        app.until(lambda s: s["video"]["keys"] == [*keys, ws_file], "the projected w in the keyframe strip")
    finally:
        st = app.state()
        if "proj_run" in st["rects"]:
            _close_panel(app, "projection", "proj_run")
        if "video_export" not in app.state()["rects"]:
            _open_panel(app, "video", "video_export")
        _open_panel(app, "seeds", "seed_input")
