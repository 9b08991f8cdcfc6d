"""The run directory: the one stream between a trainer and any GUI (writer and reader together).

Layout of ``<outdir>/<NNNNN>-<desc>/`` (docs/run-directory.md describes every file for users):

    run.json          options, versions, start time, pid/host          RunWriter.write_run_json
    log.txt           human log, one write per line                    RunWriter.log / log_handler
    events.jsonl      one JSON object per line: t, kimg, kind, ...     RunWriter.event and helpers
    snapshots/        network-snapshot-<KKKKKK>.* (checkpoint module); latest.json (write_latest)
    live/             G_ema.safetensors + G_ema.json, refreshed often  RunWriter.write_live
    previews/         <kind>-<KKKKKK>.png grids                        RunWriter.write_preview
    control.json      written by the GUI, read by the trainer          core.training.control
    tb/               TensorBoard event files, created on first use    RunWriter.scalars

Guarantees: every file except the two append-only logs is replaced atomically (temp file in the
same folder, fsync, ``os.replace``), so a reader sees the old or the new file, never half of
one. events.jsonl and log.txt are appended one whole line per ``write()`` call; a reader ignores
a last line without its newline (or that does not parse) until it is complete. Temporary files
are dot-prefixed ``.tmp`` names that no reader globs; the next writer removes stale ones.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import platform
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from core.io.atomic import atomic_write_bytes, atomic_write_json
from core.training.control import (
    CONTROL_FILE,
    ControlError,
    ControlPoller,
    ControlRequest,
    read_control,
    write_control,
)

__all__ = [
    "CONTROL_FILE",
    "EVENT_KINDS",
    "STATES",
    "ControlError",
    "ControlPoller",
    "ControlRequest",
    "LiveWeights",
    "RunLogHandler",
    "RunReader",
    "RunStatus",
    "RunWriter",
    "dataset_name",
    "image_grid",
    "kimg_tag",
    "list_run_dirs",
    "new_run_dir",
    "read_control",
    "run_desc",
    "snapshot_stem",
    "tag_kimg",
    "write_control",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RUN_JSON = "run.json"
LOG_TXT = "log.txt"
EVENTS = "events.jsonl"
SNAPSHOTS = "snapshots"
LATEST = "latest.json"
LIVE = "live"
LIVE_TENSORS = "G_ema.safetensors"
LIVE_JSON = "G_ema.json"
PREVIEWS = "previews"
TB = "tb"

EVENT_KINDS = ("stats", "tick", "snapshot", "preview", "control", "status", "metric")
# Status event states, and what RunReader.status() reports for each.
STATES = ("started", "paused", "resumed", "stopped", "finished", "failed")
_STATE_OF = {"started": "running", "resumed": "running", "paused": "paused",
             "stopped": "stopped", "finished": "finished", "failed": "failed"}

# Stat names the GUI plots (public StyleGAN2-ADA names, so users of those tools recognise them).
STAT_P = "Progress/augment"            # augmentation probability p
STAT_RT = "Loss/signs/real"            # r_t = E[sign(D(real))], what ADA steers toward its target
STAT_SEC_PER_KIMG = "Timing/sec_per_kimg"
STAT_LOSS_G = "Loss/G/loss"
STAT_LOSS_D = "Loss/D/loss"
STAT_R1 = "Loss/r1_penalty"
STAT_PL = "Loss/pl_penalty"

_RUN_DIR_RE = re.compile(r"^(\d+)")
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TAGGED_RE = re.compile(r"^(?P<kind>.+)-(?P<kimg>\d{6,}(?:\.\d{3})?)\.png$")
_SNAPSHOT_SUFFIXES = (".json", ".safetensors", ".resume.json", ".resume.safetensors")
_RESUME_NAMES = ("ffhq256", "ffhq512", "ffhq1024", "celebahq256", "lsundog256")
_FSYNC_INTERVAL_S = 1.0


# --------------------------------------------------------------------------------------------
# Naming


def kimg_tag(kimg: float, fine: bool = False) -> str:
    """Whole kimg, zero-padded to six digits, as in the public file names (12.9 -> '000012'); with
    ``fine``, thousandths too (12.9 -> '000012.900'): one image more or less is a different tag."""
    if not math.isfinite(kimg) or kimg < 0:
        raise ValueError(f"kimg must be a finite number >= 0, got {kimg!r}")
    if fine:
        nimg = round(kimg * 1000)
        return f"{nimg // 1000:06d}.{nimg % 1000:03d}"
    return f"{int(kimg):06d}"


def snapshot_stem(kimg: float, fine: bool = False) -> str:
    """File stem of the network snapshot at ``kimg``: network-snapshot-<KKKKKK>[.<ttt>]."""
    return f"network-snapshot-{kimg_tag(kimg, fine)}"


def tag_kimg(tag: str) -> float:
    """The kimg a tag names: '000012' -> 12.0, '000012.900' -> 12.9."""
    return float(tag)


def dataset_name(data: str | os.PathLike[str]) -> str:
    """The name a run's desc starts with: the dataset path's basename without extension.

    ``~/data/ffhq256.zip`` -> ``ffhq256``; ``builtin:digits`` -> ``digits``.
    """
    text = os.fspath(data).rstrip("/\\")
    name = os.path.splitext(os.path.basename(text))[0].rsplit(":", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    if not name:
        raise ValueError(f"cannot derive a dataset name from {os.fspath(data)!r}")
    return name


def run_desc(
    data: str | os.PathLike[str],
    *,
    cond: bool = False,
    subset: int | None = None,
    dataset_size: int | None = None,
    mirror: bool = False,
    cfg: str = "auto",
    gpus: int = 1,
    gamma: float | None = None,
    kimg: int | None = None,
    batch: int | None = None,
    aug: str | None = None,
    p: float | None = None,
    target: float | None = None,
    augpipe: str | None = None,
    resume: str | None = None,
    freezed: int | None = None,
    extra: Iterable[str] = (),
) -> str:
    """The run's desc, built from the options the public way (the part after ``NNNNN-``).

    Options the user left at their default are passed as None and do not appear: ``aug``,
    ``p``, ``target``, ``augpipe``, ``gamma``, ``kimg``, ``batch``, ``resume``, ``freezed``.
    ``subset`` appears only when it is smaller than ``dataset_size`` (when that is known).
    ``resume``: "noresume", a public name (ffhq256, ...) or anything else (a path or URL,
    written as "resumecustom"). ``extra`` tags (e.g. "dataaug") are appended last.
    """
    parts = [dataset_name(data)]
    if cond:
        parts.append("cond")
    if subset is not None and (dataset_size is None or subset < dataset_size):
        parts.append(f"subset{subset:d}")
    if mirror:
        parts.append("mirror")
    parts.append(f"{cfg}{gpus:d}" if cfg == "auto" else cfg)
    if gamma is not None:
        parts.append(f"gamma{gamma:g}")
    if kimg is not None:
        parts.append(f"kimg{kimg:d}")
    if batch is not None:
        parts.append(f"batch{batch:d}")
    if aug is not None:
        parts.append(aug)
    if p is not None:
        parts.append(f"p{p:g}")
    if target is not None:
        parts.append(f"target{target:g}")
    if augpipe is not None:
        parts.append(augpipe)
    if resume == "noresume":
        parts.append("noresume")
    elif resume in _RESUME_NAMES:
        parts.append(f"resume{resume}")
    elif resume is not None:
        parts.append("resumecustom")
    if freezed is not None:
        parts.append(f"freezed{freezed:d}")
    parts.extend(extra)
    return "-".join(parts)


def _run_ids(outdir: Path) -> dict[int, list[str]]:
    ids: dict[int, list[str]] = {}
    for entry in os.scandir(outdir):
        m = _RUN_DIR_RE.match(entry.name)
        if m and entry.is_dir():
            ids.setdefault(int(m.group(1)), []).append(entry.name)
    return ids


def new_run_dir(outdir: str | os.PathLike[str], desc: str, max_tries: int = 1000) -> Path:
    """Create and return ``<outdir>/<NNNNN>-<desc>``; NNNNN = 1 + the largest numeric prefix there.

    Safe against concurrent creators (two trainers started at once): the directory is made
    without exist_ok, and a creator that then finds another directory with its id (a different
    desc made at the same moment) removes its own, still empty one and tries again; of any two
    runs, the one that checked last always sees the other, so no id is ever used twice.
    """
    if not desc or any(sep in desc for sep in ("/", "\\", os.sep)) or desc in (".", ".."):
        raise ValueError(f"run desc {desc!r} must be a non-empty name without path separators")
    root = Path(outdir)
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(max_tries):
        run_id = max(_run_ids(root), default=-1) + 1
        path = root / f"{run_id:05d}-{desc}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        if _run_ids(root).get(run_id) == [path.name]:
            return path
        path.rmdir()
        time.sleep(random.uniform(0.001, 0.02))  # break the tie with the other creator
    raise RuntimeError(f"{root}: could not create a new run directory after {max_tries} tries")


def list_run_dirs(outdir: str | os.PathLike[str]) -> list[Path]:
    """Run directories under ``outdir`` (names starting with digits), oldest id first."""
    root = Path(outdir)
    if not root.is_dir():
        return []
    ids = _run_ids(root)
    return [root / name for run_id in sorted(ids) for name in sorted(ids[run_id])]


# --------------------------------------------------------------------------------------------
# Writer


def _jsonable(obj: Any, where: str) -> Any:
    """Plain JSON types from numpy/torch scalars and paths; raise naming the field otherwise."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON-serialisable (pass numbers, strings, lists)")


def image_grid(
    images: torch.Tensor | np.ndarray, cols: int, drange: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """Tile images [N, C, H, W] (values in ``drange``) into one uint8 [rows*H, cols*W, C] grid.

    Missing cells at the end of the last row stay black; NaN pixels (a diverged G) are drawn
    black and infinities clipped, so a broken run still gets a preview that shows it.
    """
    x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"image_grid: expected images [N, C, H, W], got shape {list(x.shape)}")
    n, c, h, w = x.shape
    if cols < 1:
        raise ValueError(f"image_grid: cols must be >= 1, got {cols}")
    lo, hi = drange
    x = np.nan_to_num(x.astype(np.float64), nan=lo, posinf=hi, neginf=lo)
    x = np.clip(np.rint((x - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = x[i].transpose(1, 2, 0)
    return grid


def _checked_grid(grid: np.ndarray) -> np.ndarray:
    """A private copy of a preview grid as [H, W] or [H, W, 3|4] uint8; ValueError otherwise."""
    arr = np.asarray(grid)
    if arr.dtype != np.uint8:
        raise ValueError(f"preview grid must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"preview grid must be [H, W] or [H, W, 1|3|4], got {list(arr.shape)}")
    return np.array(arr, order="C", copy=True)


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    # Level 1: about 4x faster than Pillow's default 6 for ~20 % more bytes; previews are
    # written while training waits on nothing else, but a laptop run has short ticks.
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class _Background:
    """One worker thread for slow writes (serialising weights, encoding PNGs) off the training loop.

    Jobs with a ``key`` replace a queued, not yet started job of the same key (latest wins: only
    the newest live weights matter); other jobs run in order. A failing job is logged, and the
    next ones still run.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jobs: deque[tuple[str | None, Callable[[], None]]] = deque()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[], None], key: str | None = None) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("RunWriter is closed")
            for i, (k, _) in enumerate(self._jobs):
                if key is not None and k == key:
                    self._jobs[i] = (key, fn)
                    break
            else:
                self._jobs.append((key, fn))
            if self._thread is None:
                # Daemon: a trainer that dies must not hang on it; close() drains the queue.
                self._thread = threading.Thread(target=self._run, name="run-dir-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                _, fn = self._jobs.popleft()
                self._busy = True
            try:
                fn()
            except Exception:
                log.exception("run directory: a background write failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self) -> None:
        with self._cond:
            while self._jobs or self._busy:
                self._cond.wait()

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()


def _append_line(fd: int, line: str) -> None:
    """One os.write of the whole line (O_APPEND puts it at the end as one piece)."""
    data = line.encode("utf-8")
    written = os.write(fd, data)
    while written < len(data):  # only on a full disk or a signal; finish the line regardless
        written += os.write(fd, data[written:])


def _open_append(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    # A line torn by a crash (power loss) must stay its own line, not glue onto the next one.
    size = os.fstat(fd).st_size
    if size:
        with open(path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                _append_line(fd, "\n")
    return fd


class RunWriter:
    """Writes a run directory. Only rank 0 writes; on other ranks every method does nothing.

    ``clock`` gives the unix time stamped on events (a test or a recording passes its own).
    ``live_interval_s``: write_live skips calls closer together than this, unless forced.
    ``background``: serialise live weights and encode previews on a worker thread, so the
    training loop only pays for copying the weights to the CPU; ``flush()`` waits for them.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None,
        rank: int = 0,
        clock: Callable[[], float] = time.time,
        live_interval_s: float = 5.0,
        background: bool = True,
    ) -> None:
        self.rank = rank
        self.enabled = rank == 0
        self.clock = clock
        self.live_interval_s = live_interval_s
        self.run_dir = Path(run_dir) if run_dir is not None else None
        # Stamped on run.json and status events so a reader on this host can tell a dead trainer.
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._lock = threading.Lock()
        self._events_fd: int | None = None
        self._log_fd: int | None = None
        self._last_fsync = 0.0
        self._tb: Any = None
        self._live_count = 0
        self._last_live = -math.inf
        self._run_json_written = False
        self._background = _Background() if background else None
        self._tags: dict[str, int] = {}  # file name -> the nimg this writer gave it (see free_tag)
        if not self.enabled:
            return
        if self.run_dir is None:
            raise ValueError("RunWriter: rank 0 needs a run directory")
        for sub in (SNAPSHOTS, LIVE, PREVIEWS):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        self._events_fd = _open_append(self.run_dir / EVENTS)
        self._log_fd = _open_append(self.run_dir / LOG_TXT)

    # -- housekeeping

    def _remove_stale_temps(self) -> None:
        """Temps left by a killed writer. live/, previews/, snapshots/ belong to the trainer
        process alone; control.json temps in the root are the GUI's, so only old ones go."""
        assert self.run_dir is not None
        now = time.time()
        for sub in (LIVE, PREVIEWS, SNAPSHOTS, "."):
            folder = self.run_dir / sub
            if not folder.is_dir():
                continue
            for path in folder.glob(".*.tmp"):
                try:
                    if sub == "." and now - path.stat().st_mtime < 60:
                        continue
                    path.unlink()
                    log.debug("removed stale temporary file %s", path)
                except OSError:
                    pass

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        """Wait until background writes (live weights, previews) are on disk."""
        if self._background is not None:
            self._background.flush()

    def _submit(self, fn: Callable[[], None], key: str | None = None) -> None:
        if self._background is None:
            fn()
        else:
            self._background.submit(fn, key)

    def close(self) -> None:
        """Finish background writes, flush everything to disk, close the files. Safe to call twice."""
        if self._background is not None:
            self._background.close()
        with self._lock:
            for name in ("_events_fd", "_log_fd"):
                fd = getattr(self, name)
                if fd is not None:
                    os.fsync(fd)
                    os.close(fd)
                    setattr(self, name, None)
            if self._tb is not None:
                self._tb.close()
                self._tb = None

    # -- run.json and logs

    def write_run_json(self, options: Mapping[str, Any]) -> None:
        """Write run.json once: the resolved ``options`` plus versions, start time, pid and host."""
        if not self.enabled:
            return
        assert self.run_dir is not None
        path = self.run_dir / RUN_JSON
        if self._run_json_written or path.exists():
            raise FileExistsError(f"{path} already exists: a run directory holds one run; make a new one")
        doc = {
            "format": FORMAT_VERSION,
            "created": self.clock(),
            "pid": self.pid,
            "host": self.host,
            "versions": _versions(),
            "options": _jsonable(dict(options), "options"),
        }
        atomic_write_json(path, doc)
        self._run_json_written = True

    def log(self, msg: str) -> None:
        """Append ``msg`` (one or more lines) to log.txt in one write."""
        if self._log_fd is None:
            return
        _append_line(self._log_fd, msg if msg.endswith("\n") else msg + "\n")

    def log_handler(self, level: int = logging.INFO, fmt: str | None = None) -> RunLogHandler:
        """A logging.Handler that writes records to log.txt (attach it to the root logger)."""
        handler = RunLogHandler(self, level)
        handler.setFormatter(logging.Formatter(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        return handler

    # -- events

    def event(self, kind: str, kimg: float, **fields: Any) -> None:
        """Append one event line {"t", "kimg", "kind", **fields} to events.jsonl.

        Non-finite numbers are written as NaN/Infinity (Python's json reads them back).
        """
        if self._events_fd is None:
            return
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
        for reserved in ("t", "kimg", "kind"):
            if reserved in fields:
                raise ValueError(f"event field {reserved!r} is set by the writer; rename it")
        record = {"t": self.clock(), "kimg": float(kimg), "kind": kind, **_jsonable(fields, kind)}
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._events_fd is None:
                return
            _append_line(self._events_fd, line)
            # Durability against power loss, bounded in cost: a killed process loses nothing
            # written (the kernel has it), a lost machine at most ~1 s of events.
            now = time.monotonic()
            if now - self._last_fsync >= _FSYNC_INTERVAL_S:
                os.fsync(self._events_fd)
                self._last_fsync = now

    def stats(self, kimg: float, values: Mapping[str, float]) -> None:
        """A "stats" event: stat name -> value (see the STAT_* names the GUI plots)."""
        self.event("stats", kimg, **values)

    def status(self, state: str, kimg: float, message: str = "") -> None:
        """A "status" event: started/paused/resumed/stopped/finished/failed, with pid and host."""
        if state not in STATES:
            raise ValueError(f"status {state!r} is not one of {', '.join(STATES)}")
        self.event("status", kimg, state=state, message=message, pid=self.pid, host=self.host)

    def control_applied(self, kimg: float, seq: int, applied: Mapping[str, Any]) -> None:
        """A "control" event: the trainer applied control request ``seq`` (``applied``: what changed)."""
        self.event("control", kimg, seq=int(seq), applied=dict(applied))

    def metric(
        self, kimg: float, metric: str, results: Mapping[str, float], snapshot: str | None = None
    ) -> None:
        """A "metric" event: ``results`` of ``metric`` (e.g. {"fid50k_full": 12.3}) on a snapshot."""
        self.event("metric", kimg, metric=metric, results=dict(results), snapshot=snapshot)

    def scalars(self, kimg: float, values: Mapping[str, float]) -> None:
        """TensorBoard scalars at step = images shown (kimg * 1000); tb/ is made on first use."""
        if not self.enabled:
            return
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            assert self.run_dir is not None
            self._tb = SummaryWriter(log_dir=str(self.run_dir / TB), flush_secs=10)
        step = int(round(kimg * 1000))
        walltime = self.clock()
        for name, value in values.items():
            self._tb.add_scalar(name, float(value), global_step=step, walltime=walltime)

    # -- files

    def free_tag(self, pattern: str, kimg: float) -> str:
        """The kimg tag for the file ``pattern.format(tag)`` (relative to the run directory) at
        ``kimg``: the public whole-kimg tag, unless a file of another kimg already has that name
        (ticks shorter than 1 kimg), then with thousandths. Nothing kept is overwritten."""
        assert self.run_dir is not None
        nimg = round(kimg * 1000)
        whole = pattern.format(kimg_tag(kimg))
        owner = self._tags.get(whole)
        if owner == nimg or (owner is None and not (self.run_dir / whole).exists()):
            self._tags[whole] = nimg
            return kimg_tag(kimg)
        self._tags[pattern.format(kimg_tag(kimg, fine=True))] = nimg
        return kimg_tag(kimg, fine=True)

    def kept_snapshot_stem(self, kimg: float) -> str:
        """The stem for a kept snapshot at ``kimg`` (network-snapshot-<KKKKKK>, see free_tag)."""
        return f"network-snapshot-{self.free_tag(SNAPSHOTS + '/network-snapshot-{}.json', kimg)}"

    def write_preview(self, kind: str, kimg: float, grid: np.ndarray) -> Path | None:
        """Write previews/<kind>-<KKKKKK>.png atomically from a uint8 grid; emit a "preview" event."""
        if not self.enabled:
            return None
        assert self.run_dir is not None
        if not _KIND_RE.match(kind):
            raise ValueError(f"preview kind {kind!r} must be lower-case letters, digits, '-' or '_'")
        rel = f"{PREVIEWS}/{kind}-{self.free_tag(PREVIEWS + '/' + kind + '-{}.png', kimg)}.png"
        arr = _checked_grid(grid)
        path = self.run_dir / rel

        def write() -> None:
            atomic_write_bytes(path, _png_bytes(arr))
            self.event("preview", kimg, image=kind, file=rel)

        self._submit(write)
        return path

    def write_latest(self, stem: str, kimg: float) -> None:
        """Point snapshots/latest.json at a complete snapshot; emit a "snapshot" event with its files.

        Call it after the checkpoint module has written every file of ``stem``.
        """
        if not self.enabled:
            return
        assert self.run_dir is not None
        folder = self.run_dir / SNAPSHOTS
        if not (folder / f"{stem}.json").is_file():  # the checkpoint module writes it last
            raise FileNotFoundError(f"{folder / stem}.json does not exist; write the snapshot first")
        files = sorted(f"{SNAPSHOTS}/{stem}{suffix}" for suffix in _SNAPSHOT_SUFFIXES
                       if (folder / f"{stem}{suffix}").is_file())
        atomic_write_json(folder / LATEST, {"snapshot": stem, "kimg": float(kimg), "t": self.clock()})
        self.event("snapshot", kimg, snapshot=stem, files=files)

    def write_live(self, G_ema: torch.nn.Module, kimg: float, force: bool = False) -> bool:
        """Refresh live/G_ema.safetensors, then live/G_ema.json; False if skipped (too soon).

        The weights are copied to the CPU now (so training can go on changing them); the files
        are written in the background, the newest copy replacing one still waiting. Both files
        carry the same ``write_id``; the tensors file's metadata also holds the kwargs and kimg,
        so it alone is a consistent snapshot (see RunReader.live_weights).
        """
        if not self.enabled:
            return False
        now = time.monotonic()
        if not force and now - self._last_live < self.live_interval_s:
            return False
        assert self.run_dir is not None
        from safetensors.torch import save

        kwargs = _jsonable(dict(getattr(G_ema, "init_kwargs", {})), "G_ema.init_kwargs")
        self._live_count += 1
        write_id = f"{self._live_count}-{uuid.uuid4().hex}"
        tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in G_ema.state_dict().items()}
        meta = {"write_id": write_id, "kimg": repr(float(kimg)), "kwargs": json.dumps(kwargs)}
        info = {"write_id": write_id, "kimg": float(kimg), "t": self.clock(), "kwargs": kwargs}
        folder = self.run_dir / LIVE

        def write() -> None:
            # Serialised in memory: save_file would create the file 0600, unreadable to a GUI user.
            atomic_write_bytes(folder / LIVE_TENSORS, save(tensors, metadata=meta))
            atomic_write_json(folder / LIVE_JSON, info)

        self._submit(write, key="live")
        self._last_live = now
        return True


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    try:
        out["ada-studio"] = metadata.version("ada-studio")
    except metadata.PackageNotFoundError:
        out["ada-studio"] = "unknown (not installed)"
    out["platform"] = platform.platform()
    out["argv"] = " ".join(sys.argv)
    return out


class RunLogHandler(logging.Handler):
    """logging.Handler writing each formatted record to the run's log.txt (one write per record)."""

    def __init__(self, writer: RunWriter, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.log(self.format(record))
        except Exception:
            self.handleError(record)


# --------------------------------------------------------------------------------------------
# Reader


@dataclass(frozen=True)
class RunStatus:
    """What RunReader.status() reports.

    state: running / paused / finished / failed / stopped / unknown (no status event yet).
    stale: the trainer looks dead: running but silent for longer than ``stale_after`` seconds,
    or its process is gone (checked only when it ran on this host).
    """

    state: str
    message: str
    kimg: float | None
    last_event_t: float | None
    stale: bool
    stale_reason: str = ""


class LiveWeights(NamedTuple):
    """G_ema weights from live/: state dict, constructor kwargs, kimg."""

    state_dict: dict[str, torch.Tensor]
    kwargs: dict[str, Any]
    kimg: float


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists under another user, or cannot tell: do not claim it is dead
    return True


class RunReader:
    """Reads a run directory (the GUI's only way in). Never sees half a file.

    Events are read incrementally: ``poll_events()`` returns the complete lines added since the
    last call. ``status()``, ``metrics()`` and ``control_applied()`` read new lines too and keep
    them queued for the next ``poll_events()``, so no event is ever skipped. If events.jsonl is
    truncated or replaced, reading restarts from its beginning and ``resets`` goes up by one
    (a GUI then clears what it derived from earlier events). Use one reader from one thread.
    """

    _HEAD = 64  # bytes of events.jsonl remembered to notice a replaced file

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.resets = 0
        self._options: dict[str, Any] | None = None
        self._clear()

    def _clear(self) -> None:
        self._offset = 0
        self._file_id: tuple[int, int] | None = None
        self._head = b""
        self._pending: list[dict[str, Any]] = []
        self._last_event: dict[str, Any] | None = None
        self._last_status: dict[str, Any] | None = None
        self._last_kimg: float | None = None
        self._metrics: list[dict[str, Any]] = []
        self._applied_seq = -1

    # -- run.json, log

    def run_info(self) -> dict[str, Any] | None:
        """The whole run.json (format, created, pid, host, versions, options), or None."""
        doc = _read_json(self.run_dir / RUN_JSON)
        return doc if isinstance(doc, dict) else None

    def options(self) -> dict[str, Any] | None:
        """The training options from run.json, or None while it does not exist yet."""
        if self._options is None:
            info = self.run_info()
            self._options = info.get("options") if info else None
        return self._options

    def log_tail(self, n: int = 100) -> list[str]:
        """The last ``n`` complete lines of log.txt (without newlines)."""
        path = self.run_dir / LOG_TXT
        try:
            with open(path, "rb") as f:
                end = f.seek(0, os.SEEK_END)
                pos, data = end, b""
                while pos > 0 and data.count(b"\n") <= n:
                    step = min(65536, pos)
                    pos -= step
                    f.seek(pos)
                    data = f.read(step) + data
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]  # a last line still being written is left out
        lines = complete.decode("utf-8", errors="replace").splitlines()
        if pos > 0:
            lines = lines[1:]  # the first one may be cut
        return lines[-n:] if n > 0 else []

    # -- events

    def poll_events(self) -> list[dict[str, Any]]:
        """Events completed since the last call (oldest first)."""
        self._update()
        out, self._pending = self._pending, []
        return out

    def _restart(self, why: str) -> None:
        log.info("%s: %s; reading it again from the start", self.run_dir / EVENTS, why)
        self._clear()
        self.resets += 1

    def _update(self) -> None:
        path = self.run_dir / EVENTS
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                file_id = (st.st_dev, st.st_ino)
                if self._file_id is not None and file_id != self._file_id:
                    self._restart("the file was replaced")
                elif st.st_size < self._offset:
                    self._restart("the file was truncated")
                elif self._head and f.read(len(self._head)) != self._head:
                    self._restart("the file was rewritten")
                self._file_id = file_id
                f.seek(self._offset)
                data = f.read(max(st.st_size - self._offset, 0))
        except FileNotFoundError:
            if self._file_id is not None:
                self._restart("the file was removed")
            return
        end = data.rfind(b"\n")
        if end < 0:
            return  # nothing new, or only a torn line still being written
        if self._offset < self._HEAD:
            self._head = (self._head + data[: end + 1])[: self._HEAD]
        start = self._offset
        self._offset += end + 1
        for line_start, raw in self._lines(data[: end + 1], start):
            self._ingest(raw, line_start)

    @staticmethod
    def _lines(chunk: bytes, base: int) -> Iterable[tuple[int, bytes]]:
        pos = 0
        for raw in chunk.split(b"\n")[:-1]:
            yield base + pos, raw
            pos += len(raw) + 1

    def _ingest(self, raw: bytes, offset: int) -> None:
        if not raw.strip():
            return
        try:
            ev = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            ev = None
        if not isinstance(ev, dict) or not isinstance(ev.get("kind"), str):
            log.warning("%s: skipping a corrupt line at byte %d", self.run_dir / EVENTS, offset)
            return
        self._pending.append(ev)
        self._last_event = ev
        if isinstance(ev.get("kimg"), int | float):
            self._last_kimg = float(ev["kimg"])
        kind = ev["kind"]
        if kind == "status":
            self._last_status = ev
        elif kind == "metric":
            self._metrics.append(ev)
        elif kind == "control" and isinstance(ev.get("seq"), int):
            self._applied_seq = max(self._applied_seq, ev["seq"])

    def status(self, now: float | None = None, stale_after: float = 300.0) -> RunStatus:
        """The run's state from its latest "status" event, with a liveness check.

        ``stale_after``: seconds of silence after which a running trainer is reported stale
        (keep it above the longest quiet stretch, e.g. a metric evaluation).
        """
        self._update()
        now = time.time() if now is None else now
        last_t = self._last_event.get("t") if self._last_event else None
        st = self._last_status
        if st is None:
            return RunStatus("unknown", "", self._last_kimg, last_t, False)
        state = _STATE_OF.get(str(st.get("state")), "unknown")
        message = str(st.get("message", ""))
        reason = ""
        if state in ("running", "paused") and st.get("host") == socket.gethostname():
            pid = st.get("pid")
            if isinstance(pid, int) and not _pid_alive(pid):
                reason = f"the trainer process {pid} is gone without a final status"
        silent = now - last_t if isinstance(last_t, int | float) else 0.0
        if not reason and state == "running" and silent > stale_after:
            reason = f"no event for {silent:.0f} s (trainer possibly dead)"
        return RunStatus(state, message, self._last_kimg, last_t, bool(reason), reason)

    def metrics(self) -> list[dict[str, Any]]:
        """Every "metric" event so far (metric, results, snapshot, kimg, t)."""
        self._update()
        return list(self._metrics)

    def control_last_applied(self) -> int:
        """Highest control seq the trainer reported as applied (-1: none)."""
        self._update()
        return self._applied_seq

    def control_applied(self, seq: int) -> bool:
        """Whether the trainer applied control request ``seq`` (or a later one, which includes it)."""
        return self.control_last_applied() >= seq

    # -- files

    def latest_preview(self, kind: str) -> Path | None:
        """The newest previews/<kind>-<KKKKKK>.png, or None."""
        if not _KIND_RE.match(kind):
            raise ValueError(f"preview kind {kind!r} must be lower-case letters, digits, '-' or '_'")
        best: tuple[float, Path] | None = None
        try:
            entries = list(os.scandir(self.run_dir / PREVIEWS))
        except (FileNotFoundError, NotADirectoryError):
            return None
        for entry in entries:
            m = _TAGGED_RE.match(entry.name)
            if m and m.group("kind") == kind and (best is None or tag_kimg(m.group("kimg")) > best[0]):
                best = (tag_kimg(m.group("kimg")), Path(entry.path))
        return best[1] if best else None

    def latest_snapshot(self) -> Path | None:
        """The .json (commit marker) of the newest complete snapshot, or None; load it with
        ``core.networks.checkpoint.load_any``. latest.json wins when it names a complete one."""
        from core.networks.checkpoint import latest_snapshot

        return latest_snapshot(self.run_dir)

    def live_version(self) -> str | None:
        """The write_id of the current live weights (cheap; poll it, load when it changes)."""
        try:
            info = _read_json(self.run_dir / LIVE / LIVE_JSON)
        except (OSError, json.JSONDecodeError):
            return None
        return info.get("write_id") if isinstance(info, dict) else None

    def live_weights(self, retries: int = 5, delay_s: float = 0.05) -> LiveWeights | None:
        """The live G_ema weights, kwargs and kimg, or None if there are none yet.

        The json and tensors files are replaced one after the other, so a reader can catch a
        pair from two different writes; it then retries. If they still differ (a writer killed
        between the two), the tensors file alone is used: its metadata holds the same kwargs
        and kimg, and one file is always whole.
        """
        from core.io.tensors import read_tensor_file

        folder = self.run_dir / LIVE
        for attempt in range(retries + 1):
            try:
                info = _read_json(folder / LIVE_JSON)
            except (OSError, json.JSONDecodeError):
                info = None
            try:
                # One open, all bytes: one version, even if a writer replaces the name meanwhile
                # (safe_open would not do: it opens the file twice, header and data apart).
                state_dict, meta = read_tensor_file(folder / LIVE_TENSORS)
            except FileNotFoundError:
                return None
            info_id = info.get("write_id") if isinstance(info, dict) else None
            if attempt < retries and info_id != meta.get("write_id"):
                time.sleep(delay_s)
                continue
            kwargs = json.loads(meta.get("kwargs", "{}"))
            return LiveWeights(state_dict, kwargs, float(meta.get("kimg", "nan")))
        return None
