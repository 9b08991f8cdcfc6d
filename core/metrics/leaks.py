"""Leak indicators: do the fakes look like training images passed through an augmentation op?

ADA's augmentations must not "leak": G should make images like the reals, not like the augmented
reals D is also shown. Each geometric and colour op in use gets one number, ``leak/<op>``: an
estimate of the share of fakes that look op-transformed, beyond what real images show.
0 means no sign of the op in the fakes; 1 means every fake looks transformed (above 1: even more
than the op does). Ops the data cannot show (an x-flip of symmetric images, hue of grayscale)
read 0.

How (all in layout features, ``extractors.LayoutExtractor``):

1. The reals are split once, with a fixed seed, into a reference set R and held-out probes H.
   For every op in use, ``T_op(R)`` is R with the op forced on: p = 1, and for the blits always
   a real change (xflip flips every image; rotate90 turns by 90, 180 or 270 degrees).
2. Each image is attributed to the set holding its nearest neighbour among R and all ``T_op(R)``.
   The ops compete, so a fake rotated by 90 degrees goes to rotate90 and not to xflip.
3. ``base[op]``: the share of held-out reals H attributed to op (real images sit near some
   transformed reals too); ``sep[op]``: the share of ``T_op(H)`` attributed to op, minus base,
   i.e. what fully transformed images read. Both are computed once and cached.
4. For the fakes: ``excess = share[op] - base[op]``; a mixture of (1 - a) real-like and a
   transformed fakes has excess = a * sep, so the estimate is excess / sep, shrunk toward 0 where
   ``sep`` is not clearly above the counting noise (ridge at four standard errors), and read as
   0 below 0. Counting noise (one standard error) on builtin:digits with 256 fakes: about 0.01
   for ops that change images a lot (xflip, rotate90, lumaflip), about 0.12 for subtle ones
   (scale, aniso, brightness), whose transformed images stay close to real ones.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.augment.pipeline import COLOR_OPS, GEOM_OPS, PRESETS, AugmentPipe, AugmentStrengths
from core.data import ImageDataset
from core.metrics import cache
from core.metrics.extractors import FeatureExtractor, MetricsError

log = logging.getLogger(__name__)

LEAK_OPS = GEOM_OPS + COLOR_OPS
RGB_ONLY_OPS = ("hue", "saturation")  # the pipe skips them on 1-channel images
REFERENCE_SIZE = 1000  # at most this many reals in R
HELD_OUT_SIZE = 500  # at most this many reals in H
MIN_REALS = 8
RIDGE_SE = 4.0  # shrink where sep is within this many standard errors of 0
VERSION = 1  # bump when the transforms or the split change (invalidates the cache)
_SPLIT_SEED = 0x1EA4


def leak_key(op: str) -> str:
    return f"leak/{op}"


def ops_in_use(multipliers: Mapping[str, float], channels: int = 3) -> list[str]:
    """The geometric and colour ops an augment pipe with these multipliers applies."""
    return [op for op in LEAK_OPS if multipliers.get(op, 0) > 0 and not (channels == 1 and op in RGB_ONLY_OPS)]


def ops_of_run(augment: Mapping[str, object] | None, channels: int = 3) -> list[str] | None:
    """The ops a run's augment pipe applied, from its resolved ``augment`` settings (run.json,
    snapshot metadata); None when the run had no ADA pipe or the settings are not there."""
    pipe = (augment or {}).get("pipe")
    if not isinstance(pipe, str) or pipe not in PRESETS:
        return None
    multipliers = {**PRESETS[pipe], **dict((augment or {}).get("multipliers") or {})}  # type: ignore[call-overload]
    return ops_in_use(multipliers, channels) or None


def check_ops(ops: Sequence[str]) -> list[str]:
    """``ops`` in pipeline order; unknown names are an error listing the known ones."""
    unknown = [op for op in ops if op not in LEAK_OPS]
    if unknown or not ops:
        what = f"unknown op {unknown[0]!r}" if unknown else "no op given"
        raise MetricsError(f"leak ops: {what}; choose from {', '.join(LEAK_OPS)}")
    return [op for op in LEAK_OPS if op in ops]


# --- the forced transforms ------------------------------------------------------------------------


def transform(images: torch.Tensor, op: str, strengths: Mapping[str, float] | None, seed: int) -> torch.Tensor:
    """uint8 images [N, C, H, W] with ``op`` always on (see the module docstring), reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    if op == "xflip":
        return torch.flip(images, dims=[3])
    if op == "rotate90" and images.shape[2] == images.shape[3]:
        turns = torch.randint(1, 4, (len(images),), generator=gen)
        return torch.stack([torch.rot90(img, int(k), dims=[1, 2]) for img, k in zip(images, turns, strict=True)])
    pipe = AugmentPipe(**{op: 1.0}, **dict(strengths or {}), p=1.0)
    out = pipe(images.to(torch.float32) / 127.5 - 1, generator=gen)
    return (out * 127.5 + 128).clamp(0, 255).to(torch.uint8)


# --- the reference (computed once per dataset, op set and strengths; cached) ----------------------


@dataclass
class LeakReference:
    """R and T_op(R) as one feature matrix, who owns each row, and the calibration from H."""

    ops: list[str]
    features: torch.Tensor  # [(1 + len(ops)) * M, D]
    owner: np.ndarray  # [(1 + len(ops)) * M]: 0 = reals, i + 1 = ops[i]
    base: np.ndarray  # [len(ops)]
    sep: np.ndarray  # [len(ops)]
    num_held_out: int

    def shares(self, features: torch.Tensor, batch: int = 256) -> np.ndarray:
        """[len(ops)]: the share of images (features [N, D]) attributed to each op."""
        owners = [self.owner[torch.cdist(chunk, self.features).argmin(1).numpy()] for chunk in features.split(batch)]
        counts = np.bincount(np.concatenate(owners), minlength=len(self.ops) + 1)
        return counts[1:] / max(len(features), 1)


def split(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of R and H among ``count`` reals (fixed seed; disjoint)."""
    if count < MIN_REALS:
        raise MetricsError(f"leaks_offline needs at least {MIN_REALS} real images, the dataset has {count}")
    order = np.random.default_rng(_SPLIT_SEED).permutation(count)
    held_out = min(HELD_OUT_SIZE, count // 3)
    return np.sort(order[held_out : held_out + REFERENCE_SIZE]), np.sort(order[:held_out])


def build_reference(
    dataset: ImageDataset,
    ops: Sequence[str],
    extractor: FeatureExtractor,
    strengths: Mapping[str, float] | None = None,
    batch: int = 64,
    cache_dir: str | None = None,
) -> LeakReference:
    """The leak reference for ``dataset`` and ``ops``, from the cache when it is there."""
    ops = check_ops(ops)
    ref_idx, held_idx = split(len(dataset))
    key = {"num": len(dataset), "mirror": dataset.mirror, "subset": dataset.subset, "subset_seed": dataset.seed,
           "ops": ops, "strengths": _strengths(strengths), "leak_version": VERSION}
    path = cache.cache_file(dataset, extractor.identity, key, "leaks", Path(cache_dir) if cache_dir else None)
    cached = cache.load(path)
    if cached is not None:
        log.info("leak reference from cache %s", path)
        return LeakReference(ops, torch.from_numpy(cached["features"]), cached["owner"], cached["base"],
                             cached["sep"], int(cached["num_held_out"]))
    reals, held = _images(dataset, ref_idx), _images(dataset, held_idx)
    sets = [reals] + [transform(reals, op, strengths, seed=2 * i + 1) for i, op in enumerate(ops)]
    features = torch.cat([_features(extractor, images, batch) for images in sets])
    owner = np.repeat(np.arange(len(sets)), len(reals))
    reference = LeakReference(ops, features, owner, np.zeros(len(ops)), np.zeros(len(ops)), len(held))
    reference.base = reference.shares(_features(extractor, held, batch))
    transformed = [reference.shares(_features(extractor, transform(held, op, strengths, seed=2 * i + 2), batch))[i]
                   for i, op in enumerate(ops)]  # fmt: skip
    reference.sep = np.asarray(transformed) - reference.base
    cache.save(path, {"features": features.numpy(), "owner": owner, "base": reference.base, "sep": reference.sep,
                      "num_held_out": np.asarray(len(held))})  # fmt: skip
    return reference


def _strengths(strengths: Mapping[str, float] | None) -> dict[str, float]:
    """Every strength knob (defaults filled in), so that None and the defaults share a cache entry."""
    return dataclasses.asdict(AugmentStrengths(**dict(strengths or {})))


def _images(dataset: ImageDataset, indices: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(dataset.load_batch(indices)[0])


def _features(extractor: FeatureExtractor, images: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([extractor(chunk).float().cpu() for chunk in images.split(batch)])


# --- the indicator ---------------------------------------------------------------------------------


def leak_values(reference: LeakReference, fake_features: torch.Tensor | np.ndarray) -> dict[str, float]:
    """``{"leak/<op>": value}`` for fakes' layout features [N, D] (see the module docstring)."""
    fakes = torch.as_tensor(np.asarray(fake_features, np.float32))
    excess = reference.shares(fakes) - reference.base
    sep = np.maximum(reference.sep, 0.0)
    base = np.clip(reference.base, 1 / max(len(fakes), 1), 1.0)  # never a zero variance
    variance = base * (1 - base) * (1 / max(len(fakes), 1) + 1 / max(reference.num_held_out, 1))
    estimate = excess * sep / (sep**2 + RIDGE_SE**2 * variance)
    return {leak_key(op): max(0.0, float(v)) if math.isfinite(v) else 0.0
            for op, v in zip(reference.ops, estimate, strict=True)}  # fmt: skip


__all__ = [
    "LEAK_OPS",
    "LeakReference",
    "build_reference",
    "check_ops",
    "leak_key",
    "leak_values",
    "ops_in_use",
    "ops_of_run",
    "transform",
]
