"""Run directory stream: naming, writer -> reader round trip, torn lines, liveness, live weights."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from core.io.atomic import atomic_path
from core.rundir import (
    RunReader,
    RunWriter,
    dataset_name,
    kimg_tag,
    list_run_dirs,
    new_run_dir,
    run_desc,
    snapshot_stem,
)
from core.rundir.schema import STAT_P, STAT_RT


class _Net(torch.nn.Module):
    """A module with init_kwargs, like Generator, whose weights all equal ``value``."""

    def __init__(self, value: float = 0.0, width: int = 8) -> None:
        super().__init__()
        self.init_kwargs = {"width": width, "nested": {"a": [1, 2]}}
        self.fc = torch.nn.Linear(width, width)
        self.register_buffer("w_avg", torch.zeros(width))
        self.fill(value)

    def fill(self, value: float) -> None:
        with torch.no_grad():
            for t in (*self.parameters(), *self.buffers()):
                t.fill_(value)


class _Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- naming ------------------------------------------------------------------------------------


def test_new_run_dir_numbering(tmp_path: Path) -> None:
    assert new_run_dir(tmp_path / "runs", "a").name == "00000-a"
    root = tmp_path / "runs"
    (root / "00003-old").mkdir()
    (root / "7-short-prefix").mkdir()
    (root / "00042-a-file").write_text("not a directory")
    (root / "notes").mkdir()
    assert new_run_dir(root, "b").name == "00008-b"
    assert new_run_dir(root, "b").name == "00009-b"
    names = [p.name for p in list_run_dirs(root)]
    assert names == ["00000-a", "00003-old", "7-short-prefix", "00008-b", "00009-b"]
    for bad in ("", "a/b", ".."):
        with pytest.raises(ValueError, match="desc"):
            new_run_dir(root, bad)


def test_new_run_dir_concurrent_creators_get_distinct_ids(tmp_path: Path) -> None:
    made: list[Path] = []
    barrier = threading.Barrier(6)

    def create(i: int) -> None:
        barrier.wait()
        for _ in range(4):
            made.append(new_run_dir(tmp_path, f"desc{i}"))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [int(p.name[:5]) for p in made]
    # Distinct ids is the promise. Contiguity is not: when two creators collide and both back
    # off, a third may already have taken the next id, leaving a gap (seen under load in CI).
    assert len(made) == 24 and len(set(ids)) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in made)


def test_run_desc_public_examples() -> None:
    # train.py --data=~/mydataset.zip --gpus=1 (README dry run): 00000-mydataset-auto1
    assert run_desc("~/mydataset.zip") == "mydataset-auto1"
    # --data=~/datasets/metfaces.zip --gpus=8 --cfg=paper1024 --mirror=1 --resume=ffhq1024
    assert run_desc("~/datasets/metfaces.zip", gpus=8, cfg="paper1024", mirror=True, resume="ffhq1024") == (
        "metfaces-mirror-paper1024-resumeffhq1024"
    )
    # --data=~/datasets/cifar10.zip --gpus=2 --cfg=cifar --cond=1
    assert run_desc("~/datasets/cifar10.zip", gpus=2, cfg="cifar", cond=True) == "cifar10-cond-cifar"
    every = run_desc(
        "/d/ffhq256/", cond=True, subset=100, dataset_size=1000, mirror=True, cfg="stylegan2", gamma=10.0,
        kimg=5000, batch=32, aug="fixed", p=0.2, target=0.7, augpipe="bgcfnc", resume="/x/net.pkl", freezed=4,
    )
    assert every == (
        "ffhq256-cond-subset100-mirror-stylegan2-gamma10-kimg5000-batch32-fixed-p0.2-target0.7-bgcfnc"
        "-resumecustom-freezed4"
    )
    desc = run_desc("d.zip", gamma=0.8192, gpus=2, aug="noaug", resume="noresume")
    assert desc == "d-auto2-gamma0.8192-noaug-noresume"
    # A subset no smaller than the dataset changes nothing, so it is not in the name.
    assert run_desc("d.zip", subset=1000, dataset_size=1000) == "d-auto1"
    assert run_desc("builtin:digits", aug="apa", extra=["dataaug"]) == "digits-auto1-apa-dataaug"
    assert dataset_name("C:/data/my set.zip") == "my_set"


def test_kimg_tags() -> None:
    assert kimg_tag(12.9) == "000012" and snapshot_stem(1234) == "network-snapshot-001234"
    assert kimg_tag(12.9, fine=True) == "000012.900" and kimg_tag(0.004, fine=True) == "000000.004"
    assert snapshot_stem(3.0, fine=True) == "network-snapshot-000003.000"
    with pytest.raises(ValueError):
        kimg_tag(float("nan"))


def test_files_of_one_whole_kimg_never_overwrite_each_other(tmp_path: Path) -> None:
    w = RunWriter(tmp_path, background=False)
    grid = np.zeros((2, 2, 3), np.uint8)
    names = [w.write_preview("fakes", k, grid + i).name for i, k in enumerate((0.016, 0.528, 1.04, 1.552, 1.552))]
    # The same kimg again is the same file; the next kimg in the same whole kimg gets thousandths.
    assert names == ["fakes-000000.png", "fakes-000000.528.png", "fakes-000001.png", "fakes-000001.552.png",
                     "fakes-000001.552.png"]
    r = RunReader(tmp_path)
    assert r.latest_preview("fakes") == tmp_path / "previews" / "fakes-000001.552.png"
    # After a restart in the same directory, a name on disk from another writer is not reused.
    w2 = RunWriter(tmp_path, background=False)
    assert w2.write_preview("fakes", 1.6, grid).name == "fakes-000001.600.png"
    assert w2.kept_snapshot_stem(2.0) == "network-snapshot-000002"


# -- writer -> reader --------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    clock = _Clock(1000.0)
    run = new_run_dir(tmp_path, "digits-auto1")
    w = RunWriter(run, clock=clock)
    r = RunReader(run)
    assert r.options() is None and r.poll_events() == [] and r.status().state == "unknown"

    w.write_run_json({"batch": 8, "lr": 0.0025, "augpipe": "bgc", "dir": Path("/x")})
    w.status("started", 0.0, "training")
    w.stats(0.5, {
        STAT_P: np.float32(0.25), STAT_RT: 0.6, "Loss/G/loss": float("nan"), "Loss/D/loss": torch.tensor(1.5),
    })
    w.event("tick", 4.0, tick=1, sec_per_tick=12.5)
    w.metric(4.0, "fid50k_full", {"fid50k_full": 31.4}, snapshot="network-snapshot-000004")
    grid = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    w.write_preview("fakes", 0.0, grid)
    w.write_preview("fakes", 4.2, grid[::-1])
    w.write_preview("reals-augmented", 4.2, grid[:, :, :1])
    w.flush()  # previews are encoded in the background; their events follow their files
    save_file({"x": torch.ones(2)}, str(run / "snapshots" / "network-snapshot-000004.safetensors"))
    (run / "snapshots" / "network-snapshot-000004.json").write_text("{}")
    w.write_latest("network-snapshot-000004", 4.2)
    net = _Net(0.5)
    assert w.write_live(net, 4.2)
    w.log("one\ntwo")
    w.status("finished", 4.2, "done")
    w.close()

    assert r.options() == {"batch": 8, "lr": 0.0025, "augpipe": "bgc", "dir": "/x"}
    info = r.run_info()
    assert info is not None and info["created"] == 1000.0 and info["pid"] == os.getpid()
    assert "torch" in info["versions"]
    events = r.poll_events()
    kinds = [e["kind"] for e in events]
    assert kinds == ["status", "stats", "tick", "metric", *["preview"] * 3, "snapshot", "status"]
    assert all(e["t"] == 1000.0 for e in events)
    stats = events[1]
    assert stats["kimg"] == 0.5 and stats[STAT_P] == pytest.approx(0.25) and math.isnan(stats["Loss/G/loss"])
    assert stats["Loss/D/loss"] == 1.5
    assert events[7]["files"] == [
        "snapshots/network-snapshot-000004.json", "snapshots/network-snapshot-000004.safetensors"
    ]
    assert r.poll_events() == []

    st = r.status(now=10**9)
    assert (st.state, st.message, st.kimg, st.stale) == ("finished", "done", 4.2, False)
    assert [m["results"] for m in r.metrics()] == [{"fid50k_full": 31.4}]
    assert r.latest_preview("fakes") == run / "previews" / "fakes-000004.png"
    assert np.array_equal(np.asarray(Image.open(r.latest_preview("fakes"))), grid[::-1])
    assert np.array_equal(np.asarray(Image.open(r.latest_preview("reals-augmented"))), grid[:, :, 0])
    assert r.latest_preview("other") is None
    assert r.latest_snapshot() == run / "snapshots" / "network-snapshot-000004.json"
    latest = json.loads((run / "snapshots" / "latest.json").read_text())
    assert latest == {"snapshot": "network-snapshot-000004", "kimg": 4.2, "t": 1000.0}
    live = r.live_weights()
    assert live is not None and live.kimg == 4.2 and live.kwargs == net.init_kwargs
    assert set(live.state_dict) == set(net.state_dict())
    assert all(torch.equal(live.state_dict[k], v) for k, v in net.state_dict().items())
    assert r.live_version() == json.loads((run / "live" / "G_ema.json").read_text())["write_id"]
    assert r.log_tail(1) == ["two"] and r.log_tail(5) == ["one", "two"]
    assert not (run / "tb").exists()  # TensorBoard only once scalars are written


def test_reader_before_anything_exists(tmp_path: Path) -> None:
    r = RunReader(tmp_path / "not-yet")
    assert r.poll_events() == [] and r.options() is None and r.latest_preview("fakes") is None
    assert r.latest_snapshot() is None and r.live_weights() is None and r.log_tail(3) == []
    assert r.live_version() is None and r.metrics() == [] and not r.control_applied(1)


def test_status_transitions_and_stale_detection(tmp_path: Path) -> None:
    clock = _Clock(1000.0)
    w = RunWriter(tmp_path, clock=clock)
    r = RunReader(tmp_path)
    w.status("started", 0)
    assert r.status(now=1100).state == "running" and not r.status(now=1100).stale
    stale = r.status(now=1400, stale_after=300)
    assert stale.state == "running" and stale.stale and "possibly dead" in stale.stale_reason
    clock.t = 1390
    w.stats(1.0, {STAT_P: 0.0})  # any event counts as a sign of life
    assert not r.status(now=1400, stale_after=300).stale
    w.status("paused", 1.0, "by GUI")
    assert r.status(now=10**6) == r.status(now=10**6) and r.status(now=10**6).state == "paused"
    assert not r.status(now=10**6).stale  # a paused trainer may stay quiet
    w.status("resumed", 1.0)
    assert r.status(now=1391).state == "running"
    w.status("failed", 1.5, "loss is NaN")
    st = r.status(now=10**6)
    assert (st.state, st.message, st.stale) == ("failed", "loss is NaN", False)
    with pytest.raises(ValueError, match="status"):
        w.status("exploded", 1.5)


def test_status_reports_a_vanished_trainer_process(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import os; print(os.getpid())"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    dead_pid = int(proc.stdout)
    w = RunWriter(tmp_path)
    w.status("started", 0)
    r = RunReader(tmp_path)
    assert not r.status().stale  # this process is alive
    events = (tmp_path / "events.jsonl").read_text().replace(f'"pid":{os.getpid()}', f'"pid":{dead_pid}')
    (tmp_path / "events.jsonl").write_text(events)
    st = RunReader(tmp_path).status()
    assert st.state == "running" and st.stale and str(dead_pid) in st.stale_reason


def test_reader_follows_growing_file_and_ignores_torn_last_line(tmp_path: Path, caplog) -> None:
    path = tmp_path / "events.jsonl"
    r = RunReader(tmp_path)
    line1 = json.dumps({"t": 1.0, "kimg": 0.0, "kind": "tick", "tick": 0}) + "\n"
    line2 = json.dumps({"t": 2.0, "kimg": 4.0, "kind": "tick", "tick": 1, "note": "ü"}) + "\n"
    with open(path, "wb") as f:
        f.write(line1.encode())
        f.flush()
        assert [e["tick"] for e in r.poll_events()] == [0]
        half = len(line2.encode()) // 2 + 1  # cuts inside the two-byte "ü" too
        f.write(line2.encode()[:half])
        f.flush()
        assert r.poll_events() == []
        assert r.poll_events() == []
        f.write(line2.encode()[half:])
        f.flush()
        assert [(e["tick"], e["note"]) for e in r.poll_events()] == [(1, "ü")]
        # A complete but corrupt line (a crash before a restart) is skipped with a warning.
        f.write(b'{"t": 3, "kimg": 5, "ki\n' + b"[1, 2]\n" + line1.encode())
        f.flush()
        with caplog.at_level(logging.WARNING, logger="core.rundir.reader"):
            assert [e["tick"] for e in r.poll_events()] == [0]
        assert sum("corrupt line" in m for m in caplog.messages) == 2


def test_reader_restarts_on_replaced_or_truncated_file(tmp_path: Path) -> None:
    clock = _Clock(5.0)
    w = RunWriter(tmp_path, clock=clock)
    for i in range(3):
        w.event("tick", i, tick=i)
    w.close()
    r = RunReader(tmp_path)
    assert len(r.poll_events()) == 3 and r.resets == 0
    # Replaced by a new file (another inode).
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"t": 9.0, "kimg": 0, "kind": "tick", "tick": 100}) + "\n")
    os.replace(new, tmp_path / "events.jsonl")
    assert [e["tick"] for e in r.poll_events()] == [100] and r.resets == 1
    # Rewritten in place with longer content: same inode, larger size, different beginning.
    lines = "".join(json.dumps({"t": 7, "kimg": 0, "kind": "tick", "tick": 200 + i}) + "\n" for i in range(4))
    with open(tmp_path / "events.jsonl", "r+") as f:
        f.truncate(0)
        f.write(lines)
    assert [e["tick"] for e in r.poll_events()] == [200, 201, 202, 203] and r.resets == 2
    # Truncated to nothing, then removed.
    open(tmp_path / "events.jsonl", "w").close()
    assert r.poll_events() == [] and r.resets == 3
    (tmp_path / "events.jsonl").unlink()
    assert r.poll_events() == [] and r.resets == 4


def test_status_and_metrics_do_not_swallow_events(tmp_path: Path) -> None:
    w = RunWriter(tmp_path)
    r = RunReader(tmp_path)
    w.status("started", 0)
    assert r.status().state == "running"
    w.metric(1, "kid50k_full", {"kid50k_full": 0.01})
    assert len(r.metrics()) == 1
    w.control_applied(1, seq=3, applied={"pause": True})
    assert r.control_applied(3) and r.control_applied(2) and not r.control_applied(4)
    assert r.control_last_applied() == 3
    assert [e["kind"] for e in r.poll_events()] == ["status", "metric", "control"]


def test_writer_validates_events_and_run_json(tmp_path: Path) -> None:
    w = RunWriter(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        w.event("gossip", 0)
    with pytest.raises(ValueError, match="'t'"):
        w.event("tick", 0, t=3)
    with pytest.raises(TypeError, match=r"stats\.weird"):
        w.event("stats", 0, weird=object())
    with pytest.raises(ValueError, match="preview kind"):
        w.write_preview("../x", 0, np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        w.write_preview("fakes", 0, np.zeros((2, 2), np.float32))
    with pytest.raises(FileNotFoundError, match="write the snapshot first"):
        w.write_latest("network-snapshot-000000", 0)
    w.write_run_json({"a": 1})
    with pytest.raises(FileExistsError, match="run.json"):
        w.write_run_json({"a": 2})
    assert RunReader(tmp_path).options() == {"a": 1} and RunReader(tmp_path).poll_events() == []


def test_events_after_a_torn_tail_start_on_a_new_line(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_bytes(b'{"t": 1, "kimg": 0, "kind": "tick"}\n{"t": 2, "ki')
    w = RunWriter(tmp_path)
    w.event("tick", 1, tick=7)
    w.close()
    events = RunReader(tmp_path).poll_events()
    assert [e.get("tick") for e in events] == [None, 7]


def test_log_handler_writes_each_record(tmp_path: Path) -> None:
    w = RunWriter(tmp_path)
    logger = logging.getLogger("test_rundir.handler")
    logger.propagate = False
    handler = w.log_handler(fmt="%(levelname)s %(message)s")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("tick %d kimg %.1f", 3, 12.0)
        logger.debug("hidden")
        logger.warning("careful")
    finally:
        logger.removeHandler(handler)
    assert RunReader(tmp_path).log_tail(10) == ["INFO tick 3 kimg 12.0", "WARNING careful"]
    # A line still being written is not shown until it is complete.
    with open(tmp_path / "log.txt", "a") as f:
        f.write("partial")
    assert RunReader(tmp_path).log_tail(1) == ["WARNING careful"]


def test_log_tail_reads_only_the_end_of_a_long_log(tmp_path: Path) -> None:
    w = RunWriter(tmp_path)
    for i in range(20000):
        w.log(f"line {i:05d} " + "x" * 20)
    assert RunReader(tmp_path).log_tail(3) == [f"line {i:05d} " + "x" * 20 for i in (19997, 19998, 19999)]


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for w in (RunWriter(run, rank=1), RunWriter(None, rank=3)):
        w.write_run_json({"a": 1})
        w.log("x")
        w.event("tick", 0)
        w.status("started", 0)
        w.scalars(0, {"a": 1.0})
        assert w.write_preview("fakes", 0, np.zeros((2, 2), np.uint8)) is None
        w.write_latest("network-snapshot-000000", 0)
        assert w.write_live(_Net(), 0) is False
        handler = w.log_handler()
        handler.emit(logging.makeLogRecord({"msg": "hello"}))
        w.close()
    assert not run.exists()
    with pytest.raises(ValueError, match="rank 0"):
        RunWriter(None, rank=0)


def test_tensorboard_scalars_created_lazily(tmp_path: Path) -> None:
    w = RunWriter(tmp_path)
    assert not (tmp_path / "tb").exists()
    w.scalars(1.5, {"Loss/G/loss": 0.7, STAT_P: 0.1})
    w.close()
    files = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 1 and files[0].stat().st_size > 0


# -- live weights --------------------------------------------------------------------------------


def test_write_live_is_throttled_unless_forced(tmp_path: Path) -> None:
    w = RunWriter(tmp_path, live_interval_s=3600)
    net = _Net(1.0)
    assert w.write_live(net, 1.0)
    assert not w.write_live(net, 2.0)
    assert w.write_live(net, 3.0, force=True)
    w.flush()
    live = RunReader(tmp_path).live_weights()
    assert live is not None and live.kimg == 3.0


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    """A GUI run by another user must be able to read them (safetensors' save_file makes 0600)."""
    w = RunWriter(tmp_path)
    w.write_live(_Net(), 0)
    w.write_preview("fakes", 0, np.zeros((2, 2), np.uint8))
    w.flush()
    (tmp_path / "plain").write_text("x")
    expected = (tmp_path / "plain").stat().st_mode & 0o777
    for name in ("live/G_ema.safetensors", "live/G_ema.json", "previews/fakes-000000.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name


def test_live_weights_from_mismatched_pair_use_the_tensors_file(tmp_path: Path) -> None:
    w = RunWriter(tmp_path, live_interval_s=0, background=False)
    w.write_live(_Net(1.0), 1.0)
    stale_json = (tmp_path / "live" / "G_ema.json").read_bytes()
    # A writer killed between the two replaces: new tensors, old json.
    w.write_live(_Net(2.0), 2.0)
    (tmp_path / "live" / "G_ema.json").write_bytes(stale_json)
    live = RunReader(tmp_path).live_weights(retries=2, delay_s=0.001)
    assert live is not None and live.kimg == 2.0
    assert all(bool((t == 2.0).all()) for t in live.state_dict.values())


def test_live_weights_are_consistent_while_being_rewritten(tmp_path: Path) -> None:
    w = RunWriter(tmp_path, live_interval_s=0)
    net = _Net(0.0, width=64)
    w.write_live(net, 0.0)
    w.flush()
    stop = threading.Event()

    def keep_writing() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            net.fill(float(k))
            w.write_live(net, float(k))

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        r = RunReader(tmp_path)
        seen: set[float] = set()
        reads, deadline = 0, time.monotonic() + 60
        # Read on until the rewrites have been met several times (the count of reads that takes
        # depends on how the two threads are scheduled): at least 40 reads and 5 versions.
        while (reads < 40 or len(seen) < 5) and time.monotonic() < deadline:
            live = r.live_weights(delay_s=0.001)
            assert live is not None
            assert all(bool((t == live.kimg).all()) for t in live.state_dict.values()), live.kimg
            seen.add(live.kimg)
            reads += 1
    finally:
        stop.set()
        writer.join()
    assert len(seen) >= 5, f"{reads} reads met only versions {sorted(seen)}"


def test_background_writes_keep_the_newest_live_weights_and_survive_a_failure(tmp_path: Path, caplog) -> None:
    w = RunWriter(tmp_path, live_interval_s=0)
    net = _Net(0.0, width=256)
    for k in range(1, 31):
        net.fill(float(k))  # changed right after each call: the copy must be taken at the call
        w.write_live(net, float(k))
    w.flush()
    live = RunReader(tmp_path).live_weights()
    assert live is not None and live.kimg == 30.0
    assert all(bool((t == 30.0).all()) for t in live.state_dict.values())
    grid = np.zeros((4, 4, 3), np.uint8)
    path = w.write_preview("fakes", 30, grid)
    grid[:] = 255  # the writer keeps its own copy
    w.flush()
    assert path is not None and np.asarray(Image.open(path)).max() == 0
    # A preview that cannot be written is logged; later writes still happen.
    shutil.rmtree(tmp_path / "previews")
    (tmp_path / "previews").write_text("in the way")
    events_before = (tmp_path / "events.jsonl").stat().st_size
    with caplog.at_level(logging.ERROR, logger="core.rundir.writer"):
        w.write_preview("fakes", 31, grid)
        net.fill(31.0)
        w.write_live(net, 31.0)
        w.close()
    assert any("background write failed" in m for m in caplog.messages)
    live = RunReader(tmp_path).live_weights()
    assert live is not None and live.kimg == 31.0
    assert (tmp_path / "events.jsonl").stat().st_size == events_before  # no event for the failed preview


def test_new_writer_removes_stale_temps_and_readers_ignore_them(tmp_path: Path) -> None:
    w = RunWriter(tmp_path)
    w.write_preview("fakes", 1, np.zeros((2, 2), np.uint8))
    w.close()
    stale = [
        tmp_path / "live" / ".G_ema.safetensors.0123456789ab.tmp",
        tmp_path / "previews" / ".fakes-000009.png.0123456789ab.tmp",
        tmp_path / "snapshots" / ".latest.json.0123456789ab.tmp",
    ]
    for p in stale:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half")
    fresh_gui_temp = tmp_path / ".control.json.0123456789ab.tmp"
    fresh_gui_temp.write_text("{")
    r = RunReader(tmp_path)
    assert r.latest_preview("fakes") == tmp_path / "previews" / "fakes-000001.png"
    RunWriter(tmp_path).close()
    assert not any(p.exists() for p in stale)
    assert fresh_gui_temp.exists()  # the GUI may be writing it right now


def test_latest_snapshot_needs_the_commit_marker(tmp_path: Path) -> None:
    w = RunWriter(tmp_path)
    folder = tmp_path / "snapshots"
    for k in (4, 12, 8):
        with atomic_path(folder / f"network-snapshot-{k:06d}.safetensors") as tmp:
            save_file({"k": torch.tensor([float(k)])}, str(tmp))
        if k != 12:  # 12: tensors written, json (written last) not yet
            (folder / f"network-snapshot-{k:06d}.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="000012.json"):
        w.write_latest("network-snapshot-000012", 12)
    assert RunReader(tmp_path).latest_snapshot() == folder / "network-snapshot-000008.json"
    w.write_latest("network-snapshot-000004", 4)
    assert RunReader(tmp_path).latest_snapshot() == folder / "network-snapshot-000004.json"
    assert load_file(str(folder / "network-snapshot-000004.safetensors"))["k"].item() == 4.0
