"""Video export from the GUI: core.studio.video's latent walk, run on a thread of its own.

The GUI thread only starts a job and reads its status; the walk (loading G, mapping the seeds,
rendering and encoding every frame) is the command-line tool's code, so a video made here is the
one ``python -m core.studio video`` makes with the same options.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from core.studio.common import StudioError
from core.studio.video import VideoOptions, run_video

log = logging.getLogger(__name__)

__all__ = ["ExportStatus", "VideoExporter"]


@dataclass(frozen=True)
class ExportStatus:
    running: bool = False
    message: str = ""  # one line: what is being written, what was written, or why it failed
    error: bool = False


class VideoExporter:
    """One export at a time; all methods are for the GUI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = ExportStatus()
        self._thread: threading.Thread | None = None

    def start(self, opts: VideoOptions) -> bool:
        """Start writing ``opts.out``; False (and nothing started) while another export runs."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._set(ExportStatus(True, f"writing {opts.out} ..."))
        self._thread = threading.Thread(target=self._run, args=(opts,), name="viz-video", daemon=True)
        self._thread.start()
        return True

    def status(self) -> ExportStatus:
        with self._lock:
            return self._status

    def wait(self, timeout: float) -> bool:
        """True once no export runs (tests and offscreen frames)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _set(self, status: ExportStatus) -> None:
        with self._lock:
            self._status = status

    def _run(self, opts: VideoOptions) -> None:
        try:
            out, count = run_video(opts)
        except StudioError as exc:
            self._set(ExportStatus(False, str(exc), error=True))
        except Exception as exc:  # a failed export must not take the GUI down; say why in one line
            log.exception("video export failed")
            self._set(ExportStatus(False, f"video export failed: {type(exc).__name__}: {exc}", error=True))
        else:
            self._set(ExportStatus(False, f"wrote {count} frames to {out}"))
