"""Any snapshot a user names: ours (any of its forms), a public StyleGAN2-ADA ``.pkl``, or a run directory.

The one loader behind every command and the GUI. It sits above both formats: our safe format
(:mod:`core.networks.checkpoint`) and the safe ``.pkl`` importer (:mod:`core.networks.legacy`, which
never runs a file's embedded code), so neither of those imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from core.networks.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from core.networks.legacy import import_legacy_pkl
from core.rundir import layout

__all__ = ["load_any"]


def load_any(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Checkpoint:
    """Load our snapshot (any form), a public StyleGAN2-ADA .pkl (safely), or a run directory's newest."""
    p = Path(path)
    if p.is_dir():
        newest = layout.latest_snapshot(p)
        if newest is None:
            raise CheckpointError(
                f"{p}: no snapshot yet (no {layout.SNAPSHOT_GLOB} in {p / layout.SNAPSHOTS}); wait for the first "
                "snapshot or pass a snapshot file"
            )
        return load_checkpoint(newest, device=device)
    if p.suffix == ".pkl" or (p.is_file() and p.suffix not in (".json", ".safetensors") and _looks_pickled(p)):
        return import_legacy_pkl(p).to(device)
    return load_checkpoint(p, device=device)


def _looks_pickled(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"
