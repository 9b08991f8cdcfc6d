"""Export the demo generator shipped with the visualizer from a finished training run (dev only).

    .venv/bin/python scripts/export_demo.py RUN_DIR [--out viz/demo/digits32-demo] [--grid docs/demo-fakes.png]

Takes the run's newest snapshot, keeps G_ema alone (what the visualizer renders) in our safe
format, records where it came from (the run's options, kimg, the trainer command), and writes an
8x4 grid of seeds 0-31 (truncation 1, constant noise) for the docs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.io.images import image_grid
from core.networks.checkpoint import save_checkpoint
from core.networks.sources import load_any

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "viz" / "demo" / "digits32-demo")
    parser.add_argument("--grid", type=Path, default=REPO / "docs" / "demo-fakes.png")
    args = parser.parse_args()
    ckpt = load_any(args.run_dir)
    if ckpt.G_ema is None:
        print(f"{args.run_dir}: the newest snapshot holds no G_ema", file=sys.stderr)
        return 2
    G = ckpt.G_ema.eval()
    run_json = args.run_dir / "run.json"
    options = json.loads(run_json.read_text()) if run_json.is_file() else {}
    path = save_checkpoint(
        args.out, G_ema=G, kimg=ckpt.meta.get("kimg"), demo_source=str(ckpt.path), training_options=options
    )
    z = torch.from_numpy(np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in range(32)])).float()
    c = torch.zeros([32, G.c_dim])
    with torch.inference_mode():
        images = G(z, c, noise_mode="const")
    args.grid.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, cols=8).squeeze()).save(args.grid)
    print(f"wrote {path} (kimg {ckpt.meta.get('kimg')}) and {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
