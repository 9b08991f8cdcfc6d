"""Starting, steering and re-attaching to a real background trainer (tiny run on builtin:digits)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.viz.conftest import REPO, app_env, read_state
from viz.run_client import RunClient, StartOptions, trainer_command

TIMEOUT = 180.0


def _until(fn, what: str, timeout: float = TIMEOUT):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunClient]:
    outdir = tmp_path_factory.mktemp("runs")
    c = RunClient()
    # 1000 kimg: the run cannot finish on its own within the tests, so only Stop can end it.
    c.start(StartOptions(outdir=str(outdir), kimg=1000, extra_args="--batch 8 --tick 0.016 --metrics none"))
    try:
        _until(lambda: c.check_launch() is not None or c.reader is not None or c.error, "the run directory")
        assert c.error is None, c.error
        yield c
    finally:
        if c.trainer_running():
            c.stop()
            try:
                c.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(c.proc.pid, signal.SIGKILL)  # our own trainer's session only


def test_the_trainer_runs_in_its_own_session(client: RunClient) -> None:
    assert client.trainer_running()
    assert os.getsid(client.proc.pid) == client.proc.pid != os.getsid(0)


def test_pause_and_resume_reach_the_trainer(client: RunClient) -> None:
    seq = client.pause()
    _until(lambda: client.reader.control_applied(seq) and client.status().state == "paused", "paused")
    seq = client.resume()
    _until(lambda: client.reader.control_applied(seq) and client.status().state == "running", "running again")


def test_augmentation_settings_are_applied_with_their_seq(client: RunClient) -> None:
    seen: list[dict] = []
    seq = client.send_augment({"rotate90": 0.0, "xflip": 0.5}, "ada", 0.7, 0.5)

    def applied() -> float | None:
        seen.extend(client.poll())
        return client.applied_at(seq, seen)

    _until(lambda: applied() is not None, f"control event {seq}")
    ev = next(e for e in seen if e.get("kind") == "control" and e.get("seq", -1) >= seq)
    assert ev["applied"]["aug_multipliers"] == {"rotate90": 0.0, "xflip": 0.5}
    assert ev["applied"]["target"] == 0.7


def test_closing_the_gui_leaves_the_run_going_and_reopening_attaches(
    client: RunClient, tmp_path: Path
) -> None:
    env = app_env(tmp_path, None)
    run_dir = str(client.run_dir)
    first = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch_viz.py"),
            "--run",
            run_dir,
            "--offscreen",
            "1",
            "--out",
            str(tmp_path / "a"),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert "training continues in the background" in first.stderr and run_dir in first.stderr
    assert client.trainer_running()
    state_file = tmp_path / "state.json"
    second = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch_viz.py"),
            "--offscreen",
            "2",
            "--out",
            str(tmp_path / "b"),
            "--debug-state",
            str(state_file),
            "--debug-every",
            "1",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr
    state = read_state(state_file)
    assert state["monitor"]["run_dir"] == str(Path(run_dir).resolve())
    assert state["monitor"]["events"] > 0


def test_stop_ends_the_run(client: RunClient) -> None:
    assert client.trainer_running() and client.status().state != "finished"
    client.stop()
    try:
        client.proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the trainer did not exit within {TIMEOUT:.0f} s of Stop")
    assert client.proc.returncode == 0
    final = _until(lambda: client.status().state in ("stopped", "finished") and client.status(), "the final status")
    assert final.state == "stopped", final  # a 1000 kimg run that "finished" was not stopped


def _fake_trainer(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    import viz.run_client as rc

    monkeypatch.setattr(rc, "trainer_command", lambda opts, python=sys.executable: [python, "-c", code])


def test_a_trainer_that_exits_before_its_run_directory_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_trainer(monkeypatch, "import sys; print('first'); print('bad option --x'); sys.exit(7)")
    c = RunClient()
    c.start(StartOptions(outdir=str(tmp_path)))
    _until(lambda: c.check_launch() is None and not c.starting, "the launch to end", timeout=60)
    assert c.reader is None and c.error is not None
    assert "exited (7) before making its run directory" in c.error and "bad option --x" in c.error, c.error


def test_a_trainer_that_makes_no_run_directory_in_time_is_stopped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import viz.run_client as rc

    _fake_trainer(monkeypatch, "import time; time.sleep(60)")
    monkeypatch.setattr(rc, "START_TIMEOUT_S", 5.0)
    c = RunClient()
    c.start(StartOptions(outdir=str(tmp_path)))
    try:
        assert c.starting and c.check_launch() is None and c.error is None  # still inside the limit
        _until(lambda: c.check_launch() is None and not c.starting, "the start timeout", timeout=30)
        assert c.reader is None and c.error is not None
        assert "made no run directory within 5 s and was stopped" in c.error and "launch-" in c.error
        assert not c.trainer_running()  # stopped, not left running unseen
    finally:
        if c.proc.poll() is None:
            os.killpg(c.proc.pid, signal.SIGKILL)  # our own fake trainer's session only
        c.proc.wait(timeout=30)


def test_attach_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a run directory"):
        RunClient().attach(tmp_path)
    with pytest.raises(ValueError, match="no run attached"):
        RunClient().pause()


def test_trainer_command_carries_the_form() -> None:
    cmd = trainer_command(
        StartOptions(outdir="o", data="d", cfg="cpu32", aug="fixed", p=0.25, kimg=3, extra_args="--batch 8")
    )
    assert cmd[1].endswith("train_headless.py")
    assert cmd[2:] == ["--outdir", "o", "--data", "d", "--cfg", "cpu32", "--kimg", "3", "--aug", "fixed", "--p", "0.25",
                       "--augpipe", "bgc", "--batch", "8"]
    assert "--target" in trainer_command(StartOptions(aug="ada"))
    assert "--augpipe" not in trainer_command(StartOptions(aug="noaug"))


@pytest.mark.parametrize("aug", ["ada", "apa", "fixed", "noaug", "diffaug"])
@pytest.mark.parametrize("with_dataaug", [False, True])
def test_every_form_choice_is_a_command_the_trainer_accepts(aug: str, with_dataaug: bool) -> None:
    # The form sent --augpipe with APA alone, and fixed without --p: the trainer refused both (exit 2).
    from core.training.cli import parse_options
    from core.training.config import check_options

    form = StartOptions(aug=aug, with_dataaug=with_dataaug, augpipe="color", target=0.7, p=0.3)
    opts, _, _ = parse_options(trainer_command(form)[2:])
    check_options(opts)
    assert opts.aug == aug and opts.with_dataaug == (aug == "apa" and with_dataaug)
    assert opts.augpipe == ("color" if form.uses_pipe else None)
    assert opts.p == (0.3 if aug == "fixed" else None)
    assert opts.target == (0.7 if aug in ("ada", "apa") else None)
    assert opts.diffaug_policy == ("color,translation,cutout" if aug == "diffaug" else None)


def test_the_form_says_how_fast_p_moves_for_the_chosen_preset() -> None:
    from viz.widgets.training_control import ada_speed_help

    assert "1 per 100 kimg with cpu32" in ada_speed_help("cpu32")
    assert "1 per 500 kimg with paper256" in ada_speed_help("paper256")


def test_the_form_offers_every_mechanism_and_passes_the_diffaug_policy() -> None:
    from core.augment import Mechanism
    from viz.widgets.training_control import TRAIN_AUG_MODES

    assert set(TRAIN_AUG_MODES) == {m.value for m in Mechanism} and "diffaug" in TRAIN_AUG_MODES
    cmd = trainer_command(StartOptions(aug="diffaug", diffaug_policy="translation,cutout", target=0.7))
    assert cmd[cmd.index("--diffaug-policy") + 1] == "translation,cutout" and "--target" not in cmd


def test_start_from_another_folder_attaches_the_run_it_launched(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The GUI started from a user's folder: a relative outdir means that folder, and the trainer tells
    # the GUI its run directory (it used to train unseen under the repository).
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    c = RunClient()
    c.start(StartOptions(outdir="runs", kimg=0.016, extra_args="--batch 8 --tick 0.016 --metrics none --workers 0"))
    try:
        _until(lambda: c.check_launch() is not None or c.error, "the run directory")
        assert c.error is None, c.error
        assert c.run_dir is not None and c.run_dir.parent == home / "runs"
        _until(lambda: c.status() is not None and c.status().state == "finished", "the run to finish")
    finally:
        if c.proc is not None and c.proc.poll() is None:
            c.proc.kill()
