"""The one panel protocol: every control panel is a small class drawing from its own state and
returning intents; the app's --panels names are the panels' own."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from viz.app import DEFAULT_PANELS, AppOptions, build_panels
from viz.panel import Scene
from viz.run_client import RunClient
from viz.widgets.training_control import ControlAction
from viz.widgets.training_monitor import MonitorState, refresh


def test_every_panel_follows_the_protocol_and_the_cli_names_them(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # the recent list is read from the user's config
    panels = build_panels(AppOptions())
    names = [p.name for p in panels]
    assert len(set(names)) == len(names) and set(DEFAULT_PANELS) <= set(names)
    assert len({p.title for p in panels}) == len(panels)
    for panel in panels:
        params = list(inspect.signature(panel.draw).parameters)
        assert params == ["ctx", "scene"], type(panel).__name__
        assert panel.state is not None  # each owns a typed state


def test_a_control_action_is_an_intent_only_when_something_was_clicked() -> None:
    assert not ControlAction().any()
    assert ControlAction(pause=True).any() and ControlAction(attach="runs/00001-x").any()


def test_scene_knows_whether_a_run_is_attached() -> None:
    assert not Scene().run_attached and Scene(run_dir=Path("runs/00001-x")).run_attached


def test_monitor_refresh_reads_the_reader_it_is_given(tmp_path: Path) -> None:
    # It used to take the RunClient and poll it, which swapped in a just-started run's reader as a
    # side effect; now the session attaches a started run explicitly (RunClient.check_launch).
    from core.rundir import RunReader, RunWriter
    from core.rundir.schema import STAT_P

    with RunWriter(tmp_path, background=False) as w:
        w.stats(0.5, {STAT_P: 0.25})
        w.status("started", 0.5)
    state = MonitorState()
    assert refresh(state, None, now=100.0) == []
    events = refresh(state, RunReader(tmp_path), now=100.0)
    assert [e["kind"] for e in events] == ["stats", "status"]
    assert state.series[STAT_P].values == [0.25] and state.status is not None
    assert refresh(state, RunReader(tmp_path), now=100.1) == []  # within poll_s: not read again
    client = RunClient()
    assert client.check_launch() is None and client.poll() == []  # nothing started, nothing attached
