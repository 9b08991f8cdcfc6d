"""``train_headless.py``: the trainer's command line, with the option names of the public train.py.

    python train_headless.py --outdir runs --data builtin:digits --cfg cpu32 --kimg 50 --tick 0.5
    torchrun --nproc_per_node 8 train_headless.py --outdir runs --data ffhq256.zip --gpus 8

Every bad option, path or combination ends the program with one line saying what to change and
exit status 2. A training that fails exits 1. Ctrl-C stops the run at the end of the minibatch
with a snapshot, like the GUI's Stop (under torchrun every rank stops after the same minibatch); a
second Ctrl-C, or SIGTERM, aborts at once. Either way the exit status is 130.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.rundir import layout
from core.training.config import (
    AUG_MODES,
    AUGPIPES,
    COMPILE_MODES,
    DEVICES,
    DIFFAUG_DEFAULT,
    DataSpec,
    OptionError,
    TrainingOptions,
    TrainingSpec,
    check_options,
    resolve_spec,
)

log = logging.getLogger("core.training")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
CTRL_C_REPEAT_S = 1.0  # a second SIGINT sooner than this is the same Ctrl-C delivered twice (torchrun)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (1/0, true/false), got {text!r}")


def _metrics(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    return [] if names in ([], ["none"]) else names


def _multipliers(text: str) -> dict[str, float]:
    """'xflip=0,rotate90=0.5' -> {"xflip": 0.0, "rotate90": 0.5} (names are checked later)."""
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        name, eq, value = item.partition("=")
        try:
            if not (eq and name.strip()):
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,NAME=VALUE...], e.g. xflip=0,rotate90=0; "
                                             f"got {item!r}") from None
    return out


def _float_or_int(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage otherwise)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see --help\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="train_headless.py", description="Train StyleGAN2 with ADA/APA (CPU, GPU, or torchrun).",
                argument_default=argparse.SUPPRESS, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("general")
    g.add_argument("--outdir", metavar="DIR", help="where to make the run directory <NNNNN>-<desc>")
    g.add_argument("--gpus", type=int, metavar="INT", help="processes (one per GPU); >1 relaunches under torchrun")
    g.add_argument("--snap", type=int, metavar="TICKS", help="network snapshot (and preview) interval, 0 = end only")
    g.add_argument("--metrics", type=_metrics, metavar="LIST",
                   help="comma list or none; default fid50k_full on CUDA; on CPU fd_offline, kid_offline, "
                        "pr_offline, copies_offline, leaks_offline at quick sizes (+ fid1k_full, kid1k_full "
                        "when $ADA_INCEPTION_WEIGHTS is set)")
    g.add_argument("--metricdata", metavar="PATH", help="dataset for metrics (default: --data)")
    g.add_argument("--seed", type=int, metavar="INT", help="random seed")
    g.add_argument("-n", "--dry-run", action="store_true", help="print the resolved options and exit")
    g.add_argument("--device", choices=DEVICES, help="auto = cuda when available, else cpu")
    g.add_argument("--desc", metavar="STR", help="appended to the run directory name")
    g.add_argument("--compile", choices=COMPILE_MODES,
                   help="torch.compile the first-order passes (Gmain, Dmain); the regularisation passes stay "
                        "eager. auto = off for now (docs/training.md, Speed)")
    g.add_argument("--replay", metavar="RUN_JSON", help="take the options of an earlier run (its run.json or dir)")
    d = p.add_argument_group("dataset")
    d.add_argument("--data", metavar="PATH", help="folder or zip of images, or builtin:digits")
    d.add_argument("--cond", type=_bool, nargs="?", const=True, metavar="BOOL", help="condition on dataset labels")
    d.add_argument("--subset", type=int, metavar="INT", help="train on a seeded random subset of this many images")
    d.add_argument("--mirror", type=_bool, nargs="?", const=True, metavar="BOOL", help="add x-flipped copies")
    d.add_argument("--workers", type=int, metavar="INT", help="data loader worker processes")
    b = p.add_argument_group("base configuration")
    b.add_argument("--cfg", metavar="NAME", help="auto, stylegan2, paper256, paper512, paper1024, cifar, cpu32")
    b.add_argument("--gamma", type=float, metavar="FLOAT", help="R1 weight (default from --cfg)")
    b.add_argument("--kimg", type=_float_or_int, metavar="KIMG", help="training length (default from --cfg)")
    b.add_argument("--batch", type=int, metavar="INT", help="global minibatch (default from --cfg)")
    b.add_argument("--batch-gpu", type=int, metavar="INT", help="images per process per round (accumulation)")
    b.add_argument("--tick", type=float, metavar="KIMG", help="progress interval in kimg (fractions allowed)")
    b.add_argument("--cbase", type=int, metavar="INT", help="capacity multiplier (channel_base)")
    b.add_argument("--cmax", type=int, metavar="INT", help="max feature maps")
    b.add_argument("--map-depth", type=int, metavar="INT", help="mapping network depth")
    b.add_argument("--mbstd-group", type=int, metavar="INT", help="minibatch std group size")
    b.add_argument("--glr", type=float, metavar="FLOAT", help="G learning rate (default from --cfg)")
    b.add_argument("--dlr", type=float, metavar="FLOAT", help="D learning rate (default from --cfg)")
    a = p.add_argument_group("augmentation")
    a.add_argument("--aug", choices=AUG_MODES, help="ada (default), apa, fixed, noaug or diffaug")
    a.add_argument("--p", type=float, metavar="FLOAT", help="augmentation probability for --aug fixed")
    a.add_argument("--target", type=float, metavar="FLOAT", help="ADA/APA target for r_t (default 0.6)")
    a.add_argument("--augpipe", choices=AUGPIPES, metavar="NAME", help=f"pipe preset: {', '.join(AUGPIPES)}")
    a.add_argument("--aug-mult", type=_multipliers, metavar="NAME=VALUE,...",
                   help="per-op multipliers over the --augpipe preset, as the GUI's sliders set them "
                        "(0 switches an op off), e.g. xflip=0,rotate90=0,rotate=0")
    a.add_argument("--with-dataaug", type=_bool, nargs="?", const=True, metavar="BOOL",
                   help="with --aug apa: also run the ADA pipe on what D sees")
    a.add_argument("--diffaug-policy", metavar="LIST",
                   help=f"with --aug diffaug: DiffAugment's ops, a comma list of color, translation, cutout "
                        f"(default {DIFFAUG_DEFAULT})")
    a.add_argument("--p-max", type=float, metavar="FLOAT", help="cap on p (default 1)")
    a.add_argument("--ada-kimg", type=float, metavar="KIMG",
                   help="p can move by 1 in this many kimg (default from --cfg: 100 for cpu32, 500 for the others)")
    a.add_argument("--ada-interval", type=int, metavar="BATCHES",
                   help="minibatches between p updates, i.e. r_t is measured over BATCHES x --batch reals (default 4)")
    r = p.add_argument_group("resume and outputs")
    r.add_argument("--resume", metavar="PATH", help="a run directory, one of our snapshots, or a public .pkl")
    r.add_argument("--freezed", type=int, metavar="INT",
                   help="Freeze-D: keep D's first INT layers fixed (transfer learning; default 0)")
    r.add_argument("--checkpoint-ticks", type=int, metavar="TICKS", help="resume checkpoint interval (default 1)")
    r.add_argument("--preview-ticks", type=int, metavar="TICKS", help="preview interval (default --snap)")
    r.add_argument("--stats-interval", type=float, metavar="SEC", help="seconds between live stats events")
    r.add_argument("--live-interval", type=float, metavar="SEC", help="seconds between live G_ema refreshes")
    return p


def _arg_text(value: Any) -> str:
    """An option value as the parser reads it back (exactly: floats that %g would round keep repr)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_arg_text(float(v))}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(value) if value else "none"
    return str(value)


def options_to_argv(o: TrainingOptions) -> list[str]:
    """The command line that :func:`parse_options` reads back as ``o`` (the inverse of the parser).

    Only options that differ from TrainingOptions' defaults are written, so the trainer's defaults
    stay in one place; the GUI builds its trainer command with this.
    """
    flags = {a.dest: a.option_strings[-1] for a in build_parser()._actions if a.option_strings}
    defaults = TrainingOptions().to_dict()
    argv: list[str] = []
    for name, value in o.to_dict().items():
        if value == defaults[name] or value is None:
            continue
        if name not in flags:
            raise OptionError(f"option {name!r} has no command-line flag; add one to build_parser")
        argv += [flags[name], _arg_text(value)]
    return argv


def parse_options(argv: list[str]) -> tuple[TrainingOptions, bool, dict[str, Any]]:
    """(options, dry_run, the options given explicitly); replayed options are defaults for explicit ones."""
    given = vars(build_parser().parse_args(argv))
    dry_run = bool(given.pop("dry_run", False))
    replay = given.pop("replay", None)
    # The real cause first: a missing run would hide behind "--data is required".
    for option, path in (("resume", given.get("resume")), ("replay", replay)):
        if path is not None and not Path(path).exists():
            raise OptionError(f"--{option} {path}: no such file or directory; give a run directory, a snapshot "
                              "(.json/.safetensors) or a .pkl")
    if replay is None and given.get("resume") and "data" not in given and Path(given["resume"]).is_dir():
        replay = given["resume"]  # continue a run: its own options, overridden by what is given
    defaults = TrainingOptions().to_dict()
    base = _replayed(replay).to_dict() if replay else defaults
    if "aug" in given and given["aug"] != base["aug"]:
        # Another --aug: the replayed run's settings of its own mechanism do not carry over.
        base = {**base, **{k: defaults[k] for k in _AUG_SETTINGS}}
    if "augpipe" in given and given["augpipe"] != base["augpipe"]:
        base = {**base, "aug_mult": None}  # another preset: the old one's per-op changes go with it
    opts = TrainingOptions.from_dict({**base, **given})
    return opts, dry_run, given


_AUG_SETTINGS = ("p", "target", "augpipe", "aug_mult", "with_dataaug", "ada_kimg", "ada_interval", "diffaug_policy")


def _replayed(path: str) -> TrainingOptions:
    p = Path(path)
    if p.is_dir():
        p = p / layout.RUN_JSON
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        options = doc["options"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OptionError(f"--replay/--resume {path}: cannot read the options in {p} ({e})") from None
    known = {k: v for k, v in options.items() if k in TrainingOptions.__dataclass_fields__}
    return TrainingOptions.from_dict({**known, "resume": None})


# Options that name files: stored absolute in run.json, so a resume or the metrics CLI started from
# another folder finds them.
_PATH_OPTIONS = ("outdir", "data", "metricdata", "resume")


def absolute_paths(o: TrainingOptions) -> TrainingOptions:
    """``o`` with its file options made absolute (``builtin:`` datasets stay as they are)."""
    changes = {}
    for name in _PATH_OPTIONS:
        value = getattr(o, name)
        if value and not str(value).startswith("builtin:"):
            changes[name] = os.path.abspath(os.path.expanduser(value))
    return dataclasses.replace(o, **changes)


def _open_dataset(o: TrainingOptions) -> Any:
    from core.data import DatasetError, ImageDataset

    try:
        dataset = ImageDataset(o.data, mirror=o.mirror, subset=o.subset, seed=o.seed, use_labels=o.cond)
    except DatasetError as e:
        raise OptionError(f"--data: {e}" + ("; drop --cond for unlabeled data" if o.cond else "")) from None
    return dataset


def _check_gpus(o: TrainingOptions) -> None:
    """--gpus N asks for N CUDA devices unless --device cpu says N CPU processes."""
    if o.gpus <= 1 or o.device == "cpu":
        return
    import torch

    found = torch.cuda.device_count()
    if found >= o.gpus:
        return
    where = f"only {found} CUDA device(s) here" if found else "no CUDA device here"
    hint = "; lower --gpus" + (f", or add --device cpu to run {o.gpus} CPU processes" if o.device == "auto" else "")
    raise OptionError(f"--gpus {o.gpus}: {where}{hint}")


def _check_paths(o: TrainingOptions) -> None:
    if o.metricdata is not None and not o.metricdata.startswith("builtin:") and not Path(o.metricdata).exists():
        raise OptionError(f"--metricdata {o.metricdata}: no such file or directory")
    outdir = Path(o.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OptionError(f"--outdir {o.outdir} is a file; give a folder")
    existing = next((p for p in (outdir, *outdir.parents) if p.exists()), None)
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        what = "is a file" if not existing.is_dir() else "cannot be written"
        raise OptionError(f"--outdir {o.outdir}: {existing} {what}; choose a folder you can write to")


def _desc(o: TrainingOptions, dataset: Any, spec: TrainingSpec, explicit: dict[str, Any]) -> str:
    from core.rundir import run_desc

    extra = []
    kimg = int(o.kimg) if o.kimg is not None and float(o.kimg).is_integer() else None
    if o.kimg is not None and kimg is None:
        extra.append(f"kimg{o.kimg:g}")
    if o.with_dataaug:
        extra.append("dataaug")
    if o.desc:
        extra.append(o.desc)
    return run_desc(o.data, cond=o.cond, subset=o.subset, dataset_size=dataset.num_raw_images, mirror=o.mirror,
                    cfg=o.cfg, gpus=spec.num_gpus, gamma=o.gamma, kimg=kimg, batch=o.batch,
                    aug=o.aug if "aug" in explicit else None, p=o.p, target=o.target, augpipe=o.augpipe,
                    resume=o.resume, freezed=o.freezed, extra=extra)


def _checked_metrics(o: TrainingOptions, metrics: list[str]) -> list[str]:
    """Metric names that can run: unknown names or missing detector weights stop the run now,
    not hours later at the first snapshot. The CUDA default (fid50k_full) quietly turns off
    when the Inception weights are not installed."""
    if not metrics:
        return []
    from core.metrics import METRICS, MetricsError
    from core.metrics.evaluate import parse_metric_names
    from core.metrics.extractors import DETECTORS, find_detector

    try:
        names = parse_metric_names(metrics)
    except MetricsError as e:
        raise OptionError(f"--metrics: {e}") from None
    usable = []
    for name in names:
        try:
            if METRICS[name].extractor in DETECTORS:
                find_detector(METRICS[name].extractor, None, name, has_option=False)
            usable.append(name)
        except MetricsError as e:
            if o.metrics is not None:
                raise OptionError(f"--metrics: {e}") from None
            log.warning("metrics: the default %s is off (%s)", name, e)
    return usable


def _relaunch_under_torchrun(opts: TrainingOptions, argv: list[str]) -> int:
    """--gpus N without torchrun: start N processes on this machine through torchrun itself."""
    from torch.distributed.run import main as torchrun_main

    script = sys.argv[0]
    target = [os.path.abspath(script)] if script.endswith(".py") else ["-m", "core.training.cli"]
    log.info("starting %d processes with torchrun --standalone", opts.gpus)
    try:
        torchrun_main(["--standalone", f"--nproc_per_node={opts.gpus}", *target, *argv])
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:  # torchrun raises ChildFailedError after printing the failing rank's error
        log.error("torchrun: %s", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        return EXIT_FAILED
    return EXIT_OK


class _TqdmHandler(logging.Handler):
    """Console log lines that do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _console_logging(rank: int) -> Iterator[None]:
    """Log lines on the console while main runs; the root logger is left as it was found (main is
    also called in-process, by tests and by the GUI's tools)."""
    root = logging.getLogger()
    level, handler = root.level, None
    if not any(isinstance(h, _TqdmHandler) for h in root.handlers):
        handler = _TqdmHandler(logging.INFO if rank == 0 else logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s" if rank == 0 else f"[rank {rank}] %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)
        root.setLevel(level)


class _ProgressBar:
    """tqdm bar over kimg with s/kimg, p and r_t (rank 0, only when stderr is a terminal)."""

    def __init__(self, total_kimg: float, start_kimg: float) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total_kimg, initial=start_kimg, unit="kimg", dynamic_ncols=True, disable=None,
                        bar_format="{l_bar}{bar}| {n:.2f}/{total_fmt} kimg [{elapsed}<{remaining}{postfix}]")

    def __call__(self, pr: Any) -> None:
        if self.bar.disable:
            return
        self.bar.update(pr.kimg - self.bar.n)
        rt = f"{pr.r_t:.3f}" if pr.r_t is not None else "-"
        self.bar.set_postfix_str(f"s/kimg {pr.sec_per_kimg:.1f}, p {pr.p:.3f}, r_t {rt}"
                                 + (", PAUSED" if pr.paused else ""), refresh=False)

    def close(self) -> None:
        self.bar.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from core.training import distributed as dist_util

    rank = int(os.environ.get("RANK", "0")) if dist_util.launched_by_torchrun() else 0
    with _console_logging(rank):
        code = _main(argv)
    dist_util.exit_process(code)  # returns unless this process was one rank of several
    return code


def _main(argv: list[str]) -> int:
    from core.training import distributed as dist_util
    from core.training.checkpointing import ResumeError, load_resume_source

    try:
        opts, dry_run, given = parse_options(argv)
        opts = absolute_paths(opts)
        # What --resume names is loaded first: a run with nothing to resume from is the real cause of
        # any option its run.json lacks. It is loaded to the CPU; the trainer moves it.
        resume = load_resume_source(opts.resume) if opts.resume else None
        check_options(opts)
        world = dist_util.env_world_size()
        if dist_util.launched_by_torchrun():
            if "gpus" in given and opts.gpus != world:
                raise OptionError(f"--gpus {opts.gpus} but torchrun started {world} processes; drop --gpus "
                                  "or make them agree")
            opts.gpus = world
            check_options(opts)
        else:
            _check_gpus(opts)
        _check_paths(opts)
        dataset = _open_dataset(opts)
    except (OptionError, ResumeError) as e:
        print(f"train_headless.py: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if opts.gpus > 1 and not dry_run and not dist_util.launched_by_torchrun():
        return _relaunch_under_torchrun(opts, argv)
    return _run(opts, dataset, dry_run, given, resume)


def _run(opts: TrainingOptions, dataset: Any, dry_run: bool, given: dict[str, Any], resume: Any) -> int:
    from core.training import distributed as dist_util

    try:
        env = dist_util.init(opts.device) if not dry_run else None
        device = env.device if env is not None else dist_util.pick_device(opts.device)
        data = DataSpec(path=opts.data, use_labels=opts.cond, mirror=opts.mirror, subset=opts.subset,
                        resolution=dataset.resolution, channels=dataset.num_channels,
                        label_dim=dataset.label_dim, num_images=len(dataset))
        spec = resolve_spec(opts, data, opts.gpus, device.type)
        spec.metrics = _checked_metrics(opts, spec.metrics)
    except (OptionError, RuntimeError) as e:
        print(f"train_headless.py: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if dry_run:
        print(json.dumps(spec.to_dict(), indent=2))
        return EXIT_OK
    assert env is not None
    return _train(spec, env, dataset, _desc(opts, dataset, spec, given), given, resume)


def _train(spec: TrainingSpec, env: Any, dataset: Any, desc: str, given: dict[str, Any], resume: Any) -> int:
    from core.rundir import RunWriter
    from core.training import distributed as dist_util
    from core.training.loop import Trainer

    try:  # the last thing that can fail on the user's input, before a run directory exists
        continued = _continued_run(spec.options.resume, given, resume) if env.is_main else None
        run_dir = (continued or _make_run_dir(spec.options.outdir, desc)) if env.is_main else None
    except OptionError as e:
        print(f"train_headless.py: error: {e}", file=sys.stderr)
        dist_util.shutdown(env, False)
        return EXIT_USAGE
    writer = RunWriter(run_dir, rank=env.rank, live_interval_s=spec.live_interval)
    handler = writer.log_handler() if env.is_main else None
    if handler is not None:
        logging.getLogger().addHandler(handler)
        options = {**spec.options.to_dict(), "resolved": spec.to_dict(), "dataset": dataset.describe(),
                   "world_size": env.world_size}
        if continued is not None:
            kimg = int(resume.state["cur_nimg"]) / 1000 if resume.state is not None else 0.0
            segment = writer.start_segment(options, str(resume.snapshot), kimg)
            log.info("continuing the run in %s (launch %d of it, from kimg %.3f)", run_dir, segment + 1, kimg)
        else:
            writer.write_run_json(options)
        log.info("run directory: %s", run_dir)
        _tell_launcher(run_dir)
    bar = _ProgressBar(spec.total_kimg, 0.0) if env.is_main else None
    trainer = None
    code, success = EXIT_FAILED, False
    # The guard spans the except and finally blocks too: torchrun's SIGTERM after another rank died
    # arrives while this rank handles its failed collective, and must not cut the status line short.
    with dist_util.sigterm_as_exception() as sigterm:
        try:
            trainer = Trainer(spec, run_dir, env, dataset, resume=resume,
                              progress_fn=bar, writer=writer, given=given)
            if bar is not None:
                bar.bar.reset(total=spec.total_kimg)
                bar.bar.update(trainer.kimg)
            with _ctrl_c_stops(trainer):
                trainer.run()
            sigterm.ending()
            code, success = EXIT_OK, True
            if trainer.interrupted:
                if env.is_main:
                    log.warning("interrupted: stopped at kimg %.3f with a snapshot; resume with --resume %s",
                                trainer.kimg, run_dir)
                code = EXIT_INTERRUPTED
        except KeyboardInterrupt as e:
            sigterm.ending()
            log.warning("interrupted (%s); the last checkpoint in %s is the place to resume from",
                        type(e).__name__, run_dir)
            writer.status("stopped", trainer.kimg if trainer else 0.0, message="interrupted")
            code = EXIT_INTERRUPTED
        except Exception as e:
            sigterm.ending()
            if run_dir is not None:  # the console gets one line, log.txt the whole traceback
                log.error("training failed: %s: %s (traceback in %s)", type(e).__name__, e, run_dir / layout.LOG_TXT)
                writer.log(traceback.format_exc())
            else:
                log.exception("training failed: %s", e)
            writer.status("failed", trainer.kimg if trainer else 0.0, message=f"{type(e).__name__}: {e}")
        finally:
            sigterm.ending()
            if bar is not None:
                bar.close()
            if trainer is not None:
                trainer.loader.close()
            writer.close()
            if handler is not None:
                logging.getLogger().removeHandler(handler)
            dist_util.shutdown(env, success)
    return code


def _tell_launcher(run_dir: Path) -> None:
    """A launcher (the GUI) that named a file in layout.LAUNCHER_RUN_DIR_FILE learns the run directory from it."""
    target = os.environ.get(layout.LAUNCHER_RUN_DIR_FILE)
    if not target:
        return
    from core.io.atomic import atomic_write_text

    try:
        atomic_write_text(target, str(run_dir.resolve()))
    except OSError as e:
        log.warning("could not tell the launcher the run directory (%s: %s)", target, e)


def _continued_run(resume_option: str | None, given: dict[str, Any], resume: Any) -> Path | None:
    """The run directory a resume continues in place: ``--resume RUN_DIR`` without ``--outdir``, or with
    the folder RUN_DIR is in. Another --outdir forks the run into a new directory (the public tool's way)."""
    if resume is None or not resume_option or not Path(resume_option).is_dir():
        return None
    run = Path(resume_option).resolve()
    if not (run / layout.RUN_JSON).is_file():
        return None
    if "outdir" in given and Path(given["outdir"]).expanduser().resolve() != run.parent:
        return None
    return run


def _make_run_dir(outdir: str, desc: str) -> Path:
    from core.rundir import new_run_dir

    try:
        return new_run_dir(outdir, desc)
    except OSError as e:
        raise OptionError(f"--outdir {outdir}: cannot make a run directory there ({e.strerror or e}); "
                          "choose a folder you can write to") from None


@contextlib.contextmanager
def _ctrl_c_stops(trainer: Any, repeat_after_s: float = CTRL_C_REPEAT_S) -> Iterator[None]:
    """The first Ctrl-C stops the run the way control.json's stop does (all ranks after the same
    minibatch, with a snapshot); another one at least ``repeat_after_s`` later aborts at once. The
    handler only sets flags: an exception raised at an arbitrary point could leave a lock held and
    hang the exit. Under torchrun a worker gets one Ctrl-C twice (from the terminal and forwarded by
    the agent, milliseconds apart): the second copy is not a second press."""
    first: list[float] = []

    def handler(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not first:
            first.append(now)
            trainer.request_interrupt()
        elif now - first[0] >= repeat_after_s:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. called from a test's worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
