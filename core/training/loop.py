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
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.augment import Mechanism, apa_replace
from core.data import ImageDataset, InfiniteLoader
from core.io.images import from_uint8, image_grid
from core.networks import Discriminator, Generator
from core.rundir import RunWriter, layout
from core.training import distributed as dist_util
from core.training.augment_state import AugmentState
from core.training.checkpointing import (
    Checkpointer,
    ResumePlan,
    ResumeSource,
    copy_matching,
    load_resume_source,
    plan_resume,
)
from core.training.config import TrainingSpec
from core.training.distributed import DistEnv
from core.training.ema import ema_beta, update_ema
from core.training.loss import StyleGAN2Loss
from core.training.run_control import RunControl
from core.training.stats import PhaseTimer, StatsBank, StatsReader
from core.training.telemetry import Progress, Telemetry, TrainerSample, tick_event_fields

log = logging.getLogger(__name__)

PREVIEW_GRID = (8, 4)  # columns, rows
# Independent random streams per minibatch (see round_seed).
STREAM_LATENTS, STREAM_LABELS, STREAM_ROUND = 0, 1, 2


@dataclass
class Phase:
    name: str
    module: nn.Module
    opt: torch.optim.Optimizer
    interval: int
    index: int


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
    """Trains one run: the minibatch step and the tick. ``run()`` returns "finished" or "stopped".

    It hands run control (control.json, pause, stop, Ctrl-C) to ``self.control``, the live statistics
    (heartbeat, speed, tick summary) to ``self.telemetry`` and snapshot files to ``self.checkpointer``;
    what a resume changes is decided by :func:`core.training.checkpointing.plan_resume`.
    """

    def __init__(
        self,
        spec: TrainingSpec,
        run_dir: Path | None,
        env: DistEnv,
        dataset: ImageDataset,
        resume: str | ResumeSource | None = None,
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
                                  apa_p=self.aug.apa_p if self.aug.kind is Mechanism.APA else None,
                                  real_signs_hook=self.aug.controller.observe, diffaug=self.aug.diffaug,
                                  compile_first_order=spec.compile)
        self.phases = build_phases(spec, self.G, self.D)
        self.loader = InfiniteLoader(dataset, spec.batch // env.world_size, seed=spec.seed, rank=env.rank,
                                  world_size=env.world_size, workers=spec.options.workers,
                                  pin_memory=self.device.type == "cuda")
        self.tick_reader = StatsReader(self.bank, env)  # global, at ticks
        self.control = RunControl(run_dir, env, self.writer, self.aug)
        self.telemetry = Telemetry(self.writer, StatsReader(self.bank, None), spec.stats_interval, env.is_main,
                                   self._sample, spec.total_kimg)
        self.checkpointer = Checkpointer(run_dir, self.writer) if env.is_main and run_dir is not None else None
        self.cur_nimg = 0
        self.cur_tick = 0
        self.batch_idx = 0
        self.tick_start_nimg = 0
        self._kept_nimg = -1  # cur_nimg of the last kept snapshot
        self.metrics_seconds = 0.0  # time spent evaluating metrics in this process
        self._grid_z, self._grid_c, self._grid_reals = self._preview_inputs()
        if resume:
            source = resume if isinstance(resume, ResumeSource) else load_resume_source(resume, self.device)
            self.apply_resume(plan_resume(source, given, self.aug.controller.state_dict(),
                                          spec.augment.multipliers, self.aug.pipe is not None))
        for module in (self.G, self.D, self.G_ema):
            dist_util.broadcast_module_(module, env)

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    @property
    def interrupted(self) -> bool:
        return self.control.interrupted

    def request_interrupt(self) -> None:
        """Ctrl-C: a stop after this minibatch (see RunControl.request_interrupt); safe in a signal handler."""
        self.control.request_interrupt()

    def _sample(self) -> TrainerSample:
        return TrainerSample(self.cur_nimg, self.cur_tick, self.tick_start_nimg, self.aug.p, self.aug.r_t,
                             self.control.paused)

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> str:
        spec = self.spec
        self.writer.status("started", self.kimg, message=f"{spec.total_kimg:g} kimg on {self.env.world_size} "
                           f"{self.device.type} process(es)")
        log.info("training for %g kimg from kimg %.3f (tick %d), batch %d = %d process(es) x %d rounds x %d",
                 spec.total_kimg, self.kimg, self.cur_tick, spec.batch, self.env.world_size, spec.rounds,
                 spec.batch_gpu)
        self.writer.write_live(self.G_ema, self.kimg, force=True)
        self.control.last_poll = time.monotonic()
        self.telemetry.start()
        try:
            return self._run_loop()
        finally:
            self.telemetry.stop()

    def _run_loop(self) -> str:
        spec, control = self.spec, self.control
        done = self.cur_nimg >= _nimg(spec.total_kimg)
        control.check(self.kimg, force=True)  # requests written before the start (e.g. start paused)
        if control.paused:
            self.pause()
        while not done and not control.stop_requested:
            self.step()
            self._between_minibatches()
            done = self.cur_nimg >= _nimg(spec.total_kimg)
            tick_due = self.cur_tick == 0 or self.cur_nimg >= self.tick_start_nimg + _nimg(spec.kimg_per_tick)
            if done or tick_due or control.stop_requested:
                self.end_tick(final=done or control.stop_requested)
                if control.stop_requested:
                    break
            elif control.snapshot_requested:
                self.snapshot(kept=True)
        status = "stopped" if control.stop_requested and not done else "finished"
        if self._kept_nimg != self.cur_nimg:  # e.g. stopped before the first minibatch
            self.snapshot(kept=True)
        if self.env.is_main:
            self.writer.write_live(self.G_ema, self.kimg, force=True)
        message = "interrupted" if control.interrupted and status == "stopped" else f"{status} at kimg {self.kimg:.3f}"
        self.writer.status(status, self.kimg, message=message)
        log.info("%s at kimg %.3f", status, self.kimg)
        return status

    def step(self) -> None:
        """One minibatch: every due phase (Gmain, Greg, Dmain, Dreg), then G_ema, the counters and p."""
        self._train_phases()
        spec = self.spec
        beta = ema_beta(spec.batch, spec.ema_kimg, spec.ema_rampup, self.cur_nimg)
        update_ema(self.G_ema, self.G, beta)
        self.cur_nimg += spec.batch
        self.batch_idx += 1
        self.aug.step(spec.batch, self.cur_nimg)

    def _train_phases(self) -> None:
        spec, env = self.spec, self.env
        real_img, real_c = next(self.loader)
        real_img = from_uint8(real_img.to(self.device, non_blocking=True))
        real_c = real_c.to(self.device, non_blocking=True)
        R, W = spec.rounds, env.world_size
        M = R * W  # rounds over all processes
        all_z, all_c = self.draw_latents()
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

    def draw_latents(self) -> tuple[torch.Tensor, torch.Tensor]:
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

    # -- between minibatches: live weights, control, progress ------------------------------------

    def _live_weights(self) -> None:
        """Refresh live/ when due (rank 0; rate-limited by the writer; callable between any two rounds)."""
        if self.env.is_main:
            self.writer.write_live(self.G_ema, self.kimg)

    def _between_minibatches(self) -> None:
        self._live_weights()
        self.control.check(self.kimg, force=False)
        if self.control.paused:
            self.pause()
        self._report_progress()

    def _report_progress(self) -> None:
        if self.progress_fn is not None and self.env.is_main:
            self.progress_fn(self.telemetry.progress())

    def pause(self) -> None:
        """Wait while control.json asks for a pause; the time paused is left out of the speed."""
        self.control.wait_while_paused(self.kimg, on_wait=self._report_progress,
                                       on_resumed=self.telemetry.leave_out_pause)

    # -- ticks ------------------------------------------------------------------------------------

    def end_tick(self, final: bool) -> None:
        """The tick's summary (event, TensorBoard, log line), previews, checkpoint and snapshot when due."""
        spec = self.spec
        self.control.check(self.kimg, force=True)  # read at every tick, before deciding what to write
        final = final or self.control.stop_requested
        self.timer.flush()
        if self.env.is_main:
            self.telemetry.emit(time.monotonic())  # the stats stream gets the tick's last values too
        stats = self.tick_reader.read()
        values = self.telemetry.tick_values(stats, self.device)
        self.writer.event("tick", self.kimg, tick=self.cur_tick,
                          stats={name: s.to_dict() for name, s in stats.items()}, **tick_event_fields(values))
        self.writer.scalars(self.kimg, values)
        tick = self.cur_tick
        kept = final or self.control.snapshot_requested or (spec.snapshot_ticks > 0 and tick % spec.snapshot_ticks == 0)
        if kept or tick % spec.preview_ticks == 0:
            self._previews()
        self.cur_tick += 1
        self.tick_start_nimg = self.cur_nimg
        if kept or tick % spec.checkpoint_ticks == 0:
            self.snapshot(kept=kept)
        self.telemetry.restart_tick_clock()

    # -- snapshots and resume -------------------------------------------------------------------

    def snapshot(self, kept: bool) -> None:
        """The rolling resume checkpoint and, if ``kept``, a network snapshot (and its metrics)."""
        self.control.snapshot_requested = False
        if kept:
            self._kept_nimg = self.cur_nimg
        augment_state = self.aug.state_dict(self.env)  # collective: every rank takes part
        if self.checkpointer is None:
            return
        networks = dict(G=self.G, D=self.D, G_ema=self.G_ema, augment_pipe=self.aug.pipe)
        meta = dict(kimg=self.kimg, cur_nimg=self.cur_nimg, tick=self.cur_tick, p=self.aug.p,
                    training_options=self.spec.to_dict(), dataset=self.dataset.describe())
        kept_path = self.checkpointer.save(self.cur_nimg, kept, networks, self.state_dict(augment_state), meta)
        if kept_path is not None and self.spec.metrics:
            self._metrics(kept_path)

    def state_dict(self, augment_state: dict[str, Any]) -> dict[str, Any]:
        """Everything an exact resume needs besides the weights (``augment_state``: AugmentState.state_dict)."""
        return {
            "cur_nimg": self.cur_nimg, "cur_tick": self.cur_tick, "batch_idx": self.batch_idx,
            "augment": augment_state,
            "G_opt": self.phases[0].opt.state_dict(), "D_opt": self.phases[-1].opt.state_dict(),
            "loss": self.loss.state_dict(), "loader": self.loader.state_dict(), "rng": capture_rng(),
            "world_size": self.env.world_size, "batch": self.spec.batch,
        }

    def apply_resume(self, plan: ResumePlan) -> None:
        """Carry out a resume plan (see core.training.checkpointing for the policy behind it)."""
        if self.env.is_main:
            for note in plan.notes:
                log.info("--resume: %s", note)
        for name in ("G", "D", "G_ema"):
            net = getattr(plan.checkpoint, name)
            if net is not None:
                copy_matching(getattr(self, name), net, name)
        self.aug.set_multipliers(*plan.multipliers)
        if not plan.exact:
            for key, value in plan.controller_overrides:
                setattr(self.aug.controller, key, value)
            self.aug.sync()
            self.spec.ema_rampup = None
            log.info("resumed weights from %s (no resume state: kimg starts at 0, optimizers fresh, p %.4f)",
                     plan.snapshot, self.aug.p)
            return
        state = plan.state
        self.cur_nimg = int(state["cur_nimg"])
        self.cur_tick = int(state["cur_tick"])
        self.batch_idx = int(state["batch_idx"])
        self.tick_start_nimg = self.cur_nimg
        self.aug.load_state_dict(state["augment"], self.env, plan.controller_overrides)
        self.phases[0].opt.load_state_dict(state["G_opt"])
        self.phases[-1].opt.load_state_dict(state["D_opt"])
        self.loss.load_state_dict(state["loss"])
        self.loader.load_state_dict(state["loader"])
        restore_rng(state["rng"])
        if int(state.get("batch", self.spec.batch)) != self.spec.batch:
            log.warning("--resume: batch changed from %s to %d", state.get("batch"), self.spec.batch)
        log.info("resumed exactly from %s at kimg %.3f (tick %d, p %.4f)", plan.snapshot, self.kimg, self.cur_tick,
                 self.aug.p)

    def _metrics(self, snapshot: Path) -> None:
        """Evaluate at a kept snapshot (rank 0): "metric" events, metrics.jsonl, log and TensorBoard.

        On the CPU at quick sizes (see core.metrics.evaluate); leaks_offline looks at the ops the
        augment pipe applies now (every geometric and colour op when the run has no pipe)."""
        from core.metrics import MetricOptions, run_metrics_for_training
        from core.metrics.leaks import ops_in_use

        assert self.run_dir is not None
        t0 = time.monotonic()
        pipe = self.aug.pipe
        leak_ops = ops_in_use(pipe.multipliers(), self.spec.data.channels) if pipe is not None else None
        options = MetricOptions(progress=False, device=str(self.device), seed=self.spec.seed,
                                quick=self.device.type == "cpu", leak_ops=leak_ops or None,
                                leak_strengths=pipe.strengths() if pipe is not None else None)
        records = run_metrics_for_training(
            self.G_ema, self.spec.metricdata or self.spec.data.path, self.spec.metrics, run_dir=self.run_dir,
            snapshot=f"{layout.SNAPSHOTS}/{snapshot.name}", kimg=self.kimg, options=options)
        for record in records:
            self.writer.metric(self.kimg, record["metric"], record["results"], snapshot=snapshot.name)
            self.writer.scalars(self.kimg, {f"Metrics/{key}": value for key, value in record["results"].items()})
            values = ", ".join(f"{key} {value:.4g}" for key, value in record["results"].items())
            log.info("metric %s at kimg %.3f: %s (%d fakes, %.1f s)", record["metric"], self.kimg, values,
                     record["num_gen"], record["total_time"])
        seconds = time.monotonic() - t0
        self.metrics_seconds += seconds
        log.info("metrics at kimg %.3f took %.1f s (%.1f s in this process so far)", self.kimg, seconds,
                 self.metrics_seconds)
        self.telemetry.leave_out(seconds)  # evaluation is not training time

    # -- previews -------------------------------------------------------------------------------

    def _preview_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cols, rows = PREVIEW_GRID
        n = min(cols * rows, len(self.dataset))
        rng = np.random.default_rng([self.spec.seed, 123])
        idx = np.sort(rng.choice(len(self.dataset), size=n, replace=False))
        images, labels = self.dataset.load_batch(idx)
        z = torch.from_numpy(np.random.RandomState(self.spec.seed).randn(n, self.G.z_dim)).float()
        reals = from_uint8(images)
        return z.to(self.device), torch.from_numpy(labels).to(self.device), reals.to(self.device)

    @torch.no_grad()
    def _previews(self) -> None:
        if not self.env.is_main:
            return
        cols = PREVIEW_GRID[0]
        bs = self.spec.batch_gpu
        fakes = torch.cat([self.G_ema(z, c, noise_mode="const") for z, c in
                           zip(self._grid_z.split(bs), self._grid_c.split(bs), strict=True)])
        self.writer.write_preview(layout.PREVIEW_FAKES, self.kimg, image_grid(fakes, cols))
        # What D is shown as "real": APA's pseudo reals, then the augment pipe or DiffAugment, with fixed draws.
        reals = self._grid_reals
        gen = torch.Generator(device=self.device).manual_seed(self.spec.seed)
        if self.aug.kind is Mechanism.APA:
            reals, _ = apa_replace(reals, fakes, self.aug.p, generator=gen)
        if self.aug.pipe is not None:
            reals = self.aug.pipe(reals, generator=gen)
        if self.aug.diffaug is not None:
            reals = self.aug.diffaug(reals, generator=gen)
        self.writer.write_preview(layout.PREVIEW_REALS_AUGMENTED, self.kimg, image_grid(reals, cols))

    def close(self) -> None:
        self.loader.close()
        self.writer.close()


def _nimg(kimg: float) -> int:
    """Images in ``kimg`` thousand, robust to decimal fractions (0.072 * 1000 = 72.00000000000001)."""
    return math.ceil(kimg * 1000 - 1e-6)



__all__ = ["Phase", "Trainer", "build_networks", "build_phases", "capture_rng", "restore_rng", "round_seed"]
