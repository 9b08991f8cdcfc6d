"""An untouched window stops drawing (a machine without a GPU draws every frame on the CPU, beside
the training it watches), and input wakes it at once. Real window under Xvfb, real X input."""

from __future__ import annotations

import time
from pathlib import Path

from tests.viz.test_gui_xvfb import running_app

IDLE_PERIOD_S = 100.0  # --fps-idle 0.01: an idle frame every 100 s, far beyond every wait below


def test_an_untouched_window_idles_and_input_wakes_it_at_once(xvfb: str, fixture_pkl: Path, tmp_path: Path) -> None:
    args = [str(fixture_pkl), "--size", "1280x800", "--grid", "1x1", "--panels", "snapshot,seeds",
            "--fps-idle", str(1 / IDLE_PERIOD_S), "--no-attach-last"]  # fmt: skip
    with running_app(xvfb, tmp_path, args, ready=lambda st: st["generator_image"] is not None,
                     what="the first image", debug_every=1, screenshots=False) as app:  # fmt: skip
        st = app.until(lambda s: s["idle"], "the window to go idle", timeout=30)
        frame = st["frame"]
        time.sleep(3.0)  # at the 60 fps cap this would be ~180 frames
        assert app.state()["frame"] <= frame + 2, "an untouched window kept drawing"
        app.xdotool("mousemove", "--window", app.window, "700", "400")
        woken = app.until(lambda s: s["frame"] > frame and not s["idle"], "a frame after the pointer moved",
                          timeout=10)  # fmt: skip
        assert woken["generator_image"] is not None
        # Once the pointer rests again, the window goes back to idle.
        app.until(lambda s: s["idle"] and s["frame"] > woken["frame"], "idle again", timeout=30)
