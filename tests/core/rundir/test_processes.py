"""The stream across processes: a live reader of a fast writer, and writers killed with SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from core.rundir import RunReader, RunWriter

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL semantics")


def _spawn(code: str, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(run_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


_APPENDER = """
import sys
from core.rundir import RunWriter
w = RunWriter(sys.argv[1])
for i in range(N):
    # Lines of varying length, some over a page, so reads land mid-line now and then.
    w.event("stats", i / 100, seq=i, pad="x" * ((i * 7919) % 6000))
w.status("finished", N / 100)
w.close()
"""


def test_reader_sees_every_event_of_a_concurrent_writer_exactly_once(tmp_path: Path) -> None:
    n = 2000
    proc = _spawn(_APPENDER.replace("N", str(n)), tmp_path)
    reader = RunReader(tmp_path)
    seqs: list[int] = []
    polls = 0
    deadline = time.monotonic() + 60
    done = False
    while not done and time.monotonic() < deadline:
        for ev in reader.poll_events():
            if ev["kind"] == "stats":
                assert ev["pad"] == "x" * ((ev["seq"] * 7919) % 6000)
                seqs.append(ev["seq"])
            done = done or ev["kind"] == "status"
        polls += 1
        time.sleep(0.0005)  # a GUI polls often, but does not spin
    proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()
    assert seqs == list(range(n))
    assert polls > 1 and reader.resets == 0


_KILLABLE = """
import sys, time
import numpy as np, torch
from safetensors.torch import save_file
from core.io.atomic import atomic_path
from core.rundir import RunWriter, snapshot_stem

run_dir = sys.argv[1]
w = RunWriter(run_dir, live_interval_s=0)
if not (w.run_dir / "run.json").exists():
    w.write_run_json({"demo": True})
w.status("started", 0)
net = torch.nn.Linear(512, 512)
net.init_kwargs = {"in_features": 512, "out_features": 512}
rng = np.random.default_rng()
k = 0
while True:
    k += 1
    with torch.no_grad():
        net.weight.fill_(k)
        net.bias.fill_(k)
    w.write_live(net, k)
    w.stats(k, {"Progress/augment": k / 1000, "pad": "y" * 2000})
    w.write_preview("fakes", k, rng.integers(0, 256, (192, 192, 3), dtype=np.uint8))
    stem = snapshot_stem(k)
    with atomic_path(w.run_dir / "snapshots" / f"{stem}.safetensors") as tmp:
        save_file({"k": torch.full((64, 64), float(k))}, str(tmp))
    with atomic_path(w.run_dir / "snapshots" / f"{stem}.json") as tmp:
        tmp.write_text('{"kimg": %d}' % k)
    w.write_latest(stem, k)
    w.log(f"iteration {k}")
    if k == 1:
        print("ready", flush=True)
"""


def _check_every_file_is_whole(run: Path) -> tuple[int, int, int]:
    """Parse/load every finished file. Returns (whole events, torn event lines, temp files left).

    A SIGKILL can cut a line longer than a page in the middle of its write(); such a torn
    tail is closed by the next writer's newline and then skipped by readers.
    """
    assert json.loads((run / "run.json").read_text())["options"] == {"demo": True}
    whole = torn = 0
    for raw in (run / "events.jsonl").read_bytes().split(b"\n")[:-1]:
        try:
            ev = json.loads(raw)
        except json.JSONDecodeError:
            torn += 1
            continue
        assert {"t", "kimg", "kind"} <= set(ev)
        whole += 1
    for path in (run / "previews").glob("*.png"):
        with Image.open(path) as im:
            im.load()
    for path in (run / "snapshots").glob("*.safetensors"):
        k = int(path.stem.rsplit("-", 1)[1])
        assert bool((load_file(str(path))["k"] == k).all())
    latest = json.loads((run / "snapshots" / "latest.json").read_text())
    assert (run / "snapshots" / f"{latest['snapshot']}.json").is_file()
    for path in (run / "snapshots").glob("network-snapshot-*.json"):
        assert json.loads(path.read_text())["kimg"] == int(path.stem.rsplit("-", 1)[1])
    json.loads((run / "live" / "G_ema.json").read_text())
    live = RunReader(run).live_weights(delay_s=0.001)
    assert live is not None and all(bool((t == live.kimg).all()) for t in live.state_dict.values())
    return whole, torn, sum(1 for p in run.rglob(".*.tmp"))


def test_writer_killed_at_random_moments_leaves_only_whole_files(tmp_path: Path) -> None:
    rng = random.Random(1234)
    reader = RunReader(tmp_path)
    seen_events = 0
    kills = 3
    for _ in range(kills):
        proc = _spawn(_KILLABLE, tmp_path)
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        _check_every_file_is_whole(tmp_path)
        events = reader.poll_events()
        assert events and reader.resets == 0
        seen_events += len(events)
    # The next writer removes what killed writers left half-done.
    RunWriter(tmp_path).close()
    whole, torn, temps = _check_every_file_is_whole(tmp_path)
    assert temps == 0 and torn < kills
    assert seen_events + len(reader.poll_events()) == whole
    assert RunReader(tmp_path).status().stale  # the last writer died without a final status
