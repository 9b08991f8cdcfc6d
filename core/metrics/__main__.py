"""python -m core.metrics --network SNAPSHOT --data DATA --metrics fid50k_full,kid50k_full,pr50k3_full

Prints one line per metric. When the snapshot belongs to a run directory (it sits in ``snapshots/``
of a folder holding ``run.json``, its own folder holds ``run.json``, or the run directory itself is
given), the results are also appended to that run's ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core.data import DatasetError
from core.io.cli import OneLineParser
from core.metrics.evaluate import METRICS, MetricOptions, MetricResult, append_records, compute_metrics
from core.metrics.extractors import MetricsError
from core.metrics.leaks import LEAK_OPS, check_ops, ops_of_run
from core.rundir import layout

log = logging.getLogger(__name__)


def find_run_dir(network: Path) -> Path | None:
    """The run directory a snapshot (or run directory) belongs to, if any."""
    candidates = [network] if network.is_dir() else []
    if (owner := layout.run_dir_of_snapshot(network)) is not None:
        candidates.append(owner)
    candidates.append(network.parent)
    return next((c for c in candidates if (c / layout.RUN_JSON).is_file()), None)


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m core.metrics", description=__doc__.split("\n\n")[1])
    p.add_argument(
        "--network",
        required=True,
        type=Path,
        help="snapshot (.json/.safetensors), a run directory (its newest snapshot), or a public .pkl",
    )
    p.add_argument("--data", help="dataset folder, zip or builtin:<name> (default: the snapshot's dataset)")
    p.add_argument("--metrics", default="fid50k_full", help=f"comma list of: {', '.join(METRICS)}")
    p.add_argument(
        "--num-gen", type=int, help="generated images per metric (default: the metric's, e.g. 50k)"
    )
    p.add_argument("--max-real", type=int, help="at most this many real images (default: the metric's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--inception", help="inception-2015-12-05.pt (default: $ADA_INCEPTION_WEIGHTS)")
    p.add_argument("--vgg16", help="vgg16.pt for pr50k3* (default: $ADA_VGG16_WEIGHTS)")
    p.add_argument("--seed", type=int, default=0, help="seed for the latents and real-image sampling")
    p.add_argument(
        "--leak-ops",
        metavar="LIST",
        help=f"ops for leaks_offline, a comma list of {', '.join(LEAK_OPS)} (default: the ops the snapshot's "
        "run augmented with, else all of them)",
    )
    p.add_argument("--no-append", action="store_true", help="do not write to the run's metrics.jsonl")
    return p


def _load_generator(network: Path, device: str) -> tuple[torch.nn.Module, dict[str, Any], Path]:
    # Imported here: the checkpoint module pulls in the network registry, which the metrics need only now.
    from core.networks.checkpoint import CheckpointError
    from core.networks.sources import load_any

    try:
        ckpt = load_any(network, device=device)
    except (CheckpointError, OSError) as exc:
        raise MetricsError(f"--network {network}: {exc}") from None
    G = ckpt.G_ema if ckpt.G_ema is not None else ckpt.G
    if G is None:
        raise MetricsError(f"--network {network}: the snapshot holds no generator (G_ema or G)")
    return G, dict(ckpt.meta or {}), Path(ckpt.path or network)


def _dataset_from_meta(meta: dict[str, Any]) -> str | None:
    for key in ("dataset", "training_set_kwargs"):
        info = meta.get(key)
        if isinstance(info, dict) and isinstance(info.get("path"), str):
            return info["path"]
    return None


def _kimg(meta: dict[str, Any], snapshot: Path) -> float | None:
    if isinstance(meta.get("kimg"), int | float):
        return float(meta["kimg"])
    return layout.snapshot_kimg(snapshot)


def _print(result: MetricResult) -> None:
    values = "  ".join(f"{k} {v:.6g}" for k, v in result.results.items())
    print(
        f"{values}  (fakes {result.num_gen}, reals {result.num_real}, {result.extractor}, "
        f"{result.total_time:.1f} s)"
    )


def _check_data_matches(G: torch.nn.Module, data: str) -> None:
    """Fakes and reals must be the same kind of image, or the distance measures the mismatch."""
    from core.data import ImageDataset

    ds = ImageDataset(data)
    if (ds.resolution, ds.num_channels) != (G.img_resolution, G.img_channels):
        raise MetricsError(
            f"--data {data}: {ds.resolution} px with {ds.num_channels} channel(s), but the generator makes "
            f"{G.img_resolution} px with {G.img_channels}; use the dataset it was trained on (or one made "
            f"with python -m core.data.tool --resolution {G.img_resolution})"
        )


def _given_leak_ops(args: argparse.Namespace) -> list[str] | None:
    if args.leak_ops is None:
        return None
    if "leaks_offline" not in [name.strip() for name in args.metrics.split(",")]:
        raise MetricsError("--leak-ops only applies to --metrics leaks_offline; add it to --metrics or drop --leak-ops")
    try:
        return check_ops([op.strip() for op in args.leak_ops.split(",") if op.strip()])
    except MetricsError as exc:
        raise MetricsError(f"--leak-ops {args.leak_ops!r}: {exc}") from None


def _run_leak_ops(meta: dict[str, Any], channels: int) -> list[str] | None:
    """The ops the snapshot's run augmented with (its recorded training options), if recorded."""
    training = meta.get("training_options")
    return ops_of_run(training.get("augment"), channels) if isinstance(training, dict) else None


def run(args: argparse.Namespace) -> int:
    options = MetricOptions(
        num_gen=args.num_gen,
        max_real=args.max_real,
        batch=args.batch,
        device=args.device,
        inception=args.inception,
        vgg16=args.vgg16,
        seed=args.seed,
    )
    for flag, value in (("--num-gen", args.num_gen), ("--max-real", args.max_real), ("--batch", args.batch)):
        if value is not None and value < 1:
            raise MetricsError(f"{flag} must be >= 1, got {value}")
    leak_ops = _given_leak_ops(args)
    G, meta, snapshot = _load_generator(args.network, args.device)
    options.leak_ops = leak_ops or _run_leak_ops(meta, G.img_channels)
    data = args.data or _dataset_from_meta(meta)
    if data is None:
        raise MetricsError(f"--data is needed: {args.network} does not record its dataset")
    _check_data_matches(G, data)
    results = compute_metrics(G, data, args.metrics, options)
    for result in results.values():
        _print(result)
    run_dir = None if args.no_append else find_run_dir(args.network.resolve())
    if run_dir is not None:
        try:
            relative = snapshot.resolve().relative_to(run_dir)
        except ValueError:
            relative = snapshot.resolve()
        records = [
            r.to_record(snapshot=relative.as_posix(), kimg=_kimg(meta, snapshot)) for r in results.values()
        ]
        print(f"appended to {append_records(run_dir, records)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except (MetricsError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
