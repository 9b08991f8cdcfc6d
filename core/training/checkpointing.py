"""Checkpointing: writing a run's snapshots, and the one policy for resuming from one.

A resume starts from a run directory (the newest of its snapshots that loads; a run with none falls
back to the one it was resumed from), one of our snapshots, or a public .pkl. :func:`plan_resume`
decides everything a resume changes, from the saved run and the options the user gave at this
launch; the trainer applies the plan. The rules:

- Weights: every tensor of G, D and G_ema whose name and shape match (the public rule).
- The pipe's per-op multipliers: the run's as it left them (GUI slider changes included); with
  ``--aug-mult`` given, those ops changed on top; with ``--augpipe`` given, the new preset's alone.
- Exact resume (our snapshot with its resume state): counters, optimizers, loss state, data order,
  RNG and the p controller continue; a controller setting whose option was given at this launch
  (--p-max, --aug, --p, --target, --ada-kimg, --ada-interval) takes this launch's value.
- Weights only (a public .pkl, or a snapshot without resume state): kimg starts at 0 with fresh
  optimizers, as in the public trainer; p carries over (from our metadata or the pickle's pipe), ADA
  moves p at least as fast as over 100 kimg, and G_ema has no ramp-up.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.augment.modes import PMode
from core.networks import checkpoint as ckpt_io
from core.networks.sources import load_any
from core.rundir import RunWriter, layout
from core.rundir.reader import resumed_from

log = logging.getLogger(__name__)

# Options that set the p controller, and the controller settings each decides on an exact resume;
# p_max first, so that a p given with it is capped by the new bound, not the old.
CONTROLLER_OPTIONS: dict[str, tuple[str, ...]] = {
    "p_max": ("p_max",), "aug": ("mode", "p"), "p": ("p",), "target": ("target",), "ada_kimg": ("kimg",),
    "ada_interval": ("interval",),
}
WEIGHTS_ONLY_ADA_KIMG = 100.0  # the public trainer's ada_kimg after a resume


class ResumeError(ValueError):
    """Nothing that --resume names can be resumed from; the message says what was tried and why."""


@dataclass
class ResumeSource:
    """A snapshot that loaded, with its resume state (None: weights only), and what was skipped for it."""

    snapshot: Path
    checkpoint: ckpt_io.Checkpoint
    state: dict[str, Any] | None
    skipped: list[str] = field(default_factory=list)  # "<file>: <why>" for each newer one that did not load


def load_resume_source(source: str | Path, device: Any = "cpu") -> ResumeSource:
    """Load what ``--resume`` names. A snapshot or .pkl must load. A run directory gives the newest of its
    snapshots and rolling checkpoints that loads (latest.json's first); a run with none that loads
    resumes from what it itself was resumed from (its run.json), and so on along the chain."""
    path = Path(source)
    if not path.is_dir():
        try:
            return _load_one(path, device)
        except Exception as e:  # a truncated file, random bytes, a bad .json: one line, the file named
            raise ResumeError(f"--resume {source}: {_why(e)}") from None
    skipped: list[str] = []
    runs: list[Path] = []
    for candidate in _candidates(path, runs, skipped):
        try:
            found = _load_one(candidate, device)
        except Exception as e:
            skipped.append(f"{candidate}: {_why(e)}")
            continue
        found.skipped = skipped
        return found
    if not skipped:
        chain = " (nor has the run it was resumed from)" if len(runs) > 1 else ""
        raise ResumeError(f"--resume {source}: the run directory has no snapshot yet{chain}; resume from one "
                          "that has, or start anew")
    raise ResumeError(f"--resume {source}: no snapshot loads ({len(skipped)} tried; newest: {skipped[0]})")


def _candidates(run: Path, runs: list[Path], skipped: list[str]) -> Iterator[Path]:
    """The snapshots to try, newest first: ``run``'s own, then those of what it was resumed from, along
    the chain (a resume from a snapshot file ends it with that file). ``runs`` collects the run
    directories visited; ``skipped`` why the chain ended early."""
    while run.resolve() not in {r.resolve() for r in runs}:
        runs.append(run)
        yield from layout.resume_candidates(run)
        earlier = resumed_from(run)
        if earlier is None:
            return
        if not earlier.exists():
            skipped.append(f"{earlier}: the run it was resumed from is gone")
            return
        if not earlier.is_dir():
            yield earlier
            return
        run = earlier


def _load_one(path: Path, device: Any) -> ResumeSource:
    ckpt = load_any(path, device=device)
    state = None
    resume_json = ckpt_io.resume_paths(path)[1]
    if ckpt.path is not None and resume_json.is_file():
        state = ckpt_io.load_resume_state(resume_json, device=device)
        meta_nimg = ckpt.meta.get("cur_nimg")
        if meta_nimg is not None and int(meta_nimg) != int(state["cur_nimg"]):
            raise RuntimeError("the snapshot and its resume state are from different moments")
    return ResumeSource(path, ckpt, state)


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text or type(e).__name__


@dataclass
class ResumePlan:
    """What a resume changes; ``Trainer.apply_resume`` carries it out."""

    snapshot: Path
    checkpoint: ckpt_io.Checkpoint
    state: dict[str, Any] | None  # the resume state (exact resume), or None (weights only)
    multipliers: list[dict[str, float]] = field(default_factory=list)  # set on the pipe, in order
    controller_overrides: list[tuple[str, Any]] = field(default_factory=list)  # (setting, value), in order
    notes: list[str] = field(default_factory=list)  # what was decided, for the log

    @property
    def exact(self) -> bool:
        return self.state is not None


def plan_resume(source: ResumeSource, given: Collection[str], launch_controller: dict[str, Any],
                launch_multipliers: dict[str, float], has_pipe: bool) -> ResumePlan:
    """Decide what resuming from ``source`` changes (see the module's rules).

    ``given``: the options given at this launch; ``launch_controller``: the p controller's state as this
    launch's options resolved it; ``launch_multipliers``: this launch's --aug-mult.
    """
    path, ckpt = source.snapshot, source.checkpoint
    plan = ResumePlan(path, ckpt, None)
    plan.notes += [f"skipped {line}" for line in source.skipped]
    legacy = ckpt.meta.get("source") == ckpt_io.LEGACY_SOURCE
    if ckpt.augment_pipe is not None and has_pipe and not legacy:
        if "augpipe" in given:  # another preset asked for: the run's per-op settings do not carry over
            plan.notes.append("--augpipe given: it replaces the run's augmentation ops")
        else:  # the run's ops as it left them, slider changes made through control.json included
            plan.multipliers.append(ckpt.augment_pipe.multipliers())
            if "aug_mult" in given:  # ... with the ops named at this launch changed
                plan.multipliers.append(dict(launch_multipliers))
    if source.state is not None:
        plan.state = source.state
        plan.controller_overrides = _given_controller_settings(plan.state["augment"], launch_controller, given,
                                                               plan.notes)
    else:
        plan.controller_overrides = _weights_only_controller(ckpt, launch_controller)
    return plan


def _given_controller_settings(saved: dict[str, Any], launch: dict[str, Any], given: Collection[str],
                               notes: list[str]) -> list[tuple[str, Any]]:
    """The controller settings whose option was given at this launch and differ from the run's."""
    overrides: list[tuple[str, Any]] = []
    for option, keys in CONTROLLER_OPTIONS.items():
        if option not in given:
            continue
        for key in keys:
            if key == "p" and launch["mode"] == PMode.ADAPTIVE and option == "aug":
                continue  # switching to an adaptive mode: p continues from where the run was
            if saved.get(key) != launch[key]:
                notes.append(f"--{option.replace('_', '-')}: {'ada kimg' if key == 'kimg' else key} {launch[key]} "
                             f"replaces the run's {saved.get(key)}")
                overrides.append((key, launch[key]))
    return overrides


def _weights_only_controller(ckpt: ckpt_io.Checkpoint, launch: dict[str, Any]) -> list[tuple[str, Any]]:
    # Like the public trainer: weights only, so p adapts faster and G_ema has no ramp-up;
    # unlike it, p carries over (users asked for that), from our metadata or the pickle's pipe.
    if launch["mode"] != PMode.ADAPTIVE:
        return []
    p = ckpt.meta.get("p")
    if p is None and ckpt.augment_settings is not None:
        p = ckpt.augment_settings.get("p")
    overrides: list[tuple[str, Any]] = [] if p is None else [("p", float(p))]
    overrides.append(("kimg", min(float(launch["kimg"]), WEIGHTS_ONLY_ADA_KIMG)))
    return overrides


def copy_matching(dst: nn.Module, src: nn.Module, what: str) -> None:
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


class Checkpointer:
    """Writes a run's snapshots (rank 0): the rolling resume checkpoint at every checkpoint tick, and
    kept network snapshots (the public names) at snapshot ticks.

    Crash safety: every file is written atomically, and latest.json only ever names a checkpoint
    whose files (weights, then resume state) are all complete. The rolling checkpoint has a name no
    earlier write used, so a kill while writing it leaves the previous one, still named by
    latest.json, untouched; that one is removed only after latest.json has moved on. Kept snapshots
    are named by whole kimg (the public names), so a short run may rewrite one; latest.json names
    the fresh rolling checkpoint meanwhile.
    """

    def __init__(self, run_dir: Path, writer: RunWriter) -> None:
        self.run_dir = run_dir
        self.writer = writer
        self.rolling: str | None = None  # the current rolling checkpoint's stem
        # A continued run's earlier rolling checkpoints: removed once this launch has its own.
        self.earlier: list[str] = layout.rolling_stems(run_dir)

    def save(self, cur_nimg: int, kept: bool, networks: dict[str, Any], state: dict[str, Any],
             meta: dict[str, Any]) -> Path | None:
        """Write the rolling checkpoint and, if ``kept``, a network snapshot; returns the kept one's stem path."""
        kimg = cur_nimg / 1000
        rolling = layout.rolling_stem(cur_nimg)
        self._write(rolling, kimg, networks, state, meta)
        previous, self.rolling = self.rolling, rolling
        kept_path = None
        if kept:
            stem = self.writer.kept_snapshot_stem(kimg)
            self._write(stem, kimg, networks, state, meta)
            kept_path = self.run_dir / layout.SNAPSHOTS / stem
        for stale in [previous, *self.earlier]:
            if stale is not None and stale != rolling:
                layout.remove_snapshot(self.run_dir, stale)
        self.earlier = []
        return kept_path

    def _write(self, stem: str, kimg: float, networks: dict[str, Any], state: dict[str, Any],
               meta: dict[str, Any]) -> None:
        path = self.run_dir / layout.SNAPSHOTS / stem
        ckpt_io.save_checkpoint(path, **networks, **meta)
        ckpt_io.save_resume_state(path, state)
        self.writer.write_latest(stem, kimg)
