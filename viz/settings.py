"""What the visualizer remembers between sessions, in ``$XDG_CONFIG_HOME/ada-studio`` (~/.config).

``recent.json``: recently opened checkpoints / run directories, newest first.
``session.json``: the run directory the GUI was attached to, so the next start attaches again.
Unreadable files are ignored with a log line (they only hold conveniences); writes are atomic.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.io.atomic import atomic_write_json

log = logging.getLogger(__name__)

__all__ = [
    "RECENT_MAX",
    "Session",
    "config_dir",
    "load_recent",
    "load_session",
    "push_recent",
    "save_session",
]

RECENT_MAX = 12


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ada-studio"


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); starting without it", path, exc)
        return None


def load_recent() -> list[str]:
    data = _read_json(config_dir() / "recent.json")
    items = data.get("recent", []) if isinstance(data, dict) else []
    return [str(x) for x in items if isinstance(x, str)][:RECENT_MAX]


def push_recent(path: str) -> list[str]:
    """Move ``path`` to the front of the recent list, save it, and return the new list."""
    items = [path] + [p for p in load_recent() if p != path]
    items = items[:RECENT_MAX]
    try:
        config_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_json(config_dir() / "recent.json", {"recent": items})
    except OSError as exc:
        log.warning("could not save the recent list in %s (%s)", config_dir(), exc)
    return items


@dataclass
class Session:
    last_run_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def load_session() -> Session:
    data = _read_json(config_dir() / "session.json")
    if not isinstance(data, dict):
        return Session()
    run = data.get("last_run_dir")
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    return Session(
        last_run_dir=run if isinstance(run, str) else None, extra={str(k): str(v) for k, v in extra.items()}
    )


def save_session(session: Session) -> None:
    try:
        config_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_json(config_dir() / "session.json", asdict(session))
    except OSError as exc:
        log.warning("could not save the session in %s (%s)", config_dir(), exc)
