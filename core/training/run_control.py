"""Run control: control.json's requests (pause, stop, snapshot now, augmentation settings) and Ctrl-C.

Rank 0 reads control.json (at most every ``CONTROL_POLL_S`` between ticks, always at a tick); under
torchrun the ranks then agree on one request and on whether any of them was interrupted, so all
of them pause, stop or change p after the same minibatch.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.augment.modes import Mechanism, PMode
from core.rundir import ControlPoller, ControlRequest, RunWriter
from core.training import distributed as dist_util
from core.training.augment_state import AugmentState
from core.training.distributed import DistEnv

log = logging.getLogger(__name__)

CONTROL_POLL_S = 1.0  # how often rank 0 looks at control.json between ticks
PAUSE_POLL_S = 0.25


class RunControl:
    """What the user asked the run to do, and the flags the loop acts on (paused, stop, snapshot)."""

    def __init__(self, run_dir: Path | None, env: DistEnv, writer: RunWriter, aug: AugmentState) -> None:
        self.env = env
        self.writer = writer
        self.aug = aug
        self.poller = ControlPoller(run_dir) if env.is_main and run_dir is not None else None
        self.paused = False
        self.stop_requested = False
        self.interrupted = False  # Ctrl-C asked for the stop (see request_interrupt)
        self.interrupt_pending = False  # set by a signal handler, turned into a stop at the next check
        self.snapshot_requested = False
        self.last_poll = time.monotonic()

    def request_interrupt(self) -> None:
        """Ctrl-C: stop like control.json's stop (finish the minibatch, write a snapshot, status
        "stopped"). Only sets a flag, so a signal handler may call it. The flag becomes a stop at the
        next control check, where the ranks agree on it: under torchrun every rank gets the signal at
        a different point, and all of them must stop after the same minibatch."""
        self.interrupt_pending = True

    def check(self, kimg: float, force: bool) -> None:
        """Read control.json when due (always with ``force``) and apply what it asks (collective)."""
        req = None
        now = time.monotonic()
        if self.poller is not None and (force or now - self.last_poll >= CONTROL_POLL_S):
            self.last_poll = now
            req = self.poller.poll()
        interrupt = self.interrupt_pending
        if self.env.distributed:
            # One small collective per check: whether rank 0 read a request, whether any rank was
            # interrupted.
            local = [int(req is not None) if self.env.is_main else 0, int(interrupt)]
            flags = dist_util.all_reduce_max_(torch.tensor(local, device=self.env.device), self.env)
            has_request, interrupt = (bool(v) for v in flags.tolist())
            if has_request:
                req = dist_util.broadcast_object(req, self.env)
        if interrupt and not self.interrupted:
            self.interrupted = self.stop_requested = True
            log.info("interrupted: stopping after this minibatch")
        if req is not None:
            self.apply(req, kimg)

    def apply(self, req: ControlRequest, kimg: float) -> dict[str, Any]:
        """Apply one request; logs it and reports it as a "control" event. Returns what changed."""
        applied: dict[str, Any] = {}
        if req.pause is not None and req.pause != self.paused:
            self.paused = req.pause
            applied["pause"] = req.pause
        if req.stop and not self.stop_requested:
            self.stop_requested = applied["stop"] = True
        if req.snapshot_now:
            self.snapshot_requested = applied["snapshot_now"] = True
        applied.update(self._apply_augment(req))
        if applied:
            log.info("control #%d applied: %s", req.seq, applied)
        self.writer.control_applied(kimg, req.seq, applied)
        return applied

    def _apply_augment(self, req: ControlRequest) -> dict[str, Any]:
        """Sticky settings: each request carries the GUI's whole state, so only differences apply."""
        ctrl, pipe, applied = self.aug.controller, self.aug.pipe, {}
        if self.aug.kind is Mechanism.DIFFAUG and (req.aug_mode not in (None, ctrl.mode) or req.fixed_p is not None):
            # DiffAugment has no p: a p that moved would be plotted as if it did something.
            if req.aug_mode not in (None, ctrl.mode):
                log.warning("control: aug_mode %s ignored, DiffAugment has no p (--aug diffaug)", req.aug_mode)
            req = dataclasses.replace(req, aug_mode=None, fixed_p=None)
        if req.aug_multipliers:
            if pipe is None:
                log.warning("control: aug_multipliers ignored, this run has no augment pipe (--aug %s)", self.aug.kind)
            else:
                changed = {k: v for k, v in req.aug_multipliers.items() if pipe.multipliers().get(k) != v}
                if changed:
                    pipe.set_multipliers(changed)
                    applied["aug_multipliers"] = changed
        if req.p_max is not None and req.p_max != ctrl.p_max:
            ctrl.p_max = applied["p_max"] = float(req.p_max)
        if req.target is not None and req.target != ctrl.target:
            ctrl.target = applied["target"] = float(req.target)
        if req.aug_mode is not None and req.aug_mode != ctrl.mode:
            ctrl.mode = applied["aug_mode"] = req.aug_mode
        if req.fixed_p is not None and ctrl.mode == PMode.FIXED and min(req.fixed_p, ctrl.p_max) != ctrl.p:
            ctrl.p = req.fixed_p
            applied["fixed_p"] = ctrl.p
        self.aug.sync()
        return applied

    def wait_while_paused(self, kimg: float, on_wait: Callable[[], None],
                          on_resumed: Callable[[float, float], None]) -> None:
        """Block while paused, checking control.json and calling ``on_wait`` at every poll; then
        ``on_resumed(start, seconds paused)`` before the "resumed" status event."""
        self.writer.status("paused", kimg, message="paused by control.json")
        log.info("paused at kimg %.3f", kimg)
        t0 = time.monotonic()
        while self.paused and not self.stop_requested:
            on_wait()
            time.sleep(PAUSE_POLL_S)
            self.check(kimg, force=True)
        paused = time.monotonic() - t0
        on_resumed(t0, paused)
        self.writer.status("resumed", kimg, message=f"resumed after {paused:.1f} s")
        log.info("resumed after %.1f s", paused)
