"""--offscreen renders real frames through EGL with no X server; no display gives one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.viz.conftest import REPO, app_env, read_state


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory, fixture_generator: torch.nn.Module) -> Path:
    from core.networks.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("snap")
    return save_checkpoint(folder / "network-snapshot-000012", G_ema=fixture_generator, kimg=12.0)


def _run(args: list[str], tmp_path: Path, display: str | None = None, timeout: float = 120):
    res = subprocess.run(
        [sys.executable, str(REPO / "launch_viz.py"), *args],
        env=app_env(tmp_path, display),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if "--offscreen" in args and res.returncode == 2 and "no EGL" in res.stderr:
        pytest.skip(f"no EGL here for offscreen rendering: {res.stderr.strip()}")
    return res


def test_a_small_model_opens_on_a_grid_of_seeds(tmp_path: Path, snapshot: Path) -> None:
    out, state_file = tmp_path / "frames", tmp_path / "state.json"
    res = _run([str(snapshot), "--offscreen", "3", "--out", str(out), "--seed", "42", "--debug-state",
                str(state_file), "--debug-every", "1"], tmp_path)
    assert res.returncode == 0, res.stderr
    state = read_state(state_file)
    assert state["model"]["resolution"] == 32
    assert state["generator_image"]["grid"] == [6, 4] and state["generator_image"]["seeds"][0] == 42
    assert len(set(state["generator_image"]["seeds"])) == 24


def test_offscreen_writes_frames_showing_the_generator_image(tmp_path: Path, snapshot: Path) -> None:
    out, state_file = tmp_path / "frames", tmp_path / "state.json"
    res = _run(
        [str(snapshot), "--offscreen", "3", "--out", str(out), "--size", "960x600", "--seed", "42",
         "--grid", "1x1", "--debug-state", str(state_file), "--debug-every", "1"],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    frames = sorted(out.glob("frame-*.png"))
    assert [f.name for f in frames] == ["frame-0000.png", "frame-0001.png", "frame-0002.png"]
    state = read_state(state_file)
    assert state["model"]["resolution"] == 32 and state["seed"] == 42
    assert state["generator_image"]["seeds"] == [42]
    frame = np.asarray(Image.open(frames[-1]).convert("RGB"))
    assert frame.shape == (600, 960, 3)
    x0, y0, x1, y1 = (int(round(v)) for v in state["rects"]["gen_image"])
    shown = frame[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].astype(np.float64)
    assert shown.std() > 20, "the image area is blank"
    # What is on screen is the rendered image, scaled up with nearest sampling.
    small = np.asarray(Image.fromarray(frame[y0:y1, x0:x1]).resize((32, 32), Image.NEAREST), dtype=np.float64)
    assert abs(small.mean() - state["generator_image"]["mean"]) < 8


def test_offscreen_of_a_target_that_cannot_load_exits_2_without_frames(tmp_path: Path) -> None:
    # A script rendering a model must not mistake frames of the error for the model (the window
    # still shows the error to a person: see the Snapshot panel under Xvfb).
    bogus = tmp_path / "not-a-snapshot.pkl"
    bogus.write_bytes(b"this is not a pickle")
    out, state_file = tmp_path / "frames", tmp_path / "state.json"
    res = _run(
        [str(bogus), "--offscreen", "2", "--out", str(out), "--debug-state", str(state_file),
         "--debug-every", "1"],
        tmp_path,
    )
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not-a-snapshot.pkl" in lines[0] and "not a readable" in lines[0], res.stderr
    assert not out.exists() and not state_file.exists()


def test_no_display_gives_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    res = _run([], tmp_path, display=None, timeout=60)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "no display" in lines[0] and "--offscreen" in lines[0]
    assert "Traceback" not in res.stderr


def test_offscreen_without_out_is_a_usage_error(tmp_path: Path) -> None:
    res = _run(["--offscreen", "2"], tmp_path, timeout=60)
    assert res.returncode == 2 and "--out" in res.stderr


def test_a_run_directory_shows_its_live_weights_and_its_monitor(tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "fixtures" / "recorded_run" / "00000-digits-demo", run)
    state_file = tmp_path / "state.json"
    res = _run(
        [str(run), "--offscreen", "3", "--out", str(tmp_path / "f"), "--debug-state", str(state_file),
         "--debug-every", "1"],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    state = read_state(state_file)
    assert state["model"]["path"] == str(run / "live" / "G_ema.safetensors")
    assert state["generator_image"] is not None and state["generator_image"]["std"] > 1
    mon = state["monitor"]
    assert mon["run_dir"] == str(run.resolve()) and mon["status"] == "finished"
    # The monitor took in the whole recording: every event, the GUI's requests, the last previews.
    events = [json.loads(ln) for ln in (run / "events.jsonl").read_text().splitlines() if ln.strip()]
    assert mon["events"] == len(events) and mon["kimg"] == max(e["kimg"] for e in events) > 0
    assert mon["controls"] == [e["seq"] for e in events if e["kind"] == "control"] != []
    last = {e["image"]: e["file"] for e in events if e["kind"] == "preview"}
    assert Path(mon["fakes"]).resolve() == (run / last["fakes"]).resolve()
    assert Path(mon["reals_augmented"]).resolve() == (run / last["reals-augmented"]).resolve()


def test_make_viz_without_a_display_renders_each_view_offscreen(tmp_path: Path) -> None:
    """`make viz` on a machine with no screen: the demo's three views as PNGs, exit 0."""
    out = tmp_path / "views"
    env = {**app_env(tmp_path, None), "VIZ_OFFSCREEN_DIR": str(out)}
    res = subprocess.run(["bash", str(REPO / "scripts" / "viz.sh"), sys.executable], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    if res.returncode == 2 and "no EGL" in res.stderr:
        pytest.skip(f"no EGL here for offscreen rendering: {res.stderr.strip()}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "no display" in res.stdout
    for view in ("generator", "augment", "training"):
        assert f"{out}/{view}.png" in res.stdout
        frame = np.asarray(Image.open(out / f"{view}.png").convert("L"), dtype=np.float64)
        assert frame.shape == (800, 1280)
        right = frame[60:740, 420:1260]  # the image area, right of the control panels
        if view == "training":
            assert right.std() < 5  # no run attached yet: the hint line only
        else:
            assert right.std() > 20, f"{view}: the image area is blank"
    assert sorted(p.name for p in out.iterdir()) == ["augment.png", "generator.png", "training.png"]


def _offscreen_state(snapshot: Path, tmp_path: Path, name: str, extra: list[str]) -> tuple[dict, np.ndarray]:
    out, state_file = tmp_path / name, tmp_path / f"{name}.json"
    args = [str(snapshot), "--offscreen", "2", "--out", str(out), "--seed", "7", "--no-attach-last", "--grid", "1x1"]
    res = _run([*args, "--debug-state", str(state_file), "--debug-every", "1", *extra], tmp_path)
    assert res.returncode == 0, res.stderr
    frame = np.asarray(Image.open(out / "frame-0001.png").convert("RGB"), dtype=np.float64)
    return read_state(state_file), frame


def test_offscreen_layer_view_shows_the_chosen_layer_not_the_output(tmp_path: Path, snapshot: Path) -> None:
    plain, plain_frame = _offscreen_state(snapshot, tmp_path, "plain", ["--panels", "seeds,layers"])
    layer, layer_frame = _offscreen_state(
        snapshot, tmp_path, "layer", ["--panels", "seeds,layers", "--layer", "b16.conv1"]
    )
    assert plain["layers"]["shown"] is None and "b16.conv1" in plain["layers"]["names"]
    lv = layer["layers"]
    assert lv["selected"] == lv["shown"] == "b16.conv1" and lv["error"] is None
    assert lv["stats"]["all"]["std"] > 0 and lv["shown_channels"] == [0, 1, 2]
    img = layer["generator_image"]
    assert img["layer"] == "b16.conv1" and img["shape"] == [16, 16, 3]
    assert img["md5"] != plain["generator_image"]["md5"]
    x0, y0, x1, y1 = (int(round(v)) for v in layer["rects"]["gen_image"])
    assert np.abs(layer_frame[y0:y1, x0:x1] - plain_frame[y0:y1, x0:x1]).mean() > 5
    for control in ("layers_enable", "layers_reset", "layers_gain", "layers_fft", "layer:b16.conv1"):
        assert control in layer["rects"], control


def test_offscreen_unknown_layer_is_a_one_line_error_and_the_output_stays(tmp_path: Path, snapshot: Path) -> None:
    state, _ = _offscreen_state(snapshot, tmp_path, "bad", ["--panels", "layers", "--layer", "b99.nothing"])
    err = state["layers"]["error"]
    assert err is not None and "b99.nothing" in err and "\n" not in err
    assert state["generator_image"]["shape"] == [32, 32, 3] and state["layers"]["shown"] is None
