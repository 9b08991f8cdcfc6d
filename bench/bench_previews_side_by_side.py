"""The trainer's own fixed-z fakes previews of several runs side by side: one row per kimg, one
column per run (the same latents in every run and at every kimg, so the cells compare directly).

    python bench/bench_previews_side_by_side.py noaug=runs/noaug/00000-... ada=runs/ada/00000-... \\
        --kimg 8,20,40 --out docs/showcase-digits.png

Each cell is the run's ``previews/fakes-<kimg>.png`` nearest to the asked kimg (never past it). The
PNG is written with a 256-colour palette (a third of the bytes, for docs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.rundir import RunReader  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    ap.add_argument("--kimg", default="40", help="comma list of kimg, one row each")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scale", type=int, default=1, help="enlarge every preview this many times")
    args = ap.parse_args()
    rows = [float(k) for k in args.kimg.split(",")]
    columns = []
    for item in args.runs:
        label, sep, run = item.partition("=")
        if not sep:
            ap.error(f"{item}: give LABEL=RUN_DIR")
        previews = RunReader(run).previews("fakes")
        if not previews:
            ap.error(f"{run}: no previews/fakes-*.png there; name the run directory (the folder with run.json)")
        cells = []
        for kimg in rows:
            before = [(k, p) for k, p in previews if k <= kimg + 1e-6]
            if not before:
                ap.error(f"{run}: no fakes preview at or before {kimg:g} kimg")
            k, path = before[-1]
            image = Image.open(path).convert("RGB")
            cells.append((k, image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST)))
        columns.append((label, cells))
    cell_w = max(img.width for _, cells in columns for _, img in cells)
    cell_h = max(img.height for _, cells in columns for _, img in cells)
    gap, left, top = 8, 64, 20
    canvas = Image.new("RGB", (left + len(columns) * (cell_w + gap), top + len(rows) * (cell_h + gap)), "white")
    ink = ImageDraw.Draw(canvas)
    for j, (label, cells) in enumerate(columns):
        ink.text((left + j * (cell_w + gap), 4), label, fill="black")
        for i, (_, img) in enumerate(cells):
            canvas.paste(img, (left + j * (cell_w + gap), top + i * (cell_h + gap)))
    for i, kimg in enumerate(rows):
        ink.text((4, top + i * (cell_h + gap) + cell_h // 2 - 6), f"{kimg:g} kimg", fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.quantize(256).save(args.out, optimize=True)  # a 256-colour palette: a third of the bytes
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
