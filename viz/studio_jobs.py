"""The GUI's studio tools (video export, projection): core.studio's code, each run on a thread of its own.

The GUI thread only starts a job and reads its status; the work (loading G, rendering, encoding,
optimising) is the command-line tools' code, so what a panel writes is what ``python -m
core.studio video|project`` writes with the same options.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.studio.common import StudioError

log = logging.getLogger(__name__)

__all__ = ["JobStatus", "StudioJob", "project_job", "video_job"]


@dataclass(frozen=True)
class JobStatus:
    running: bool = False
    message: str = ""  # one line: what is being written, what was written, or why it failed
    error: bool = False
    done: int = 0  # jobs finished without error so far (a panel notices a new result by it)


class StudioJob:
    """One job at a time; all methods are for the GUI thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._thread: threading.Thread | None = None

    def start(self, what: str, work: Callable[[], str]) -> bool:
        """Run ``work`` (it returns the line to show when done); False while another job runs."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._set(JobStatus(True, f"{what} ...", done=self.status().done))
        self._thread = threading.Thread(target=self._run, args=(work,), name=f"viz-{self._name}", daemon=True)
        self._thread.start()
        return True

    def status(self) -> JobStatus:
        with self._lock:
            return self._status

    def wait(self, timeout: float) -> bool:
        """True once no job runs (tests and offscreen frames)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _set(self, status: JobStatus) -> None:
        with self._lock:
            self._status = status

    def _run(self, work: Callable[[], str]) -> None:
        done = self.status().done
        try:
            message = work()
        except StudioError as exc:
            self._set(JobStatus(False, str(exc), error=True, done=done))
        except Exception as exc:  # a failed job must not take the GUI down; say why in one line
            log.exception("%s failed", self._name)
            self._set(JobStatus(False, f"{self._name} failed: {type(exc).__name__}: {exc}", error=True, done=done))
        else:
            self._set(JobStatus(False, message, done=done + 1))


def video_job(opts: object) -> Callable[[], str]:
    """The latent walk of ``opts`` (core.studio.video.VideoOptions)."""
    from core.studio.video import run_video

    def work() -> str:
        out, count = run_video(opts)  # type: ignore[arg-type]
        return f"wrote {count} frames to {out}"

    return work


def project_job(opts: object) -> Callable[[], str]:
    """The projection of ``opts`` (core.studio.project.ProjectOptions)."""
    from core.studio.project import run_project

    def work() -> str:
        written = run_project(opts)  # type: ignore[arg-type]
        return f"wrote {', '.join(p.name for p in written)} to {written[0].parent}"

    return work
