"""torchrun on gloo: 2 CPU processes, and 2 single-process "nodes" joined by torchrun's c10d rendezvous,
train exactly like one process with the same global batch; Ctrl-C and a dying rank end the job cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.networks.checkpoint import load_checkpoint
from core.networks.sources import load_any
from core.rundir import RunReader
from tests.core.training.test_loop import MINIBATCH_KIMG, REPO, make_dataset

ARGS = ["--cfg", "cpu32", "--cbase", "256", "--cmax", "32", "--batch", "8", "--batch-gpu", "4",
        "--kimg", str(9 * 2 * MINIBATCH_KIMG), "--tick", str(4 * 2 * MINIBATCH_KIMG), "--snap", "0",
        "--workers", "0", "--device", "cpu", "--metrics", "none", "--aug", "fixed", "--p", "0.3",
        "--seed", "5"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
# Two ranks sum their gradients in another order than one process does, so weights agree to float
# rounding, which Adam amplifies for gradients near zero (it divides by their running RMS). After the
# 18 steps here the largest difference measured was 1.7e-5, on one of 4,608 values of D.b16.conv1.weight
# (scale 3.7; Intel Xeon, 2026-12-05; none above 1e-5 on AMD Zen 4). p and r_t, which a wrong sum over
# ranks would move, are compared far tighter below.
SAME_WEIGHTS = {"rtol": 1e-4, "atol": 1e-4}
TRAIN = str(REPO / "train_headless.py")


def _env() -> dict[str, str]:
    # faulthandler: a rank that crashes (SIGABRT, SIGSEGV) prints its Python stack to the failure message.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}


def _final(outdir: Path) -> tuple[Path, dict]:
    (run_dir,) = outdir.iterdir()
    latest = json.loads((run_dir / "snapshots" / "latest.json").read_text())
    return run_dir, latest


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "blobs", n=32)


@pytest.fixture(scope="module")
def single(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: one process, the whole batch."""
    out = tmp_path_factory.mktemp("single")
    one = subprocess.run([sys.executable, TRAIN, "--outdir", str(out), "--data", str(data), *ARGS],
                         env=_env(), capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-2000:]
    return out


def _assert_same_training(single: Path, multi: Path) -> None:
    (single_dir, a), (multi_dir, b) = _final(single), _final(multi)
    assert a["kimg"] == b["kimg"] == pytest.approx(9 * 8 / 1000)
    ckpt_a = load_checkpoint(single_dir / "snapshots" / a["snapshot"])
    ckpt_b = load_checkpoint(multi_dir / "snapshots" / b["snapshot"])
    assert ckpt_a.meta["p"] == ckpt_b.meta["p"] == 0.3  # the ADA pipe runs, with identical draws per round
    for name in ("G", "D", "G_ema"):
        sa, sb = getattr(ckpt_a, name).state_dict(), getattr(ckpt_b, name).state_dict()
        for key, value in sa.items():
            if key.endswith("w_avg"):  # a running mean each rank keeps of its own mappings; rank 0's is saved
                continue
            torch.testing.assert_close(value, sb[key], **SAME_WEIGHTS, msg=f"{name}.{key}")
    # Only rank 0 wrote: one run directory, one "started" and one "finished", a clean exit.
    states = [e["state"] for e in RunReader(multi_dir).poll_events() if e["kind"] == "status"]
    assert states == ["started", "finished"]
    info = json.loads((multi_dir / "run.json").read_text())
    assert info["options"]["world_size"] == 2
    # Tick statistics are global: the same numbers, incl. r_t (the controller sums signs over ranks).
    ticks_multi = [e for e in RunReader(multi_dir).poll_events() if e["kind"] == "tick"]
    ticks_single = [e for e in RunReader(single_dir).poll_events() if e["kind"] == "tick"]
    assert len(ticks_multi) == len(ticks_single) == 3 and "Progress/rt" in ticks_multi[-1]
    for key in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Progress/rt"):
        multi_values = [e[key] for e in ticks_multi if key in e]
        assert multi_values == pytest.approx([e[key] for e in ticks_single if key in e], rel=1e-4), key


def test_two_gloo_processes_match_one_process(data: Path, single: Path, tmp_path: Path) -> None:
    multi = tmp_path / "multi"
    two = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node", "2", TRAIN, "--outdir", str(multi),
                          "--data", str(data), *ARGS], env=_env(), capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-12000:]
    _assert_same_training(single, multi)
    assert json.loads((next(multi.iterdir()) / "run.json").read_text())["options"]["gpus"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_joined_by_the_c10d_rendezvous_match_one_process(data: Path, single: Path, tmp_path: Path) -> None:
    """The README's multi-node command, with two 'nodes' of one process each on this machine."""
    multi, port = tmp_path / "multi", _free_port()
    nodes = [subprocess.Popen([*TORCHRUN, "--nnodes", "2", "--nproc_per_node", "1",
                               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
                               "--rdzv_id", f"test-{port}", TRAIN, "--outdir", str(multi), "--data", str(data),
                               *ARGS], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [node.communicate(timeout=300)[1] for node in nodes]
    for node, err in zip(nodes, errors, strict=True):
        assert node.returncode == 0, err[-12000:]
    _assert_same_training(single, multi)


# -- shutdown ------------------------------------------------------------------------------------


def _children(pid: int) -> dict[int, int]:
    """{pid: RANK} of the torchrun agent's worker processes."""
    workers = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                env = dict(v.split("=", 1) for v in (proc / "environ").read_text().split("\0") if "=" in v)
                workers[int(proc.name)] = int(env["RANK"])
        except (OSError, KeyError, IndexError, ValueError):
            continue
    return workers


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_long_job(data: Path, out: Path) -> tuple[subprocess.Popen[str], dict[int, int], Path]:
    """torchrun with 2 workers, long enough never to finish; returns once the first checkpoint is written."""
    args = list(ARGS)
    args[args.index("--kimg") + 1] = "1000"
    agent = subprocess.Popen([*TORCHRUN, "--standalone", "--nproc_per_node", "2", TRAIN, "--outdir", str(out),
                              "--data", str(data), *args], env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    events = None
    while time.monotonic() < deadline and agent.poll() is None:
        events = next(out.glob("*/events.jsonl"), None)
        if events is not None and '"kind":"snapshot"' in events.read_text():
            break
        time.sleep(0.2)
    else:
        agent.kill()
        pytest.fail(f"no checkpoint within 180 s: {agent.communicate()[1][-3000:]}")
    workers = _children(agent.pid)
    assert sorted(workers.values()) == [0, 1]
    return agent, workers, events.parent


def _ended(agent: subprocess.Popen[str], workers: dict[int, int], timeout: float = 90) -> str:
    try:
        err = agent.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        for pid in workers:  # dump the stuck workers' stacks (faulthandler), then end them
            if _alive(pid):
                os.kill(pid, signal.SIGABRT)
        time.sleep(2)
        os.killpg(agent.pid, signal.SIGKILL)
        pytest.fail(f"torchrun did not exit within {timeout} s:\n{agent.communicate()[1][-6000:]}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "a rank outlived torchrun"
    return err


def test_ctrl_c_under_torchrun_stops_every_rank_after_the_same_minibatch(data: Path, tmp_path: Path) -> None:
    agent, workers, run_dir = _start_long_job(data, tmp_path / "out")
    os.killpg(agent.pid, signal.SIGINT)  # what the terminal does: the agent's group; it forwards to the ranks
    err = _ended(agent, workers)
    assert "interrupted: stopped at kimg" in err, err[-3000:]
    reader = RunReader(run_dir)
    status = [e for e in reader.poll_events() if e["kind"] == "status"][-1]
    assert (status["state"], status["message"]) == ("stopped", "interrupted")
    # The ranks agreed on where to stop: the stop snapshot (a collective) was written at that kimg.
    snapshot = reader.latest_snapshot()
    assert snapshot is not None
    assert load_any(snapshot).meta["kimg"] == pytest.approx(status["kimg"])


def test_a_rank_that_dies_ends_the_job_and_leaves_loadable_files(data: Path, tmp_path: Path) -> None:
    agent, workers, run_dir = _start_long_job(data, tmp_path / "out")
    (rank1,) = [pid for pid, rank in workers.items() if rank == 1]
    os.kill(rank1, signal.SIGKILL)  # an out-of-memory kill, a node going away
    _ended(agent, workers)
    assert agent.returncode != 0
    reader = RunReader(run_dir)
    status = [e for e in reader.poll_events() if e["kind"] == "status"][-1]
    assert status["state"] in ("failed", "stopped"), status  # rank 0 said why it ended
    snapshot = reader.latest_snapshot()
    assert snapshot is not None and load_any(snapshot).meta["kimg"] <= status["kimg"]
    for marker in (run_dir / "snapshots").glob("*-*[0-9].json"):  # every snapshot left behind loads
        load_any(marker)


ADAPTIVE = {
    "ada": ["--aug", "ada", "--target", "0.6", "--ada-interval", "1", "--ada-kimg", "0.1"],
    "apa": ["--aug", "apa", "--target", "0.6", "--ada-interval", "1", "--ada-kimg", "0.1"],
}


@pytest.mark.parametrize("aug", sorted(ADAPTIVE))
def test_ada_and_apa_adapt_p_across_two_ranks_as_in_one_process(data: Path, tmp_path: Path, aug: str) -> None:
    """p is driven by r_t summed over ranks: two gloo processes move it exactly as one process does."""
    fixed = ARGS.index("--aug")
    args = [*ARGS[:fixed], *ARGS[fixed + 4:], *ADAPTIVE[aug]]  # without "--aug fixed --p 0.3"
    runs = {}
    launchers = {"single": [sys.executable], "multi": [*TORCHRUN, "--standalone", "--nproc_per_node", "2"]}
    for name, launcher in launchers.items():
        out = tmp_path / name
        done = subprocess.run([*launcher, TRAIN, "--outdir", str(out), "--data", str(data), *args], env=_env(),
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-12000:]
        runs[name] = _final(out)
    (single_dir, a), (multi_dir, b) = runs["single"], runs["multi"]
    ckpt_a = load_checkpoint(single_dir / "snapshots" / a["snapshot"])
    ckpt_b = load_checkpoint(multi_dir / "snapshots" / b["snapshot"])
    assert ckpt_a.meta["p"] > 0, "p never moved: the test would prove nothing"
    assert ckpt_b.meta["p"] == pytest.approx(ckpt_a.meta["p"], abs=1e-9)
    ticks = {name: [e for e in RunReader(d).poll_events() if e["kind"] == "tick"] for name, (d, _) in runs.items()}
    for key in ("Progress/augment", "Progress/rt"):
        multi_values = [e[key] for e in ticks["multi"]]
        assert multi_values == pytest.approx([e[key] for e in ticks["single"]], abs=1e-6), key
    for name in ("G", "D", "G_ema"):
        sa, sb = getattr(ckpt_a, name).state_dict(), getattr(ckpt_b, name).state_dict()
        for key, value in sa.items():
            if not key.endswith("w_avg"):  # a running mean each rank keeps of its own mappings
                torch.testing.assert_close(value, sb[key], **SAME_WEIGHTS, msg=f"{name}.{key}")


def test_a_rank_ends_without_finalisation_and_loses_no_output() -> None:
    """A rank of a multi-process job leaves by os._exit once its files are closed: gloo's worker threads
    may still release work objects then, which aborts a finalising interpreter (SIGABRT after a finished
    run). Its exit code, printed lines and log records still get out; atexit handlers do not run. A
    single process returns normally."""
    script = (
        "import atexit, logging, sys\n"
        "from core.training import distributed as d\n"
        "d.exit_process(5)\n"
        "print('single process: still here')\n"
        "atexit.register(lambda: print('finalised'))\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
        "d._joined_group = True\n"
        "print('printed', end='')\n"
        "logging.getLogger('rank').info('logged')\n"
        "d.exit_process(3)\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "single process: still here\nprinted"
    assert "INFO:rank:logged" in done.stderr
