"""A recorded run chain for the timeline and nearest-neighbour tests: run A (previews and kept
snapshots), run B forked from A's snapshot at 8 kimg, written with the trainer's own RunWriter;
generators are the bundled demo generator with less and less noise on its weights, so each
snapshot draws a different picture. Also a training folder with one planted copy of a fake.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data import ImageDataset
from core.io.images import image_grid
from core.metrics.nearest import generated_images
from core.networks.checkpoint import save_checkpoint
from core.rundir import RunWriter, layout
from core.studio.common import load_generator
from viz.app import DEMO_SNAPSHOT

A_PREVIEWS = (0.0, 4.0, 8.0, 12.0)  # 12 is abandoned: B continues from A's snapshot at 8
A_SNAPSHOTS = (4.0, 8.0)
B_START = 8.0
B_PREVIEWS = (10.0, 14.0)
B_SNAPSHOTS = (14.0,)
FINAL_KIMG = 14.0
PREVIEW_SEEDS = range(32)


@dataclass(frozen=True)
class Chain:
    run_a: Path
    run_b: Path
    snapshots: tuple[Path, ...]  # what the timeline should mark, by kimg


def demo_generator() -> torch.nn.Module:
    return load_generator(str(DEMO_SNAPSHOT.with_suffix(".json")), torch.device("cpu"))


def at_kimg(G: torch.nn.Module, kimg: float) -> torch.nn.Module:
    """The demo generator "at" ``kimg``: noise on its weights that shrinks as training goes on."""
    amount = 0.6 * (1 - kimg / FINAL_KIMG)
    out = copy.deepcopy(G)
    gen = torch.Generator().manual_seed(int(kimg * 10))
    with torch.no_grad():
        for p in out.parameters():
            if p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=gen) * p.std() * amount)
    return out


def _reals_grid(dataset: ImageDataset, kimg: float) -> np.ndarray:
    """A stand-in for "what D sees": the first reals, some flipped or rotated (differently per kimg)."""
    rng = np.random.default_rng(int(kimg))
    images = []
    for i in range(len(PREVIEW_SEEDS)):
        im = dataset.get_image(i)
        if rng.random() < 0.4:
            im = im[:, :, ::-1]
        if rng.random() < 0.3:
            im = np.rot90(im, 1, axes=(1, 2))
        images.append(np.ascontiguousarray(im))
    return image_grid(np.stack(images), 8, drange=(0, 255), rgb=True)


def _write_run(run: Path, G: torch.nn.Module, dataset: ImageDataset, options: dict[str, object],
               start: float, previews: tuple[float, ...], snapshots: tuple[float, ...]) -> list[Path]:  # fmt: skip
    written = []
    with RunWriter(run, background=False, clock=lambda: 1.7e9) as w:
        w.write_run_json(options)
        w.status("started", start)
        for kimg in sorted({*previews, *snapshots}):
            Gk = at_kimg(G, kimg)
            if kimg in previews:
                fakes = generated_images(Gk, list(PREVIEW_SEEDS))
                w.write_preview(layout.PREVIEW_FAKES, kimg, image_grid(fakes, 8, drange=(0, 255), rgb=True))
                w.write_preview(layout.PREVIEW_REALS_AUGMENTED, kimg, _reals_grid(dataset, kimg))
            if kimg in snapshots:
                written.append(save_checkpoint(run / layout.SNAPSHOTS / layout.snapshot_stem(kimg), G_ema=Gk,
                                               kimg=kimg))  # fmt: skip
        w.status("finished", max(previews))
    return written


def write_chain(root: Path, data: str = "builtin:digits", subset: int | None = 64) -> Chain:
    G = demo_generator()
    dataset = ImageDataset(data, subset=subset)
    options = {"data": data, "subset": subset, "seed": 0, "kimg": FINAL_KIMG}
    run_a, run_b = root / "00000-digits-a", root / "00001-digits-b"
    snaps = _write_run(run_a, G, dataset, options, 0.0, A_PREVIEWS, A_SNAPSHOTS)
    forked = {**options, "resume": str(snaps[A_SNAPSHOTS.index(B_START)])}
    snaps += _write_run(run_b, G, dataset, forked, B_START, B_PREVIEWS, B_SNAPSHOTS)
    return Chain(run_a, run_b, tuple(snaps))


def planted_training_set(folder: Path, copy_seed: int, size: int = 48) -> Path:
    """A folder of ``size`` builtin digits plus the demo generator's fake for ``copy_seed`` (the copy)."""
    G = at_kimg(demo_generator(), FINAL_KIMG)
    digits = ImageDataset("builtin:digits")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(size):
        Image.fromarray(digits.get_image(i).transpose(1, 2, 0)).save(folder / f"digit{i:03d}.png")
    fake = generated_images(G, [copy_seed])[0].numpy().transpose(1, 2, 0)
    Image.fromarray(fake).save(folder / "planted.png")
    return folder
