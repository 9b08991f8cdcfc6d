"""What every studio command shares: argument parsing, loading G, seeds, labels and image output.

Seeds become z exactly as the public generate.py does, and images become uint8 the same way, so
the same weights and flags give the same pixels (design 3.6).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from torch import nn

from core.io.atomic import atomic_path
from core.networks.checkpoint import CheckpointError
from core.networks.sources import load_any

log = logging.getLogger(__name__)

SEED_MAX = 2**32 - 1  # numpy's RandomState accepts seeds in [0, 2**32 - 1]
MAX_LIST_LENGTH = 1_000_000  # a typo like 0-4000000000 should fail fast, not fill the memory
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_NUMBER = re.compile(r"^\d+$")
_GRID = re.compile(r"^(\d+)x(\d+)$")
NOISE_MODES = ("const", "random", "none")


class StudioError(Exception):
    """Bad input: the command prints this one line (with the fix) and exits with status 2."""


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_number_list(text: str, what: str = "--seeds", maximum: int = SEED_MAX) -> list[int]:
    """``0-7,42`` -> [0, ..., 7, 42]: comma-separated numbers and inclusive ranges, all >= 0."""
    values: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if item.startswith("-") and _NUMBER.match(item[1:] or "x"):
            raise StudioError(f"{what} {text!r}: {item} is negative; values must be >= 0")
        if _NUMBER.match(item):
            first = last = int(item)
        elif match := _RANGE.match(item):
            first, last = int(match.group(1)), int(match.group(2))
            if first > last:
                raise StudioError(f"{what} {text!r}: range {item} runs backwards; write {last}-{first}")
        else:
            raise StudioError(f"{what} {text!r}: {item!r} is not a number or a range A-B (e.g. 0-7,42)")
        if last > maximum:
            raise StudioError(f"{what} {text!r}: {last} is out of range (at most {maximum})")
        if len(values) + last - first + 1 > MAX_LIST_LENGTH:
            raise StudioError(f"{what} {text!r}: more than {MAX_LIST_LENGTH:,} values")
        values.extend(range(first, last + 1))
    return values


def parse_seeds(text: str, limit: int, what: str = "seeds") -> tuple[int, ...]:
    """1 to ``limit`` seeds as ``0-7,42`` (a form's seed field); StudioError says what to fix."""
    seeds = tuple(parse_number_list(text, what))
    if not seeds or len(seeds) > limit:
        raise StudioError(f"{what} {text!r}: give 1 to {limit} seeds, e.g. 0-7")
    return seeds


def parse_grid(text: str) -> tuple[int, int]:
    """``4x2`` -> (4 columns, 2 rows)."""
    match = _GRID.match(text.strip())
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise StudioError(f"--grid {text!r}: expected COLUMNSxROWS with both >= 1, e.g. 4x2")
    return int(match.group(1)), int(match.group(2))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StudioError("--device cuda: no CUDA device is available to this torch; use --device cpu")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# Output paths: checked before any work, so that bad input leaves no files behind


def _nearest_existing(path: Path) -> Path:
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_writable_dir(path: Path, option: str) -> Path:
    """``path`` is, or can be created as, a folder we may write into."""
    if path.exists() and not path.is_dir():
        raise StudioError(f"{option} {path}: exists and is not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise StudioError(f"{option} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise StudioError(f"{option} {path}: cannot write in {base} (permission denied)")
    return path


def check_writable_file(path: Path, option: str) -> Path:
    """``path`` can be written as a file (its folder exists or can be created)."""
    if path.is_dir():
        raise StudioError(f"{option} {path}: is a folder; name a file")
    check_writable_dir(path.parent, option)
    return path


# ---------------------------------------------------------------------------------------------
# Networks


def load_generator(network: str, device: torch.device) -> nn.Module:
    """G_ema (else G) of a snapshot, a run directory's newest snapshot, or a public .pkl."""
    try:
        ckpt = load_any(network, device=device)
    except CheckpointError as exc:
        raise StudioError(f"--network: {exc}") from None
    except OSError as exc:
        raise StudioError(f"--network {network}: {exc.strerror or exc}") from None
    G = ckpt.G_ema if ckpt.G_ema is not None else ckpt.G
    if G is None:
        raise StudioError(f"--network {network}: holds no generator (neither G_ema nor G)")
    log.info("loaded %s from %s", "G_ema" if ckpt.G_ema is not None else "G", ckpt.path)
    return G.eval().requires_grad_(False)


def make_label(G: nn.Module, class_idx: int | None, device: torch.device) -> torch.Tensor:
    """The one-hot label [1, c_dim] the public tools build from ``--class``."""
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            raise StudioError(f"--class {class_idx}: this network is unconditional (c_dim 0); leave --class out")
        return label
    if class_idx is None:
        raise StudioError(f"this network is conditional ({G.c_dim} classes): pass --class N (0-{G.c_dim - 1})")
    if not 0 <= class_idx < G.c_dim:
        raise StudioError(f"--class {class_idx}: out of range; this network has classes 0-{G.c_dim - 1}")
    label[:, class_idx] = 1
    return label


def check_truncation(G: nn.Module, psi: float) -> None:
    """Truncation pulls w toward the mapping network's running average, which must exist."""
    if psi != 1 and getattr(G.mapping, "w_avg", None) is None:
        raise StudioError(f"--trunc {psi:g}: this network tracks no w_avg to truncate toward; use --trunc 1")


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """z [1, z_dim] (float64) as the public generate.py draws it."""
    return np.random.RandomState(seed).randn(1, z_dim)


def seeds_to_z(seeds: Iterable[int], z_dim: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([seed_to_z(s, z_dim) for s in seeds])).to(device)


def load_ws_file(path: Path, G: nn.Module, option: str) -> np.ndarray:
    """ws [N, num_ws, w_dim] (float32) from a projected_w.npz-style file (key ``w``)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise StudioError(f"{option} {path}: not a readable .npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise StudioError(f"{option} {path}: a bare array, not an .npz file with an array named 'w'")
    with data:
        if "w" not in data.files:
            raise StudioError(f"{option} {path}: no array named 'w' (found: {', '.join(data.files) or 'none'})")
        try:
            ws = np.asarray(data["w"])
        except (OSError, ValueError, EOFError) as exc:  # object arrays (pickles) and damaged members
            raise StudioError(f"{option} {path}: cannot read its 'w' ({exc})") from None
    expected = (G.num_ws, G.w_dim)
    if ws.ndim != 3 or tuple(ws.shape[1:]) != expected or not np.issubdtype(ws.dtype, np.floating):
        raise StudioError(
            f"{option} {path}: w has shape {list(ws.shape)} ({ws.dtype}); this network needs "
            f"[N, {expected[0]}, {expected[1]}] floats"
        )
    return ws.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Images


def to_pil(image: np.ndarray) -> PIL.Image.Image:
    if image.shape[2] == 1:
        return PIL.Image.fromarray(image[:, :, 0], "L")
    return PIL.Image.fromarray(image, "RGB")


def save_png(path: Path, image: np.ndarray | PIL.Image.Image) -> Path:
    """Write a PNG atomically: an interrupted run never leaves a truncated image."""
    pil = image if isinstance(image, PIL.Image.Image) else to_pil(image)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return path


@dataclass(frozen=True)
class NetworkOptions:
    """The flags every command shares."""

    network: str
    device: str = "auto"
    class_idx: int | None = None
    trunc: float = 1.0
    noise_mode: str = "const"
