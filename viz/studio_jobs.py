"""The GUI's studio tools (video export, projection): core.studio's code, each run on a thread of its own.

The GUI thread only starts a job and reads its status; the work (loading G, rendering, encoding,
optimising) is the command-line tools' code, so what a panel writes is what ``python -m
core.studio video|project`` writes with the same options. While it runs, the work reports its
progress (frames written, projection steps with their distance and the image the step scored)
through :meth:`StudioJob.report`; the panels draw the newest report.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.studio.common import StudioError

log = logging.getLogger(__name__)

__all__ = ["JobProgress", "JobStatus", "Report", "StudioJob", "progress_summary", "project_job", "video_job"]

IMAGE_EVERY_S = 0.1  # a live image is converted for the GUI at most this often (the steps run faster)


@dataclass(frozen=True)
class JobProgress:
    """How far a running job is: ``done`` of ``total`` ``unit``s, and what the last one showed."""

    done: int
    total: int
    unit: str  # "frames", "steps"
    distance: float | None = None  # projection: the last step's distance to the target
    image: np.ndarray | None = field(default=None, compare=False)  # projection: target | current, uint8 HWC
    started: float = 0.0  # time.monotonic() of the first report (for the rate and the time left)

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total > 0 else 0.0

    def line(self, now: float) -> str:
        """``120 / 240 frames, 31 s left`` (the time left once a few units are done)."""
        text = f"{self.done} / {self.total} {self.unit}"
        if self.distance is not None:
            text += f", distance {self.distance:.4g}"
        elapsed = now - self.started  # since unit 1 was done: loading and set-up are not in the rate
        if self.done >= 3 and elapsed > 0 and self.done < self.total:
            text += f", {elapsed * (self.total - self.done) / (self.done - 1):.0f} s left"
        return text


@dataclass(frozen=True)
class JobStatus:
    running: bool = False
    message: str = ""  # one line: what is being written, what was written, or why it failed
    error: bool = False
    done: int = 0  # jobs finished without error so far (a panel notices a new result by it)
    progress: JobProgress | None = None  # the running job's newest report (kept after it ends)


def progress_summary(progress: JobProgress | None) -> dict[str, object] | None:
    """A JSON-able picture of a report (the app's --debug-state): counts, distance, the image's digest."""
    if progress is None:
        return None
    image = progress.image
    return {
        "done": progress.done, "total": progress.total, "unit": progress.unit, "distance": progress.distance,
        "image_md5": hashlib.md5(image.tobytes()).hexdigest() if image is not None else None,
        "image_shape": list(image.shape) if image is not None else None,
    }  # fmt: skip


Report = Callable[[JobProgress], None]
Work = Callable[[Report], str]


class StudioJob:
    """One job at a time; ``start``, ``status`` and ``wait`` are for the GUI thread, ``report`` for the job's."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._thread: threading.Thread | None = None

    def start(self, what: str, work: Work) -> bool:
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

    def report(self, progress: JobProgress) -> None:
        """The work's newest progress (any thread); it replaces the one before."""
        with self._lock:
            self._status = replace(self._status, progress=progress)

    def wait(self, timeout: float) -> bool:
        """True once no job runs (tests and offscreen frames)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _set(self, status: JobStatus) -> None:
        with self._lock:
            self._status = status

    def _run(self, work: Work) -> None:
        done = self.status().done
        try:
            message = work(self.report)
        except StudioError as exc:
            self._set(JobStatus(False, str(exc), error=True, done=done, progress=self.status().progress))
        except Exception as exc:  # a failed job must not take the GUI down; say why in one line
            log.exception("%s failed", self._name)
            failed = f"{self._name} failed: {type(exc).__name__}: {exc}"
            self._set(JobStatus(False, failed, error=True, done=done, progress=self.status().progress))
        else:
            self._set(JobStatus(False, message, done=done + 1, progress=self.status().progress))


def video_job(opts: object) -> Work:
    """The latent walk of ``opts`` (core.studio.video.VideoOptions), reporting each frame written."""
    from core.studio.video import run_video

    def work(report: Report) -> str:
        started: list[float] = []

        def on_frame(done: int, total: int) -> None:
            started[:] = started or [time.monotonic()]
            report(JobProgress(done, total, "frames", started=started[0]))

        out, count = run_video(opts, on_frame)  # type: ignore[arg-type]
        return f"wrote {count} frames to {out}"

    return work


def project_job(opts: object) -> Work:
    """The projection of ``opts`` (core.studio.project.ProjectOptions), reporting each step.

    Each report carries the step's distance; at most every IMAGE_EVERY_S (and at the last step)
    also the target beside the image that step scored, so the panel can show it converge."""
    from core.studio.project import run_project

    def work(report: Report) -> str:
        watcher = _ProjectionWatcher(report, Path(opts.target))  # type: ignore[attr-defined]
        written = run_project(opts, watcher.on_step)  # type: ignore[arg-type]
        return f"wrote {', '.join(p.name for p in written)} to {written[0].parent}"

    return work


class _ProjectionWatcher:
    """Turns the projector's per-step callback into JobProgress reports (on the job's thread)."""

    def __init__(self, report: Report, target: Path) -> None:
        self.report, self.target_file = report, target
        self.started = 0.0
        self.target: np.ndarray | None = None
        self.image: np.ndarray | None = None
        self.image_at = -1.0

    def on_step(self, step: int, total: int, distance: float, synth: object) -> None:
        now = time.monotonic()
        self.started = self.started or now
        if step == total or now - self.image_at >= IMAGE_EVERY_S:
            self.image, self.image_at = self._side_by_side(synth), now
        self.report(JobProgress(step, total, "steps", distance, self.image, self.started))

    def _side_by_side(self, synth: object) -> np.ndarray:
        import torch

        from core.studio.project import load_target

        assert isinstance(synth, torch.Tensor)
        current = synth[0].permute(1, 2, 0).clamp(0, 255).to(torch.uint8).cpu().numpy()
        if self.target is None:  # the target as the projector sees it (cropped, resized)
            res, channels = current.shape[0], current.shape[2]
            self.target = load_target(self.target_file, res, channels)
        return np.concatenate([self.target, current], axis=1)
