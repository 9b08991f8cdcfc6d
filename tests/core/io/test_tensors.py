"""read_tensor_file: tensors and metadata from one version of a file a writer keeps replacing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from core.io.tensors import read_tensor_file


def _version(k: int) -> bytes:
    return save({"a": torch.full((64, 64), float(k)), "b": torch.full((64,), float(k))}, metadata={"k": str(k)})


def test_round_trip_with_and_without_metadata(tmp_path: Path) -> None:
    (tmp_path / "m.safetensors").write_bytes(save({"x": torch.arange(6.0).view(2, 3)}, metadata={"id": "7"}))
    tensors, meta = read_tensor_file(tmp_path / "m.safetensors")
    assert meta == {"id": "7"}
    assert torch.equal(tensors["x"], torch.arange(6.0).view(2, 3))
    (tmp_path / "n.safetensors").write_bytes(save({"y": torch.ones(3, dtype=torch.int64)}))
    tensors, meta = read_tensor_file(tmp_path / "n.safetensors")
    assert meta == {} and tensors["y"].dtype == torch.int64


@pytest.mark.parametrize("cut", [3, 20])
def test_a_cut_file_raises_instead_of_reading_garbage(tmp_path: Path, cut: int) -> None:
    (tmp_path / "c.safetensors").write_bytes(_version(1)[:cut])
    with pytest.raises(ValueError, match=r"c\.safetensors: .*(too short|runs past the end)"):
        read_tensor_file(tmp_path / "c.safetensors")


def test_never_mixes_two_versions_while_the_file_is_replaced(tmp_path: Path) -> None:
    # safetensors.safe_open mixed them here in about one read of five (header from one open of
    # the name, data from another); one read of all the bytes cannot.
    path = tmp_path / "live.safetensors"
    path.write_bytes(_version(0))
    stop = threading.Event()

    def keep_replacing() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            tmp = tmp_path / f".live.{k}.tmp"
            tmp.write_bytes(_version(k))
            os.replace(tmp, path)

    writer = threading.Thread(target=keep_replacing)
    writer.start()
    seen: set[float] = set()
    reads, deadline = 0, time.monotonic() + 120
    try:
        # At least 3000 reads, and on until 20 versions were met: a loaded machine that starves
        # the writer makes the test longer, not weaker; it fails loudly at the deadline.
        while reads < 3000 or len(seen) < 20:
            assert time.monotonic() < deadline, f"the writer was met only {len(seen)} times in {reads} reads"
            tensors, meta = read_tensor_file(path)
            k = float(meta["k"])
            assert all(bool((t == k).all()) for t in tensors.values()), k
            seen.add(k)
            reads += 1
    finally:
        stop.set()
        writer.join()
