"""Metrics for a generator against a dataset: the public names plus offline variants.

- ``fid50k_full``: Frechet distance of Inception-v3 features; 50,000 fakes, every real image.
- ``kid50k_full``: KID of Inception-v3 features; 50,000 fakes, up to 1,000,000 reals.
- ``pr50k3_full``: precision/recall (k=3) of VGG16 features; 50,000 fakes, up to 200,000 reals.
- ``fid50k``, ``kid50k``, ``pr50k3``: the same with up to 50,000 reals from the training set as
  configured (subset, mirror).
- ``fd_offline``, ``kid_offline``, ``pr_offline``: the same distances on the offline random-conv
  features (see extractors.py; not comparable to the above); 5,000 fakes, every real image.
- ``copies_offline``: the share of 1,000 fakes flagged as copies of a training image (the rule
  and the features are ``nearest.py``'s, offline); every real image.
- ``leaks_offline``: one leak indicator per geometric and colour op, ``leak/<op>`` (``leaks.py``;
  the ops: ``MetricOptions.leak_ops``, default all); 2,000 fakes, up to 1,500 reals.
- ``fid1k_full``, ``kid1k_full``: FID/KID with Inception-v3 on 1,000 fakes and every real image,
  for tracking a run at its snapshots (biased upward against fid50k_full; compare like with like).

``METRIC_HELP`` has a one-line reading guide per metric (and per leak key), for the GUI.

Quick mode (``MetricOptions.quick``, what the trainer uses on the CPU at every snapshot): the offline
metrics use their ``quick_gen`` fakes (256; copies 64) and KID ``QUICK_KID_SUBSETS`` subsets.

``_full`` and offline metrics use the whole dataset (no subset, no mirror), as in the public code;
``num_gen``/``max_real`` override the counts (records keep the counts used). Fakes: z ~ N(0, I) and,
for conditional G, labels of random dataset images, from ``seed``; ``truncation_psi=1`` and
``noise_mode='random'`` as the public protocol (reproducible: the global RNG is forked and seeded).
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from core.data import ImageDataset
from core.metrics import cache
from core.metrics.distances import frechet_distance, kernel_distance, mean_cov, precision_recall
from core.metrics.extractors import FeatureExtractor, MetricsError, build_extractor, to_rgb
from core.metrics.leaks import LEAK_OPS, check_ops
from core.rundir import layout

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class MetricSpec:
    """What a metric name means: distance, extractor, default counts, which reals."""

    distance: str  # "fd", "kid", "pr", "copy" or "leak"
    extractor: str  # "inception", "vgg16", "offline" or "layout"
    num_gen: int
    max_real: int | None  # None: every real image
    full: bool  # True: the whole dataset, without subset/mirror
    quick_gen: int | None = None  # fakes in quick mode (None: num_gen)


METRICS = MappingProxyType(
    {
        "fid50k_full": MetricSpec("fd", "inception", 50_000, None, True),
        "kid50k_full": MetricSpec("kid", "inception", 50_000, 1_000_000, True),
        "pr50k3_full": MetricSpec("pr", "vgg16", 50_000, 200_000, True),
        "fid50k": MetricSpec("fd", "inception", 50_000, 50_000, False),
        "kid50k": MetricSpec("kid", "inception", 50_000, 50_000, False),
        "pr50k3": MetricSpec("pr", "vgg16", 50_000, 50_000, False),
        "fd_offline": MetricSpec("fd", "offline", 5_000, None, True, quick_gen=256),
        "kid_offline": MetricSpec("kid", "offline", 5_000, None, True, quick_gen=256),
        "pr_offline": MetricSpec("pr", "offline", 5_000, None, True, quick_gen=256),
        "copies_offline": MetricSpec("copy", "offline", 1_000, None, True, quick_gen=64),
        "leaks_offline": MetricSpec("leak", "layout", 2_000, None, True, quick_gen=256),
        "fid1k_full": MetricSpec("fd", "inception", 1_000, None, True),
        "kid1k_full": MetricSpec("kid", "inception", 1_000, None, True),
    }
)
QUICK_KID_SUBSETS = 20

# One line per metric (and per result key where it differs) on how to read it; the GUI shows these.
METRIC_HELP = MappingProxyType(
    {
        "fid50k_full": "Frechet Inception distance, 50k fakes vs all reals: lower is better; the papers' number.",
        "kid50k_full": "Kernel Inception distance (x1000 in papers): lower is better; unbiased, fine for small data.",
        "pr50k3_full_precision": "Precision: share of fakes inside the reals' manifold (fidelity); higher is better.",
        "pr50k3_full_recall": "Recall: share of reals inside the fakes' manifold (variety); higher is better.",
        "pr50k3_precision": "Precision with VGG16 features against up to 50k reals as configured; higher is better.",
        "pr50k3_recall": "Recall with VGG16 features against up to 50k reals as configured; higher is better.",
        "fid50k": "FID against up to 50k reals of the training set as configured (subset, mirror).",
        "kid50k": "KID against up to 50k reals of the training set as configured (subset, mirror).",
        "fid1k_full": "FID on 1k fakes: lower is better; biased upward vs fid50k_full, use it to compare snapshots.",
        "kid1k_full": "KID on 1k fakes: lower is better; unbiased, so close to kid50k_full but noisier.",
        "fd_offline": "Frechet distance in offline random-conv features: lower is better; compare within a run only.",
        "kid_offline": "KID in offline random-conv features: lower is better; near 0 = fakes match the reals.",
        "pr_offline_precision": "Offline precision: share of fakes that look like some real image; higher is better.",
        "pr_offline_recall": "Offline recall: share of reals the fakes cover (variety); a drop signals collapse.",
        "copies_offline": "Share of fakes closer to a training image than real images get to each other: "
        "memorisation; should stay near 0.",
        "leaks_offline": "Per augmentation op: estimated share of fakes that look op-transformed beyond what reals "
        "show; 0 = no leak, 1 = every fake transformed; a sustained rise means lower p or switch the op off.",
    }
)


def metric_help(key: str) -> str:
    """The reading guide for a metric name or result key (``leak/<op>`` included); "" if none."""
    if key in METRIC_HELP:
        return METRIC_HELP[key]
    if key.startswith("leak/"):
        op = key.removeprefix("leak/")
        return (f"Estimated share of fakes that look {op}-transformed beyond what reals show: 0 = no leak, "
                f"1 = every fake; a sustained rise means {op} leaks into G (lower p or switch {op} off).")
    base = key.rsplit("_", 1)[0]
    return METRIC_HELP.get(base, "")


@dataclass
class MetricOptions:
    """How to evaluate. ``None`` counts take each metric's default."""

    num_gen: int | None = None
    max_real: int | None = None
    batch: int = 32
    device: str | None = None  # None: the generator's device
    inception: str | None = None  # path to inception-2015-12-05.pt (else $ADA_INCEPTION_WEIGHTS)
    vgg16: str | None = None  # path to vgg16.pt (else $ADA_VGG16_WEIGHTS)
    cache_dir: str | None = None  # None: cache.cache_dir()
    seed: int = 0
    truncation_psi: float = 1.0
    noise_mode: str = "random"
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    workers: int = 1  # decoding processes for datasets too big to hold in memory
    progress: bool = True
    quick: bool = False  # each metric's quick_gen fakes and QUICK_KID_SUBSETS (per-snapshot evaluation)
    leak_ops: list[str] | None = None  # ops for leaks_offline (None: every geometric and colour op)
    leak_strengths: dict[str, float] | None = None  # the augment pipe's strengths (None: its defaults)


@dataclass
class MetricResult:
    metric: str
    results: dict[str, float]
    num_gen: int
    num_real: int
    extractor: str
    dataset: str
    total_time: float  # shared work (generation, real features) counts toward every metric using it

    def to_record(self, snapshot: str | None = None, kimg: float | None = None) -> dict[str, Any]:
        """One metrics.jsonl line (the public metric-*.jsonl fields plus counts and extractor)."""
        return {
            **asdict(self),
            "total_time_str": _duration(self.total_time),
            "snapshot": snapshot,
            "kimg": kimg,
            "timestamp": time.time(),
        }


@dataclass
class _Plan:
    """The work for one call: which extractors, how many fakes, which real feature sets."""

    names: list[str]
    specs: dict[str, MetricSpec]
    num_gen: dict[str, int] = field(default_factory=dict)
    max_real: dict[str, int | None] = field(default_factory=dict)


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def parse_metric_names(text: str | Sequence[str]) -> list[str]:
    """Metric names from ``"a,b"`` or a list; unknown names are an error listing the known ones."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise MetricsError(
            f"unknown metric {unknown[0] if unknown else '(none given)'!r}; choose from {', '.join(METRICS)}"
        )
    return list(dict.fromkeys(names))


def _plan(names: list[str], options: MetricOptions) -> _Plan:
    plan = _Plan(names, {n: METRICS[n] for n in names})
    for name, spec in plan.specs.items():
        plan.num_gen[name] = options.num_gen or (spec.quick_gen if options.quick else None) or spec.num_gen
        plan.max_real[name] = options.max_real or spec.max_real
        if plan.num_gen[name] < 2:
            raise MetricsError(f"--num-gen must be >= 2, got {plan.num_gen[name]}")
    return plan


# --- real features ------------------------------------------------------------------------------


def _real_dataset(dataset: ImageDataset | str, full: bool, need_labels: bool) -> ImageDataset:
    if isinstance(dataset, ImageDataset):
        labels_ok = dataset.use_labels or not need_labels
        if labels_ok and (not full or (dataset.subset is None and not dataset.mirror)):
            return dataset
        return ImageDataset(
            dataset.spec,
            mirror=False if full else dataset.mirror,
            subset=None if full else dataset.subset,
            seed=dataset.seed,
            use_labels=need_labels,
        )
    return ImageDataset(dataset, use_labels=need_labels)


def _real_indices(dataset: ImageDataset, max_real: int | None, seed: int) -> np.ndarray:
    if max_real is None or max_real >= len(dataset):
        return np.arange(len(dataset))
    return np.sort(np.random.default_rng(seed).choice(len(dataset), max_real, replace=False))


def _real_batches(
    dataset: ImageDataset, indices: np.ndarray, options: MetricOptions
) -> Iterator[torch.Tensor]:
    if dataset.preload():
        for chunk in np.array_split(indices, max(1, -(-len(indices) // options.batch))):
            yield torch.from_numpy(dataset.load_batch(chunk)[0])
        return
    subset = torch.utils.data.Subset(dataset, indices.tolist())  # type: ignore[arg-type]
    loader = torch.utils.data.DataLoader(subset, batch_size=options.batch, num_workers=options.workers)
    for images, _labels in loader:
        yield images


def real_features(
    dataset: ImageDataset,
    extractor: FeatureExtractor,
    max_real: int | None,
    options: MetricOptions,
    need_all: bool,
) -> dict[str, np.ndarray]:
    """Real-image features (``features``) or just their ``mu``/``sigma``, from the cache when possible."""
    indices = _real_indices(dataset, max_real, options.seed)
    key = dict(
        num=len(indices),
        mirror=dataset.mirror,
        subset=dataset.subset,
        subset_seed=dataset.seed,
        sample_seed=options.seed,
    )
    folder = Path(options.cache_dir) if options.cache_dir else None
    features_path = cache.cache_file(dataset, extractor.identity, key, "features", folder)
    stats_path = cache.cache_file(dataset, extractor.identity, key, "stats", folder)
    for path in (features_path,) if need_all else (stats_path, features_path):
        cached = cache.load(path)
        if cached is not None:
            log.info("real-image statistics from cache %s", path)
            return cached
    device = _extractor_device(extractor)
    chunks = []
    with tqdm(
        total=len(indices), desc=f"{dataset.name}: real features", unit="img", disable=not options.progress
    ) as bar:
        for images in _real_batches(dataset, indices, options):
            chunks.append(extractor(to_rgb(images.to(device))).cpu().numpy())
            bar.update(len(images))
    features = np.concatenate(chunks)
    if need_all:
        cache.save(features_path, {"features": features})
        return {"features": features}
    mu, sigma = mean_cov(features)
    cache.save(stats_path, {"mu": mu, "sigma": sigma, "num": np.asarray(len(features))})
    return {"mu": mu, "sigma": sigma, "num": np.asarray(len(features))}


def _extractor_device(extractor: FeatureExtractor) -> torch.device:
    if isinstance(extractor, nn.Module):
        return next(extractor.parameters()).device
    return getattr(extractor, "device", torch.device("cpu"))


# --- generated features -------------------------------------------------------------------------


def generated_batches(
    G: nn.Module,
    num: int,
    labels_from: ImageDataset | None,
    options: MetricOptions,
    device: torch.device,
) -> Iterator[torch.Tensor]:
    """uint8 fakes [B, C, H, W], reproducibly from ``options.seed`` without touching the caller's RNG."""
    rng = np.random.default_rng(options.seed)
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        torch.manual_seed(options.seed)
        for start in range(0, num, options.batch):
            count = min(options.batch, num - start)
            z = torch.randn(count, G.z_dim, device=device)
            if G.c_dim and labels_from is not None:
                picks = rng.integers(0, len(labels_from), count)
                c = torch.from_numpy(np.stack([labels_from.get_label(int(i)) for i in picks])).to(device)
            else:
                c = torch.zeros(count, G.c_dim, device=device)
            images = G(z, c, truncation_psi=options.truncation_psi, noise_mode=options.noise_mode)
            yield (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def _prepare_generator(G: nn.Module, device: torch.device) -> nn.Module:
    # A private eval-mode copy: training-mode G would update its w_avg while we sample.
    return copy.deepcopy(G).eval().requires_grad_(False).to(device)


# --- the entry points ---------------------------------------------------------------------------


def compute_metrics(
    G: nn.Module,
    dataset: ImageDataset | str,
    metrics: str | Sequence[str],
    options: MetricOptions | None = None,
) -> dict[str, MetricResult]:
    """Evaluate ``metrics`` for generator ``G`` (``z_dim``, ``c_dim``, ``G(z, c, ...)``) on ``dataset``.

    ``dataset``: an ImageDataset (non-``_full`` metrics use it as configured) or a path/``builtin:``
    spec. Returns results by metric name, in the order asked.
    """
    options = options or MetricOptions()
    names = parse_metric_names(metrics)
    plan = _plan(names, options)
    first_param = next(G.parameters(), None)
    device = torch.device(options.device or (first_param.device if first_param is not None else "cpu"))
    need_labels = G.c_dim > 0
    extractors = {
        kind: build_extractor(
            kind,
            device,
            next(n for n in names if plan.specs[n].extractor == kind),
            options.inception,
            options.vgg16,
        )
        for kind in dict.fromkeys(spec.extractor for spec in plan.specs.values())
    }
    datasets = {
        full: _real_dataset(dataset, full, need_labels)
        for full in dict.fromkeys(spec.full for spec in plan.specs.values())
    }
    for ds in datasets.values():
        if need_labels and not ds.has_labels:
            raise MetricsError(f"the generator is conditional (c_dim={G.c_dim}) but {ds.spec} has no labels")
        if need_labels and ds.label_dim != G.c_dim:
            raise MetricsError(f"the generator has c_dim={G.c_dim} but {ds.spec} has {ds.label_dim} classes")

    start = time.time()
    # Copy metrics look at the fakes through nearest.py's own features (normalised, shifted): they
    # get the first fakes themselves (the same ones, from the same seed), kept while generating.
    feature_names = [n for n in names if plan.specs[n].distance != "copy"]
    fake_kinds = {plan.specs[n].extractor for n in feature_names}
    keep = max((plan.num_gen[n] for n in names if plan.specs[n].distance == "copy"), default=0)
    fakes, kept_images = _fake_features(
        G, max([plan.num_gen[n] for n in feature_names] + [keep]),
        {kind: e for kind, e in extractors.items() if kind in fake_kinds}, next(iter(datasets.values())),
        options, device, keep,
    )  # fmt: skip
    gen_time = time.time() - start
    # One real feature set per (extractor, reals, count), shared by the metrics that agree on them.
    real_keys = {name: _real_key(plan, name, datasets) for name in names}
    need_all = {
        key: any(plan.specs[n].distance != "fd" for n in names if real_keys[n] == key)
        for key in real_keys.values()
    }
    real_sets: dict[tuple[str, bool, int | None], tuple[dict[str, np.ndarray], float]] = {}
    results: dict[str, MetricResult] = {}
    for name in names:
        spec, key, began = plan.specs[name], real_keys[name], time.time()
        if spec.distance == "copy":
            results[name] = _copy_metric(name, kept_images[: plan.num_gen[name]], datasets[spec.full], options,
                                         device, gen_time)
            continue
        if spec.distance == "leak":
            results[name] = _leak_metric(name, fakes[spec.extractor][: plan.num_gen[name]], datasets[spec.full],
                                         extractors[spec.extractor], options, gen_time)
            continue
        if key not in real_sets:
            real = real_features(
                datasets[spec.full], extractors[spec.extractor], key[2], options, need_all[key]
            )
            real_sets[key] = real, time.time() - began
        real, real_time = real_sets[key]
        values = _distance(name, spec, real, fakes[spec.extractor][: plan.num_gen[name]], options, device)
        num_real = int(real["num"]) if "num" in real else len(real["features"])
        results[name] = MetricResult(
            name,
            values,
            plan.num_gen[name],
            num_real,
            extractors[spec.extractor].identity,
            datasets[spec.full].spec,
            gen_time + real_time + time.time() - began,
        )
    return results


def _copy_metric(
    name: str, images: torch.Tensor, dataset: ImageDataset, options: MetricOptions, device: torch.device,
    gen_time: float,
) -> MetricResult:
    from core.metrics.nearest import NearestOptions, copy_fraction, nearest, prepare

    began = time.time()
    nearest_options = NearestOptions(batch=options.batch, device=str(device), cache_dir=options.cache_dir,
                                     kind="offline")
    search = prepare(dataset, nearest_options)
    fraction = copy_fraction(nearest(search, images, list(range(len(images))), k=1))
    return MetricResult(name, {name: fraction}, len(images), len(search.reference), search.reference.extractor,
                        dataset.spec, gen_time + time.time() - began)


def _leak_metric(
    name: str, fake_features: np.ndarray, dataset: ImageDataset, extractor: FeatureExtractor,
    options: MetricOptions, gen_time: float,
) -> MetricResult:
    from core.metrics.leaks import build_reference, leak_values

    began = time.time()
    ops = check_ops(options.leak_ops) if options.leak_ops is not None else list(LEAK_OPS)
    if dataset.num_channels == 1:
        ops = [op for op in ops if op not in ("hue", "saturation")] or ops
    reference = build_reference(dataset, ops, extractor, options.leak_strengths, options.batch, options.cache_dir)
    values = leak_values(reference, fake_features)
    num_real = int((reference.owner == 0).sum()) + reference.num_held_out
    return MetricResult(name, values, len(fake_features), num_real, extractor.identity, dataset.spec,
                        gen_time + time.time() - began)


def _real_key(plan: _Plan, name: str, datasets: dict[bool, ImageDataset]) -> tuple[str, bool, int | None]:
    spec, max_real = plan.specs[name], plan.max_real[name]
    if max_real is not None and max_real >= len(datasets[spec.full]):
        max_real = None
    return spec.extractor, spec.full, max_real


def _fake_features(
    G: nn.Module,
    num: int,
    extractors: dict[str, FeatureExtractor],
    labels_from: ImageDataset,
    options: MetricOptions,
    device: torch.device,
    keep: int = 0,
) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """Features of ``num`` fakes per extractor kind, and the first ``keep`` fakes (uint8, CPU)."""
    if num == 0:
        return {}, torch.zeros(0, dtype=torch.uint8)
    G = _prepare_generator(G, device)
    chunks: dict[str, list[np.ndarray]] = {kind: [] for kind in extractors}
    kept: list[torch.Tensor] = []
    with tqdm(total=num, desc="generated features", unit="img", disable=not options.progress) as bar:
        for images in generated_batches(G, num, labels_from, options, device):
            for kind, extractor in extractors.items():
                chunks[kind].append(extractor(to_rgb(images)).cpu().numpy())
            if sum(map(len, kept)) < keep:
                kept.append(images.cpu())
            bar.update(len(images))
    features = {kind: np.concatenate(parts) for kind, parts in chunks.items()}
    return features, torch.cat(kept)[:keep] if kept else torch.zeros(0, dtype=torch.uint8)


def _distance(
    name: str,
    spec: MetricSpec,
    real: dict[str, np.ndarray],
    fake: np.ndarray,
    options: MetricOptions,
    device: torch.device,
) -> dict[str, float]:
    if spec.distance == "fd":
        mu_real, sigma_real = (real["mu"], real["sigma"]) if "mu" in real else mean_cov(real["features"])
        mu_fake, sigma_fake = mean_cov(fake)
        return {name: frechet_distance(mu_fake, sigma_fake, mu_real, sigma_real)}
    if spec.distance == "kid":
        subsets = min(options.kid_subsets, QUICK_KID_SUBSETS) if options.quick else options.kid_subsets
        return {name: kernel_distance(real["features"], fake, subsets, options.kid_subset_size, options.seed)}
    precision, recall = precision_recall(real["features"], fake, k=options.pr_k, device=device)
    return {f"{name}_precision": precision, f"{name}_recall": recall}


def append_records(run_dir: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> Path:
    """Append records as JSON lines to ``<run_dir>/metrics.jsonl`` (one write per line, fsynced)."""
    path = layout.metrics_path(run_dir)
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def run_metrics_for_training(
    G_ema: nn.Module,
    dataset_spec: ImageDataset | str,
    metrics: str | Sequence[str],
    run_dir: str | os.PathLike[str] | None = None,
    snapshot: str | None = None,
    kimg: float | None = None,
    options: MetricOptions | None = None,
) -> list[dict[str, Any]]:
    """Evaluate at a snapshot; append to ``<run_dir>/metrics.jsonl`` when given; return the records.

    Call on one process (rank 0): it generates every fake itself. ``snapshot`` is the snapshot's path
    relative to the run directory, as it appears in the records.
    """
    options = options or MetricOptions(progress=False)
    results = compute_metrics(G_ema, dataset_spec, metrics, options)
    records = [result.to_record(snapshot=snapshot, kimg=kimg) for result in results.values()]
    if run_dir is not None:
        append_records(run_dir, records)
    return records
