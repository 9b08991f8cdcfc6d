"""A background thread that runs the newest submitted job only (for previews that use torch).

The GUI thread submits ``(key, fn)``; a newer submission replaces one still waiting, and a
finished job whose key is no longer the newest is dropped, so a slider dragged across its range
costs one job at a time and never shows an old picture after a newer one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["JobResult", "LatestWorker"]


@dataclass
class JobResult:
    key: Hashable
    value: Any
    error: str | None
    ms: float


class LatestWorker:
    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._pending: tuple[Hashable, Callable[[], Any]] | None = None
        self._newest: Hashable | None = None
        self._result: JobResult | None = None
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, fn: Callable[[], Any]) -> None:
        with self._cond:
            self._pending = (key, fn)
            self._newest = key
            self._cond.notify()

    def poll(self) -> JobResult | None:
        """The newest finished job not handed out yet, if any."""
        with self._cond:
            result, self._result = self._result, None
        return result

    def idle(self) -> bool:
        with self._cond:
            return not self._busy and self._pending is None

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or self._pending is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._pending is None:
                    self._cond.wait()
                if self._stop:
                    return
                (key, fn), self._pending = self._pending, None
                self._busy = True
            t0 = time.perf_counter()
            try:
                value, error = fn(), None
            except Exception as exc:  # shown in the panel; the GUI outlives a bad dataset
                log.debug("job %r failed", key, exc_info=True)
                lines = str(exc).strip().splitlines()
                value, error = None, f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
            result = JobResult(key, value, error, (time.perf_counter() - t0) * 1e3)
            with self._cond:
                if key == self._newest:
                    self._result = result
                self._busy = False
                self._cond.notify_all()
