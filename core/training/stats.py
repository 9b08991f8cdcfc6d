"""Training statistics: running moments reported by the loss and read by several consumers.

The loss reports tensors (``Loss/G/loss``, ``Loss/signs/real``, ...) without forcing a device
sync; moments accumulate on the device. Each consumer (the ADA controller every few minibatches,
the live "stats" event every couple of seconds, the per-tick summary) owns a ``StatsReader`` that
returns what was reported since its own previous read, optionally summed over all ranks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from core.rundir import schema
from core.training.distributed import DistEnv, all_reduce_sum_

# Every name any rank may report: ranks reduce the same fixed-size table.
PHASE_NAMES: tuple[str, ...] = ("Gmain", "Greg", "Dmain", "Dreg")
STAT_NAMES: tuple[str, ...] = (
    schema.STAT_LOSS_G, schema.STAT_LOSS_G_REG, schema.STAT_LOSS_D, schema.STAT_LOSS_D_REG,
    schema.STAT_R1, schema.STAT_PL,
    schema.STAT_SCORES_REAL, schema.STAT_SCORES_FAKE, schema.STAT_RT, schema.STAT_SIGNS_FAKE,
    *(schema.timing_stat(phase) for phase in PHASE_NAMES),
)


@dataclass(frozen=True)
class Stat:
    num: float
    mean: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return {"num": self.num, "mean": self.mean, "std": self.std}


class StatsBank:
    """Cumulative [count, sum, sum of squares] per name, in float64 on the training device."""

    def __init__(self, device: torch.device, names: Sequence[str] = STAT_NAMES) -> None:
        self.names = tuple(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.totals = torch.zeros([len(self.names), 3], dtype=torch.float64, device=device)
        self.lock = threading.Lock()  # a reader may run in another thread (the stats heartbeat)

    def report(self, name: str, values: torch.Tensor | float) -> None:
        row = self._index.get(name)
        if row is None:
            raise KeyError(f"stats: {name!r} is not a known statistic (add it to STAT_NAMES)")
        if not isinstance(values, torch.Tensor):
            values = torch.tensor(float(values), dtype=torch.float64)
        v = values.detach().flatten().to(device=self.totals.device, dtype=torch.float64)
        # Non-finite values are left out of the moments (masking by where, not indexing: no sync).
        finite = torch.isfinite(v)
        v = torch.where(finite, v, torch.zeros_like(v))
        moments = torch.stack([finite.sum().to(torch.float64), v.sum(), v.square().sum()])
        with self.lock:
            self.totals[row].add_(moments)


class StatsReader:
    """Returns the statistics reported since this reader's previous ``read()``."""

    def __init__(self, bank: StatsBank, env: DistEnv | None = None, names: Sequence[str] | None = None) -> None:
        self.bank = bank
        self.env = env  # None: this rank's numbers only (no collective, callable at any time)
        self.rows = [bank.names.index(n) for n in (names or bank.names)]
        self.names = [bank.names[r] for r in self.rows]
        self._prev = self._cumulative()

    def _cumulative(self) -> torch.Tensor:
        with self.bank.lock:
            t = self.bank.totals[self.rows].clone()
        if self.env is not None:
            all_reduce_sum_(t, self.env)
        return t

    def read(self) -> dict[str, Stat]:
        cur = self._cumulative()
        delta = (cur - self._prev).cpu().tolist()
        self._prev = cur
        out = {}
        for name, (num, s, sq) in zip(self.names, delta, strict=True):
            if num <= 0:
                continue
            mean = s / num
            out[name] = Stat(num=num, mean=mean, std=math.sqrt(max(sq / num - mean**2, 0.0)))
        return out

    def reset(self) -> None:
        """Forget what was reported so far (e.g. after a pause)."""
        self._prev = self._cumulative()


class PhaseTimer:
    """Wall time per training phase in ms, reported as ``Timing/<phase>``.

    On CUDA the phases are timed with events, resolved lazily at ``flush()`` so timing never
    forces a sync in the middle of an iteration.
    """

    def __init__(self, bank: StatsBank, device: torch.device) -> None:
        self.bank = bank
        self.cuda = device.type == "cuda"
        self._pending: list[tuple[str, torch.cuda.Event, torch.cuda.Event]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._pending.append((name, start, end))
            return
        t0 = time.perf_counter()
        yield
        self.bank.report(schema.timing_stat(name), (time.perf_counter() - t0) * 1000.0)

    def flush(self) -> None:
        for name, start, end in self._pending:
            end.synchronize()
            self.bank.report(schema.timing_stat(name), start.elapsed_time(end))
        self._pending.clear()


__all__ = ["PHASE_NAMES", "STAT_NAMES", "PhaseTimer", "Stat", "StatsBank", "StatsReader"]
