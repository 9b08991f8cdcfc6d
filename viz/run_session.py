"""The run the GUI watches: attaching, the trainer it started, the monitor's data and control requests."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from viz.panel import SendAugment
from viz.run_client import RunClient
from viz.widgets.augment_preview import AugmentPreviewState
from viz.widgets.training_control import ControlAction, TrainingControlState
from viz.widgets.training_monitor import MonitorState, ingest_ancestors, refresh

log = logging.getLogger(__name__)

LAUNCH_CHECK_S = 0.25  # how often a started trainer's output folder is looked at for its run directory


class RunSession:
    """One RunClient and what the panels show of it (monitor, control messages, sent augmentation)."""

    def __init__(self, monitor: MonitorState, control: TrainingControlState, augment: AugmentPreviewState,
                 message: Callable[[str], None]) -> None:
        self.client = RunClient()
        self.monitor = monitor
        self.control = control
        self.augment = augment
        self.message = message
        self._launch_checked = 0.0

    @property
    def run_dir(self) -> Path | None:
        return self.client.run_dir

    def attach(self, run_dir: str, quiet: bool = False) -> None:
        """Watch ``run_dir`` (remembered for the next start); errors go to the control panel unless quiet."""
        from viz.settings import load_session, save_session

        try:
            self.client.attach(run_dir)
        except ValueError as exc:
            if not quiet:
                self.control.error = str(exc)
            return
        self.monitor.clear()
        if self.client.reader is not None:
            ingest_ancestors(self.monitor, self.client.reader)
        self.control.error, self.control.message = None, f"attached to {run_dir}"
        session = load_session()
        session.last_run_dir = str(Path(run_dir).resolve())
        save_session(session)

    def attach_at_start(self, run_dir: str | None, attach_last: bool) -> None:
        """The run named on the command line, else (if asked) the run watched last time."""
        from viz.settings import load_session

        if run_dir:
            self.attach(run_dir)
        elif self.client.reader is None and attach_last:
            last = load_session().last_run_dir
            if last and Path(last).is_dir():
                self.attach(last, quiet=True)
                if self.client.reader is not None:
                    self.message(f"re-attached to {last} (the run watched last time)")

    def update(self, now: float) -> None:
        """Once a frame: attach a started trainer's run directory once it appears, read new events."""
        started = None
        if self.client.starting and now - self._launch_checked >= LAUNCH_CHECK_S:
            self._launch_checked = now
            started = self.client.check_launch()
        if started is not None:
            self.attach(str(started))
            self.control.message = f"training in {started}"
        if self.client.error:
            self.control.error, self.client.error = self.client.error, None
        events = refresh(self.monitor, self.client.reader, now)
        aug = self.augment
        if aug.sent_seq is not None and aug.sent_kimg is None:
            aug.sent_kimg = self.client.applied_at(aug.sent_seq, events)

    def perform(self, act: ControlAction) -> None:
        """Do what the Training control panel asked for; errors go to the panel, not stderr."""
        c, ctl = self.client, self.control
        try:
            if act.start:
                c.start(ctl.start)
                ctl.error, ctl.message = None, f"starting train_headless.py (pid {c.proc.pid}) ..."
            if act.attach:
                self.attach(act.attach)
            if act.detach:
                c.detach()
                self.monitor.clear()
                ctl.message = "detached; the run goes on"
            for flag, verb, fn in (
                (act.pause, "pause", c.pause),
                (act.resume, "resume", c.resume),
                (act.stop, "stop", c.stop),
                (act.snapshot, "snapshot", c.snapshot_now),
            ):
                if flag:
                    seq = fn()
                    ctl.error, ctl.message = None, f"asked the trainer to {verb} (request {seq})"
        except (OSError, ValueError) as exc:
            ctl.error = str(exc)

    def send_augment(self, intent: SendAugment) -> None:
        aug = self.augment
        try:
            aug.sent_seq = self.client.send_augment(intent.multipliers, intent.mode, intent.target, intent.p)
            aug.sent_kimg = None
            self.message(f"sent augmentation settings as request {aug.sent_seq}")
        except (OSError, ValueError) as exc:
            aug.error = str(exc)

    def status_text(self) -> str | None:
        """The status bar's run part, or None when no run is attached."""
        if self.client.run_dir is None:
            return None
        st = self.monitor.status
        return f"run {self.client.run_dir.name}: {st.state if st else '...'} {self.monitor.kimg:.1f} kimg"

    def goodbye(self) -> str | None:
        """What to tell the user when the GUI closes while the run goes on (closing never stops it)."""
        st = self.client.status()
        alive = self.client.trainer_running() or (
            st is not None and st.state in ("running", "paused") and not st.stale
        )
        if self.client.run_dir is None or not alive:
            return None
        pid = f" (pid {self.client.proc.pid})" if self.client.trainer_running() else ""
        return (f"launch_viz: training continues in the background in {self.client.run_dir}{pid}; "
                "start launch_viz.py again to re-attach")

    def summary(self) -> dict[str, Any]:
        return {"message": self.control.message, "error": self.control.error}
