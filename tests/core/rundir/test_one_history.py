"""A run is one history however often it is stopped: --resume RUN_DIR continues the same directory (a
new segment in run.json and events.jsonl); another --outdir forks it, and readers follow the fork back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.rundir import RunReader, RunWriter, layout
from viz.widgets.training_monitor import MonitorState, ingest, ingest_ancestors

REPO = Path(__file__).resolve().parents[3]
OLD_RUN = REPO / "tests" / "fixtures" / "run_87ed6be" / "00000-digits-subset16-cpu32-batch4-ada-kimg0.048-fixture"


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "train_headless.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    dst = tmp_path / "runs" / OLD_RUN.name
    shutil.copytree(OLD_RUN, dst)
    return dst


def test_writer_records_a_segment_and_keeps_where_the_run_was_forked_from(tmp_path: Path) -> None:
    with RunWriter(tmp_path, background=False) as w:
        w.write_run_json({"kimg": 1, "resume": "/runs/00000-x"})
        w.status("started", 0.0)
    with RunWriter(tmp_path, background=False) as w:
        assert w.start_segment({"kimg": 2, "resume": str(tmp_path)}, "snapshots/x.json", 0.5) == 1
        w.status("started", 0.5)
    doc = json.loads((tmp_path / layout.RUN_JSON).read_text())
    assert doc["options"]["kimg"] == 2 and doc["forked_from"] == "/runs/00000-x"
    assert [s["resumed_from"] for s in doc["segments"]] == [None, "snapshots/x.json"]
    started = [e for e in RunReader(tmp_path).poll_events() if e.get("state") == "started"]
    assert "segment" not in started[0] and started[1]["segment"] == 1


def test_resume_of_a_run_directory_continues_it_in_place(run: Path, tmp_path: Path) -> None:
    proc = _train("--resume", str(run), "--kimg", "0.08", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert layout.list_run_dirs(run.parent) == [run]  # no new run directory
    doc = json.loads((run / layout.RUN_JSON).read_text())
    assert len(doc["segments"]) == 2 and doc["segments"][1]["kimg"] == pytest.approx(0.048)
    assert doc["options"]["kimg"] == 0.08
    events = RunReader(run).poll_events()
    started = [e for e in events if e["kind"] == "status" and e["state"] == "started"]
    assert [e.get("segment", 0) for e in started] == [0, 1]
    assert max(e["kimg"] for e in events if e["kind"] == "tick") == pytest.approx(0.08)
    # The earlier launch's rolling checkpoint went once this launch had its own.
    assert layout.rolling_stems(run) == ["checkpoint-000000000080"]
    state = MonitorState()
    ingest(state, events, doc["options"])
    assert state.resume_points == [pytest.approx(0.048)]


def test_another_outdir_forks_and_the_monitor_shows_one_timeline(run: Path, tmp_path: Path) -> None:
    proc = _train("--resume", str(run), "--outdir", str(tmp_path / "forks"), "--kimg", "0.08", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (fork,) = layout.list_run_dirs(tmp_path / "forks")
    assert json.loads((fork / layout.RUN_JSON).read_text())["forked_from"] == str(run)
    reader = RunReader(fork)
    assert reader.ancestors() == [run]
    state = MonitorState()
    ingest_ancestors(state, reader)
    ingest(state, reader.poll_events(), reader.options())
    kimgs = state.series["Progress/augment"].kimg
    assert kimgs == sorted(kimgs) and kimgs[0] < 0.048 < kimgs[-1]  # the parent's points, then the fork's
    assert state.resume_points == [pytest.approx(0.048)] and state.forked_from == [run]


def test_a_resume_from_an_earlier_snapshot_cuts_the_abandoned_future() -> None:
    state = MonitorState()
    stats = [{"kind": "stats", "kimg": k, "Progress/augment": k} for k in (1.0, 2.0, 3.0)]
    ingest(state, [*stats, {"kind": "status", "kimg": 1.5, "state": "started", "segment": 1},
                   {"kind": "stats", "kimg": 2.5, "Progress/augment": 9.0}], None)
    assert state.series["Progress/augment"].kimg == [1.0, 2.5]
    assert state.resume_points == [1.5]


def test_a_run_without_snapshots_resumes_from_the_snapshot_file_it_was_forked_from(run: Path, tmp_path: Path) -> None:
    from core.training.checkpointing import load_resume_source

    loose = tmp_path / "loose"  # a snapshot outside any run directory (copied off a cluster, say)
    loose.mkdir()
    for f in (run / layout.SNAPSHOTS).glob("network-snapshot-000000.048.*"):
        shutil.copy(f, loose / f.name)
    snapshot = loose / "network-snapshot-000000.048.json"
    proc = _train("--replay", str(run), "--resume", str(snapshot), "--outdir", str(tmp_path / "forks"), "--kimg",
                  "0.064", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (fork,) = layout.list_run_dirs(tmp_path / "forks")
    shutil.rmtree(fork / layout.SNAPSHOTS)  # killed before its first snapshot, say
    found = load_resume_source(fork)
    assert found.snapshot == snapshot and found.state is not None and found.skipped == []
