"""The generator the views show: a snapshot, a public .pkl, or a run directory whose newest weights
(live/ or the latest snapshot) it follows. Loads run on the renderer's worker thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from viz.renderer import LoadedModel, Renderer, newest_run_weights
from viz.widgets.snapshot import SnapshotState

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 1.0  # how often a followed run directory is checked for newer weights


class ModelSource:
    """Opens sources and follows run directories; ``model`` is the newest generator that loaded.

    ``attach_run`` is called with a run directory that is opened (the GUI then monitors it too);
    ``message`` gets a status-bar line for every load.
    """

    def __init__(self, renderer: Renderer, state: SnapshotState, attach_run: Callable[[str], None],
                 message: Callable[[str], None]) -> None:
        self.renderer = renderer
        self.state = state
        self.attach_run = attach_run
        self.message = message
        self.model: LoadedModel | None = None
        self._follow_at = 0.0
        self._follow_loaded: str | None = None

    def open(self, path: str) -> None:
        """Open a snapshot, a public .pkl, or a run directory (whose newest weights are then followed)."""
        from viz.settings import push_recent

        path = str(Path(path).expanduser())
        snap = self.state
        snap.source, snap.error, snap.path_input, snap.loaded_file = path, None, path, None
        self._follow_loaded, self._follow_at = None, 0.0
        if not Path(path).exists():
            snap.error = f"{path}: no such file or directory; give a snapshot, a .pkl or a run directory"
            return
        snap.recent = push_recent(path)
        if Path(path).is_dir():
            self.attach_run(path)
            self.follow(time.monotonic())
            return
        snap.loading = True
        self.renderer.load(path)

    def follow(self, now: float) -> None:
        """For a run directory: load its newest weights (live/ or the latest snapshot) when they change."""
        snap = self.state
        if not snap.is_run_dir or not snap.follow_run or now < self._follow_at:
            return
        self._follow_at = now + FOLLOW_INTERVAL_S
        found = newest_run_weights(Path(snap.source))
        if found is None:
            if snap.loaded_file is None and not snap.loading:
                snap.error = (
                    f"{snap.source}: no snapshot or live weights yet; waiting for the trainer to write some"
                )
            return
        ident, path, fn = found
        if ident != self._follow_loaded:
            self._follow_loaded = ident
            snap.loading, snap.error = True, None
            self.renderer.load(path, fn)

    def loaded(self, status: Any) -> None:
        """A load finished (a renderer load status): take its model, or show its error."""
        snap = self.state
        snap.loading = False
        snap.load_ms = status.load_ms
        if status.model is None:
            snap.error = status.error
            self.message(f"could not load {status.path}: {status.error}")
            return
        self.model = status.model
        snap.error, snap.loaded_file, snap.description = None, status.model.path, status.model.description
        self.message(f"loaded {status.model.description} in {status.load_ms:.0f} ms")
