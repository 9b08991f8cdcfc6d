"""Atomic writes: the destination holds the old or the complete new content, never a torn file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.io.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_bytes_text_json_round_trip(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01\xff")
    atomic_write_text(tmp_path / "sub" / "b.txt", "héllo\n")
    atomic_write_json(tmp_path / "c.json", {"kimg": 12.5, "names": ["G", "D"]})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01\xff"
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert json.loads((tmp_path / "c.json").read_text()) == {"kimg": 12.5, "names": ["G", "D"]}
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_overwrite_replaces_whole_content(tmp_path: Path) -> None:
    dest = tmp_path / "f.txt"
    atomic_write_text(dest, "x" * 10_000)
    atomic_write_text(dest, "short")
    assert dest.read_text() == "short"


def test_failure_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(dest) as tmp:
        tmp.write_bytes(b"partial new")
        raise RuntimeError("boom")
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_failing_replace_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_bytes(dest, b"new")
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_unserialisable_json_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"bad": object()})
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"nan": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_yields_same_folder_and_requires_a_write(tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    with pytest.raises(FileNotFoundError), atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.safetensors.")
        tmp.unlink()  # the writer "forgot" to produce the file
    assert not dest.exists()


def test_permissions_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.txt").stat().st_mode) == 0o644


def test_killed_writer_never_leaves_torn_file(tmp_path: Path) -> None:
    """Kill a process that rewrites a file in a loop; the file is always one complete version."""
    dest = tmp_path / "loop.json"
    script = textwrap.dedent(
        f"""
        import sys
        from core.io.atomic import atomic_write_json
        i = 0
        while True:
            atomic_write_json({str(dest)!r}, {{"i": i, "pad": "y" * 200_000}})
            i += 1
            if i == 3:
                print("ready", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[3]
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    for _ in range(20):
        data = json.loads(dest.read_text())
        assert data["pad"] == "y" * 200_000
    proc.kill()
    proc.wait()
    data = json.loads(dest.read_text())
    assert len(data["pad"]) == 200_000


def test_atomic_path_keeps_ordinary_permissions_when_the_writer_recreates_the_file(tmp_path) -> None:
    import os
    import stat

    import safetensors.torch
    import torch

    from core.io.atomic import atomic_path

    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("x")
    dest = tmp_path / "weights.safetensors"
    with atomic_path(dest) as tmp:
        safetensors.torch.save_file({"a": torch.zeros(2)}, str(tmp))
    assert stat.S_IMODE(os.stat(dest).st_mode) == stat.S_IMODE(os.stat(ordinary).st_mode)
