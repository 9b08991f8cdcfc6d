"""train_headless.py: one-line errors with exit 2, dry run, replay, a real run, --gpus, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.rundir import RunReader
from core.training.cli import main, parse_options
from core.training.config import CPU_METRICS, TrainingOptions, check_options
from tests.core.training.test_loop import MINIBATCH_KIMG, REPO, make_dataset

TINY_CLI = ["--cfg", "cpu32", "--cbase", "256", "--cmax", "32", "--batch", "4", "--workers", "0",
            "--device", "cpu", "--metrics", "none"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "blobs")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


BAD = [
    ([], "--outdir is required"),
    (["--outdir", "{out}"], "--data is required"),
    (["--outdir", "{out}", "--data", "{out}/nothing-here"], "--data"),
    (["--p", "0.3"], "--p only applies to --aug fixed"),
    (["--aug", "fixed"], "--aug fixed needs --p"),
    (["--aug", "fixed", "--p", "2"], "--p must be in [0, --p-max"),
    (["--p-max", "5"], "--p-max must be at most 1"),
    (["--batch", "6", "--batch-gpu", "4"], "not divisible by --gpus x --batch-gpu"),
    (["--cond", "1"], "drop --cond for unlabeled data"),
    (["--with-dataaug"], "--with-dataaug only applies to --aug apa"),
    (["--aug", "noaug", "--augpipe", "bgc"], "--augpipe has no effect with --aug noaug"),
    (["--aug", "apa", "--augpipe", "bgc"], "unless --with-dataaug is on"),
    (["--aug", "noaug", "--target", "0.7"], "--target only applies to --aug ada or apa"),
    (["--target", "1.5"], "--target must be in [0, 1]"),
    (["--ada-interval", "0"], "--ada-interval must be a positive number"),
    (["--freezed", "-1"], "--freezed must be >= 0"),
    (["--aug", "noaug", "--ada-interval", "8"], "--ada-interval only applies to --aug ada or apa"),
    (["--kimg", "-1"], "--kimg must be a positive number"),
    (["--tick", "0"], "--tick must be a positive number"),
    (["--gamma", "-0.1"], "--gamma must be >= 0"),
    (["--cfg", "huge"], "--cfg 'huge' is unknown"),
    (["--resume", "{out}/missing.pkl"], "--resume"),
    (["--metrics", "fid50k_full"], "--metrics: fid50k_full needs the Inception-v3 weights"),
    (["--metrics", "fid1k"], "--metrics: unknown metric"),
    (["--mbstd-group", "3"], "is not a multiple of --mbstd-group 3"),
    (["--replay", "{out}/nope/run.json"], "/nope/run.json: no such file"),
    (["--aug", "bogus"], "argument --aug: invalid choice"),
    (["--compile", "yes"], "argument --compile: invalid choice"),
    (["--kimg", "ten"], "argument --kimg: invalid"),
    (["--mirror", "maybe"], "argument --mirror"),
    (["--aug-mult", "xflip=0,spin=1"], "--aug-mult: unknown op(s) spin"),
    (["--aug-mult", "xflip"], "argument --aug-mult: expected NAME=VALUE"),
    (["--aug-mult", "xflip=-1"], "--aug-mult: xflip=-1.0 must be a number >= 0"),
    (["--aug-mult", "xflip=nan"], "--aug-mult: xflip=nan must be a number >= 0"),
    (["--aug", "noaug", "--aug-mult", "xflip=0"], "--aug-mult has no effect with --aug noaug"),
    (["--diffaug-policy", "color"], "--diffaug-policy only applies to --aug diffaug"),
    (["--aug", "diffaug", "--diffaug-policy", "color,zoom"], "unknown op(s) 'zoom'"),
    (["--aug", "diffaug", "--diffaug-policy", " "], "--diffaug-policy ' ': empty"),
    (["--aug", "diffaug", "--p", "0.2"], "--p only applies to --aug fixed (got --aug diffaug)"),
    (["--aug", "diffaug", "--target", "0.6"], "--target only applies to --aug ada or apa (got --aug diffaug)"),
    (["--aug", "diffaug", "--ada-kimg", "100"], "--ada-kimg only applies to --aug ada or apa"),
    (["--aug", "diffaug", "--augpipe", "bgc"], "--augpipe has no effect with --aug diffaug"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_options_exit_2_with_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    extra: list[str], message: str,
) -> None:
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    base = [] if message.startswith("--outdir is") or message == "--data is required" else \
        ["--outdir", str(tmp_path / "out"), "--data", str(tiny_data), *TINY_CLI]
    argv = [a.replace("{out}", str(tmp_path)) for a in base + extra]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0] and "error" in err[0], err
    assert not (tmp_path / "out").exists()  # nothing was created


def test_device_cuda_without_cuda_is_an_option_error(tiny_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["--outdir", str(tmp_path), "--data", str(tiny_data), *TINY_CLI, "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--device cuda" in err[0]


def test_dry_run_prints_the_resolved_spec(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    assert main(["--outdir", str(tmp_path / "out"), "--data", str(tiny_data), "--cfg", "cpu32", "-n"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["batch"] == 16 and spec["G_kwargs"]["img_resolution"] == 16
    assert spec["augment"] == {"mode": "ada", "pipe": "bgc", "multipliers": {}, "p": 0.0, "target": 0.6,
                               "interval": 4, "kimg": 100.0, "p_max": 1.0, "diffaug_policy": None}
    assert spec["metrics"] == list(CPU_METRICS)  # the offline set, at quick sizes, by default on CPU
    assert spec["loss"]["r1_gamma"] == pytest.approx(0.0002 * 32**2 / 16)  # cpu32's own gamma
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("cfg", "extra", "ada_kimg"), [
    ("cpu32", [], 100.0),  # the preset of short CPU runs: p can cross its range within one
    ("cpu32", ["--ada-kimg", "250"], 250.0),  # an explicit value wins
    ("paper256", [], 500.0),  # the public presets keep the public 500
    ("auto", [], 500.0),
    ("paper256", ["--ada-kimg", "40"], 40.0),
])
def test_ada_kimg_defaults_to_the_presets_and_is_recorded_resolved(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], cfg: str, extra: list[str], ada_kimg: float,
) -> None:
    argv = ["--outdir", str(tmp_path / "out"), "--data", str(tiny_data), "--cfg", cfg, "--device", "cpu", *extra]
    assert main([*argv, "-n"]) == 0
    assert json.loads(capsys.readouterr().out)["augment"]["kimg"] == ada_kimg
    opts = parse_options(argv)[0]
    assert opts.ada_kimg == (float(extra[1]) if extra else None)  # options keep what was asked, spec the value


def test_options_round_trip_and_replay(tmp_path: Path) -> None:
    opts, _, _ = parse_options(["--outdir", "o", "--data", "d", "--aug", "apa", "--with-dataaug", "--kimg", "2.5",
                                "--mirror=1", "--metrics", "fd_offline,kid_offline", "--p-max", "0.8"])
    assert opts.with_dataaug and opts.mirror and opts.kimg == 2.5 and opts.metrics == ["fd_offline", "kid_offline"]
    assert TrainingOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"options": {**opts.to_dict(), "resolved": {}, "world_size": 1}}))
    replayed, _, _ = parse_options(["--replay", str(run / "run.json"), "--kimg", "5"])
    assert replayed == TrainingOptions.from_dict({**opts.to_dict(), "kimg": 5})
    # Another --aug drops the replayed run's settings of its own mechanism (here --with-dataaug,
    # which --aug fixed would refuse), and keeps the rest.
    switched, _, given = parse_options(["--replay", str(run / "run.json"), "--aug", "fixed", "--p", "0.2"])
    assert (switched.aug, switched.p, switched.with_dataaug, switched.kimg) == ("fixed", 0.2, False, 2.5)
    check_options(switched)
    assert set(given) == {"aug", "p"}


def test_aug_mult_round_trips_and_goes_with_its_preset(tmp_path: Path) -> None:
    opts, _, _ = parse_options(["--outdir", "o", "--data", "d", "--augpipe", "bg", "--aug-mult",
                                "xflip=0, rotate90=0,rotate=0.5"])
    assert opts.aug_mult == {"xflip": 0.0, "rotate90": 0.0, "rotate": 0.5}
    assert TrainingOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"options": opts.to_dict()}))
    kept, _, _ = parse_options(["--replay", str(run), "--kimg", "5"])
    assert kept.augpipe == "bg" and kept.aug_mult == opts.aug_mult
    # Another preset: the old one's per-op changes do not carry over, unless given again.
    other, _, _ = parse_options(["--replay", str(run), "--augpipe", "color"])
    assert other.augpipe == "color" and other.aug_mult is None
    again, _, _ = parse_options(["--replay", str(run), "--augpipe", "color", "--aug-mult", "hue=0"])
    assert again.aug_mult == {"hue": 0.0}


def test_a_real_run_writes_the_run_directory(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "train_headless.py"), "--outdir", str(out), "--data",
                           str(tiny_data), *TINY_CLI, "--kimg", str(3 * MINIBATCH_KIMG), "--tick",
                           str(MINIBATCH_KIMG), "--aug", "apa", "--desc", "smoke"],
                          env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = out.iterdir()
    assert run_dir.name == "00000-blobs-cpu32-batch4-apa-kimg0.012-smoke"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["options"]["aug"] == "apa" and info["options"]["resolved"]["augment"]["pipe"] is None
    assert info["options"]["ada_kimg"] is None and info["options"]["resolved"]["augment"]["kimg"] == 100.0  # cpu32
    assert "tick 2" in proc.stderr and "finished at kimg 0.012" in proc.stderr
    log_txt = (run_dir / "log.txt").read_text()
    assert "finished at kimg 0.012" in log_txt and "run directory" in log_txt
    evs = RunReader(run_dir).poll_events()
    assert [e["state"] for e in evs if e["kind"] == "status"] == ["started", "finished"]
    assert {"stats", "tick", "snapshot", "preview", "status"} <= {e["kind"] for e in evs}


def test_resume_continues_the_run_with_the_options_given_on_its_command_line(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    common = [*TINY_CLI, "--tick", str(MINIBATCH_KIMG)]
    cmd = [sys.executable, str(REPO / "train_headless.py"), "--outdir", str(out)]
    first = subprocess.run([*cmd, "--data", str(tiny_data), *common, "--kimg", str(2 * MINIBATCH_KIMG),
                            "--ada-kimg", "20"], env=_env(), capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]
    (run_dir,) = out.iterdir()
    second = subprocess.run([*cmd, "--resume", str(run_dir), "--kimg", str(3 * MINIBATCH_KIMG), "--ada-kimg", "100"],
                            env=_env(), capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "--ada-kimg: ada kimg 100.0 replaces the run's 20.0" in second.stderr
    assert "resumed exactly" in second.stderr and "finished at kimg 0.012" in second.stderr


def test_a_diffaug_run_resumes_with_its_policy(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    common = [*TINY_CLI, "--tick", str(MINIBATCH_KIMG)]
    cmd = [sys.executable, str(REPO / "train_headless.py"), "--outdir", str(out)]
    first = subprocess.run([*cmd, "--data", str(tiny_data), *common, "--kimg", str(2 * MINIBATCH_KIMG),
                            "--aug", "diffaug", "--diffaug-policy", "cutout,color"],
                           env=_env(), capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]
    (run_dir,) = out.iterdir()
    second = subprocess.run([*cmd, "--resume", str(run_dir), "--kimg", str(3 * MINIBATCH_KIMG)],
                            env=_env(), capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed exactly" in second.stderr and "finished at kimg 0.012" in second.stderr
    options = json.loads((run_dir / "run.json").read_text())["options"]
    assert options["aug"] == "diffaug" and options["diffaug_policy"] == "cutout,color"
    assert options["resolved"]["augment"]["diffaug_policy"] == "cutout,color"
    assert options["resolved"]["augment"]["pipe"] is None
    # Another --aug drops the policy with the mechanism it belonged to.
    assert parse_options(["--replay", str(run_dir), "--aug", "ada"])[0].diffaug_policy is None


def _start_and_wait_for_a_tick(data: Path, out: Path) -> tuple[subprocess.Popen[str], Path]:
    env = {**_env(), "PYTHONFAULTHANDLER": "1"}  # SIGABRT on a hang dumps every thread's stack
    proc = subprocess.Popen([sys.executable, str(REPO / "train_headless.py"), "--outdir", str(out), "--data",
                             str(data), *TINY_CLI, "--kimg", "1000", "--tick", str(MINIBATCH_KIMG)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("*/events.jsonl")):
        time.sleep(0.1)
    files = list(out.glob("*/events.jsonl"))
    while files and time.monotonic() < deadline and '"kind":"tick"' not in files[0].read_text():
        time.sleep(0.1)
    if not files or '"kind":"tick"' not in files[0].read_text():
        proc.kill()
        pytest.fail(f"the trainer wrote no tick within 120 s: {proc.communicate(timeout=30)[1][-3000:]}")
    return proc, files[0].parent


def _wait(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        stacks = proc.communicate(timeout=30)[1]
        pytest.fail(f"the trainer did not exit within {timeout} s; its threads:\n{stacks[-6000:]}")


def test_ctrl_c_stops_at_the_minibatch_with_a_snapshot_and_exits_130(tiny_data: Path, tmp_path: Path) -> None:
    proc, run_dir = _start_and_wait_for_a_tick(tiny_data, tmp_path / "out")
    proc.send_signal(signal.SIGINT)
    err = _wait(proc)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: stopped at kimg" in err and "Traceback" not in err
    reader = RunReader(run_dir)
    states = [e for e in reader.poll_events() if e["kind"] == "status"]
    assert states[-1]["state"] == "stopped" and states[-1]["message"] == "interrupted"
    # The stop wrote a checkpoint at the kimg it stopped at: a resume loses nothing.
    snapshot = reader.latest_snapshot()
    assert snapshot is not None
    assert json.loads(snapshot.read_text())["meta"]["kimg"] == pytest.approx(states[-1]["kimg"])


def test_sigterm_ends_the_run_with_status_stopped_and_exit_130(tiny_data: Path, tmp_path: Path) -> None:
    proc, run_dir = _start_and_wait_for_a_tick(tiny_data, tmp_path / "out")
    proc.send_signal(signal.SIGTERM)  # what a scheduler or torchrun sends
    err = _wait(proc)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    states = [e for e in RunReader(run_dir).poll_events() if e["kind"] == "status"]
    assert [e["state"] for e in states] == ["started", "stopped"], states
    assert states[-1]["message"] == "interrupted"
    assert RunReader(run_dir).status().state == "stopped"


def test_the_first_ctrl_c_asks_for_a_stop_a_copy_of_it_is_ignored_and_a_second_aborts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    from core.training import cli
    from core.training.cli import _ctrl_c_stops

    class Flags:
        requests = 0

        def request_interrupt(self) -> None:
            self.requests += 1

    # A fake clock: on a loaded machine real sleeps can stretch past the repeat window, and the
    # copy would then count as a second press (and the test would pass without checking the copy).
    clock = [1000.0]
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))

    def settle() -> None:  # the handler runs in this thread at the next bytecode; give it a few
        for _ in range(50):
            time.sleep(0.01)

    trainer, before = Flags(), signal.getsignal(signal.SIGINT)
    stage = "first"
    with pytest.raises(KeyboardInterrupt), _ctrl_c_stops(trainer, repeat_after_s=0.5):
        os.kill(os.getpid(), signal.SIGINT)
        settle()
        assert trainer.requests == 1
        stage = "copy"
        clock[0] += 0.49
        os.kill(os.getpid(), signal.SIGINT)  # the same Ctrl-C forwarded by torchrun's agent
        settle()
        assert trainer.requests == 1
        stage = "second"
        clock[0] += 0.02
        os.kill(os.getpid(), signal.SIGINT)  # pressed again, 0.51 s after the first
        settle()
        pytest.fail("the second Ctrl-C did not abort")
    assert stage == "second", f"KeyboardInterrupt at the {stage} Ctrl-C"
    assert trainer.requests == 1
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_sigterm_unwinds_the_body_waits_while_an_exception_is_handled_and_is_ignored_once_ending() -> None:
    from core.training.distributed import SIGTERM_RETRY_S, Terminated, sigterm_as_exception

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_exception():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
        pytest.fail("SIGTERM did not raise in the body")
    # While an exception is handled (a failed collective being logged) it is held back, then delivered.
    with pytest.raises(Terminated), sigterm_as_exception():
        try:
            raise RuntimeError("a collective failed")
        except RuntimeError:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(4 * SIGTERM_RETRY_S)  # several deliveries, all held back
        time.sleep(1)  # handled, training goes on: the held-back SIGTERM arrives
        pytest.fail("the held-back SIGTERM never came")
    with sigterm_as_exception() as guard:
        guard.ending()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    assert signal.getsignal(signal.SIGTERM) is before  # restored


FAILS_WHILE_TORCHRUN_STOPS_IT = """
import os, signal, sys, time
from core.training import cli
from core.training.loop import Trainer

def run(self):
    self.writer.status("started", 0.0)
    raise RuntimeError("Connection closed by peer")  # what gloo raises when another rank died

log_exception = cli.log.exception

def logged_while_sigterm_arrives(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # torchrun stopping the survivors
    time.sleep(0.3)
    log_exception(*args, **kwargs)

Trainer.run = run
cli.log.exception = logged_while_sigterm_arrives
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_sigterm_while_a_failure_is_recorded_leaves_the_failed_status(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", FAILS_WHILE_TORCHRUN_STOPS_IT, "--outdir", str(out),
                           "--data", str(tiny_data), *TINY_CLI, "--kimg", "1"],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]  # failed, not killed by the signal (-15)
    assert "training failed: RuntimeError: Connection closed by peer" in proc.stderr
    assert "Traceback" not in proc.stderr  # the console gets one line; log.txt the traceback
    assert "Traceback" in (next((tmp_path / "out").iterdir()) / "log.txt").read_text()
    (run_dir,) = out.iterdir()
    status = [e for e in RunReader(run_dir).poll_events() if e["kind"] == "status"][-1]
    assert (status["state"], status["message"]) == ("failed", "RuntimeError: Connection closed by peer")


def test_gpus_2_without_torchrun_relaunches_itself(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "train_headless.py"), "--outdir", str(out), "--data",
                           str(tiny_data), *TINY_CLI, "--gpus", "2", "--kimg", str(2 * MINIBATCH_KIMG)],
                          env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["options"]["world_size"] == 2
    assert [e["state"] for e in RunReader(run_dir).poll_events() if e["kind"] == "status"] == ["started", "finished"]


@pytest.mark.parametrize(("args", "expected"), [
    ([], list(CPU_METRICS)),
    (["--aug", "noaug"], [m for m in CPU_METRICS if m != "leaks_offline"]),  # no pipe, no ops to leak
    (["--aug", "apa"], [m for m in CPU_METRICS if m != "leaks_offline"]),
    (["--aug", "apa", "--with-dataaug"], list(CPU_METRICS)),
    (["--metrics", "none"], []),
    (["--metrics", "kid_offline,leaks_offline"], ["kid_offline", "leaks_offline"]),
])
def test_cpu_default_metrics(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch, args: list[str], expected: list[str]) -> None:
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    assert main(["--outdir", str(tmp_path), "--data", str(tiny_data), "--cfg", "cpu32", "-n", *args]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == expected


def test_named_inception_file_adds_fid_and_kid_on_cpu(tiny_data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from core.metrics.extractors import DETECTORS
    from core.training.config import CPU_INCEPTION_METRICS, INCEPTION_ENV

    assert INCEPTION_ENV == DETECTORS["inception"].env
    weights = tmp_path / "inception-2015-12-05.pt"
    weights.write_bytes(b"stand-in: only its existence is checked before the first snapshot")
    monkeypatch.setenv(INCEPTION_ENV, str(weights))
    argv = ["--outdir", str(tmp_path), "--data", str(tiny_data), "--cfg", "cpu32", "-n"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == [*CPU_METRICS, *CPU_INCEPTION_METRICS]
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path / "missing.pt"))  # a wrong path drops only those two
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == list(CPU_METRICS)


def test_missing_inception_names_only_what_the_trainer_accepts(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    code = main(["--outdir", str(tmp_path / "out"), "--data", str(tiny_data), *TINY_CLI, "--metrics", "fid50k_full"])
    err = capsys.readouterr().err
    assert code == 2
    assert "set ADA_INCEPTION_WEIGHTS=PATH" in err and "--inception" not in err


# --------------------------------------------------------------------------------------------------
# options_to_argv: the inverse of the parser (the GUI builds its trainer command with it)


@pytest.mark.parametrize("fields", [
    {},
    {"outdir": "runs", "data": "d.zip", "cfg": "cpu32", "aug": "fixed", "p": 0.25, "kimg": 3, "batch": 8},
    {"outdir": "o", "data": "d", "aug": "apa", "with_dataaug": True, "augpipe": "color", "target": 0.7,
     "aug_mult": {"xflip": 0.0, "rotate90": 0.5}, "ada_kimg": 100.0, "ada_interval": 8, "p_max": 0.5},
    {"outdir": "o", "data": "d", "aug": "noaug", "mirror": True, "cond": True, "subset": 100, "metrics": [],
     "tick": 0.016, "glr": 0.0025123456789, "desc": "x y", "device": "cpu", "workers": 0, "live_interval": 0.5},
    {"outdir": "o", "data": "d", "aug": "diffaug", "diffaug_policy": "translation,cutout"},
    {"outdir": "o", "data": "d", "compile": "on"},
])
def test_options_to_argv_is_the_inverse_of_the_parser(fields: dict) -> None:
    from core.training.cli import options_to_argv, parse_options

    opts = TrainingOptions.from_dict({**TrainingOptions().to_dict(), **fields})
    argv = options_to_argv(opts)
    assert parse_options(argv)[0] == opts
    assert len(argv) == 2 * len(fields)  # defaults are left to the trainer: nothing else is written


def test_every_option_has_a_flag() -> None:
    from core.training.cli import build_parser

    dests = {a.dest for a in build_parser()._actions}
    assert set(TrainingOptions().to_dict()) <= dests
