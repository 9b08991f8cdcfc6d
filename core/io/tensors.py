"""Read a safetensors file as one version, even while a writer replaces it.

``safetensors.safe_open`` (0.8) opens the file by name more than once, header and data apart,
so a file replaced by ``os.replace`` in between yields one write's metadata with another write's
tensors (about one read in five under a tight rewrite loop, measured). Files that a trainer
replaces (live weights, a snapshot written again) are read here instead: one open, all bytes,
then safetensors parses those bytes.
"""

from __future__ import annotations

import json
import os
import struct
from typing import NamedTuple

import torch

__all__ = ["TensorFile", "read_tensor_file"]

_HEADER_LEN = struct.Struct("<Q")


class TensorFile(NamedTuple):
    """The tensors of a safetensors file and its ``__metadata__`` (empty if it has none)."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


def read_tensor_file(path: str | os.PathLike[str]) -> TensorFile:
    """Tensors and metadata of ``path``, both from the same version of the file.

    Raises FileNotFoundError if it does not exist and ValueError (or safetensors' own error) if
    it is not a whole safetensors file.
    """
    from safetensors.torch import load

    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _HEADER_LEN.size:
        raise ValueError(f"{os.fspath(path)}: {len(data)} bytes, too short for a safetensors header")
    (n,) = _HEADER_LEN.unpack_from(data)
    if n > len(data) - _HEADER_LEN.size:
        raise ValueError(f"{os.fspath(path)}: header of {n} bytes runs past the end of the file")
    header = json.loads(data[_HEADER_LEN.size : _HEADER_LEN.size + n])
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    tensors = load(data)  # each tensor gets its own copy: nothing keeps ``data`` or the file alive
    return TensorFile(tensors, dict(metadata) if isinstance(metadata, dict) else {})
