"""Atomic file writes: readers see either the old file or the complete new one, never half.

The recipe: write to a temporary file in the destination folder (same file system, so the final
rename is atomic), flush and fsync it, then ``os.replace`` it over the destination and fsync the
folder so the rename itself survives a power loss. On any failure the temporary file is removed
and the destination is left untouched.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "remove_stale_temps"]

# A temporary file untouched for this long belongs to a writer that died (a live writer of a large
# file touches it continuously); younger ones may belong to a writer working right now.
STALE_TEMP_S = 60.0


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Directory fsync makes the rename durable; not every platform supports opening a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(folder: Path, name: str) -> Path:
    """Create an empty, uniquely named temp file in ``folder``.

    Unlike ``tempfile.mkstemp`` (always mode 0600) the file is created with 0666 filtered by the
    process umask, so the finished file gets the permissions any ordinary write would give it.
    A dot-prefixed ``.tmp`` name is never mistaken for a finished file by globbing readers.
    """
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{folder}: could not create a unique temporary file for {name}")


def remove_stale_temps(path: str | os.PathLike[str], older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove the leftovers (``.NAME.*.tmp`` files or folders) of earlier killed writes of ``path``."""
    dest = Path(path)
    removed = []
    now = time.time()
    try:
        leftovers = list(dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"))
    except OSError:
        return removed
    for tmp in leftovers:
        try:
            if now - tmp.lstat().st_mtime < older_than_s:
                continue
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed.append(tmp)
        except OSError:
            continue  # another process removed it, or it is not ours to remove
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    The caller writes the temporary path however it likes (e.g. ``safetensors.torch.save_file``).
    If the body raises, or the caller never creates the file, the destination is left untouched
    and the temporary file is removed.
    """
    dest = Path(path)
    folder = dest.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest)
    tmp = _create_temp(folder, dest.name)
    mode = stat.S_IMODE(tmp.stat().st_mode)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{dest}: the temporary file {tmp.name} was not written")
        # Writers that recreate the file (safetensors' save_file does) leave it at 0600: restore the
        # mode an ordinary write gives, so a GUI running as another user can read snapshots.
        os.chmod(tmp, mode)
        _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON (strict: no NaN/Infinity) and write it to ``path`` atomically.

    Serialisation happens before anything touches the disk, so an object that is not JSON-able
    raises without leaving any file behind.
    """
    text = json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False)
    atomic_write_text(path, text + "\n")
