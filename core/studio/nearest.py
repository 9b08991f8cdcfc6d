"""``nearest``: each image's k nearest training images, as a grid and a JSON list; copies flagged.

Images come from a generator (``--network`` and ``--seeds``) or from a folder (``--images``),
centre-cropped and resized to the dataset's resolution. The feature space, the distance and the
copy rule are ``core.metrics.nearest``'s (see its docstring).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

from core.data import DatasetError, ImageDataset
from core.data.dataset import image_extensions
from core.io.atomic import atomic_path
from core.io.images import tile
from core.metrics.extractors import MetricsError
from core.metrics.nearest import Match, NearestOptions, generated_images, nearest, prepare
from core.studio import common

log = logging.getLogger(__name__)

MIN_CELL = 64  # cells are enlarged (whole factors) to at least this size, so the labels fit
LABEL_HEIGHT = 12
COPY_COLOUR = (230, 40, 40)


@dataclass(frozen=True)
class NearestCommand:
    """The ``nearest`` command's flags (``network`` or ``images``, not both)."""

    data: str
    network: str | None = None
    device: str = "auto"
    class_idx: int | None = None
    trunc: float = 1.0
    noise_mode: str = "const"
    images: str | None = None
    seeds: tuple[int, ...] = ()
    k: int = 3
    out: str = "nn.png"
    json: str | None = None
    batch: int = 16
    inception: str | None = None
    subset: int | None = None  # the training run's --subset: search only the images it trained on
    subset_seed: int = 0  # ... drawn with the run's --seed


def _check(opts: NearestCommand) -> None:
    if opts.k < 1:
        raise common.StudioError(f"--k {opts.k}: must be >= 1")
    if opts.batch < 1:
        raise common.StudioError(f"--batch {opts.batch}: must be >= 1")
    if opts.subset is not None and opts.subset < 1:
        raise common.StudioError(f"--subset {opts.subset}: must be >= 1 (or leave it out to search every image)")
    if (opts.network is None) == (opts.images is None):
        raise common.StudioError("pass either --network (with --seeds) or --images DIR, not both and not neither")
    if opts.network is not None and not opts.seeds:
        raise common.StudioError("--network needs --seeds (e.g. 0-63)")
    if opts.images is not None and opts.seeds:
        raise common.StudioError("--seeds applies to --network only; drop it with --images")
    common.check_writable_file(Path(opts.out), "--out")
    if opts.json:
        common.check_writable_file(Path(opts.json), "--json")


def _dataset(spec: str, k: int, subset: int | None = None, subset_seed: int = 0) -> ImageDataset:
    try:
        dataset = ImageDataset(spec, subset=subset, seed=subset_seed)
    except (DatasetError, OSError) as exc:
        raise common.StudioError(f"--data {spec}: {exc}") from None
    if k > len(dataset):
        raise common.StudioError(f"--k {k}: the dataset has only {len(dataset)} images")
    return dataset


def _read_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    """uint8 [C, R, R]: centre-cropped, resized with Lanczos, in the dataset's channels."""
    try:
        with PIL.Image.open(path) as opened:
            image = opened.convert("RGB" if channels == 3 else "L")
    except (PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError, OSError) as exc:
        raise common.StudioError(f"--images: {path} is not an image Pillow can read ({exc})") from None
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
    array = np.array(image, dtype=np.uint8)
    return (array[:, :, None] if array.ndim == 2 else array).transpose(2, 0, 1)


def folder_images(folder: str, dataset: ImageDataset) -> tuple[torch.Tensor, list[str]]:
    """Every image file under ``folder`` (sorted by relative path) and those relative names."""
    root = Path(folder)
    if not root.is_dir():
        raise common.StudioError(f"--images {folder}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in image_extensions())
    if not files:
        raise common.StudioError(f"--images {folder}: no images in it (looked for {', '.join(image_extensions())})")
    arrays = [_read_image(p, dataset.resolution, dataset.num_channels) for p in files]
    return torch.from_numpy(np.stack(arrays)), [p.relative_to(root).as_posix() for p in files]


def _network_images(opts: NearestCommand, dataset: ImageDataset) -> torch.Tensor:
    device = common.resolve_device(opts.device)
    G = common.load_generator(opts.network, device)
    if (G.img_resolution, G.img_channels) != (dataset.resolution, dataset.num_channels):
        raise common.StudioError(
            f"--data {opts.data}: {dataset.resolution} px with {dataset.num_channels} channel(s), but the network "
            f"makes {G.img_resolution} px with {G.img_channels}; use the dataset it was trained on"
        )
    label = common.make_label(G, opts.class_idx, device)
    common.check_truncation(G, opts.trunc)
    return generated_images(G, list(opts.seeds), opts.trunc, opts.noise_mode, opts.batch, label)


def _cell(image: np.ndarray, scale: int, text: str, copy: bool) -> np.ndarray:
    """One grid cell: the image enlarged ``scale`` times, with ``text`` in a strip below it."""
    hwc = np.repeat(np.repeat(image.transpose(1, 2, 0), scale, 0), scale, 1)
    rgb = np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc
    pil = PIL.Image.new("RGB", (rgb.shape[1], rgb.shape[0] + LABEL_HEIGHT))
    pil.paste(PIL.Image.fromarray(rgb), (0, 0))
    draw = PIL.ImageDraw.Draw(pil)
    colour = COPY_COLOUR if copy else (230, 230, 230)
    draw.text((2, rgb.shape[0]), text, fill=colour, font=PIL.ImageFont.load_default())
    if copy:
        draw.rectangle((0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1), outline=COPY_COLOUR, width=2)
    return np.array(pil)


def render_grid(images: torch.Tensor, matches: Sequence[Match], dataset: ImageDataset) -> np.ndarray:
    """Rows: the image (framed red when flagged), then its neighbours with their distances."""
    scale = max(1, -(-MIN_CELL // dataset.resolution))
    index = {dataset.file_name(i): i for i in range(len(dataset))}
    cells = []
    for image, match in zip(images.numpy(), matches, strict=True):
        label = f"seed {match.image}" if isinstance(match.image, int) else str(match.image)
        cells.append(_cell(image, scale, ("COPY " if match.copy else "") + label, match.copy))
        for name, distance in zip(match.names, match.distances, strict=True):
            cells.append(_cell(dataset.get_image(index[name]), scale, f"{distance:.4f}", False))
    return tile(cells, len(matches[0].names) + 1)


def run_nearest(opts: NearestCommand) -> tuple[list[Path], list[Match]]:
    """Validate everything, search, then write the grid (and the JSON); returns files and matches."""
    _check(opts)
    dataset = _dataset(opts.data, opts.k, opts.subset, opts.subset_seed)
    if opts.images is not None:
        images, labels = folder_images(opts.images, dataset)
    else:
        images, labels = _network_images(opts, dataset), list(opts.seeds)
    try:
        search = prepare(dataset, NearestOptions(batch=max(opts.batch, 16), inception=opts.inception))
    except (MetricsError, DatasetError) as exc:
        raise common.StudioError(str(exc)) from None
    matches = nearest(search, images, labels, opts.k)
    written = [common.save_png(Path(opts.out), render_grid(images, matches, dataset))]
    if opts.json:
        with atomic_path(Path(opts.json)) as tmp:
            tmp.write_text(json.dumps([m.to_record() for m in matches], indent=1) + "\n", encoding="utf-8")
        written.append(Path(opts.json))
    log.info("copy threshold %.5g (%s)", search.reference.threshold, search.reference.extractor)
    return written, matches
