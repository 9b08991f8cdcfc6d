"""The real app in a real X window (Xvfb), driven with real mouse and keyboard input (xdotool).

One app instance serves the whole module (starting torch and the generator takes seconds); each
test reads the app's state (--debug-state JSON, with the screen rectangles of the widgets it
clicks) before and after its input, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.viz.conftest import REPO, app_env, close_app, launch, read_state, wait_for

RECORDED_RUN = REPO / "tests" / "fixtures" / "recorded_run" / "00000-digits-demo"
STATE_TIMEOUT = 60.0


@dataclass
class RunningApp:
    proc: subprocess.Popen[str]
    display: str
    state_file: Path
    shot_file: Path
    window: str
    env: dict[str, str]

    def state(self) -> dict[str, Any]:
        return wait_for(lambda: read_state(self.state_file), STATE_TIMEOUT, "the debug state", self.proc)

    def fresh_state(self) -> dict[str, Any]:
        """A state written after this call (so it reflects input sent before it)."""
        frame = self.state()["frame"]
        return wait_for(
            lambda: _newer(read_state(self.state_file), frame), STATE_TIMEOUT, "a new frame", self.proc
        )

    def until(self, predicate: Any, what: str, timeout: float = STATE_TIMEOUT) -> dict[str, Any]:
        last: list[dict[str, Any]] = []

        def check() -> dict[str, Any] | None:
            st = read_state(self.state_file)
            if st is not None:
                last[:] = [st]
            return st if st is not None and predicate(st) else None

        try:
            return wait_for(check, timeout, what, self.proc)
        except pytest.fail.Exception as exc:
            st = last[0] if last else {}
            brief = {
                k: st.get(k) for k in ("frame", "view", "seed", "lattice", "status", "augment", "control")
            }
            raise AssertionError(f"{exc}; last state: {brief}") from None

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], display: str, state_file: Path, shot_file: Path,
              cwd: Path = REPO) -> RunningApp:  # fmt: skip
        """launch_viz.py with ``args``, once its window is there (closed again if it never comes)."""
        proc = launch(args, env, cwd=cwd)
        try:
            found = wait_for(
                lambda: subprocess.run(["xdotool", "search", "--name", "ADA Studio"], env=env, capture_output=True,
                                       text=True).stdout.split(),
                STATE_TIMEOUT, "the app window", proc,
            )  # fmt: skip
        except BaseException:
            close_app(proc)
            raise
        return cls(proc, display, state_file, shot_file, found[0], env)

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=20)

    def click(self, rect: list[float], fx: float = 0.5, fy: float = 0.5) -> None:
        """Move, press, release, each seen by at least one frame, as a hand would (the app may be
        running at a few frames per second on a loaded machine)."""
        x, y = _point(rect, fx, fy)
        self.xdotool("mousemove", "--window", self.window, str(x), str(y))
        self.fresh_state()
        self.xdotool("mousedown", "1")
        self.fresh_state()
        self.xdotool("mouseup", "1")

    def open_view(self, name: str, tries: int = 3) -> dict[str, Any]:
        """Click a view's tab until the app shows that view (a click can fall between two frames of an
        app drawing a few frames per second on a loaded machine; a second one is what a person does)."""
        for attempt in range(tries):
            self.click(self.state()["rects"][f"tab_{name}"])
            try:
                return self.until(lambda st: st["view"] == name, f"the {name} view", timeout=15)
            except pytest.fail.Exception:
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    def screenshot(self) -> np.ndarray:
        before = self.state()["frame"]
        self.until(lambda st: st["frame"] > before and self.shot_file.exists(), "a screenshot")
        return np.asarray(Image.open(self.shot_file).convert("RGB"))



@contextmanager
def running_app(display: str, tmp: Path, args: list[str], ready: Callable[[dict[str, Any]], Any] | None = None,
                what: str = "the first frames", env: dict[str, str] | None = None,
                debug_every: int = 3, screenshots: bool = True) -> Iterator[RunningApp]:  # fmt: skip
    """launch_viz.py ``args`` on ``display`` writing its debug state (and screenshots) under ``tmp``,
    once ``ready`` holds (default: 6 frames drawn, so that widget rectangles are laid out); closed after."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (scripts/test.sh installs it with apt-get when run as root)")
    env = env if env is not None else app_env(tmp, display)
    state_file, shot_file = tmp / "state.json", tmp / "shot.png"
    debug = ["--debug-state", str(state_file), "--debug-every", str(debug_every)]
    debug += ["--debug-screenshot", str(shot_file)] if screenshots else []
    app = RunningApp.start([*args, *debug], env, display, state_file, shot_file)
    try:
        app.until(ready or (lambda st: st["frame"] >= 6), what)
        yield app
    finally:
        close_app(app.proc)

def _newer(st: dict[str, Any] | None, frame: int) -> dict[str, Any] | None:
    return st if st is not None and st["frame"] > frame else None


def _point(rect: list[float], fx: float, fy: float) -> tuple[int, int]:
    x0, y0, x1, y1 = rect
    return int(x0 + (x1 - x0) * fx), int(y0 + (y1 - y0) * fy)


def _crop(img: np.ndarray, rect: list[float]) -> np.ndarray:
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    return img[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].astype(np.float64)


@pytest.fixture(scope="module")
def app(xvfb: str, fixture_pkl: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    tmp = tmp_path_factory.mktemp("gui")
    run_copy = tmp / "run"
    shutil.copytree(RECORDED_RUN, run_copy)  # the send button writes control.json: keep the fixture clean
    args = [str(fixture_pkl), "--run", str(run_copy), "--size", "1280x800", "--fps-cap", "30",
            "--panels", "snapshot,seeds,trunc_noise,augment", "--grid", "1x1"]  # fmt: skip
    with running_app(xvfb, tmp, args) as running:
        yield running


def _recorded_events() -> list[dict[str, Any]]:
    text = (RECORDED_RUN / "events.jsonl").read_text()
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def _generator_ready(app: RunningApp) -> dict[str, Any]:
    app.open_view("generator")
    return app.until(
        lambda st: st["view"] == "generator" and st["generator_image"] is not None, "a generator image"
    )


def test_starts_on_the_fixture_snapshot_and_shows_a_non_blank_image(app: RunningApp) -> None:
    st = _generator_ready(app)
    assert st["model"]["resolution"] == 32 and st["snapshot"]["error"] is None
    shot = app.screenshot()
    shown = _crop(shot, app.state()["rects"]["gen_image"])
    assert shown.std() > 20, "the generator image area on screen is blank"


def test_typing_a_seed_changes_the_image(app: RunningApp) -> None:
    st = _generator_ready(app)
    before_md5, before_pixels = (
        st["generator_image"]["md5"],
        _crop(app.screenshot(), st["rects"]["gen_image"]),
    )
    new_seed = 7 if st["seed"] != 7 else 8
    app.click(st["rects"]["seed_input"], fx=0.2)
    app.xdotool("key", "--clearmodifiers", "ctrl+a")
    app.xdotool("type", "--delay", "30", str(new_seed))
    app.xdotool("key", "Return")
    st = app.until(lambda s: s["generator_image"]["seeds"] == [new_seed], f"the image of seed {new_seed}")
    assert st["generator_image"]["md5"] != before_md5
    after_pixels = _crop(app.screenshot(), st["rects"]["gen_image"])
    assert np.abs(after_pixels - before_pixels).mean() > 5, "the image on screen did not change"


def test_dragging_on_the_image_browses_the_seed_lattice(app: RunningApp) -> None:
    st = _generator_ready(app)
    x0, y0 = st["lattice"]
    before_md5 = st["generator_image"]["md5"]
    px, py = _point(st["rects"]["gen_image"], 0.5, 0.5)
    app.xdotool("mousemove", "--window", app.window, str(px), str(py))
    app.xdotool("mousedown", "1")
    time.sleep(0.1)
    for step in range(1, 9):  # a drag is a path, not a jump
        app.xdotool("mousemove", "--window", app.window, str(px - 20 * step), str(py))
        time.sleep(0.05)
    app.xdotool("mouseup", "1")
    # 160 px to the left over the image: the lattice moves right by drag_speed * 160 / width.
    expected = x0 + 4.0 * 160 / (st["rects"]["gen_image"][2] - st["rects"]["gen_image"][0])
    st = app.until(lambda s: s["lattice"][0] > x0 + 0.05, "the lattice position to move")
    st = app.until(
        lambda s: abs(s["lattice"][0] - expected) < 1e-6, f"the lattice to reach x = {expected:.3f}"
    )
    assert st["lattice"][1] == pytest.approx(y0)
    st = app.until(lambda s: s["generator_image"]["md5"] != before_md5, "a new image after the drag")


def test_moving_an_augmentation_slider_changes_the_preview(app: RunningApp) -> None:
    app.open_view("augment")
    st = app.until(lambda s: s["view"] == "augment" and s["augment"]["md5"], "the augmentation preview")
    before = st["augment"]
    target_fx = 0.8 if before["p"] < 0.6 else 0.1  # the rectangle includes the label on the right
    app.click(st["rects"]["aug_p_slider"], fx=target_fx)
    st = app.until(lambda s: abs(s["augment"]["p"] - before["p"]) > 0.2, "p to follow the slider")
    st = app.until(lambda s: s["augment"]["preview_p"] == s["augment"]["p"], "the preview for the new p")
    assert st["augment"]["md5"] != before["md5"]
    assert st["augment"]["reals_md5"] == before["reals_md5"]  # same real images, new augmentation


def test_hovering_an_augmented_image_reports_it(app: RunningApp) -> None:
    app.open_view("augment")
    st = app.until(lambda s: s["view"] == "augment" and s["augment"]["md5"], "the augmentation preview")
    x, y = _point(st["rects"]["aug_image"], 0.18, 0.1)  # the first pair's augmented half
    app.xdotool("mousemove", "--window", app.window, str(x), str(y))
    st = app.until(lambda s: s["augment"]["hovered"] is not None, "a hovered image")
    assert st["augment"]["hovered"] == 0


def test_the_monitor_plots_the_recorded_events(app: RunningApp) -> None:
    app.open_view("training")
    st = app.until(lambda s: s["view"] == "training" and s["monitor"]["status"] == "finished", "the monitor")
    mon = st["monitor"]
    events = _recorded_events()
    stats = [e for e in events if e["kind"] == "stats"]
    controls = [e for e in events if e["kind"] == "control"]
    # One point per stats line that carries the stat (losses only when their phase ran in that window).
    plotted = {
        key: sum(isinstance(e.get(key), int | float) and math.isfinite(e[key]) for e in stats)
        for key in mon["points"]
    }
    assert mon["points"] == plotted
    assert min(mon["points"].values()) > 0 and max(mon["points"].values()) == len(stats)
    assert mon["target_points"] == 1 + sum("target" in c["applied"] for c in controls) == 2
    assert mon["controls"] == [c["seq"] for c in controls] == [1, 2, 3]
    last = {e["image"]: Path(e["file"]).name for e in events if e["kind"] == "preview"}
    assert Path(mon["fakes"]).name == last["fakes"]
    assert Path(mon["reals_augmented"]).name == last["reals-augmented"]
    shot = app.screenshot()
    plots = _crop(shot, st["rects"]["monitor_plots"])
    assert plots.std() > 10, "the plot area is blank"


def test_send_to_training_writes_the_settings_to_control_json(app: RunningApp) -> None:
    app.open_view("augment")
    st = app.until(lambda s: s["view"] == "augment" and "aug_send" in s["rects"], "the send button")
    app.click(st["rects"]["aug_send"])
    st = app.until(lambda s: s["augment"]["sent_seq"] is not None, "the request to be written")
    run_dir = Path(st["monitor"]["run_dir"])
    control = json.loads((run_dir / "control.json").read_text())
    applied = max(e["seq"] for e in _recorded_events() if e["kind"] == "control")
    assert control["seq"] == st["augment"]["sent_seq"] == applied + 1  # next after what the trainer applied
    assert control["aug_mode"] == "ada" and control["target"] == pytest.approx(0.6)
    assert set(control["aug_multipliers"]) >= {"xflip", "rotate90", "cutout", "imgfilter_band0"}
    assert st["augment"]["sent_kimg"] is None  # the recorded run has finished: nobody applies it


def _toggle_panel(app: RunningApp, name: str, shown: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Click a panel's header until ``shown`` holds. The header is found in a state drawn after this
    call (the panels above may just have moved), and clicked again when a loaded machine lost the click."""
    for _ in range(3):
        app.click(app.fresh_state()["rects"][f"panel:{name}"], fx=0.3)
        try:
            return app.until(shown, what, timeout=20)
        except AssertionError:
            st = app.fresh_state()
            if shown(st):  # the click was only slow
                return st
    raise AssertionError(f"{what}: three clicks on its header did not do it")


def _open_panel(app: RunningApp, name: str, control: str) -> dict[str, Any]:
    """Open a folded panel by clicking its header; returns a state once ``control`` is laid out."""
    return _toggle_panel(app, name, lambda s: control in s["rects"], f"the {name} panel to open")


def _close_panel(app: RunningApp, name: str, control: str) -> None:
    # Folded again, so the panels below stay where the other tests expect them.
    _toggle_panel(app, name, lambda s: control not in s["rects"], f"the {name} panel to close")


def test_the_layers_panel_picks_a_layer_toggles_fft_and_resets(app: RunningApp) -> None:
    st = _generator_ready(app)
    st = _open_panel(app, "layers", "layers_enable")
    st = app.until(lambda s: "layer:b8.conv1" in s["rects"], "the layer list")
    app.click(st["rects"]["layer:b8.conv1"], fx=0.2)
    st = app.until(lambda s: s["generator_image"]["layer"] == "b8.conv1", "the layer's image")
    assert st["layers"]["shown"] == "b8.conv1" and st["generator_image"]["shape"] == [8, 8, 3]
    plain_md5 = st["generator_image"]["md5"]
    app.click(st["rects"]["layers_fft"], fx=0.1)
    st = app.until(lambda s: s["layers"]["fft"] and s["generator_image"]["md5"] != plain_md5, "the FFT view")
    app.click(st["rects"]["layers_reset"])
    st = app.until(lambda s: s["generator_image"]["layer"] is None, "the output image after Reset")
    assert not st["layers"]["enabled"] and not st["layers"]["fft"] and st["layers"]["selected"] is None
    _close_panel(app, "layers", "layers_enable")


def test_style_mixing_checks_single_ws_indices_and_animates_the_mix_seed(app: RunningApp) -> None:
    st = _generator_ready(app)
    st = _open_panel(app, "stylemix", "mix_enable")
    app.click(st["rects"]["mix_enable"], fx=0.1)
    st = app.until(lambda s: "mix_ws:5" in s["rects"], "the ws checkboxes")
    app.click(st["rects"]["mix_ws:5"], fx=0.2)
    st = app.until(lambda s: s["stylemix"]["requested"] == [0, 1, 2, 3, 5], "ws 5 to be mixed")
    app.click(st["rects"]["mix_animate"], fx=0.1)
    st = app.until(lambda s: s["stylemix"]["seed"] > 1.05, "the mix seed to move")
    app.click(st["rects"]["stylemix_reset"])
    st = app.until(lambda s: not s["stylemix"]["enabled"], "Reset")
    assert st["stylemix"]["seed"] == 1.0 and st["stylemix"]["indices"] == [0, 1, 2, 3]
    _close_panel(app, "stylemix", "mix_enable")


def test_seed_animation_moves_the_lattice_and_reset_returns_to_seed_0(app: RunningApp) -> None:
    st = _generator_ready(app)
    x0 = st["lattice"][0]
    app.click(st["rects"]["seed_anim"], fx=0.1)
    st = app.until(lambda s: s["seed_anim"]["on"] and s["lattice"][0] > x0 + 0.05, "the lattice to move")
    app.click(st["rects"]["seeds_reset"])
    st = app.until(lambda s: not s["seed_anim"]["on"] and s["lattice"] == [0.0, 0.0], "Reset")
    st = app.until(lambda s: s["generator_image"]["seeds"] == [0], "seed 0's image")


def _type_into(app: RunningApp, rect: list[float], text: str) -> None:
    app.click(rect, fx=0.2)
    app.xdotool("key", "--clearmodifiers", "ctrl+a")
    app.xdotool("type", "--delay", "20", text)
    app.xdotool("key", "Return")


def type_checked(app: RunningApp, rect: str, text: str, read: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Type into a field until the app shows the text (a loaded machine can drop a keystroke)."""
    for _ in range(3):
        _type_into(app, app.fresh_state()["rects"][rect], text)
        try:
            return app.until(lambda s: str(read(s)) == text, f"{text!r} in {rect}", timeout=20)
        except AssertionError:
            continue
    raise AssertionError(f"could not type {text!r} into {rect}")


def test_the_video_panel_exports_a_walk_between_seeds(app: RunningApp) -> None:
    _generator_ready(app)
    _close_panel(app, "augment", "aug_p_slider")  # room for the Video panel at the bottom of the pane
    try:
        st = _open_panel(app, "video", "video_export")
        out = app.state_file.parent / "gui-walk.gif"
        type_checked(app, "video_out", str(out), lambda s: s["video"]["out"])
        type_checked(app, "video_seeds", "3,4", lambda s: s["video"]["seeds"])
        type_checked(app, "video_seconds", "0.6", lambda s: f"{s['video']['seconds']:g}")
        app.click(app.fresh_state()["rects"]["video_export"])
        st = app.until(lambda s: s["video"]["message"].startswith("wrote"), "the export to finish", timeout=120)
        assert st["video"]["message"] == f"wrote 18 frames to {out}" and not st["video"]["error"]
        with Image.open(out) as gif:
            assert gif.n_frames == 18 and gif.size == (32, 32)
        _close_panel(app, "video", "video_export")
    finally:
        _open_panel(app, "augment", "aug_p_slider")


def test_the_projection_panel_projects_a_target_and_shows_its_w(app: RunningApp) -> None:
    _generator_ready(app)
    folder = app.state_file.parent
    target, outdir = folder / "target.png", folder / "proj"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(target)
    _close_panel(app, "augment", "aug_p_slider")  # room for the Projection panel at the bottom of the pane
    try:
        st = _open_panel(app, "projection", "proj_run")
        for rect, text, key in (("proj_target", str(target), "target"), ("proj_outdir", str(outdir), "outdir"),
                                ("proj_steps", "5", "steps")):  # fmt: skip
            type_checked(app, rect, text, lambda s, k=key: s["projection"][k])
        app.click(app.fresh_state()["rects"]["proj_run"])
        st = app.until(lambda s: s["projection"]["done"] == 1, "the projection to finish", timeout=180)
        assert not st["projection"]["error"] and "projected_w.npz" in st["projection"]["message"]
        ws_file = str(outdir / "projected_w.npz")
        st = app.until(lambda s: s["generator_image"]["ws_file"] == ws_file, "the projected w on screen")
        assert st["projection"]["show"]
        app.click(st["rects"]["proj_show"], fx=0.1)  # back to the seed lattice
        app.until(lambda s: s["generator_image"]["ws_file"] is None, "the seed's image again")
        _close_panel(app, "projection", "proj_run")
    finally:
        _open_panel(app, "augment", "aug_p_slider")
