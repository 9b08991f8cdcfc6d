"""The run directory's writer: the trainer's (rank 0's) only way to write a run.

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
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.io.atomic import atomic_write_bytes, atomic_write_json
from core.io.worker import LatestWorker
from core.rundir.layout import (
    EVENTS,
    FORMAT_VERSION,
    LATEST,
    LOG_TXT,
    RUN_JSON,
    SNAPSHOTS,
    TB,
    WRITER_FOLDERS,
    kept_snapshot_pattern,
    kimg_tag,
    live_paths,
    preview_pattern,
    snapshot_files,
    snapshot_stem,
    tag_kimg,
)
from core.rundir.schema import EVENT_KINDS, STATES

log = logging.getLogger(__name__)

_FSYNC_INTERVAL_S = 1.0



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


def _logged(fn: Callable[[], None]) -> Callable[[], None]:
    """A background write that logs its failure (the next writes still run; training goes on)."""

    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("run directory: a background write failed")

    return run


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
        self.segment = 0  # which launch of this run directory this writer is (see start_segment)
        # Serialising weights and encoding PNGs happen off the training loop: previews in order, live
        # weights latest-wins (only the newest matter). One worker class for this and the GUI's renders.
        self._background = LatestWorker("run-dir-writer", keep_results=False) if background and self.enabled else None
        self._closed = False
        self._tags: dict[str, int] = {}  # file name -> the nimg this writer gave it (see free_tag)
        if not self.enabled:
            return
        if self.run_dir is None:
            raise ValueError("RunWriter: rank 0 needs a run directory")
        for sub in WRITER_FOLDERS:
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
        for sub in (*WRITER_FOLDERS, "."):
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
            self._background.wait_idle(None)

    def _submit(self, fn: Callable[[], None], key: str | None = None) -> None:
        if self._closed:
            raise RuntimeError("RunWriter is closed")
        if self._background is None:
            fn()
        elif key is None:
            self._background.submit_priority(None, _logged(fn))
        else:
            self._background.submit(key, _logged(fn))

    def close(self) -> None:
        """Finish background writes, flush everything to disk, close the files. Safe to call twice."""
        self._closed = True
        if self._background is not None:
            self._background.wait_idle(None)  # every write submitted is finished before the files close
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
        if options.get("resume"):  # kept when later launches continue the run (options are then theirs)
            doc["forked_from"] = str(options["resume"])
        atomic_write_json(path, doc)
        self._run_json_written = True

    def start_segment(self, options: Mapping[str, Any], resumed_from: str, kimg: float) -> int:
        """Continue this run directory with a new launch (a resume): run.json gets a segment record and
        this launch's options; returns the segment's number (the first launch is segment 0).

        A run is one history however often it is stopped: events.jsonl, previews and snapshots go on
        in the same folder, and the "status" events of a segment carry its number.
        """
        if not self.enabled:
            return 0
        assert self.run_dir is not None
        path = self.run_dir / RUN_JSON
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"{path}: cannot continue this run ({e}); resume with --outdir to fork it") from e
        first = doc.get("options") or {}
        if "segments" not in doc and first.get("resume"):  # a run.json from before forked_from was recorded
            doc.setdefault("forked_from", str(first["resume"]))
        segments = doc.get("segments") or [_segment_record(doc.get("created"), doc.get("pid"), doc.get("host"),
                                                           None, 0.0, doc.get("versions", {}).get("argv"))]
        segments.append(_segment_record(self.clock(), self.pid, self.host, resumed_from, kimg, " ".join(sys.argv)))
        doc.update(segments=segments, options=_jsonable(dict(options), "options"), pid=self.pid, host=self.host)
        atomic_write_json(path, doc)
        self._run_json_written = True
        self.segment = len(segments) - 1
        return self.segment

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
        extra = {"segment": self.segment} if self.segment else {}  # a continued run's later launches
        self.event("status", kimg, state=state, message=message, pid=self.pid, host=self.host, **extra)

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
        tag = self.free_tag(kept_snapshot_pattern(), kimg)
        return snapshot_stem(tag_kimg(tag), fine="." in tag)

    def write_preview(self, kind: str, kimg: float, grid: np.ndarray) -> Path | None:
        """Write previews/<kind>-<KKKKKK>.png atomically from a uint8 grid; emit a "preview" event."""
        if not self.enabled:
            return None
        assert self.run_dir is not None
        pattern = preview_pattern(kind)
        rel = pattern.format(self.free_tag(pattern, kimg))
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
        files = snapshot_files(self.run_dir, stem)
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
        tensors_path, json_path = live_paths(self.run_dir)

        def write() -> None:
            # Serialised in memory: save_file would create the file 0600, unreadable to a GUI user.
            atomic_write_bytes(tensors_path, save(tensors, metadata=meta))
            atomic_write_json(json_path, info)

        self._submit(write, key="live")
        self._last_live = now
        return True


def _segment_record(started: Any, pid: Any, host: Any, resumed_from: str | None, kimg: float,
                    argv: str | None) -> dict[str, Any]:
    return {"started": started, "pid": pid, "host": host, "resumed_from": resumed_from, "kimg": float(kimg),
            "argv": argv}


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
