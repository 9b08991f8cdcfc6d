"""Rank 0's live numbers: the "stats" heartbeat, the live s/kimg, the tick summary and the progress line.

The heartbeat runs in its own thread and writes a "stats" event every ``stats_interval`` seconds,
however long a minibatch, a snapshot or a metric evaluation takes. Speed is measured over a
sliding window of (time, images) samples; time spent paused is not training time, so a pause
shifts the window and the tick clock forward (see :meth:`Telemetry.leave_out_pause`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from core.rundir import RunWriter
from core.rundir.schema import (
    LOSS_PREFIX,
    STAT_KIMG,
    STAT_LOSS_D,
    STAT_LOSS_G,
    STAT_P,
    STAT_PEAK_GPU_MEM,
    STAT_RT,
    STAT_RT_CONTROLLER,
    STAT_SEC_PER_KIMG,
    STAT_SEC_PER_TICK,
    STAT_TICK,
)
from core.training.stats import Stat, StatsReader

log = logging.getLogger(__name__)

# The live s/kimg is measured over this many seconds: a 2 s stats window holds only a few
# minibatches on a CPU, and whole minibatches per window make a jagged curve.
SPEED_WINDOW_S = 20.0


@dataclass
class Progress:
    """What a progress display needs, handed to ``Trainer.progress_fn`` after every minibatch."""

    kimg: float
    total_kimg: float
    tick: int
    sec_per_kimg: float
    p: float
    r_t: float | None
    paused: bool = False


@dataclass(frozen=True)
class TrainerSample:
    """The trainer's counters and augmentation state at one moment (what telemetry reports)."""

    cur_nimg: int
    tick: int
    tick_start_nimg: int
    p: float
    r_t: float | None
    paused: bool

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000


@dataclass
class Telemetry:
    """Live statistics of one trainer. ``sample`` returns the trainer's counters when called (from
    the heartbeat thread too: it must only read plain attributes). ``enabled``: rank 0 (the others
    keep the clocks but start no heartbeat)."""

    writer: RunWriter
    reader: StatsReader  # rank-local statistics since the last stats event
    stats_interval: float
    enabled: bool
    sample: Callable[[], TrainerSample]
    total_kimg: float

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        now = time.monotonic()
        self.tick_start_time = self.last_stats_time = now
        self.speed_samples: deque[tuple[float, int]] = deque([(now, 0)])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the heartbeat ------------------------------------------------------------------------

    def start(self) -> None:
        """Restart the clocks at the trainer's current counters and start the heartbeat (rank 0)."""
        now = time.monotonic()
        s = self.sample()
        self.tick_start_time = self.last_stats_time = now
        self.speed_samples = deque([(now, s.cur_nimg)])
        if self.enabled and self.stats_interval > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._heartbeat, name="stats-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)  # a daemon: never let a stuck stats write hold up the exit
            if self._thread.is_alive():
                log.warning("the stats heartbeat did not stop within 10 s; leaving it")
        self._thread = None

    def _heartbeat(self) -> None:
        interval = self.stats_interval
        while not self._stop.wait(min(max(interval / 10, 0.005), 0.1)):
            if time.monotonic() - self.last_stats_time >= 0.95 * interval:
                try:
                    self.emit(time.monotonic())
                except Exception:  # never take training down for a monitoring line
                    log.exception("stats event failed")

    def emit(self, now: float) -> None:
        """One "stats" event: the window's loss means, p, r_t, tick and the live s/kimg."""
        with self._lock:
            s = self.sample()
            stats = self.reader.read()
            values: dict[str, float] = {name: st.mean for name, st in stats.items() if name.startswith(LOSS_PREFIX)}
            values[STAT_P] = s.p
            values[STAT_TICK] = s.tick
            if s.r_t is not None:
                values[STAT_RT] = s.r_t
            speed = self.speed_samples
            if not s.paused:  # paused time is not training time: no samples, no speed (see leave_out_pause)
                speed.append((now, s.cur_nimg))
                while len(speed) > 2 and now - speed[1][0] >= SPEED_WINDOW_S:
                    speed.popleft()
                t_old, nimg_old = speed[0]
                if s.cur_nimg > nimg_old:
                    values[STAT_SEC_PER_KIMG] = (now - t_old) / ((s.cur_nimg - nimg_old) / 1000)
            self.writer.stats(s.kimg, values)
            self.last_stats_time = now

    # -- pauses and ticks -----------------------------------------------------------------------

    def leave_out_pause(self, t0: float, paused: float) -> None:
        """A pause from ``t0`` lasting ``paused`` seconds: shift the clocks that measure speed."""
        self.tick_start_time += paused
        with self._lock:  # samples from before the pause move forward; any taken since resuming stay
            # The pause ended when the flag went down, which may be before the pause loop noticed: a
            # sample taken since (the heartbeat's) marks that end, and the old samples move up to it, no further.
            resumed = [t for t, _ in self.speed_samples if t > t0]
            shift = min(resumed[0] - t0, paused) if resumed else paused
            self.speed_samples = deque((t + shift if t <= t0 else t, n) for t, n in self.speed_samples)

    def leave_out(self, seconds: float) -> None:
        """Time that is not training time (a metric evaluation): kept out of the tick's s/kimg."""
        self.tick_start_time += seconds

    def tick_values(self, stats: dict[str, Stat], device: torch.device) -> dict[str, float]:
        """The tick's summary: stat means plus progress, p, r_t and timing (the "tick" event's fields)."""
        s = self.sample()
        tick_s = time.monotonic() - self.tick_start_time
        tick_kimg = (s.cur_nimg - s.tick_start_nimg) / 1000
        values = {name: st.mean for name, st in stats.items()}
        values.update({STAT_TICK: s.tick, STAT_KIMG: s.kimg, STAT_P: s.p, STAT_SEC_PER_TICK: tick_s,
                       STAT_SEC_PER_KIMG: tick_s / tick_kimg if tick_kimg > 0 else 0.0})
        if s.r_t is not None:
            values[STAT_RT_CONTROLLER] = s.r_t
        if device.type == "cuda":
            values[STAT_PEAK_GPU_MEM] = torch.cuda.max_memory_allocated(device) / 2**30
            torch.cuda.reset_peak_memory_stats(device)
        log.info("tick %d  kimg %.3f  sec/tick %.1f  sec/kimg %.2f  p %.4f  r_t %s  G %.3f  D %.3f",
                 s.tick, s.kimg, tick_s, values[STAT_SEC_PER_KIMG], s.p,
                 f"{s.r_t:.3f}" if s.r_t is not None else "-",
                 values.get(STAT_LOSS_G, math.nan), values.get(STAT_LOSS_D, math.nan))
        return values

    def restart_tick_clock(self) -> None:
        self.tick_start_time = time.monotonic()

    def progress(self) -> Progress:
        s = self.sample()
        elapsed = time.monotonic() - self.tick_start_time
        kimg_done = (s.cur_nimg - s.tick_start_nimg) / 1000
        spk = elapsed / kimg_done if kimg_done > 0 else float("nan")
        return Progress(s.kimg, self.total_kimg, s.tick, spk, s.p, s.r_t, s.paused)


def tick_event_fields(values: dict[str, float]) -> dict[str, Any]:
    """Event fields: the tick's means under their stat names."""
    return {k: float(v) for k, v in values.items()}
