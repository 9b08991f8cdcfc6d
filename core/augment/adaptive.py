"""The adaptive augmentation probability: ADA's (and APA's) p controller.

Overfitting heuristic r_t = E[sign(D(x_real))] over the real images D saw since the last update.
Every ``interval`` batches: p <- clamp(p + sign(r_t - target) * batch * interval / (kimg * 1000),
0, p_max), so p can move by 1.0 in ``kimg`` thousand real images. Unlike the public tool, p is
capped (p_max, default 1): above 1 every op always fires and augmentations leak into G.

Training-loop use (one call per iteration, with the signs of D's main real pass)::

    ctrl = AdaController(target=0.6)
    ...
    ctrl.update(real_logits.sign(), batch_size=global_batch, cur_nimg=cur_nimg)
    ctrl.apply(augment_pipe)                  # copies p into pipe.p
    # more real passes in the same iteration (e.g. the R1 pass): ctrl.observe(logits.sign())

Under DDP every rank calls ``update`` at the same iterations; the accumulated [sum, count] is
all-reduced over ranks (when torch.distributed is initialised) before r_t is formed, so all ranks
get the same p. ``batch_size`` is the global batch (all ranks together).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from core.augment.modes import PMode, choices

STATE_VERSION = 1


def all_reduce_sum(values: torch.Tensor) -> None:
    """In-place sum over ranks when running distributed (no-op otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)


def _finite(name: str, value: Any, lo: float, hi: float = math.inf) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"AdaController: {name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"AdaController: {name} must be in [{lo}, {hi}], got {value}")
    return value


class AdaController:
    """Adapts p from the sign of D's outputs on reals; see the module docstring."""

    def __init__(
        self,
        target: float = 0.6,
        interval: int = 4,
        kimg: float = 500,
        p_max: float = 1.0,
        mode: str = PMode.ADAPTIVE,
        p: float = 0.0,
        all_reduce: Callable[[torch.Tensor], None] | None = all_reduce_sum,
    ) -> None:
        if int(interval) != interval or interval < 1:
            raise ValueError(f"AdaController: interval must be a whole number >= 1, got {interval}")
        self.interval = int(interval)
        self.kimg = _finite("kimg", kimg, 1e-9)
        self._all_reduce = all_reduce
        self._target = _finite("target", target, -1.0, 1.0)
        self._p_max = _finite("p_max", p_max, 0.0)
        self._mode = PMode.ADAPTIVE.value
        self._p = 0.0
        self.mode = mode
        if self._mode != PMode.NOAUG:
            self.p = p
        self._r_t: float | None = None
        self._acc: torch.Tensor | None = None  # [sum of signs, count], on the signs' device
        self._acc_host = [0.0, 0.0]  # restored from a state dict, not yet merged into _acc
        self._batches = 0
        self.history: list[tuple[float, float, float]] = []  # (kimg, p, r_t) at every update

    # ---- settings (the GUI sends these through control.json) -------------------------------

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        """Sets p directly (the fixed p in mode 'fixed'; a manual nudge in mode 'ada')."""
        if self._mode == PMode.NOAUG:
            raise ValueError("AdaController: p cannot be set in mode 'noaug'; switch mode to 'fixed' or 'ada'")
        self._p = min(_finite("p", value, 0.0), self._p_max)

    @property
    def target(self) -> float:
        return self._target

    @target.setter
    def target(self, value: float) -> None:
        self._target = _finite("target", value, -1.0, 1.0)

    @property
    def p_max(self) -> float:
        return self._p_max

    @p_max.setter
    def p_max(self, value: float) -> None:
        self._p_max = _finite("p_max", value, 0.0)
        self._p = min(self._p, self._p_max)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in choices(PMode):
            raise ValueError(f"AdaController: mode must be one of {', '.join(choices(PMode))}, got {value!r}")
        self._mode = PMode(value).value
        if self._mode == PMode.NOAUG:
            self._p = 0.0

    def set_fixed(self, p: float) -> None:
        """Mode 'fixed' with this p (r_t is still measured)."""
        self.mode = PMode.FIXED
        self.p = p

    @property
    def r_t(self) -> float | None:
        """The heuristic at the last update (None before the first)."""
        return self._r_t

    @property
    def step_size(self) -> float:
        """|dp| per update for a global batch of one image."""
        return self.interval / (self.kimg * 1000)

    # ---- measurement and update ---------------------------------------------------------------

    def observe(self, signs_real: torch.Tensor) -> None:
        """Accumulates sign(D(real)) of one real pass (any shape; no host sync)."""
        signs = signs_real.detach().flatten().to(torch.float64)
        batch = torch.stack([signs.sum(), torch.tensor(float(signs.numel()), dtype=torch.float64,
                                                       device=signs.device)])  # fmt: skip
        self._acc = batch if self._acc is None else self._acc + batch.to(self._acc.device)

    def update(self, signs_real: torch.Tensor | None, batch_size: int, cur_nimg: int) -> bool:
        """Observes ``signs_real`` (may be None), counts one batch, and every ``interval`` batches
        forms r_t and moves p. Returns True when an update happened."""
        if signs_real is not None:
            self.observe(signs_real)
        self._batches += 1
        if self._batches % self.interval != 0:
            return False
        acc = self._take_accumulator()
        if acc[1] <= 0:
            return False  # nothing observed this interval: keep p, do not invent an r_t
        self._r_t = acc[0] / acc[1]
        if self._mode == PMode.ADAPTIVE:
            step = math.copysign(1.0, self._r_t - self._target) if self._r_t != self._target else 0.0
            delta = step * batch_size * self.interval / (self.kimg * 1000)
            self._p = min(max(self._p + delta, 0.0), self._p_max)
        self.history.append((cur_nimg / 1000, self._p, self._r_t))
        return True

    def _take_accumulator(self) -> list[float]:
        if self._acc is None:
            acc = torch.zeros(2, dtype=torch.float64)
        else:
            acc = self._acc
        acc = acc + torch.tensor(self._acc_host, dtype=torch.float64, device=acc.device)
        if self._all_reduce is not None:
            self._all_reduce(acc)
        self._acc, self._acc_host = None, [0.0, 0.0]
        return [float(v) for v in acc.cpu()]

    def apply(self, pipe: torch.nn.Module) -> None:
        """Copies p into an augmentation pipe's ``p`` buffer."""
        with torch.no_grad():
            pipe.p.fill_(self._p)  # type: ignore[union-attr]

    # ---- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for an exact resume (settings, p, accumulators, batch counter, history)."""
        acc = [0.0, 0.0] if self._acc is None else [float(v) for v in self._acc.cpu()]
        return {
            "version": STATE_VERSION,
            "mode": self._mode,
            "target": self._target,
            "interval": self.interval,
            "kimg": self.kimg,
            "p_max": self._p_max,
            "p": self._p,
            "r_t": self._r_t,
            "acc": [acc[0] + self._acc_host[0], acc[1] + self._acc_host[1]],
            "batches": self._batches,
            "history": [list(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"AdaController: state version {state.get('version')!r} is not supported (expected {STATE_VERSION})"
            )
        self.interval, self.kimg = int(state["interval"]), float(state["kimg"])
        self._target, self._p_max = float(state["target"]), float(state["p_max"])
        self._mode = str(state["mode"])
        self.mode = self._mode  # validates
        self._p = float(state["p"])
        self._r_t = None if state["r_t"] is None else float(state["r_t"])
        self._acc, self._acc_host = None, [float(v) for v in state["acc"]]
        self._batches = int(state["batches"])
        self.history = [(float(k), float(p), float(r)) for k, p, r in state["history"]]

    def __repr__(self) -> str:
        r_t = "n/a" if self._r_t is None else f"{self._r_t:.3f}"
        return f"AdaController(mode={self._mode}, p={self._p:.4f}, r_t={r_t}, target={self._target})"
