"""On-disk cache of real-image features, keyed by dataset content, extractor and options.

Location: ``$ADA_STUDIO_CACHE/metrics`` when that variable is set, else
``${XDG_CACHE_HOME:-~/.cache}/ada-studio/metrics``. Dataset content is fingerprinted without reading
images: for a zip, each member's name, size and CRC-32 (a full-content checksum the zip already
holds); for a folder, each file's relative path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.data import ImageDataset
from core.io.atomic import atomic_path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    root = os.environ.get("ADA_STUDIO_CACHE")
    if root:
        return Path(root).expanduser() / "metrics"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "ada-studio" / "metrics"


def dataset_fingerprint(dataset: ImageDataset) -> str:
    digest = hashlib.sha256()
    for name, size, tag in dataset.storage.fingerprint_entries():
        digest.update(f"{name}\0{size}\0{tag}\n".encode())
    return digest.hexdigest()


def cache_file(
    dataset: ImageDataset,
    extractor_identity: str,
    options: dict[str, Any],
    kind: str,
    folder: Path | None = None,
) -> Path:
    """Where the ``kind`` ("features" or "stats") entry for this dataset/extractor/options lives."""
    key = json.dumps(
        {"dataset": dataset_fingerprint(dataset), "extractor": extractor_identity, **options}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return (folder or cache_dir()) / f"{dataset.name}-{extractor_identity.split('-')[0]}-{digest}-{kind}.npz"


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent or unreadable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        log.warning("metrics cache %s is unreadable (%s); recomputing", path, exc)
        return None


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    log.info("cached real-image statistics in %s", path)
