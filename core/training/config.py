"""Typed training options and their resolution into a complete training spec.

``TrainingOptions`` is what the user asked for (the CLI's options, ``None`` meaning "from the
preset"); ``resolve_spec`` turns it, plus facts about the dataset and the process group, into a
``TrainingSpec`` that holds every number the loop uses. Both round-trip through plain JSON
(``to_dict`` / ``from_dict``), so ``run.json`` is enough to replay a run.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, TypeVar

from core.augment import MULTIPLIER_NAMES, PRESETS, Mechanism
from core.augment.diffaug import POLICIES as DIFFAUG_POLICIES
from core.augment.modes import choices
from core.networks.presets import CFG_NAMES, resolve_cfg

AUG_MODES = choices(Mechanism)
AUGPIPES = tuple(PRESETS)
DEVICES = ("auto", "cpu", "cuda")
# --compile: torch.compile the first-order passes (Gmain, Dmain); "auto" decides by device (see
# compile_first_order). The regularisation passes need double backward and always run eager.
COMPILE_MODES = ("auto", "on", "off")
DIFFAUG_DEFAULT = "color,translation,cutout"  # the DiffAugment paper's policy for few-shot runs


def uses_ada_pipe(aug: str, with_dataaug: bool) -> bool:
    """Whether D's inputs go through the ADA pipe: with ada and fixed, and with apa only when asked."""
    return Mechanism(aug).uses_pipe(with_dataaug)


class OptionError(ValueError):
    """A bad option, path or combination; the message names it and says how to fix it."""


@dataclass
class TrainingOptions:
    """The trainer's options, named as in the public ``train.py`` (dashes become underscores)."""

    outdir: str = ""
    data: str = ""
    gpus: int = 1
    batch: int | None = None
    batch_gpu: int | None = None
    cfg: str = "auto"
    gamma: float | None = None
    kimg: float | None = None
    tick: float = 4.0
    snap: int = 50
    aug: str = Mechanism.ADA.value
    p: float | None = None
    target: float | None = None
    augpipe: str | None = None
    aug_mult: dict[str, float] | None = None  # per-op multipliers over the preset (ours, not public)
    with_dataaug: bool = False
    diffaug_policy: str | None = None  # --aug diffaug: comma list of color, translation, cutout
    mirror: bool = False
    cond: bool = False
    subset: int | None = None
    resume: str | None = None
    metrics: list[str] | None = None
    metricdata: str | None = None
    seed: int = 0
    cbase: int | None = None
    cmax: int | None = None
    map_depth: int | None = None
    freezed: int | None = None
    mbstd_group: int | None = None
    glr: float | None = None
    dlr: float | None = None
    p_max: float = 1.0
    ada_kimg: float | None = None
    ada_interval: int | None = None
    device: str = "auto"
    desc: str | None = None
    workers: int = 3
    checkpoint_ticks: int = 1
    preview_ticks: int | None = None
    stats_interval: float = 2.0
    live_interval: float = 10.0
    compile: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingOptions:
        return _from_dict(cls, d)


@dataclass
class DataSpec:
    """The training data as the loop opens it, and the facts the networks are sized by."""

    path: str
    use_labels: bool = False
    mirror: bool = False
    subset: int | None = None
    resolution: int = 0
    channels: int = 0
    label_dim: int = 0
    num_images: int = 0


@dataclass
class LossSpec:
    """The StyleGAN2 objective's constants (public defaults)."""

    r1_gamma: float = 10.0
    pl_weight: float = 2.0
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    G_reg_interval: int | None = 4
    D_reg_interval: int | None = 16


@dataclass
class AugmentSpec:
    """How D's inputs are augmented and how p evolves."""

    mode: str = Mechanism.ADA.value  # a Mechanism
    pipe: str | None = "bgc"  # AugmentPipe preset, None = no pipe
    multipliers: dict[str, float] = dataclasses.field(default_factory=dict)  # over the preset's
    p: float = 0.0  # initial p
    target: float | None = 0.6  # r_t target for ada/apa; None = p is fixed
    interval: int = 4  # minibatches between p updates
    kimg: float = 500.0  # p can move by 1 in this many kimg (resolved: --ada-kimg, else the preset's)
    p_max: float = 1.0
    diffaug_policy: str | None = None  # DiffAugment's ops (mode "diffaug"), None = no DiffAugment

    @property
    def adaptive(self) -> bool:
        return self.target is not None


@dataclass
class TrainingSpec:
    """Everything the training loop needs, fully resolved."""

    options: TrainingOptions
    data: DataSpec
    G_kwargs: dict[str, Any]
    D_kwargs: dict[str, Any]
    G_lr: float
    D_lr: float
    loss: LossSpec
    augment: AugmentSpec
    ema_kimg: float
    ema_rampup: float | None
    batch: int
    batch_gpu: int
    num_gpus: int
    total_kimg: float
    kimg_per_tick: float
    snapshot_ticks: int
    checkpoint_ticks: int
    preview_ticks: int
    metrics: list[str]
    metricdata: str | None
    seed: int
    device: str
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    stats_interval: float = 2.0
    live_interval: float = 10.0
    compile: bool = False  # torch.compile Gmain's and Dmain's passes (resolved from --compile)

    @property
    def rounds(self) -> int:
        """Accumulation rounds per process per minibatch."""
        return self.batch // (self.batch_gpu * self.num_gpus)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingSpec:
        spec = _from_dict(cls, d)
        spec.betas = tuple(spec.betas)  # type: ignore[assignment]
        return spec


T = TypeVar("T")


def _from_dict(cls: type[T], d: dict[str, Any]) -> T:
    """Build a (nested) dataclass from JSON; unknown keys are an error, missing ones default."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise OptionError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; the file is from another version")
    kwargs = {}
    for name, value in d.items():
        sub = _NESTED.get((cls.__name__, name))
        kwargs[name] = _from_dict(sub, value) if sub is not None and isinstance(value, dict) else value
    return cls(**kwargs)


_NESTED: dict[tuple[str, str], type] = {
    ("TrainingSpec", "options"): TrainingOptions,
    ("TrainingSpec", "data"): DataSpec,
    ("TrainingSpec", "loss"): LossSpec,
    ("TrainingSpec", "augment"): AugmentSpec,
}


# --------------------------------------------------------------------------------------------------
# Option checks that need no data: each raises OptionError with one line saying what to change.


def check_options(o: TrainingOptions) -> None:
    """Reject bad values and combinations before anything is opened."""
    _check_choices(o)
    _check_numbers(o)
    _check_augment(o)
    _check_batch(o)


def _check_choices(o: TrainingOptions) -> None:
    if not o.outdir:
        raise OptionError("--outdir is required: give the folder that will hold the run directories")
    if not o.data:
        raise OptionError("--data is required: give a dataset folder or .zip (or builtin:digits)")
    if o.aug not in AUG_MODES:
        raise OptionError(f"--aug {o.aug!r} is unknown; use one of {', '.join(AUG_MODES)}")
    if o.augpipe is not None and o.augpipe not in AUGPIPES:
        raise OptionError(f"--augpipe {o.augpipe!r} is unknown; use one of {', '.join(AUGPIPES)}")
    if o.cfg not in CFG_NAMES:
        raise OptionError(f"--cfg {o.cfg!r} is unknown; use one of {', '.join(CFG_NAMES)}")
    if o.desc is not None and (not o.desc or any(sep in o.desc for sep in ("/", "\\")) or o.desc in (".", "..")):
        raise OptionError(f"--desc {o.desc!r}: it becomes part of a folder name; use letters, digits, '-' or '_'")
    if o.device not in DEVICES:
        raise OptionError(f"--device {o.device!r} is unknown; use one of {', '.join(DEVICES)}")
    if o.compile not in COMPILE_MODES:
        raise OptionError(f"--compile {o.compile!r} is unknown; use one of {', '.join(COMPILE_MODES)}")


def _check_numbers(o: TrainingOptions) -> None:
    positive = {"--gpus": o.gpus, "--batch": o.batch, "--batch-gpu": o.batch_gpu, "--kimg": o.kimg,
                "--tick": o.tick, "--cbase": o.cbase, "--cmax": o.cmax, "--map-depth": o.map_depth,
                "--mbstd-group": o.mbstd_group, "--glr": o.glr, "--dlr": o.dlr, "--p-max": o.p_max,
                "--subset": o.subset, "--ada-kimg": o.ada_kimg, "--ada-interval": o.ada_interval,
                "--checkpoint-ticks": o.checkpoint_ticks,
                "--preview-ticks": o.preview_ticks}
    for name, value in positive.items():
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise OptionError(f"{name} must be a positive number, got {value}")
    non_negative = {"--snap": o.snap, "--workers": o.workers, "--seed": o.seed, "--gamma": o.gamma,
                    "--stats-interval": o.stats_interval, "--live-interval": o.live_interval, "--freezed": o.freezed}
    for name, value in non_negative.items():
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise OptionError(f"{name} must be >= 0, got {value}")


def _check_augment(o: TrainingOptions) -> None:
    if o.p is not None and o.aug != Mechanism.FIXED:
        raise OptionError(f"--p only applies to --aug fixed (got --aug {o.aug}); drop --p or use --aug fixed")
    if o.aug == Mechanism.FIXED and o.p is None:
        raise OptionError("--aug fixed needs --p: give the fixed augmentation probability, e.g. --p 0.2")
    if o.p_max > 1:
        raise OptionError(f"--p-max must be at most 1 (p is a probability; above 1 augmentations leak), got {o.p_max}")
    if o.p is not None and not 0 <= o.p <= o.p_max:
        raise OptionError(f"--p must be in [0, --p-max = {o.p_max}], got {o.p}")
    if o.target is not None and not Mechanism(o.aug).adaptive:
        raise OptionError(f"--target only applies to --aug ada or apa (got --aug {o.aug}); drop --target")
    if o.target is not None and not 0 <= o.target <= 1:
        raise OptionError(f"--target must be in [0, 1] (it is the wanted E[sign(D(real))]), got {o.target}")
    if o.with_dataaug and o.aug != Mechanism.APA:
        raise OptionError(f"--with-dataaug only applies to --aug apa (got --aug {o.aug}); drop it or use --aug apa")
    for name, value in (("--augpipe", o.augpipe), ("--aug-mult", o.aug_mult)):
        if value is not None and not uses_ada_pipe(o.aug, o.with_dataaug):
            raise OptionError(f"{name} has no effect with --aug {o.aug}"
                              + (" unless --with-dataaug is on" if o.aug == Mechanism.APA else "") + f"; drop {name}")
    _check_aug_mult(o.aug_mult)
    for name, value in (("--ada-kimg", o.ada_kimg), ("--ada-interval", o.ada_interval)):
        if value is not None and not Mechanism(o.aug).adaptive:
            raise OptionError(f"{name} only applies to --aug ada or apa (got --aug {o.aug}); drop it")
    _check_diffaug(o)
    if o.ada_interval is not None and int(o.ada_interval) != o.ada_interval:
        raise OptionError(f"--ada-interval must be a whole number of minibatches, got {o.ada_interval}")


def _check_diffaug(o: TrainingOptions) -> None:
    if o.diffaug_policy is None:
        return
    if o.aug != Mechanism.DIFFAUG:
        raise OptionError(f"--diffaug-policy only applies to --aug diffaug (got --aug {o.aug}); drop it or use "
                          "--aug diffaug")
    names = [n.strip() for n in o.diffaug_policy.split(",")]
    unknown = [n for n in names if n not in DIFFAUG_POLICIES]
    if unknown:
        what = "empty" if not o.diffaug_policy.strip() else f"unknown op(s) {', '.join(repr(n) for n in unknown)}"
        raise OptionError(f"--diffaug-policy {o.diffaug_policy!r}: {what}; give a comma list of "
                          f"{', '.join(DIFFAUG_POLICIES)} (default {DIFFAUG_DEFAULT})")


def _check_aug_mult(mult: dict[str, float] | None) -> None:
    if mult is None:
        return
    unknown = sorted(set(mult) - set(MULTIPLIER_NAMES))
    if unknown:
        raise OptionError(f"--aug-mult: unknown op(s) {', '.join(unknown)}; use NAME=VALUE with NAME one of "
                          f"{', '.join(MULTIPLIER_NAMES)}")
    for name, value in mult.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise OptionError(f"--aug-mult: {name}={value} must be a number >= 0 (0 switches the op off)")


def _check_batch(o: TrainingOptions) -> None:
    if o.batch is not None and o.batch % o.gpus != 0:
        raise OptionError(f"--batch {o.batch} is not divisible by --gpus {o.gpus}; pick a multiple of {o.gpus}")
    if o.batch is not None and o.batch_gpu is not None and o.batch % (o.batch_gpu * o.gpus) != 0:
        raise OptionError(f"--batch {o.batch} is not divisible by --gpus x --batch-gpu = {o.gpus * o.batch_gpu};"
                          " pick --batch-gpu so that it divides --batch / --gpus")


# --------------------------------------------------------------------------------------------------
# Resolution into a TrainingSpec.


def resolve_spec(o: TrainingOptions, data: DataSpec, num_gpus: int, device: str) -> TrainingSpec:
    """Fill every ``None`` option from the ``--cfg`` preset and check the result against the data."""
    try:
        cfg = resolve_cfg(o.cfg, data.resolution, num_gpus)
    except ValueError as e:
        raise OptionError(str(e)) from None
    batch = o.batch or cfg.batch
    batch_gpu = o.batch_gpu or (batch // num_gpus if o.batch else min(cfg.batch_gpu, batch // num_gpus))
    batch_gpu = max(batch_gpu, 1)
    if batch % (batch_gpu * num_gpus) != 0:
        raise OptionError(f"--batch {batch} is not divisible by {num_gpus} process(es) x --batch-gpu {batch_gpu};"
                          " give --batch and --batch-gpu explicitly")
    mbstd = min(o.mbstd_group or cfg.mbstd_group, batch_gpu)
    if batch_gpu % mbstd != 0:
        # Name what the user gave: --batch-gpu derives from --batch when it was not given.
        what = f"--batch-gpu {batch_gpu}" if o.batch_gpu else f"--batch {batch} ({batch_gpu} per process and round)"
        raise OptionError(f"{what} is not a multiple of --mbstd-group {mbstd}; pick a multiple of {mbstd}, or set "
                          "--mbstd-group")
    G_kwargs = cfg.G_kwargs(data.label_dim, data.resolution, data.channels)
    D_kwargs = cfg.D_kwargs(data.label_dim, data.resolution, data.channels)
    if o.map_depth is not None:
        G_kwargs["mapping_kwargs"]["num_layers"] = o.map_depth
    for kwargs in (G_kwargs.get("synthesis_kwargs", {}), D_kwargs):
        kwargs["channel_base"] = o.cbase or cfg.channel_base
        kwargs["channel_max"] = o.cmax or cfg.channel_max
    D_kwargs["epilogue_kwargs"] = dict(D_kwargs.get("epilogue_kwargs") or {}, mbstd_group_size=mbstd)
    if o.freezed:  # Freeze-D: D's first N layers (counted from the input) become constants
        D_kwargs["block_kwargs"] = dict(D_kwargs.get("block_kwargs") or {}, freeze_layers=int(o.freezed))
    return TrainingSpec(
        options=o, data=data, G_kwargs=G_kwargs, D_kwargs=D_kwargs,
        G_lr=o.glr or cfg.lrate, D_lr=o.dlr or cfg.lrate,
        loss=LossSpec(r1_gamma=cfg.gamma if o.gamma is None else o.gamma, pl_weight=cfg.pl_weight,
                      style_mixing_prob=cfg.style_mixing),
        augment=_augment_spec(o, cfg.ada_kimg),
        ema_kimg=cfg.ema_kimg, ema_rampup=cfg.ema_rampup,
        batch=batch, batch_gpu=batch_gpu, num_gpus=num_gpus,
        total_kimg=o.kimg or cfg.kimg, kimg_per_tick=o.tick, snapshot_ticks=o.snap,
        checkpoint_ticks=o.checkpoint_ticks, preview_ticks=o.preview_ticks or o.snap or 50,
        metrics=_metrics(o, device), metricdata=o.metricdata,
        seed=o.seed, device=device, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps,
        stats_interval=o.stats_interval, live_interval=o.live_interval,
        compile=compile_first_order(o.compile, device),
    )


def compile_first_order(mode: str, device: str) -> bool:
    """Whether ``--compile MODE`` compiles Gmain's and Dmain's passes on ``device``.

    ``auto`` is off: on CPU the compiled passes were not worth minutes of compiling at startup
    (docs/training.md, "Speed"), and on CUDA the compiled path has not been run yet.
    """
    if mode not in COMPILE_MODES:
        raise OptionError(f"--compile {mode!r} is unknown; use one of {', '.join(COMPILE_MODES)}")
    return mode == "on"


def _augment_spec(o: TrainingOptions, ada_kimg: float) -> AugmentSpec:
    """``ada_kimg``: the preset's default for --ada-kimg."""
    pipe = (o.augpipe or "bgc") if uses_ada_pipe(o.aug, o.with_dataaug) else None
    adaptive = Mechanism(o.aug).adaptive
    return AugmentSpec(
        mode=o.aug, pipe=pipe, multipliers=dict(o.aug_mult or {}) if pipe is not None else {},
        p=o.p if o.p is not None else 0.0,
        target=(o.target if o.target is not None else 0.6) if adaptive else None,
        interval=int(o.ada_interval or 4), kimg=o.ada_kimg or ada_kimg, p_max=o.p_max,
        diffaug_policy=_diffaug_policy(o),
    )


def _diffaug_policy(o: TrainingOptions) -> str | None:
    if o.aug != Mechanism.DIFFAUG:
        return None
    return ",".join(n.strip() for n in (o.diffaug_policy or DIFFAUG_DEFAULT).split(","))


# What a CPU run evaluates at every kept snapshot by default (quick sizes: core.metrics.evaluate).
CPU_METRICS = ("fd_offline", "kid_offline", "pr_offline", "copies_offline", "leaks_offline")
# Added on the CPU when $ADA_INCEPTION_WEIGHTS names the Inception file.
CPU_INCEPTION_METRICS = ("fid1k_full", "kid1k_full")
INCEPTION_ENV = "ADA_INCEPTION_WEIGHTS"


def _metrics(o: TrainingOptions, device: str) -> list[str]:
    # The public default (fid50k_full) needs Inception weights and hours of CPU: on the CPU the default
    # is the offline set at quick sizes, plus FID/KID on 1k fakes when the Inception file is named.
    if o.metrics is None:
        if device == "cuda":
            return ["fid50k_full"]
        names = [m for m in CPU_METRICS if m != "leaks_offline" or uses_ada_pipe(o.aug, o.with_dataaug)]
        return names + (list(CPU_INCEPTION_METRICS) if os.environ.get(INCEPTION_ENV) else [])
    return [m for m in o.metrics if m and m != "none"]


__all__ = [
    "AUGPIPES",
    "AUG_MODES",
    "COMPILE_MODES",
    "DIFFAUG_DEFAULT",
    "AugmentSpec",
    "DataSpec",
    "LossSpec",
    "OptionError",
    "TrainingOptions",
    "TrainingSpec",
    "check_options",
    "compile_first_order",
    "resolve_spec",
    "uses_ada_pipe",
]
