"""The run directory's reader: how a GUI (or any tool) follows a run. Never sees half a file."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from core.rundir.layout import (
    EVENTS,
    LOG_TXT,
    PREVIEWS,
    RUN_JSON,
    check_preview_kind,
    latest_snapshot,
    live_paths,
    parse_preview_name,
    run_dir_of_snapshot,
)
from core.rundir.schema import STATE_OF

log = logging.getLogger(__name__)



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


def resumed_from(run_dir: str | os.PathLike[str]) -> Path | None:
    """What a run was first resumed from, per its run.json (a run directory or a snapshot file), or None
    for a run started anew: run.json's forked_from, or the resume option of a run written before
    forked_from was recorded (a continued run's options name the run itself, so they are not asked)."""
    try:
        info = _read_json(Path(run_dir) / RUN_JSON)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    source = info.get("forked_from")
    options = info.get("options")
    if source is None and isinstance(options, dict) and "segments" not in info:
        source = options.get("resume")
    return Path(source) if isinstance(source, str) and source else None


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

    def ancestors(self, limit: int = 100) -> list[Path]:
        """The run directories this run was forked from, oldest first (run.json's forked_from, or the
        resume option of a run written before it, followed back: a run directory, or the run
        directory a resumed snapshot lies in)."""
        found: list[Path] = []
        run = self.run_dir
        seen = {run.resolve()}
        while len(found) < limit:
            path = resumed_from(run)
            if path is None:
                break
            earlier = path if path.is_dir() else run_dir_of_snapshot(path)
            if earlier is None or not (earlier / RUN_JSON).is_file() or earlier.resolve() in seen:
                break
            seen.add(earlier.resolve())
            found.append(earlier)
            run = earlier
        return found[::-1]

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
        state = STATE_OF.get(str(st.get("state")), "unknown")
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

    def previews(self, kind: str) -> list[tuple[float, Path]]:
        """(kimg, path) of every previews/<kind>-<KKKKKK>.png, oldest first."""
        check_preview_kind(kind)
        try:
            entries = list(os.scandir(self.run_dir / PREVIEWS))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = [(parsed[1], Path(entry.path)) for entry in entries
                 if (parsed := parse_preview_name(entry.name)) is not None and parsed[0] == kind]
        return sorted(found)

    def latest_preview(self, kind: str) -> Path | None:
        """The newest previews/<kind>-<KKKKKK>.png, or None."""
        found = self.previews(kind)
        return found[-1][1] if found else None

    def latest_snapshot(self) -> Path | None:
        """The .json (commit marker) of the newest complete snapshot, or None; load it with
        ``core.networks.sources.load_any``. latest.json wins when it names a complete one."""
        return latest_snapshot(self.run_dir)

    @property
    def live_tensors_path(self) -> Path:
        """live/G_ema.safetensors (its mtime tells a GUI whether live or a snapshot is newer)."""
        return live_paths(self.run_dir)[0]

    def live_version(self) -> str | None:
        """The write_id of the current live weights (cheap; poll it, load when it changes)."""
        try:
            info = _read_json(live_paths(self.run_dir)[1])
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

        tensors_path, json_path = live_paths(self.run_dir)
        for attempt in range(retries + 1):
            try:
                info = _read_json(json_path)
            except (OSError, json.JSONDecodeError):
                info = None
            try:
                # One open, all bytes: one version, even if a writer replaces the name meanwhile
                # (safe_open would not do: it opens the file twice, header and data apart).
                state_dict, meta = read_tensor_file(tensors_path)
            except FileNotFoundError:
                return None
            info_id = info.get("write_id") if isinstance(info, dict) else None
            if attempt < retries and info_id != meta.get("write_id"):
                time.sleep(delay_s)
                continue
            kwargs = json.loads(meta.get("kwargs", "{}"))
            return LiveWeights(state_dict, kwargs, float(meta.get("kimg", "nan")))
        return None
