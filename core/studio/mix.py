"""``mix``: the style-mixing grid of the public style_mixing.py.

Layout: the top-left cell is black, the first row holds the column seeds' images, the first
column the row seeds' images, and cell (r, c) renders the row seed's ws with the layers listed in
``--styles`` taken from the column seed. The order of computation follows the public tool too
(one batch for the plain images, one call per mixed cell), so the pixels match it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.io.images import to_hwc
from core.studio import common

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixOptions(common.NetworkOptions):
    rows: tuple[int, ...] = ()
    cols: tuple[int, ...] = ()
    styles: tuple[int, ...] = tuple(range(7))
    out: str = "grid.png"
    outdir: str | None = None


@dataclass
class MixResult:
    """Images by (row seed, column seed); (s, s) is seed s unmixed. ``grid`` is the full canvas."""

    images: dict[tuple[int, int], np.ndarray]
    grid: np.ndarray


def check_styles(styles: list[int], num_ws: int) -> None:
    bad = [s for s in styles if not 0 <= s < num_ws]
    if bad:
        raise common.StudioError(f"--styles {bad[0]}: out of range; this network has {num_ws} ws (0-{num_ws - 1})")


def seed_ws(G: nn.Module, seeds: list[int], label: torch.Tensor, psi: float) -> dict[int, torch.Tensor]:
    """ws [num_ws, w_dim] by seed; truncation written out as the public tool does it."""
    z = np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in seeds])
    c = label.repeat([len(seeds), 1]) if G.c_dim else None
    ws = G.mapping(torch.from_numpy(z).to(label.device), c)
    w_avg = getattr(G.mapping, "w_avg", None)
    if w_avg is not None:  # applied at psi 1 too: w_avg + (w - w_avg) is not always w in float32
        ws = w_avg + (ws - w_avg) * psi
    return dict(zip(seeds, ws, strict=True))


@torch.no_grad()
def style_mix(
    G: nn.Module, rows: list[int], cols: list[int], styles: list[int], label: torch.Tensor, psi: float,
    noise_mode: str,
) -> MixResult:  # fmt: skip
    # The public tool maps list(set(...)) in one batch; the same order gives the same pixels.
    all_seeds = list(set(rows + cols))
    w_by_seed = seed_ws(G, all_seeds, label, psi)
    plain = to_hwc(G.synthesis(torch.stack([w_by_seed[s] for s in all_seeds]), noise_mode=noise_mode))
    images = {(s, s): image for s, image in zip(all_seeds, plain, strict=True)}
    for row in rows:
        for col in cols:
            w = w_by_seed[row].clone()
            w[styles] = w_by_seed[col][styles]
            images[(row, col)] = to_hwc(G.synthesis(w.unsqueeze(0), noise_mode=noise_mode))[0]
    return MixResult(images=images, grid=_canvas(images, rows, cols))


def _canvas(images: dict[tuple[int, int], np.ndarray], rows: list[int], cols: list[int]) -> np.ndarray:
    h, w, c = next(iter(images.values())).shape
    canvas = np.zeros([h * (len(rows) + 1), w * (len(cols) + 1), c], dtype=np.uint8)
    for r, row in enumerate([None, *rows]):
        for k, col in enumerate([None, *cols]):
            if row is None and col is None:
                continue  # the corner stays black
            key = (col, col) if row is None else (row, row) if col is None else (row, col)
            canvas[r * h : (r + 1) * h, k * w : (k + 1) * w] = images[key]
    return canvas


def run_mix(opts: MixOptions) -> list[Path]:
    if not opts.rows or not opts.cols:
        raise common.StudioError("pass --rows and --cols (seeds, e.g. 85,100,75)")
    out = common.check_writable_file(Path(opts.out), "--out")
    if out.suffix.lower() != ".png":
        raise common.StudioError(f"--out {out}: the grid is written as PNG; name a .png file")
    outdir = common.check_writable_dir(Path(opts.outdir), "--outdir") if opts.outdir else None
    device = common.resolve_device(opts.device)
    G = common.load_generator(opts.network, device)
    check_styles(list(opts.styles), G.num_ws)
    label = common.make_label(G, opts.class_idx, device)
    common.check_truncation(G, opts.trunc)
    result = style_mix(G, list(opts.rows), list(opts.cols), list(opts.styles), label, opts.trunc, opts.noise_mode)
    written = []
    if outdir is not None:
        for (row, col), image in result.images.items():
            written.append(common.save_png(outdir / f"{row}-{col}.png", image))
    written.append(common.save_png(out, result.grid))
    return written
