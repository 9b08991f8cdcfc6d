"""Dev-only: regenerate ``digits32.zip`` from scikit-learn's copy of the UCI handwritten digits.

Needs scikit-learn, which is not a dependency of ADA Studio (``.venv/bin/pip install scikit-learn``);
nothing imports this module at run time. Run from the repository root:

    .venv/bin/python -m core.data.builtin.make_digits

It writes the 1,797 8x8 images (16 grey levels scaled to 0-255) as PNGs with their digit labels into a
temporary folder, then converts them with our dataset tool; see LICENSE-digits.md for the command.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from core.data import tool

DEST = Path(__file__).resolve().parent / "digits32.zip"
TOOL_ARGS = [
    "--resolution",
    "32",
    "--transform",
    "center-crop",
    "--resize-filter",
    "lanczos",
    "--channels",
    "3",
    "--png-compression",
    "9",
]


def write_source(folder: Path) -> int:
    """The digits as 8x8 grayscale PNGs plus dataset.json; returns the image count."""
    from sklearn.datasets import load_digits  # dev-only dependency, imported only here

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # values are 0..16
    labels = []
    for index, (image, target) in enumerate(zip(images, digits.target, strict=True)):
        name = f"digit{index:04d}.png"
        Image.fromarray(image, mode="L").save(folder / name)
        labels.append([name, int(target)])
    (folder / "dataset.json").write_text(json.dumps({"labels": labels}))
    return len(labels)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        count = write_source(Path(tmp))
        print(f"wrote {count} source images to {tmp}")
        return tool.main(["--source", tmp, "--dest", str(DEST), *TOOL_ARGS])


if __name__ == "__main__":
    sys.exit(main())
