"""The training loop: StyleGAN2 with ADA/APA, streaming everything it does into a run directory.

One ``Trainer`` per process. Each minibatch runs the phases Gmain, Greg, Dmain, Dreg (the two
regularisation phases lazily, every few minibatches), then G_ema and p are updated. Every tick
(``kimg_per_tick`` thousand images) the loop summarises statistics, writes a resume checkpoint,
and at snapshot ticks a kept snapshot, previews and metrics. Rank 0 alone writes the run directory.

Randomness is counter-based: every accumulation round reseeds torch's generator from (seed,
minibatch, phase, global round), and z and c are drawn for the whole global minibatch on every
rank. So the images each round sees, and all noise inside it, do not depend on how the minibatch is
split over processes and rounds: N processes match one process with the same global batch, and
a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.augment import apa_replace
from core.data import ImageDataset, make_loader
from core.networks import Discriminator, Generator
from core.networks import checkpoint as ckpt_io
from core.training import distributed as dist_util
from core.training.config import TrainingSpec
from core.training.distributed import DistEnv
from core.training.ema import ema_beta, update_ema
from core.training.loss import StyleGAN2Loss
from core.training.rundir import ControlPoller, ControlRequest, RunWriter, image_grid
from core.training.stats import PhaseTimer, StatsBank, StatsReader

log = logging.getLogger(__name__)

CONTROL_POLL_S = 1.0  # how often rank 0 looks at control.json between ticks
# The live s/kimg is measured over this many seconds: a 2 s stats window holds only a few
# minibatches on a CPU, and whole minibatches per window make a jagged curve.
SPEED_WINDOW_S = 20.0
PAUSE_POLL_S = 0.25
PREVIEW_GRID = (8, 4)  # columns, rows
ROLLING_PREFIX = "checkpoint"
# Independent random streams per minibatch (see round_seed).
STREAM_LATENTS, STREAM_LABELS, STREAM_ROUND = 0, 1, 2


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


@dataclass
class Phase:
    name: str
    module: nn.Module
    opt: torch.optim.Optimizer
    interval: int
    index: int


class AugmentState:
    """p, the controller that moves it, and the ADA pipe (if any) that uses it.

    The controller always runs: in mode "ada" it adapts p (for ADA or APA, whichever this run
    uses), in "fixed" and "noaug" it leaves p alone but still measures r_t for the plots.
    """

    def __init__(self, spec: TrainingSpec, device: torch.device) -> None:
        from core.augment import AdaController, AugmentPipe

        a = spec.augment
        self.kind = a.mode  # the run's mechanism: ada | apa | fixed | noaug
        mode = "ada" if a.adaptive else ("noaug" if a.mode == "noaug" else "fixed")
        self.controller = AdaController(target=a.target if a.target is not None else 0.6, interval=a.interval,
                                        kimg=a.kimg, p_max=a.p_max, mode=mode, p=a.p)
        self.pipe: AugmentPipe | None = None
        if a.pipe is not None:
            self.pipe = AugmentPipe.from_preset(a.pipe).to(device)
            self.pipe.set_multipliers(a.multipliers)
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

    def load_state_dict(self, state: dict[str, Any], env: DistEnv, given: Collection[str] = ()) -> None:
        """Restores the controller. Its settings continue as the run left them (changes made through
        control.json included), except those whose option ``given`` names: this launch's value wins."""
        state = dict(state)
        if not env.is_main:  # the pending statistics were summed over ranks: rank 0 holds them all
            state["acc"] = [0.0, 0.0]
        launch = self.controller.state_dict()  # the settings this launch's options resolved to
        self.controller.load_state_dict(state)
        for option, keys in _CONTROLLER_OPTIONS.items():
            if option not in given:
                continue
            for key in keys:
                if key == "p" and launch["mode"] == "ada" and option == "aug":
                    continue  # switching to an adaptive mode: p continues from where the run was
                before = getattr(self.controller, key)
                if before != launch[key]:
                    if env.is_main:
                        log.info("--resume: --%s: %s %s replaces the run's %s", option.replace("_", "-"),
                                 "ada kimg" if key == "kimg" else key, launch[key], before)
                    setattr(self.controller, key, launch[key])  # the setters validate; p_max caps p
        self.sync()


# Options that set the p controller, and the controller settings each decides on an exact resume;
# p_max first, so that a p given with it is capped by the new bound, not the old.
_CONTROLLER_OPTIONS: dict[str, tuple[str, ...]] = {
    "p_max": ("p_max",), "aug": ("mode", "p"), "p": ("p",), "target": ("target",), "ada_kimg": ("kimg",),
    "ada_interval": ("interval",),
}


def round_seed(seed: int, *counters: int) -> int:
    """A 63-bit seed for one (minibatch, phase, round): independent streams for each counter tuple."""
    return int(np.random.SeedSequence([seed, *counters]).generate_state(2, dtype=np.uint64)[0] >> 1)


def build_networks(spec: TrainingSpec, device: torch.device) -> tuple[nn.Module, nn.Module, nn.Module]:
    torch.manual_seed(spec.seed)  # identical initial weights on every rank (also broadcast later)
    G = Generator(**copy.deepcopy(spec.G_kwargs)).train().requires_grad_(False).to(device)
    D = Discriminator(**copy.deepcopy(spec.D_kwargs)).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    return G, D, G_ema


def build_phases(spec: TrainingSpec, G: nn.Module, D: nn.Module) -> list[Phase]:
    """Gmain/Greg/Dmain/Dreg with the lazy-regularisation correction of Adam's lr and betas."""
    phases: list[Phase] = []
    for name, module, lr, reg_interval in (("G", G, spec.G_lr, spec.loss.G_reg_interval),
                                           ("D", D, spec.D_lr, spec.loss.D_reg_interval)):
        if reg_interval is None:
            opt = torch.optim.Adam(module.parameters(), lr=lr, betas=spec.betas, eps=spec.eps)
            phases.append(Phase(f"{name}both", module, opt, 1, len(phases)))
            continue
        # The regulariser runs every reg_interval minibatches with its gradient scaled up by the
        # interval; shrinking lr and betas keeps Adam's effective time scales unchanged.
        mb_ratio = reg_interval / (reg_interval + 1)
        betas = (spec.betas[0] ** mb_ratio, spec.betas[1] ** mb_ratio)
        opt = torch.optim.Adam(module.parameters(), lr=lr * mb_ratio, betas=betas, eps=spec.eps)
        phases.append(Phase(f"{name}main", module, opt, 1, len(phases)))
        phases.append(Phase(f"{name}reg", module, opt, reg_interval, len(phases)))
    return phases


def _copy_matching(dst: nn.Module, src: nn.Module, what: str) -> None:
    """Copy parameters and buffers by name where shapes agree (the public resume rule)."""
    src_state = src.state_dict()
    dst_state = dst.state_dict()
    matched = [k for k, v in dst_state.items() if k in src_state and src_state[k].shape == v.shape]
    if not matched:
        raise RuntimeError(f"--resume: no tensor of {what} matches this run's {what}; is it the same kind of model?")
    missing = len(dst_state) - len(matched)
    if missing:
        log.warning("--resume: %d of %d tensors of %s did not match and keep their fresh values",
                    missing, len(dst_state), what)
    with torch.no_grad():
        for k in matched:
            dst_state[k].copy_(src_state[k])


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(tuple(state["numpy"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class Trainer:
    """Trains one run. ``run()`` returns the final status: "finished" or "stopped"."""

    def __init__(
        self,
        spec: TrainingSpec,
        run_dir: Path | None,
        env: DistEnv,
        dataset: ImageDataset,
        resume: str | None = None,
        progress_fn: Callable[[Progress], None] | None = None,
        writer: RunWriter | None = None,
        given: Collection[str] = (),
    ) -> None:
        """``given``: the names of the options given explicitly at this launch; on a resume the
        settings they name (the p controller's: --aug, --p, --target, --ada-kimg, --ada-interval,
        --p-max; the pipe's ops: --augpipe, --aug-mult) replace the run's, the others continue as
        the run left them."""
        self.spec = spec
        self.env = env
        self.device = env.device
        self.run_dir = run_dir
        self.dataset = dataset
        self.progress_fn = progress_fn
        self.writer = writer or RunWriter(run_dir if env.is_main else None, rank=env.rank,
                                          live_interval_s=spec.live_interval)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.G, self.D, self.G_ema = build_networks(spec, self.device)
        self.aug = AugmentState(spec, self.device)
        self.bank = StatsBank(self.device)
        self.timer = PhaseTimer(self.bank, self.device)
        self.loss = StyleGAN2Loss(self.G, self.D, spec.loss, self.bank, self.aug.pipe,
                                  apa_p=self.aug.apa_p if spec.augment.mode == "apa" else None,
                                  real_signs_hook=self.aug.controller.observe)
        self.phases = build_phases(spec, self.G, self.D)
        self.loader = make_loader(dataset, spec.batch // env.world_size, seed=spec.seed, rank=env.rank,
                                  world_size=env.world_size, workers=spec.options.workers,
                                  pin_memory=self.device.type == "cuda")
        self.tick_reader = StatsReader(self.bank, env)  # global, at ticks
        self.live_reader = StatsReader(self.bank, None)  # rank-local, for the frequent stats event
        self.poller = ControlPoller(run_dir) if env.is_main and run_dir is not None else None
        self.cur_nimg = 0
        self.cur_tick = 0
        self.batch_idx = 0
        self.tick_start_nimg = 0
        self.paused = False
        self.stop_requested = False
        self.interrupted = False  # Ctrl-C asked for the stop (see request_interrupt)
        self.interrupt_pending = False  # set by a signal handler, turned into a stop at the next sync
        self.snapshot_requested = False
        self._rolling: str | None = None  # the current rolling checkpoint's stem
        self._kept_nimg = -1  # cur_nimg of the last kept snapshot
        self._stats_lock = threading.Lock()
        now = time.monotonic()
        self._tick_start_time = self._stats_time = self._last_poll = now
        self._speed_samples: deque[tuple[float, int]] = deque([(now, 0)])
        self._grid_z, self._grid_c, self._grid_reals = self._preview_inputs()
        if resume:
            self._resume(resume, given)
        for module in (self.G, self.D, self.G_ema):
            dist_util.broadcast_module_(module, env)

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> str:
        spec = self.spec
        self.writer.status("started", self.kimg, message=f"{spec.total_kimg:g} kimg on {self.env.world_size} "
                           f"{self.device.type} process(es)")
        log.info("training for %g kimg from kimg %.3f (tick %d), batch %d = %d process(es) x %d rounds x %d",
                 spec.total_kimg, self.kimg, self.cur_tick, spec.batch, self.env.world_size, spec.rounds,
                 spec.batch_gpu)
        self.writer.write_live(self.G_ema, self.kimg, force=True)
        now = time.monotonic()
        self._tick_start_time = self._stats_time = self._last_poll = now
        self._speed_samples = deque([(now, self.cur_nimg)])
        stop_heartbeat = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(stop_heartbeat,), name="stats-heartbeat",
                                     daemon=True)
        if self.env.is_main and spec.stats_interval > 0:
            heartbeat.start()
        try:
            return self._run_loop()
        finally:
            stop_heartbeat.set()
            if heartbeat.is_alive():
                heartbeat.join(timeout=10)  # a daemon: never let a stuck stats write hold up the exit
                if heartbeat.is_alive():
                    log.warning("the stats heartbeat did not stop within 10 s; leaving it")

    def request_interrupt(self) -> None:
        """Ctrl-C: stop like control.json's stop (finish the minibatch, write a snapshot, status
        "stopped"). Only sets a flag, so a signal handler may call it. The flag becomes a stop at the
        next control check, where the ranks agree on it: under torchrun every rank gets the signal at
        a different point, and all of them must stop after the same minibatch."""
        self.interrupt_pending = True

    def _run_loop(self) -> str:
        spec = self.spec
        done = self.cur_nimg >= _nimg(spec.total_kimg)
        self._poll_control(force=True)  # requests written before the start (e.g. start paused)
        if self.paused:
            self._pause()
        while not done and not self.stop_requested:
            self._train_minibatch()
            self._after_minibatch()
            self._maintenance()
            done = self.cur_nimg >= _nimg(spec.total_kimg)
            tick_due = self.cur_tick == 0 or self.cur_nimg >= self.tick_start_nimg + _nimg(spec.kimg_per_tick)
            if done or tick_due or self.stop_requested:
                self._end_tick(final=done or self.stop_requested)
                if self.stop_requested:
                    break
            elif self.snapshot_requested:
                self._snapshot(kept=True)
        status = "stopped" if self.stop_requested and not done else "finished"
        if self._kept_nimg != self.cur_nimg:  # e.g. stopped before the first minibatch
            self._snapshot(kept=True)
        if self.env.is_main:
            self.writer.write_live(self.G_ema, self.kimg, force=True)
        message = "interrupted" if self.interrupted and status == "stopped" else f"{status} at kimg {self.kimg:.3f}"
        self.writer.status(status, self.kimg, message=message)
        log.info("%s at kimg %.3f", status, self.kimg)
        return status

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    def _train_minibatch(self) -> None:
        spec, env = self.spec, self.env
        real_img, real_c = next(self.loader)
        real_img = real_img.to(self.device, non_blocking=True).to(torch.float32) / 127.5 - 1
        real_c = real_c.to(self.device, non_blocking=True)
        R, W = spec.rounds, env.world_size
        M = R * W  # rounds over all processes
        all_z, all_c = self._draw_latents()
        for phase in self.phases:
            if self.batch_idx % phase.interval != 0 or not self._phase_active(phase):
                continue
            with self.timer.phase(phase.name.replace("both", "main")):
                phase.opt.zero_grad(set_to_none=True)
                phase.module.requires_grad_(True)
                for k in range(R):
                    m = env.rank + W * k  # this round's place among all rounds of all processes
                    torch.manual_seed(round_seed(spec.seed, STREAM_ROUND, self.batch_idx, phase.index, m))
                    self.loss.accumulate_gradients(
                        phase.name, real_img[k::R], real_c[k::R], all_z[phase.index][m::M],
                        all_c[phase.index][m::M], gain=phase.interval / R, round_idx=k)
                    self._live_weights()  # a slow CPU minibatch must not starve the GUI
                phase.module.requires_grad_(False)
                self.loss.finish_phase(phase.name, env)
                dist_util.average_gradients_(list(phase.module.parameters()), env)
                phase.opt.step()

    def _phase_active(self, phase: Phase) -> bool:
        if phase.name == "Greg":
            return self.spec.loss.pl_weight != 0
        if phase.name == "Dreg":
            return self.spec.loss.r1_gamma != 0
        return True

    def _draw_latents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """z and c for every phase and the whole global minibatch (the same on every rank)."""
        spec, G = self.spec, self.G
        n_phases, B = len(self.phases), spec.batch
        gen = torch.Generator(device=self.device).manual_seed(round_seed(spec.seed, STREAM_LATENTS, self.batch_idx))
        all_z = torch.randn([n_phases, B, G.z_dim], generator=gen, device=self.device)
        if G.c_dim == 0:
            return all_z, torch.zeros([n_phases, B, 0], device=self.device)
        rng = np.random.default_rng([spec.seed, STREAM_LABELS, self.batch_idx])
        idx = rng.integers(len(self.dataset), size=n_phases * B)
        labels = np.stack([self.dataset.get_label(int(i)) for i in idx]).reshape(n_phases, B, -1)
        return all_z, torch.from_numpy(labels).to(self.device)

    def _after_minibatch(self) -> None:
        spec = self.spec
        beta = ema_beta(spec.batch, spec.ema_kimg, spec.ema_rampup, self.cur_nimg)
        update_ema(self.G_ema, self.G, beta)
        self.cur_nimg += spec.batch
        self.batch_idx += 1
        self.aug.step(spec.batch, self.cur_nimg)

    # -- between ticks: live stats, live weights, control ------------------------------------------

    def _live_weights(self) -> None:
        """Refresh live/ when due (rank 0; rate-limited by the writer; callable between any two rounds)."""
        if self.env.is_main:
            self.writer.write_live(self.G_ema, self.kimg)

    def _maintenance(self) -> None:
        self._live_weights()
        self._poll_control(force=False)
        if self.paused:
            self._pause()
        if self.progress_fn is not None and self.env.is_main:
            self.progress_fn(self._progress())

    def _heartbeat(self, stop: threading.Event) -> None:
        """Rank 0's stats stream, in its own thread: a "stats" event every ``stats_interval``
        seconds, however long a minibatch, a snapshot or a metric evaluation takes."""
        interval = self.spec.stats_interval
        while not stop.wait(min(max(interval / 10, 0.005), 0.1)):
            if time.monotonic() - self._stats_time >= 0.95 * interval:
                try:
                    self._emit_stats(time.monotonic())
                except Exception:  # never take training down for a monitoring line
                    log.exception("stats event failed")

    def _emit_stats(self, now: float) -> None:
        with self._stats_lock:
            self._emit_stats_locked(now)

    def _emit_stats_locked(self, now: float) -> None:
        stats = self.live_reader.read()
        values: dict[str, float] = {name: s.mean for name, s in stats.items() if name.startswith("Loss/")}
        values["Progress/augment"] = self.aug.p
        values["Progress/tick"] = self.cur_tick
        if self.aug.r_t is not None:
            values["Loss/signs/real"] = self.aug.r_t
        speed = self._speed_samples
        if not self.paused:  # paused time is not training time: no samples, no speed (see _pause)
            speed.append((now, self.cur_nimg))
            while len(speed) > 2 and now - speed[1][0] >= SPEED_WINDOW_S:
                speed.popleft()
            t_old, nimg_old = speed[0]
            if self.cur_nimg > nimg_old:
                values["Timing/sec_per_kimg"] = (now - t_old) / ((self.cur_nimg - nimg_old) / 1000)
        self.writer.stats(self.kimg, values)
        self._stats_time = now

    def _progress(self) -> Progress:
        elapsed = time.monotonic() - self._tick_start_time
        kimg_done = (self.cur_nimg - self.tick_start_nimg) / 1000
        spk = elapsed / kimg_done if kimg_done > 0 else float("nan")
        return Progress(self.kimg, self.spec.total_kimg, self.cur_tick, spk, self.aug.p, self.aug.r_t, self.paused)

    def _poll_control(self, force: bool) -> None:
        req = None
        now = time.monotonic()
        if self.poller is not None and (force or now - self._last_poll >= CONTROL_POLL_S):
            self._last_poll = now
            req = self.poller.poll()
        interrupt = self.interrupt_pending
        if self.env.distributed:
            # One small collective per check: whether rank 0 read a request, whether any rank was
            # interrupted.
            local = [int(req is not None) if self.env.is_main else 0, int(interrupt)]
            flags = dist_util.all_reduce_max_(torch.tensor(local, device=self.device), self.env)
            has_request, interrupt = (bool(v) for v in flags.tolist())
            if has_request:
                req = dist_util.broadcast_object(req, self.env)
        if interrupt and not self.interrupted:
            self.interrupted = self.stop_requested = True
            log.info("interrupted: stopping after this minibatch")
        if req is not None:
            self._apply_control(req)

    def _apply_control(self, req: ControlRequest) -> None:
        applied: dict[str, Any] = {}
        if req.pause is not None and req.pause != self.paused:
            self.paused = req.pause
            applied["pause"] = req.pause
        if req.stop and not self.stop_requested:
            self.stop_requested = applied["stop"] = True
        if req.snapshot_now:
            self.snapshot_requested = applied["snapshot_now"] = True
        applied.update(self._apply_augment_control(req))
        if applied:
            log.info("control #%d applied: %s", req.seq, applied)
        self.writer.control_applied(self.kimg, req.seq, applied)

    def _apply_augment_control(self, req: ControlRequest) -> dict[str, Any]:
        """Sticky settings: each request carries the GUI's whole state, so only differences apply."""
        ctrl, pipe, applied = self.aug.controller, self.aug.pipe, {}
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
        if req.fixed_p is not None and ctrl.mode == "fixed" and min(req.fixed_p, ctrl.p_max) != ctrl.p:
            ctrl.p = req.fixed_p
            applied["fixed_p"] = ctrl.p
        self.aug.sync()
        return applied

    def _pause(self) -> None:
        self.writer.status("paused", self.kimg, message="paused by control.json")
        log.info("paused at kimg %.3f", self.kimg)
        t0 = time.monotonic()
        while self.paused and not self.stop_requested:
            if self.progress_fn is not None and self.env.is_main:
                self.progress_fn(self._progress())
            time.sleep(PAUSE_POLL_S)
            self._poll_control(force=True)
        paused = time.monotonic() - t0
        # Time spent paused is not training time: shift the clocks that measure speed.
        self._tick_start_time += paused
        with self._stats_lock:  # samples from before the pause move forward; any taken since resuming stay
            # The pause ended when the flag went down, which may be before this loop noticed: a sample
            # taken since (the heartbeat's) marks that end, and the old samples move up to it, no further.
            resumed = [t for t, _ in self._speed_samples if t > t0]
            shift = min(resumed[0] - t0, paused) if resumed else paused
            self._speed_samples = deque((t + shift if t <= t0 else t, n) for t, n in self._speed_samples)
        self.writer.status("resumed", self.kimg, message=f"resumed after {paused:.1f} s")
        log.info("resumed after %.1f s", paused)

    # -- ticks ------------------------------------------------------------------------------------

    def _end_tick(self, final: bool) -> None:
        spec = self.spec
        self._poll_control(force=True)  # control.json is read at every tick, before deciding what to write
        final = final or self.stop_requested
        self.timer.flush()
        now = time.monotonic()
        if self.env.is_main:
            self._emit_stats(now)  # the stats stream gets the tick's last values too
        tick_s = now - self._tick_start_time
        tick_kimg = (self.cur_nimg - self.tick_start_nimg) / 1000
        stats = self.tick_reader.read()
        values = {name: s.mean for name, s in stats.items()}
        values.update({"Progress/tick": self.cur_tick, "Progress/kimg": self.kimg, "Progress/augment": self.aug.p,
                       "Timing/sec_per_tick": tick_s,
                       "Timing/sec_per_kimg": tick_s / tick_kimg if tick_kimg > 0 else 0.0})
        if self.aug.r_t is not None:
            values["Progress/rt"] = self.aug.r_t
        if self.device.type == "cuda":
            values["Resources/peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            torch.cuda.reset_peak_memory_stats(self.device)
        log.info("tick %d  kimg %.3f  sec/tick %.1f  sec/kimg %.2f  p %.4f  r_t %s  G %.3f  D %.3f",
                 self.cur_tick, self.kimg, tick_s, values["Timing/sec_per_kimg"], self.aug.p,
                 f"{self.aug.r_t:.3f}" if self.aug.r_t is not None else "-",
                 values.get("Loss/G/loss", math.nan), values.get("Loss/D/loss", math.nan))
        self.writer.event("tick", self.kimg, tick=self.cur_tick,
                          stats={name: s.to_dict() for name, s in stats.items()}, **_flat(values))
        self.writer.scalars(self.kimg, values)
        tick = self.cur_tick
        kept = final or self.snapshot_requested or (spec.snapshot_ticks > 0 and tick % spec.snapshot_ticks == 0)
        if kept or tick % spec.preview_ticks == 0:
            self._previews()
        self.cur_tick += 1
        self.tick_start_nimg = self.cur_nimg
        if kept or tick % spec.checkpoint_ticks == 0:
            self._snapshot(kept=kept)
        self._tick_start_time = time.monotonic()

    # -- snapshots and resume -------------------------------------------------------------------

    def _snapshot(self, kept: bool) -> None:
        """Write the rolling resume checkpoint and, if ``kept``, a network snapshot as well.

        Crash safety: every file is written atomically, and latest.json only ever names a
        checkpoint whose files (weights, then resume state) are all complete. The rolling
        checkpoint has a name no earlier write used, so a kill while writing it leaves the
        previous one, still named by latest.json, untouched; that one is removed only after
        latest.json has moved on. Kept snapshots are named by whole kimg (the public names), so a
        short run may rewrite one; latest.json names the fresh rolling checkpoint meanwhile.
        """
        self.snapshot_requested = False
        if kept:
            self._kept_nimg = self.cur_nimg
        augment_state = self.aug.state_dict(self.env)  # collective: every rank takes part
        if not self.env.is_main or self.run_dir is None:
            return
        state = self._resume_state(augment_state)
        rolling = f"{ROLLING_PREFIX}-{self.cur_nimg:012d}"
        self._write_checkpoint(rolling, state)
        previous, self._rolling = self._rolling, rolling
        if kept:
            stem = self.writer.kept_snapshot_stem(self.kimg)
            self._write_checkpoint(stem, state)
        if previous is not None and previous != rolling:
            _remove_snapshot(self.run_dir / "snapshots" / previous)
        if kept and self.spec.metrics:
            self._metrics(self.run_dir / "snapshots" / stem)

    def _write_checkpoint(self, stem: str, state: dict[str, Any]) -> None:
        assert self.run_dir is not None
        path = self.run_dir / "snapshots" / stem
        meta = dict(kimg=self.kimg, cur_nimg=self.cur_nimg, tick=self.cur_tick, p=self.aug.p,
                    training_options=self.spec.to_dict(), dataset=self.dataset.describe())
        ckpt_io.save_checkpoint(path, G=self.G, D=self.D, G_ema=self.G_ema, augment_pipe=self.aug.pipe, **meta)
        ckpt_io.save_resume_state(path, state)
        self.writer.write_latest(stem, self.kimg)

    def _resume_state(self, augment_state: dict[str, Any]) -> dict[str, Any]:
        return {
            "cur_nimg": self.cur_nimg, "cur_tick": self.cur_tick, "batch_idx": self.batch_idx,
            "augment": augment_state,
            "G_opt": self.phases[0].opt.state_dict(), "D_opt": self.phases[-1].opt.state_dict(),
            "loss": self.loss.state_dict(), "loader": self.loader.state_dict(), "rng": capture_rng(),
            "world_size": self.env.world_size, "batch": self.spec.batch,
        }

    def _resume(self, source: str, given: Collection[str]) -> None:
        path = Path(source)
        if path.is_dir():
            found = ckpt_io.latest_snapshot(path)
            if found is None:
                raise RuntimeError(f"--resume {source}: the run directory has no snapshot yet")
            path = found
        ckpt = ckpt_io.load_any(path, device=self.device)
        for name in ("G", "D", "G_ema"):
            net = getattr(ckpt, name)
            if net is not None:
                _copy_matching(getattr(self, name), net, name)
        if ckpt.augment_pipe is not None and self.aug.pipe is not None and ckpt.meta.get("source") != "legacy-pkl":
            if "augpipe" in given:  # another preset asked for: the run's per-op settings do not carry over
                if self.env.is_main:
                    log.info("--resume: --augpipe %s replaces the run's augmentation ops", self.spec.augment.pipe)
            else:  # the run's ops as it left them, slider changes made through control.json included
                self.aug.pipe.set_multipliers(ckpt.augment_pipe.multipliers())
                if "aug_mult" in given:  # ... with the ops named at this launch changed
                    self.aug.pipe.set_multipliers(self.spec.augment.multipliers)
        resume_json = ckpt_io.resume_paths(path)[1]
        if ckpt.path is not None and resume_json.is_file():
            self._load_resume_state(ckpt_io.load_resume_state(resume_json, device=self.device), ckpt.meta, given)
            log.info("resumed exactly from %s at kimg %.3f (tick %d, p %.4f)", path, self.kimg, self.cur_tick,
                     self.aug.p)
        else:
            self._weights_only_resume(ckpt, path)

    def _load_resume_state(self, state: dict[str, Any], meta: dict[str, Any], given: Collection[str]) -> None:
        if meta.get("cur_nimg") is not None and int(meta["cur_nimg"]) != int(state["cur_nimg"]):
            raise RuntimeError("--resume: the snapshot and its resume state are from different moments; "
                               "pick another snapshot")
        self.cur_nimg = int(state["cur_nimg"])
        self.cur_tick = int(state["cur_tick"])
        self.batch_idx = int(state["batch_idx"])
        self.tick_start_nimg = self.cur_nimg
        self.aug.load_state_dict(state["augment"], self.env, given)
        self.phases[0].opt.load_state_dict(state["G_opt"])
        self.phases[-1].opt.load_state_dict(state["D_opt"])
        self.loss.load_state_dict(state["loss"])
        self.loader.load_state_dict(state["loader"])
        restore_rng(state["rng"])
        if int(state.get("batch", self.spec.batch)) != self.spec.batch:
            log.warning("--resume: batch changed from %s to %d", state.get("batch"), self.spec.batch)

    def _weights_only_resume(self, ckpt: ckpt_io.Checkpoint, path: Path) -> None:
        # Like the public trainer: weights only, so p adapts faster and G_ema has no ramp-up;
        # unlike it, p carries over (users asked for that), from our metadata or the pickle's pipe.
        p = ckpt.meta.get("p")
        if p is None and ckpt.augment_settings is not None:
            p = ckpt.augment_settings.get("p")
        ctrl = self.aug.controller
        if ctrl.mode == "ada":
            if p is not None:
                ctrl.p = float(p)
            ctrl.kimg = min(ctrl.kimg, 100.0)
            self.aug.sync()
        self.spec.ema_rampup = None
        log.info("resumed weights from %s (no resume state: kimg starts at 0, optimizers fresh, p %.4f)",
                 path, self.aug.p)

    def _metrics(self, snapshot: Path) -> None:
        """Evaluate at a kept snapshot (rank 0): "metric" events and the run's metrics.jsonl."""
        from core.metrics import MetricOptions, run_metrics_for_training

        assert self.run_dir is not None
        t0 = time.monotonic()
        options = MetricOptions(progress=False, device=str(self.device), seed=self.spec.seed)
        records = run_metrics_for_training(
            self.G_ema, self.spec.metricdata or self.spec.data.path, self.spec.metrics, run_dir=self.run_dir,
            snapshot=f"snapshots/{snapshot.name}", kimg=self.kimg, options=options)
        for record in records:
            self.writer.metric(self.kimg, record["metric"], record["results"], snapshot=snapshot.name)
            log.info("metric %s at kimg %.3f: %s", record["metric"], self.kimg, record["results"])
        # Evaluation is not training time: keep it out of sec/kimg.
        self._tick_start_time += time.monotonic() - t0

    # -- previews -------------------------------------------------------------------------------

    def _preview_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cols, rows = PREVIEW_GRID
        n = min(cols * rows, len(self.dataset))
        rng = np.random.default_rng([self.spec.seed, 123])
        idx = np.sort(rng.choice(len(self.dataset), size=n, replace=False))
        images, labels = self.dataset.load_batch(idx)
        z = torch.from_numpy(np.random.RandomState(self.spec.seed).randn(n, self.G.z_dim)).float()
        reals = torch.from_numpy(images).float() / 127.5 - 1
        return z.to(self.device), torch.from_numpy(labels).to(self.device), reals.to(self.device)

    @torch.no_grad()
    def _previews(self) -> None:
        if not self.env.is_main:
            return
        cols = PREVIEW_GRID[0]
        bs = self.spec.batch_gpu
        fakes = torch.cat([self.G_ema(z, c, noise_mode="const") for z, c in
                           zip(self._grid_z.split(bs), self._grid_c.split(bs), strict=True)])
        self.writer.write_preview("fakes", self.kimg, image_grid(fakes, cols))
        # What D is shown as "real": APA's pseudo reals, then the augment pipe, with fixed draws.
        reals = self._grid_reals
        gen = torch.Generator(device=self.device).manual_seed(self.spec.seed)
        if self.aug.kind == "apa":
            reals, _ = apa_replace(reals, fakes, self.aug.p, generator=gen)
        if self.aug.pipe is not None:
            reals = self.aug.pipe(reals, generator=gen)
        self.writer.write_preview("reals-augmented", self.kimg, image_grid(reals, cols))

    def close(self) -> None:
        self.loader.close()
        self.writer.close()


def _nimg(kimg: float) -> int:
    """Images in ``kimg`` thousand, robust to decimal fractions (0.072 * 1000 = 72.00000000000001)."""
    return math.ceil(kimg * 1000 - 1e-6)


def _flat(values: dict[str, float]) -> dict[str, float]:
    """Event fields: the tick's means under their stat names."""
    return {k: float(v) for k, v in values.items()}


def _remove_snapshot(stem: Path) -> None:
    for suffix in (".json", ".safetensors", ".resume.json", ".resume.safetensors"):
        stem.with_name(stem.name + suffix).unlink(missing_ok=True)


__all__ = ["AugmentState", "Phase", "Progress", "Trainer", "build_networks", "build_phases", "round_seed"]
