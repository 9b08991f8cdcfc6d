"""Start, attach to and steer a training run, through its run directory only.

A run the GUI starts is a separate ``train_headless.py`` process in its own session (process
group), so closing or killing the GUI leaves it training; the GUI (this one or the next) reads and
writes the same files as for a run started on a cluster: events and previews through
``core.rundir.RunReader``, requests through ``core.rundir.write_control``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.augment import Mechanism, PMode
from core.rundir import ControlRequest, RunReader, RunStatus, is_run_dir, layout, write_control
from core.training.cli import options_to_argv
from core.training.config import DIFFAUG_DEFAULT, TrainingOptions, uses_ada_pipe

log = logging.getLogger(__name__)

__all__ = ["REPO_ROOT", "RunClient", "StartOptions", "trainer_command"]

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAINER = REPO_ROOT / "train_headless.py"
START_TIMEOUT_S = 120.0  # the trainer makes its run directory after imports and dataset checks


@dataclass
class StartOptions:
    """What the Training panel asks for; everything else takes the trainer's defaults."""

    outdir: str = "runs"
    data: str = "builtin:digits"
    cfg: str = "cpu32"
    aug: str = Mechanism.ADA.value
    augpipe: str = "bgc"
    with_dataaug: bool = False  # APA: also run the ADA pipe
    target: float = 0.6
    p: float = 0.2  # --aug fixed
    diffaug_policy: str = DIFFAUG_DEFAULT  # --aug diffaug
    kimg: float = 20.0
    extra_args: str = ""

    @property
    def uses_pipe(self) -> bool:
        """Whether the ADA pipe (and so the preset) takes part: the trainer refuses --augpipe otherwise."""
        return uses_ada_pipe(self.aug, self.with_dataaug)


def trainer_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a trainer started beside the GUI: one core fewer than the machine has.

    The GUI renders with torch on the remaining core. Without a limit both processes run one
    OpenMP thread per core, and oversubscribed OpenMP barriers spin: measured on 2 cores, the
    cpu32 trainer slowed from 40 to 320 s/kimg. A limit the user already set is kept.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) - 1)))
    return env


def training_options(opts: StartOptions) -> TrainingOptions:
    """The trainer's options for the form: each field only where the trainer applies it."""
    mechanism = Mechanism(opts.aug)
    return TrainingOptions(
        outdir=opts.outdir, data=opts.data, cfg=opts.cfg, aug=mechanism.value, kimg=opts.kimg,
        target=opts.target if mechanism.adaptive else None,
        p=opts.p if mechanism is Mechanism.FIXED else None,
        with_dataaug=opts.with_dataaug and mechanism is Mechanism.APA,
        augpipe=opts.augpipe if opts.uses_pipe else None,
        diffaug_policy=opts.diffaug_policy if mechanism is Mechanism.DIFFAUG else None,
    )


def trainer_command(opts: StartOptions, python: str = sys.executable) -> list[str]:
    """train_headless.py with the form's options (written by the CLI's own inverse parser), then the
    form's extra arguments, last so that an option typed there wins over the form's."""
    return [python, str(TRAINER), *options_to_argv(training_options(opts)), *shlex.split(opts.extra_args)]


@dataclass
class _Launch:
    proc: subprocess.Popen[bytes]
    outdir: Path
    run_dir_file: Path
    log_path: Path
    started: float


class RunClient:
    """The one run the GUI watches (if any), and the trainer process it started (if any)."""

    def __init__(self) -> None:
        self.reader: RunReader | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._launch: _Launch | None = None
        self.error: str | None = None

    @property
    def run_dir(self) -> Path | None:
        return self.reader.run_dir if self.reader else None

    @property
    def starting(self) -> bool:
        return self._launch is not None

    def attach(self, run_dir: str | Path) -> None:
        path = Path(run_dir).expanduser()
        if not is_run_dir(path):
            raise ValueError(
                f"{path}: not a run directory (no {layout.RUN_JSON} or {layout.EVENTS}); pick <outdir>/<NNNNN>-<desc>"
            )
        self.reader, self.error = RunReader(path), None

    def detach(self) -> None:
        self.reader = None

    def start(self, opts: StartOptions) -> None:
        """Launch a trainer in the background; the run directory it makes is attached once it appears."""
        # Relative paths in the form mean the GUI's working folder, wherever the GUI was started.
        outdir = Path(opts.outdir).expanduser().resolve()
        outdir.mkdir(parents=True, exist_ok=True)
        opts = dataclasses.replace(opts, outdir=str(outdir))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path = outdir / f"launch-{stamp}.log"
        run_dir_file = outdir / f".launch-{stamp}-{os.getpid()}.rundir"
        run_dir_file.unlink(missing_ok=True)
        with open(log_path, "wb") as out:
            # Own session: the trainer survives the GUI closing, Ctrl+C in its terminal included.
            proc = subprocess.Popen(
                trainer_command(opts),
                env={**trainer_env(), layout.LAUNCHER_RUN_DIR_FILE: str(run_dir_file)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.proc, self.error = proc, None
        self._launch = _Launch(proc, outdir, run_dir_file, log_path, time.monotonic())
        log.info("started trainer pid %d, output in %s", proc.pid, log_path)

    def poll(self) -> list[dict[str, Any]]:
        """New events of the attached run (oldest first)."""
        return self.reader.poll_events() if self.reader else []

    def check_launch(self) -> Path | None:
        """For a trainer this client started: its run directory once it appears (then attached and
        returned, once); sets ``error`` if the trainer exits or times out before making one."""
        launch = self._launch
        if launch is None:
            return None
        run_dir = _read_run_dir_file(launch.run_dir_file)
        if run_dir is not None:
            self._launch = None
            launch.run_dir_file.unlink(missing_ok=True)
            self.reader = RunReader(run_dir)
            return run_dir
        code = launch.proc.poll()
        if code is not None:
            self._launch = None
            tail = _tail(launch.log_path, 3)
            self.error = f"the trainer exited ({code}) before making its run directory: {tail or 'no output'}"
        elif time.monotonic() - launch.started > START_TIMEOUT_S:
            # A trainer the GUI cannot follow is stopped, never left running unseen.
            self._launch = None
            _stop_process_group(launch.proc)
            self.error = (
                f"the trainer made no run directory within {START_TIMEOUT_S:.0f} s and was stopped; "
                f"see {launch.log_path}"
            )

    def status(self) -> RunStatus | None:
        return self.reader.status() if self.reader else None

    def trainer_running(self) -> bool:
        """Whether the trainer this GUI started is still alive."""
        return self.proc is not None and self.proc.poll() is None

    def request(self, req: ControlRequest) -> int:
        """Write a control request to the attached run; returns its seq."""
        if self.reader is None:
            raise ValueError("no run attached; start a run or attach to a run directory first")
        merged = write_control(self.reader.run_dir, req, min_seq=self.reader.control_last_applied() + 1)
        return merged.seq

    def pause(self) -> int:
        return self.request(ControlRequest(pause=True))

    def resume(self) -> int:
        return self.request(ControlRequest(pause=False))

    def stop(self) -> int:
        return self.request(ControlRequest(stop=True))

    def snapshot_now(self) -> int:
        return self.request(ControlRequest(snapshot_now=True))

    def send_augment(self, multipliers: dict[str, float], mode: str, target: float, p: float) -> int:
        req = ControlRequest(
            aug_multipliers=dict(multipliers),
            aug_mode=PMode(mode).value,
            target=target if mode == PMode.ADAPTIVE else None,
            fixed_p=p if mode == PMode.FIXED else None,
        )
        return self.request(req)

    def applied_at(self, seq: int, events: list[dict[str, Any]]) -> float | None:
        """kimg of the control event that applied ``seq`` (or a later request) among ``events``."""
        for ev in events:
            if ev.get("kind") == "control" and isinstance(ev.get("seq"), int) and ev["seq"] >= seq:
                return float(ev.get("kimg", 0.0))
        return None


def _read_run_dir_file(path: Path) -> Path | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    run_dir = Path(text) if text else None
    return run_dir if run_dir is not None and (run_dir / layout.RUN_JSON).is_file() else None


def _stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the trainer's process group (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, n: int) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])
