"""p, the controller that moves it, and the ADA pipe (if any) that uses it: one run's augmentation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from core.augment.modes import Mechanism
from core.training import distributed as dist_util
from core.training.config import TrainingSpec
from core.training.distributed import DistEnv

log = logging.getLogger(__name__)


class AugmentState:
    """p, the controller that moves it, and the ADA pipe (if any) that uses it; or DiffAugment.

    The controller always runs: in mode "ada" it adapts p (for ADA or APA, whichever this run
    uses), in "fixed" and "noaug" (also DiffAugment's) it leaves p alone but still measures r_t
    for the plots.
    """

    def __init__(self, spec: TrainingSpec, device: torch.device) -> None:
        from core.augment import AdaController, AugmentPipe
        from core.augment.diffaug import DiffAugment

        a = spec.augment
        self.kind = Mechanism(a.mode)  # the run's mechanism
        self.controller = AdaController(target=a.target if a.target is not None else 0.6, interval=a.interval,
                                        kimg=a.kimg, p_max=a.p_max, mode=self.kind.p_mode, p=a.p)
        self.pipe: AugmentPipe | None = None
        if a.pipe is not None:
            self.pipe = AugmentPipe.from_preset(a.pipe).to(device)
            self.pipe.set_multipliers(a.multipliers)
        # DiffAugment has no p and no state: the same random ops on every image D sees.
        self.diffaug = DiffAugment(a.diffaug_policy) if a.diffaug_policy else None
        self.sync()

    @property
    def p(self) -> float:
        return self.controller.p

    @property
    def r_t(self) -> float | None:
        return self.controller.r_t

    def apa_p(self) -> float:
        return self.controller.p

    def sync(self) -> None:
        """Copy p into the pipe (after any change of p)."""
        if self.pipe is not None:
            self.controller.apply(self.pipe)

    def step(self, batch: int, cur_nimg: int) -> None:
        """Once per minibatch, on every rank (the controller all-reduces its statistics)."""
        if self.controller.update(None, batch_size=batch, cur_nimg=cur_nimg):
            self.sync()

    def state_dict(self, env: DistEnv) -> dict[str, Any]:
        """The controller's state with its pending statistics summed over ranks (collective)."""
        state = self.controller.state_dict()
        acc = torch.tensor(state["acc"], dtype=torch.float64, device=env.device)
        state["acc"] = dist_util.all_reduce_sum_(acc, env).tolist()
        return state

    def load_state_dict(self, state: dict[str, Any], env: DistEnv,
                        overrides: Sequence[tuple[str, Any]] = ()) -> None:
        """Restores the controller, then sets each (setting, value) of ``overrides`` in order (the
        setters validate; a p_max caps p). See core.training.resume for which settings are overridden."""
        state = dict(state)
        if not env.is_main:  # the pending statistics were summed over ranks: rank 0 holds them all
            state["acc"] = [0.0, 0.0]
        self.controller.load_state_dict(state)
        for key, value in overrides:
            setattr(self.controller, key, value)
        self.sync()

    def set_multipliers(self, *layers: dict[str, float]) -> None:
        """Set the pipe's per-op multipliers, each dict over the one before (no pipe: nothing to set)."""
        if self.pipe is not None:
            for multipliers in layers:
                self.pipe.set_multipliers(multipliers)
