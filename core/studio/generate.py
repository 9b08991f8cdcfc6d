"""``generate``: images for seeds (``seed0042.png``), an optional grid, or renders of saved ws."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from core.io.images import tile, to_hwc
from core.studio import common

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateOptions(common.NetworkOptions):
    outdir: str = "out"
    seeds: tuple[int, ...] = ()
    grid: str | None = None
    projected_w: str | None = None
    batch: int = 1


@torch.no_grad()
def generate_images(
    G: nn.Module, seeds: list[int], label: torch.Tensor, psi: float, noise_mode: str, batch: int = 1
) -> Iterator[np.ndarray]:
    """uint8 images [H, W, C], one per seed, in order.

    ``batch`` 1 is the public generate.py computation (same pixels). Larger batches are faster, but
    CPU/GPU kernels are not batch-invariant: a pixel can differ by one level (about 2 in 100,000).
    """
    device = label.device
    for start in range(0, len(seeds), batch):
        chunk = seeds[start : start + batch]
        z = common.seeds_to_z(chunk, G.z_dim, device)
        img = G(z, label.repeat([len(chunk), 1]), truncation_psi=psi, noise_mode=noise_mode)
        yield from to_hwc(img)


@torch.no_grad()
def render_ws(G: nn.Module, ws: np.ndarray, noise_mode: str, device: torch.device) -> Iterator[np.ndarray]:
    """uint8 images of saved ws, one at a time as the public generate.py --projected-w does."""
    for w in torch.from_numpy(ws).to(device):
        yield to_hwc(G.synthesis(w.unsqueeze(0), noise_mode=noise_mode))[0]


def run_generate(opts: GenerateOptions) -> list[Path]:
    """Validate everything, then write the images; returns the files written."""
    if opts.batch < 1:
        raise common.StudioError(f"--batch {opts.batch}: must be >= 1")
    if opts.projected_w is None and not opts.seeds:
        raise common.StudioError("pass --seeds (e.g. 0-7,42) or --projected-w FILE.npz")
    grid = common.parse_grid(opts.grid) if opts.grid else None
    if grid and opts.projected_w is None and len(opts.seeds) > grid[0] * grid[1]:
        raise common.StudioError(
            f"--grid {opts.grid} has {grid[0] * grid[1]} cells, but {len(opts.seeds)} seeds were given"
        )
    outdir = common.check_writable_dir(Path(opts.outdir), "--outdir")
    device = common.resolve_device(opts.device)
    G = common.load_generator(opts.network, device)
    if opts.projected_w is not None:
        return _write_projected(G, opts, outdir, device, grid)
    label = common.make_label(G, opts.class_idx, device)
    common.check_truncation(G, opts.trunc)
    images = generate_images(G, list(opts.seeds), label, opts.trunc, opts.noise_mode, opts.batch)
    written, kept = [], []
    for seed, image in tqdm(zip(opts.seeds, images, strict=True), total=len(opts.seeds), unit="img", disable=None):
        written.append(common.save_png(outdir / f"seed{seed:04d}.png", image))
        if grid:
            kept.append(image)
    if grid:
        written.append(common.save_png(outdir / "grid.png", tile(kept, *grid)))
    return written


def _write_projected(
    G: nn.Module, opts: GenerateOptions, outdir: Path, device: torch.device, grid: tuple[int, int] | None
) -> list[Path]:
    if opts.seeds:
        log.warning("--seeds is ignored with --projected-w")
    ws = common.load_ws_file(Path(opts.projected_w), G, "--projected-w")
    if grid and len(ws) > grid[0] * grid[1]:
        raise common.StudioError(f"--grid {opts.grid} has {grid[0] * grid[1]} cells, but the file holds {len(ws)} ws")
    images = list(render_ws(G, ws, opts.noise_mode, device))
    written = [common.save_png(outdir / f"proj{idx:02d}.png", image) for idx, image in enumerate(images)]
    if grid:
        written.append(common.save_png(outdir / "grid.png", tile(images, *grid)))
    return written
