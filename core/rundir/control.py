"""control.json: what the GUI asks a running trainer to do (pause, stop, snapshot, augmentation).

The GUI is the only writer and the trainer's rank 0 the only reader. The file holds the GUI's
*accumulated* requests, not the last one alone: each :func:`write_control` overlays the fields it
sets onto what the file already holds and increments ``seq``. The trainer reads the file at each
tick, so requests written between two ticks must not overwrite each other; with accumulated
state a pause followed by a multiplier change arrives as one request carrying both.

Sticky settings (pause, stop, aug_mode, target, fixed_p, p_max, multipliers) are idempotent to
re-apply. The one one-shot action, ``snapshot_now``, is stored as the seq at which it was asked
for, so a reader that already handled that seq is not told again.

The trainer logs each request it applied as a "control" event with its ``seq`` (see
``RunWriter.control_applied``); the GUI shows "applied" once it sees that seq.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.augment.modes import PMode, choices
from core.io.atomic import atomic_write_json
from core.rundir.layout import CONTROL

__all__ = [
    "ControlError",
    "ControlPoller",
    "ControlRequest",
    "parse_control",
    "read_control",
    "write_control",
]

log = logging.getLogger(__name__)


# Fields a caller sets on a request; "seq" and "t" are stamped by write_control.
_SETTINGS = ("pause", "stop", "aug_multipliers", "aug_mode", "target", "fixed_p", "p_max")


class ControlError(ValueError):
    """control.json exists but does not hold a valid request."""


@dataclass
class ControlRequest:
    """One request, as the GUI writes it and the trainer receives it. ``None``: leave as is.

    - pause: True pauses, False resumes.
    - stop: True ends the run after a final snapshot (cannot be taken back).
    - snapshot_now: write a network snapshot at the next tick.
    - aug_multipliers: per-op multipliers for the augment pipe ({"rotate90": 0.0, ...});
      the ops not named keep their value.
    - aug_mode: "ada" (p adapts), "fixed" (p = fixed_p), "noaug" (p = 0).
    - target: ADA target for r_t; fixed_p: p in fixed mode; p_max: cap on p.
    - seq: increases by one at every write; t: unix time of the write.
    """

    pause: bool | None = None
    stop: bool = False
    snapshot_now: bool = False
    aug_multipliers: dict[str, float] | None = None
    aug_mode: str | None = None  # a PMode value
    target: float | None = None
    fixed_p: float | None = None
    p_max: float | None = None
    seq: int = 0
    t: float = 0.0

    def __post_init__(self) -> None:
        _validate(self)

    def changes(self) -> dict[str, Any]:
        """The settings this request carries (fields that are not None/False), for logging."""
        out = {k: getattr(self, k) for k in _SETTINGS if getattr(self, k) not in (None, False)}
        if self.pause is False:
            out["pause"] = False
        if self.snapshot_now:
            out["snapshot_now"] = True
        return out


def _check_number(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ControlError(f"{name} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise ControlError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")


def _validate(req: ControlRequest) -> None:
    if req.pause is not None and not isinstance(req.pause, bool):
        raise ControlError(f"pause must be true, false or null, got {req.pause!r}")
    for name in ("stop", "snapshot_now"):
        if not isinstance(getattr(req, name), bool):
            raise ControlError(f"{name} must be true or false, got {getattr(req, name)!r}")
    if req.aug_mode is not None and req.aug_mode not in choices(PMode):
        raise ControlError(f"aug_mode must be one of {', '.join(choices(PMode))} or null, got {req.aug_mode!r}")
    if req.aug_multipliers is not None:
        if not isinstance(req.aug_multipliers, dict):
            raise ControlError(f"aug_multipliers must map op names to numbers, got {req.aug_multipliers!r}")
        for op, value in req.aug_multipliers.items():
            if not isinstance(op, str) or not op:
                raise ControlError(f"aug_multipliers: op names must be non-empty strings, got {op!r}")
            _check_number(f"aug_multipliers[{op!r}]", value, 0.0, math.inf)
    if req.target is not None:
        _check_number("target", req.target, 0.0, 1.0)
    if req.fixed_p is not None:
        _check_number("fixed_p", req.fixed_p, 0.0, math.inf)
    if req.p_max is not None:
        _check_number("p_max", req.p_max, 0.0, math.inf)
    if isinstance(req.seq, bool) or not isinstance(req.seq, int) or req.seq < 0:
        raise ControlError(f"seq must be an integer >= 0, got {req.seq!r}")
    _check_number("t", req.t, 0.0, math.inf)


def _load_state(path: Path) -> dict[str, Any] | None:
    """The raw file content as a dict, None if the file does not exist; ControlError if malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise ControlError(f"not valid JSON ({e})") from None
    if not isinstance(state, dict):
        raise ControlError("the top level must be a JSON object")
    return state


def parse_control(state: dict[str, Any], last_seq: int = -1) -> ControlRequest:
    """The request a reader that already handled ``last_seq`` should apply, from file content."""
    known = {f.name for f in dataclasses.fields(ControlRequest)} | {"snapshot_seq"}
    unknown = sorted(set(state) - known)
    if unknown:
        raise ControlError(f"unknown keys {unknown}; known: {sorted(known)}")
    fields = {k: v for k, v in state.items() if k != "snapshot_seq"}
    snapshot_seq = state.get("snapshot_seq")
    if snapshot_seq is not None and (isinstance(snapshot_seq, bool) or not isinstance(snapshot_seq, int)):
        raise ControlError(f"snapshot_seq must be an integer or null, got {snapshot_seq!r}")
    fields["snapshot_now"] = snapshot_seq is not None and snapshot_seq > last_seq
    return ControlRequest(**fields)


def write_control(
    run_dir: str | os.PathLike[str], req: ControlRequest, min_seq: int = 1
) -> ControlRequest:
    """Overlay ``req`` onto control.json atomically (GUI side). Returns what the file now holds.

    ``req.seq`` and ``req.t`` are ignored: seq becomes max(previous seq + 1, ``min_seq``) and t
    the current time. A malformed existing file is replaced, and its seq is lost: a GUI that can
    see the run passes ``min_seq=RunReader.control_last_applied() + 1`` so the trainer still
    takes the new request as new. One GUI writes at a time; two concurrent writers could lose
    one overlay.
    """
    path = Path(run_dir) / CONTROL
    try:
        prev = _load_state(path) or {}
        parse_control(prev)
    except ControlError as e:
        log.warning("%s: %s; replacing it", path, e)
        prev = {}
    state = dict(prev)
    for name in _SETTINGS:
        value = getattr(req, name)
        if name == "stop":
            state[name] = bool(prev.get("stop", False)) or value
        elif name == "aug_multipliers" and value is not None:
            state[name] = {**(prev.get(name) or {}), **{k: float(v) for k, v in value.items()}}
        elif value is not None:
            state[name] = value
    seq = max(int(prev.get("seq", 0)) + 1, min_seq)
    state["seq"] = seq
    state["t"] = time.time()
    if req.snapshot_now:
        state["snapshot_seq"] = seq
    merged = parse_control(state, last_seq=seq - 1)  # validates before anything touches the disk
    atomic_write_json(path, state)
    return merged


def read_control(run_dir: str | os.PathLike[str], last_seq: int) -> ControlRequest | None:
    """The request in control.json if its seq is newer than ``last_seq`` (trainer side), else None.

    A missing file is None. A malformed file raises :class:`ControlError` naming the file;
    :class:`ControlPoller` wraps this for a training loop (warns once, keeps going).
    """
    path = Path(run_dir) / CONTROL
    try:
        state = _load_state(path)
        if state is None:
            return None
        req = parse_control(state, last_seq)
    except ControlError as e:
        raise ControlError(f"{path}: {e}") from None
    return req if req.seq > last_seq else None


class ControlPoller:
    """Reads control.json for a training loop: each new request once, bad files warned about once.

    ``last_seq`` starts at ``start_seq`` (a trainer continuing in an existing run directory passes
    ``RunReader.control_last_applied()`` so it does not re-apply old requests).
    """

    def __init__(self, run_dir: str | os.PathLike[str], start_seq: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.last_seq = start_seq
        self._bad_signature: tuple[int, int] | None = None

    def poll(self) -> ControlRequest | None:
        """The next request to apply, or None. Marks it handled (``last_seq`` = its seq)."""
        try:
            req = read_control(self.run_dir, self.last_seq)
        except ControlError as e:
            signature = self._signature()
            if signature != self._bad_signature:
                log.warning("%s; ignoring it until the GUI writes a valid one", e)
                self._bad_signature = signature
            return None
        except OSError as e:
            log.warning("%s: cannot read control file (%s); ignoring it this tick", self.run_dir, e)
            return None
        self._bad_signature = None
        if req is not None:
            self.last_seq = req.seq
        return req

    def _signature(self) -> tuple[int, int] | None:
        try:
            st = (self.run_dir / CONTROL).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)
