"""One background thread where the newest job wins and urgent jobs go first: the GUI's renders and
loads (that thread alone owns the GUI's torch calls) and the run directory's slow writes.

A caller hands jobs ``(key, fn)`` to :class:`LatestWorker`; one that wants results polls for them
(the GUI, once per frame); one that runs jobs for their effect only passes ``keep_results=False``.

Two lanes feed it:

- the latest-wins lane (:meth:`LatestWorker.submit`): a newer submission replaces one still
  waiting, and a finished job whose key is no longer the newest is dropped (and counted in
  ``dropped``) unless the optional ``keep(result_key, newest_key)`` predicate says it is still
  worth showing. A slider dragged across its range so costs one job at a time and never shows
  an old picture after a newer one.
- the priority lane (:meth:`LatestWorker.submit_priority`): its jobs run before any waiting
  latest-wins job, oldest first, and every one of their results is handed out, e.g. model loads
  whose outcome the GUI must see even when a render or another load follows.

A job that finds it has nothing to hand out (say, its input went away) raises :class:`NoResult`;
any other exception becomes the result's one-line ``error``, so the GUI outlives bad input.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["JobResult", "KeepRule", "LatestWorker", "NoResult"]

KeepRule = Callable[[Hashable, Hashable], bool]


class NoResult(Exception):
    """Raised by a job that has nothing to hand out; the worker then hands out nothing for it."""


@dataclass
class JobResult:
    key: Hashable
    value: Any
    error: str | None
    ms: float  # time spent in the job's fn
    submitted_at: float = 0.0  # perf_counter() of the submit that asked for it
    finished_at: float = 0.0  # perf_counter() when the fn returned


@dataclass
class _Job:
    key: Hashable
    fn: Callable[[], Any]
    submitted_at: float
    priority: bool


class LatestWorker:
    """A worker thread with a latest-wins lane and a priority lane; all methods are for the GUI thread.

    ``keep(result_key, newest_key)`` decides whether a superseded latest-wins result is still
    handed out (default: never); it runs under the worker's lock, so keep it cheap.
    ``priority_backlog`` caps how many priority jobs may wait (None: no cap); when full, a newer
    submission pushes out the oldest waiting one, which then never runs.
    ``on_result`` is called on the worker thread whenever a result is ready to poll (the GUI passes
    a function that wakes its event loop, so an idle window shows the result at once).
    """

    def __init__(self, name: str, keep: KeepRule | None = None, priority_backlog: int | None = None,
                 keep_results: bool = True, on_result: Callable[[], None] | None = None) -> None:
        if priority_backlog is not None and priority_backlog < 1:
            raise ValueError(f"LatestWorker priority_backlog={priority_backlog}: give None or at least 1")
        self._keep = keep
        self._keep_results = keep_results  # False: jobs run for their effect; nothing is handed out
        self._on_result = on_result
        self._cond = threading.Condition()
        self._priority: deque[_Job] = deque(maxlen=priority_backlog)
        self._pending: _Job | None = None
        self._newest: Hashable | None = None
        self._result: JobResult | None = None
        self._priority_results: list[JobResult] = []
        self._dropped = 0
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, fn: Callable[[], Any]) -> None:
        """Latest-wins lane: replaces the job still waiting there, if any."""
        with self._cond:
            self._pending = _Job(key, fn, time.perf_counter(), priority=False)
            self._newest = key
            self._cond.notify()

    def submit_priority(self, key: Hashable, fn: Callable[[], Any]) -> None:
        """Priority lane: runs before any waiting latest-wins job; its result is never dropped."""
        with self._cond:
            self._priority.append(_Job(key, fn, time.perf_counter(), priority=True))
            self._cond.notify()

    def poll(self) -> JobResult | None:
        """The newest latest-wins result not handed out yet, if any (see :meth:`poll_all`)."""
        with self._cond:
            result, self._result = self._result, None
        return result

    def poll_all(self) -> tuple[list[JobResult], JobResult | None]:
        """Priority results not handed out yet (oldest first) and :meth:`poll`'s result, taken at once."""
        with self._cond:
            urgent, self._priority_results = self._priority_results, []
            result, self._result = self._result, None
        return urgent, result

    @property
    def dropped(self) -> int:
        """Finished latest-wins results dropped so far because a newer job superseded them."""
        with self._cond:
            return self._dropped

    def idle(self) -> bool:
        with self._cond:
            return not self._has_work()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no job is waiting or running (``timeout`` None: however long that takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._has_work():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Stop after the job now running (waiting jobs never run) and join the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _has_work(self) -> bool:
        return self._busy or self._pending is not None or bool(self._priority)

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            result, handed_out = None, False
            try:
                result = _execute(job)
            finally:  # even a BaseException from a job must not leave wait_idle() waiting forever
                with self._cond:
                    if result is not None and self._keep_results:
                        handed_out = self._hand_out(job, result)
                    self._busy = False
                    self._cond.notify_all()
            if handed_out and self._on_result is not None:
                self._on_result()

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._stop and self._pending is None and not self._priority:
                self._cond.wait()
            if self._stop:
                return None
            if self._priority:
                job = self._priority.popleft()
            else:
                job, self._pending = self._pending, None
            self._busy = True
            return job

    def _hand_out(self, job: _Job, result: JobResult) -> bool:
        """Caller holds the lock. Whether the result is kept for a poll (False: dropped)."""
        if job.priority:
            self._priority_results.append(result)
        elif job.key == self._newest or (self._keep is not None and self._keep(job.key, self._newest)):
            self._result = result
        else:
            self._dropped += 1
            return False
        return True


def _execute(job: _Job) -> JobResult | None:
    t0 = time.perf_counter()
    try:
        value, error = job.fn(), None
    except NoResult:
        return None
    except Exception as exc:  # shown in the GUI; it must outlive a bad file or dataset
        log.debug("job %r failed", job.key, exc_info=True)
        lines = str(exc).strip().splitlines()
        value, error = None, f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    t1 = time.perf_counter()
    return JobResult(job.key, value, error, (t1 - t0) * 1e3, job.submitted_at, t1)
