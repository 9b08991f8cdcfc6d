"""Tiny synthetic datasets whose pixels say which image they are."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def index_image(index: int, res: int = 8, channels: int = 3) -> np.ndarray:
    """HWC uint8 image: channel 0 holds the index, the other channels a left-right ramp (flip-visible)."""
    img = np.zeros((res, res, channels), dtype=np.uint8)
    img[..., 0] = index
    if channels > 1:
        img[..., 1:] = np.arange(res, dtype=np.uint8)[None, :, None] * 10
    return img


def write_folder(
    root: Path,
    count: int,
    res: int = 8,
    channels: int = 3,
    labels: list[int] | None = None,
    nested: bool = True,
) -> Path:
    """``count`` PNGs (some in a subfolder) and, with ``labels``, a dataset.json."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"sub/img{i:03d}.png" if nested and i % 2 else f"img{i:03d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        array = index_image(i, res, channels)
        Image.fromarray(array[..., 0] if channels == 1 else array).save(root / name)
        names.append(name)
    if labels is not None:
        (root / "dataset.json").write_text(
            json.dumps({"labels": [[n, c] for n, c in zip(names, labels, strict=True)]})
        )
    return root


def zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return dest
