"""Files dropped on the window: an image becomes the projection's target, a model opens in the view.

What a drop means is decided here, from the path alone, so the GLFW callback only collects paths
and the app carries out what this module says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "MODEL_SUFFIXES", "Drop", "classify_drop"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
MODEL_SUFFIXES = frozenset({".json", ".safetensors", ".pkl"})  # our snapshot's two files, a public .pkl


@dataclass(frozen=True)
class Drop:
    """What to do with one dropped path: ``kind`` is "image", "model" or "unknown"."""

    path: str
    kind: str

    @property
    def message(self) -> str:
        if self.kind == "image":
            return f"projection target: {self.path} (dropped; press Project in the Projection panel)"
        if self.kind == "model":
            return f"opening {self.path} (dropped)"
        return f"{self.path}: not an image, a snapshot, a .pkl or a run directory; drop one of those"


def classify_drop(path: str) -> Drop:
    """An image file (by suffix) is a projection target; a snapshot file, a .pkl or a folder (a run
    directory) is a model; anything else is reported, not guessed at."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in MODEL_SUFFIXES:
        return Drop(path, "model")
    if suffix in IMAGE_SUFFIXES:
        return Drop(path, "image")
    return Drop(path, "unknown")
