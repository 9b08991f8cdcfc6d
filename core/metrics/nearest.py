"""Nearest training images of generated (or any) images, and whether they look like copies.

Feature space: an extractor of ``extractors.py`` (Inception when the user names its file, else the
offline random-conv net), made insensitive to what does not make an image a different image:

- each image is photometrically normalised first (zero mean, fixed spread), so a brighter or
  higher-contrast copy lands where its original does;
- features are L2-normalised, and the distance is the Euclidean distance between them (a
  monotone function of the cosine distance), so it does not depend on the extractor's scale;
- a query's distance is the smallest over itself shifted by up to one pixel in x and y (9
  variants, edge pixels repeated): a copy moved by a pixel is still found as a copy.

The copy rule (``COPY_PERCENTILE``, ``COPY_FACTOR``): each training image's distance to its nearest
*other* training image, measured the same way (9 shifts), describes how close two different
images of this dataset usually get. An image is flagged as a copy when its nearest distance is
below ``COPY_FACTOR`` x the ``COPY_PERCENTILE``-th percentile of those distances: closer than
all but the closest 1 % of real pairs, by a factor of two. On builtin:digits split into 300
training and 40 held-out images (offline features, tests/core/studio/test_nearest.py), exact
copies, Gaussian noise of sigma 4 levels, 1-pixel shifts, +10 levels and x0.9 brightness measured
at most 0.0023, the threshold 0.0055, the held-out digits at least 0.0094. A dataset with many
exact duplicates (more than 1 %) has a threshold of 0 and flags nothing.

The training set's features and nearest-other distances are cached (``cache.py``), keyed by the
dataset's content and the extractor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data import ImageDataset
from core.metrics import cache
from core.metrics.extractors import DETECTORS, FeatureExtractor, build_extractor, to_rgb

log = logging.getLogger(__name__)

COPY_PERCENTILE = 1.0
COPY_FACTOR = 0.5
FEATURE_VERSION = 1  # bump when the normalisation or the shifts change (invalidates the cache)
SHIFTS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
_SPREAD = 48.0  # the normalised images' standard deviation in uint8 levels (around 128)


@dataclass
class NearestOptions:
    """How to search: extractor, batch size, device, where the cache lives."""

    batch: int = 64
    device: str = "cpu"
    inception: str | None = None  # inception-2015-12-05.pt (else $ADA_INCEPTION_WEIGHTS, else offline)
    cache_dir: str | None = None
    progress: bool = False
    kind: str | None = None  # "offline" or "inception"; None: Inception when its file is named


@dataclass
class Reference:
    """The training set as seen by the search: features [N, D], names, and the copy threshold."""

    features: torch.Tensor
    names: list[str]
    nearest_other: np.ndarray  # [N] each real's distance to its nearest other real
    extractor: str

    @property
    def threshold(self) -> float:
        return copy_threshold(self.nearest_other)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Match:
    """One image's k nearest training images (names and distances, nearest first)."""

    image: int | str  # a seed or a file name
    names: list[str]
    distances: list[float]
    copy: bool

    def to_record(self) -> dict[str, object]:
        neighbours = [{"name": n, "distance": d} for n, d in zip(self.names, self.distances, strict=True)]
        return {"image": self.image, "neighbours": neighbours, "copy": self.copy}


@dataclass
class Search:
    """An extractor plus the reference it searches; build with ``prepare``."""

    extractor: FeatureExtractor
    reference: Reference
    options: NearestOptions = field(default_factory=NearestOptions)


def copy_threshold(nearest_other: np.ndarray) -> float:
    """Below this nearest distance an image counts as a copy (see the module's docstring)."""
    return float(COPY_FACTOR * np.percentile(nearest_other, COPY_PERCENTILE))


def choose_extractor(options: NearestOptions, what: str = "nearest") -> FeatureExtractor:
    """Inception when its file is named (option or environment variable), else the offline net."""
    named = options.inception or os.environ.get(DETECTORS["inception"].env)
    kind = options.kind or ("inception" if named else "offline")
    return build_extractor(kind, torch.device(options.device), what, inception=options.inception)


# --- features ----------------------------------------------------------------------------------


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 RGB with each image at mean 128 and a fixed spread."""
    x = to_rgb(images).to(torch.float32)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return ((x - mean) / std * _SPREAD + 128).round().clamp(0, 255).to(torch.uint8)


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images moved by (dy, dx) pixels, the uncovered edge repeating the border pixels."""
    if dy == dx == 0:
        return images
    h, w = images.shape[-2:]
    padded = F.pad(images.float(), (1, 1, 1, 1), mode="replicate").to(images.dtype)
    return padded[:, :, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def features(extractor: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    """L2-normalised features [N, D] (float32, CPU) of uint8 images."""
    return F.normalize(extractor(normalise(images)).float().cpu(), dim=1)


def _batches(images: torch.Tensor, batch: int) -> Iterator[torch.Tensor]:
    yield from images.split(batch)


def shifted_distances(
    extractor: FeatureExtractor,
    images: torch.Tensor,
    reference: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """[M, N]: each image's distance to each reference feature, the smallest over its 9 shifts.

    ``exclude`` [M]: a reference index per image whose distance is set to infinity (itself).
    """
    best = None
    for dy, dx in SHIFTS:
        d = torch.cdist(features(extractor, shifted(images, dy, dx)), reference)
        best = d if best is None else torch.minimum(best, d)
    assert best is not None
    if exclude is not None:
        best[torch.arange(len(images)), exclude] = float("inf")
    return best


# --- the training set ----------------------------------------------------------------------------


def _dataset_images(dataset: ImageDataset, batch: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    indices = np.arange(len(dataset))
    for chunk in np.array_split(indices, max(1, -(-len(indices) // batch))):
        yield chunk, torch.from_numpy(dataset.load_batch(chunk)[0])


def build_reference(dataset: ImageDataset, extractor: FeatureExtractor, options: NearestOptions) -> Reference:
    """Features and nearest-other distances of every image of ``dataset``, from the cache if there."""
    key = {"num": len(dataset), "mirror": dataset.mirror, "subset": dataset.subset,
           "subset_seed": dataset.seed, "nearest_version": FEATURE_VERSION}  # fmt: skip
    folder = Path(options.cache_dir) if options.cache_dir else None
    path = cache.cache_file(dataset, extractor.identity, key, "nearest", folder)
    names = [dataset.file_name(i) for i in range(len(dataset))]
    cached = cache.load(path)
    if cached is not None and len(cached.get("features", ())) == len(dataset):
        log.info("training-set features from cache %s", path)
        return Reference(torch.from_numpy(cached["features"]), names, cached["nearest_other"], extractor.identity)
    dataset.preload()
    feats = torch.cat([features(extractor, images) for _, images in _dataset_images(dataset, options.batch)])
    if len(dataset) < 2:
        nearest_other = np.zeros(len(dataset), np.float32)
    else:
        nearest_other = np.concatenate([
            shifted_distances(extractor, images, feats, torch.from_numpy(idx)).min(1).values.numpy()
            for idx, images in _dataset_images(dataset, options.batch)
        ])  # fmt: skip
    cache.save(path, {"features": feats.numpy(), "nearest_other": nearest_other})
    return Reference(feats, names, nearest_other, extractor.identity)


def prepare(dataset: ImageDataset | str, options: NearestOptions | None = None) -> Search:
    """The extractor and the cached training-set reference for ``dataset``."""
    options = options or NearestOptions()
    ds = dataset if isinstance(dataset, ImageDataset) else ImageDataset(dataset)
    extractor = choose_extractor(options)
    return Search(extractor, build_reference(ds, extractor, options), options)


# --- queries -------------------------------------------------------------------------------------


def nearest(search: Search, images: torch.Tensor, labels: Sequence[int | str], k: int) -> list[Match]:
    """The k nearest training images of each uint8 image [M, C, H, W], nearest first."""
    reference, threshold, matches = search.reference, search.reference.threshold, []
    start = 0
    for chunk in _batches(images, search.options.batch):
        d = shifted_distances(search.extractor, chunk, reference.features)
        values, indices = d.topk(k, dim=1, largest=False)
        for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True):
            names = [reference.names[i] for i in row_indices]
            matches.append(Match(labels[start], names, row_values, row_values[0] < threshold))
            start += 1
    return matches


def copy_fraction(matches: Sequence[Match]) -> float:
    """The share of images flagged as copies."""
    return sum(m.copy for m in matches) / max(len(matches), 1)


@torch.no_grad()
def generated_images(
    G: nn.Module,
    seeds: Sequence[int],
    psi: float = 1.0,
    noise_mode: str = "const",
    batch: int = 16,
    label: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 [N, C, H, W] images of G for seeds, z drawn as the public generate.py does;
    ``label`` [1, c_dim] for conditional G (default: zeros)."""
    from core.io.images import to_uint8

    device = next(G.parameters()).device
    out = []
    for start in range(0, len(seeds), batch):
        chunk = seeds[start : start + batch]
        z = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in chunk]))
        c = torch.zeros(len(chunk), G.c_dim, device=device) if label is None else label.repeat(len(chunk), 1)
        out.append(to_uint8(G(z.to(device), c, truncation_psi=psi, noise_mode=noise_mode)).cpu())
    return torch.cat(out)


def copy_score(
    G: nn.Module, search: Search, seeds: Sequence[int] = tuple(range(256)), psi: float = 1.0
) -> float:
    """The share of G's images for ``seeds`` flagged as copies of training images (per snapshot:
    call it with each snapshot's G and one ``prepare``d search; the training set is cached)."""
    images = generated_images(G.eval(), list(seeds), psi, batch=search.options.batch)
    return copy_fraction(nearest(search, images, list(seeds), k=1))
