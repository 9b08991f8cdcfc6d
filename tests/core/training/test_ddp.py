"""torchrun with 2 CPU processes (gloo) trains exactly like one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.networks.checkpoint import load_checkpoint
from core.training.rundir import RunReader
from tests.core.training.test_loop import MINIBATCH_KIMG, REPO, make_dataset

ARGS = ["--cfg", "cpu32", "--cbase", "256", "--cmax", "32", "--batch", "8", "--batch-gpu", "4",
        "--kimg", str(9 * 2 * MINIBATCH_KIMG), "--tick", str(4 * 2 * MINIBATCH_KIMG), "--snap", "0",
        "--workers", "0", "--device", "cpu", "--metrics", "none", "--aug", "fixed", "--p", "0.3",
        "--seed", "5"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _final(outdir: Path) -> tuple[Path, dict]:
    (run_dir,) = outdir.iterdir()
    latest = json.loads((run_dir / "snapshots" / "latest.json").read_text())
    return run_dir, latest


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "blobs", n=32)
    single, multi = tmp_path / "single", tmp_path / "multi"
    one = subprocess.run([sys.executable, str(REPO / "train_headless.py"), "--outdir", str(single),
                          "--data", str(data), *ARGS], env=_env(), capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(REPO / "train_headless.py"), "--outdir", str(multi), "--data", str(data), *ARGS],
                         env=_env(), capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
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
            torch.testing.assert_close(value, sb[key], rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
    # Only rank 0 wrote: one run directory, one "started" and one "finished", a clean exit.
    states = [e["state"] for e in RunReader(multi_dir).poll_events() if e["kind"] == "status"]
    assert states == ["started", "finished"]
    info = json.loads((multi_dir / "run.json").read_text())
    assert info["options"]["world_size"] == 2 and info["options"]["gpus"] == 2
    # Tick statistics are global: the same numbers, incl. r_t (the controller sums signs over ranks).
    ticks_multi = [e for e in RunReader(multi_dir).poll_events() if e["kind"] == "tick"]
    ticks_single = [e for e in RunReader(single_dir).poll_events() if e["kind"] == "tick"]
    assert len(ticks_multi) == len(ticks_single) == 3 and "Progress/rt" in ticks_multi[-1]
    for key in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Progress/rt"):
        multi_values = [e[key] for e in ticks_multi if key in e]
        assert multi_values == pytest.approx([e[key] for e in ticks_single if key in e], rel=1e-4), key


