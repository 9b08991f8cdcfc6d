"""Memorisation side by side: each run's nearest training images for the same seeds, one column per run.

For ``LABEL=RUN_DIR`` arguments it loads each run's newest kept snapshot at or before ``--kimg``,
runs ``python -m core.studio nearest`` on it against the images that run trained on (its run.json's
``--data``, ``--subset`` and ``--seed``), prints each run's copy score, and writes one PNG with the
runs' grids side by side under their labels (rows: seed, then its ``--k`` nearest training images).

    python bench/bench_nearest_side_by_side.py noaug=runs/noaug/00000-... ada=runs/ada/00000-... \\
        apa=runs/apa/00000-... diffaug=runs/diffaug/00000-... --kimg 40 --seeds 0-7 --out docs/nn.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.metrics.nearest import copy_fraction  # noqa: E402
from core.rundir import kept_snapshots  # noqa: E402
from core.rundir.layout import RUN_JSON  # noqa: E402
from core.studio.common import parse_number_list  # noqa: E402
from core.studio.nearest import NearestCommand, run_nearest  # noqa: E402

TITLE = 22  # pixels above each column for its label


def snapshot_at(run_dir: Path, kimg: float) -> tuple[Path, float]:
    kept = [(k, p) for k, p in kept_snapshots(run_dir) if k <= kimg + 1e-6]
    if not kept:
        raise SystemExit(f"{run_dir}: no kept snapshot at or before {kimg} kimg")
    k, path = max(kept, key=lambda kp: kp[0])
    return path, k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    ap.add_argument("--kimg", type=float, default=float("inf"), help="newest snapshot at or before this")
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    columns = []
    for item in args.runs:
        label, sep, run = item.partition("=")
        if not sep:
            ap.error(f"{item}: give LABEL=RUN_DIR")
        run_dir = Path(run)
        options = json.loads((run_dir / RUN_JSON).read_text())["options"]
        snapshot, kimg = snapshot_at(run_dir, args.kimg)
        with tempfile.TemporaryDirectory() as tmp:
            opts = NearestCommand(
                data=options["data"], network=str(snapshot), device="cpu", seeds=tuple(parse_number_list(args.seeds)),
                k=args.k, out=str(Path(tmp) / "nn.png"), subset=options.get("subset"),
                subset_seed=int(options.get("seed") or 0),
            )  # fmt: skip
            _, matches = run_nearest(opts)
            grid = np.asarray(Image.open(opts.out).convert("RGB"))
        median = float(np.median([m.distances[0] for m in matches]))
        print(f"{label:10s} {snapshot.name} ({kimg:g} kimg): copy score {copy_fraction(matches):.3f} "
              f"({sum(m.copy for m in matches)} of {len(matches)}), median nearest distance {median:.4f}")
        columns.append((f"{label}, {kimg:g} kimg", grid))
    gap = 12
    width = sum(g.shape[1] for _, g in columns) + gap * (len(columns) - 1)
    height = max(g.shape[0] for _, g in columns) + TITLE
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, grid in columns:
        draw.text((x + 4, 4), title, fill=(0, 0, 0))
        canvas.paste(Image.fromarray(grid), (x, TITLE))
        x += grid.shape[1] + gap
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
