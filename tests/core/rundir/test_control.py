"""control.json: GUI writes accumulate, the trainer sees each request once, bad files are survivable."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.rundir import RunReader, RunWriter
from core.rundir.control import (
    ControlError,
    ControlPoller,
    ControlRequest,
    read_control,
    write_control,
)


def test_seq_increases_and_each_request_is_seen_once(tmp_path: Path) -> None:
    assert read_control(tmp_path, last_seq=0) is None  # no file yet
    first = write_control(tmp_path, ControlRequest(pause=True, seq=99))  # seq given by the caller is ignored
    assert first.seq == 1 and first.t > 0
    req = read_control(tmp_path, last_seq=0)
    assert req is not None and (req.seq, req.pause, req.stop, req.snapshot_now) == (1, True, False, False)
    assert read_control(tmp_path, last_seq=1) is None
    assert write_control(tmp_path, ControlRequest(target=0.7)).seq == 2
    req = read_control(tmp_path, last_seq=1)
    assert req is not None and (req.seq, req.pause, req.target) == (2, True, 0.7)  # pause still asked for


def test_requests_between_two_ticks_accumulate(tmp_path: Path) -> None:
    write_control(tmp_path, ControlRequest(aug_multipliers={"rotate90": 0.0, "xflip": 1.0}))
    write_control(tmp_path, ControlRequest(snapshot_now=True))
    write_control(tmp_path, ControlRequest(aug_multipliers={"xflip": 0.5}, aug_mode="fixed", fixed_p=0.2))
    write_control(tmp_path, ControlRequest(pause=False, p_max=0.8))
    req = read_control(tmp_path, last_seq=0)
    assert req is not None and req.seq == 4
    assert req.aug_multipliers == {"rotate90": 0.0, "xflip": 0.5}
    assert (req.aug_mode, req.fixed_p, req.p_max) == ("fixed", 0.2, 0.8)
    assert (req.pause, req.snapshot_now) == (False, True)
    assert req.changes() == {
        "pause": False, "aug_multipliers": {"rotate90": 0.0, "xflip": 0.5}, "aug_mode": "fixed",
        "fixed_p": 0.2, "p_max": 0.8, "snapshot_now": True,
    }


def test_snapshot_now_is_one_shot_and_stop_is_sticky(tmp_path: Path) -> None:
    write_control(tmp_path, ControlRequest(snapshot_now=True))  # seq 1
    assert read_control(tmp_path, last_seq=0).snapshot_now
    write_control(tmp_path, ControlRequest(target=0.5))  # seq 2: snapshot already handled at seq 1
    assert not read_control(tmp_path, last_seq=1).snapshot_now
    assert read_control(tmp_path, last_seq=0).snapshot_now  # a reader that missed seq 1 still gets it
    write_control(tmp_path, ControlRequest(stop=True))
    write_control(tmp_path, ControlRequest(stop=False, pause=True))  # stop cannot be taken back
    req = read_control(tmp_path, last_seq=3)
    assert req is not None and req.stop and req.pause


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pause": "yes"}, "pause"),
        ({"aug_mode": "apa"}, "aug_mode"),
        ({"target": 1.5}, "target"),
        ({"fixed_p": float("nan")}, "fixed_p"),
        ({"p_max": -1}, "p_max"),
        ({"aug_multipliers": {"rotate90": -0.5}}, "rotate90"),
        ({"aug_multipliers": [1, 2]}, "aug_multipliers"),
        ({"seq": -1}, "seq"),
        ({"stop": None}, "stop"),
    ],
)
def test_invalid_requests_are_refused(kwargs: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=match):
        ControlRequest(**kwargs)


@pytest.mark.parametrize(
    "content",
    [
        "{", "[1, 2]", '{"seq": 1, "pause": "maybe"}', '{"seq": 1, "volume": 11}',
        '{"seq": 1, "snapshot_seq": "x"}', '{"seq": "7"}',
    ],
)
def test_malformed_file_raises_naming_it(content: str, tmp_path: Path) -> None:
    (tmp_path / "control.json").write_text(content)
    with pytest.raises(ControlError, match="control.json"):
        read_control(tmp_path, last_seq=0)


def test_poller_warns_once_per_bad_file_and_recovers(tmp_path: Path, caplog) -> None:
    poller = ControlPoller(tmp_path)
    assert poller.poll() is None
    (tmp_path / "control.json").write_text('{"seq": 1, "pause": "maybe"}')
    with caplog.at_level(logging.WARNING, logger="core.rundir.control"):
        assert poller.poll() is None
        assert poller.poll() is None
        assert poller.poll() is None
    assert len([m for m in caplog.messages if "control.json" in m]) == 1
    # The GUI replaces the bad file; min_seq keeps the new request newer than what was applied.
    with caplog.at_level(logging.WARNING, logger="core.rundir.control"):
        written = write_control(tmp_path, ControlRequest(pause=True), min_seq=5)
    assert written.seq == 5 and any("replacing it" in m for m in caplog.messages)
    req = poller.poll()
    assert req is not None and req.seq == 5 and req.pause and poller.last_seq == 5
    assert poller.poll() is None


def test_trainer_reports_applied_requests_to_the_gui(tmp_path: Path) -> None:
    """The full loop: GUI writes, trainer polls and applies, GUI sees "applied"."""
    writer = RunWriter(tmp_path)
    reader = RunReader(tmp_path)
    gui_req = write_control(tmp_path, ControlRequest(aug_multipliers={"rotate90": 0.0}))
    assert not reader.control_applied(gui_req.seq)
    poller = ControlPoller(tmp_path, start_seq=reader.control_last_applied())
    req = poller.poll()
    assert req is not None
    writer.control_applied(12.0, req.seq, req.changes())
    assert reader.control_applied(gui_req.seq)
    event = [e for e in reader.poll_events() if e["kind"] == "control"][0]
    assert event == {**event, "seq": 1, "applied": {"aug_multipliers": {"rotate90": 0.0}}, "kimg": 12.0}
    # A trainer restarted in this directory starts after what was applied: nothing to re-apply.
    assert ControlPoller(tmp_path, start_seq=RunReader(tmp_path).control_last_applied()).poll() is None


def test_control_file_is_plain_json(tmp_path: Path) -> None:
    write_control(tmp_path, ControlRequest(snapshot_now=True, target=0.6))
    doc = json.loads((tmp_path / "control.json").read_text())
    assert doc["seq"] == 1 and doc["snapshot_seq"] == 1 and doc["target"] == 0.6
    assert "snapshot_now" not in doc
