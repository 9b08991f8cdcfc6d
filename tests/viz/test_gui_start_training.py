"""The GUI started from a user's home folder (not the repository) starts a training with its New run
form and attaches to the run it launched: the run lands in the home folder's runs/, the monitor
follows it, and nothing is left running unseen."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.viz.conftest import app_env, close_app, read_state
from tests.viz.test_gui_xvfb import RunningApp


def test_start_training_from_a_home_folder_attaches_the_run_it_launched(xvfb: str, tmp_path: Path) -> None:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (scripts/test.sh installs it with apt-get when run as root)")
    home = tmp_path / "home"
    home.mkdir()
    env = app_env(tmp_path, xvfb)
    env["OMP_NUM_THREADS"] = "1"
    state_file, shot_file = tmp_path / "state.json", tmp_path / "shot.png"
    args = ["--size", "1280x800", "--fps-cap", "30", "--panels", "control", "--no-attach-last", "--debug-state",
            str(state_file), "--debug-every", "3", "--debug-screenshot", str(shot_file)]
    app = RunningApp.start(args, env, xvfb, state_file, shot_file, cwd=home)
    proc = app.proc
    trainer_pid = None
    try:
        st = app.until(lambda s: s["frame"] >= 6 and "train_start" in s["rects"], "the New run form")
        app.click(st["rects"]["train_start"])
        st = app.until(lambda s: (s["monitor"]["run_dir"] or "").startswith(str(home / "runs")) and
                       s["monitor"]["status"] == "running", "the launched run, attached", timeout=180)
        run_dir = Path(st["monitor"]["run_dir"])
        assert run_dir.parent == home / "runs" and (run_dir / "run.json").is_file()
        assert st["control"]["message"] == f"training in {run_dir}"
        events = [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text().splitlines() if ln.strip()]
        status = next(e for e in events if e["kind"] == "status")
        trainer_pid = status["pid"]
        assert not (Path(__file__).resolve().parents[2] / "runs" / run_dir.name).exists()
    finally:
        close_app(proc)
        if trainer_pid is not None:  # closing the GUI leaves a training running, by design: end ours
            try:
                os.killpg(trainer_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert read_state(state_file) is not None

