"""Loader throughput on builtin:digits: images/s at batch 32, median of several timed runs.

    .venv/bin/python bench/bench_data.py [--batch 32] [--batches 200] [--repeats 5]

Measures both paths of core.data.InfiniteLoader: the in-memory one (digits fits, so this is what
training uses) and the streaming one (decoding PNGs from the zip in worker processes), which is
what datasets too big to pre-decode get.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data import ImageDataset, InfiniteLoader  # noqa: E402


def images_per_second(dataset: ImageDataset, batch: int, batches: int, workers: int) -> float:
    loader = InfiniteLoader(dataset, batch, seed=0, workers=workers)
    next(loader)  # start-up (pre-decoding, worker launch) is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    elapsed = time.perf_counter() - start
    loader.close()
    return batches * batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cases = [
        ("in memory (default for digits)", dict(), 0),
        ("streaming, workers=0", dict(cache_limit_mb=0), 0),
        ("streaming, workers=1", dict(cache_limit_mb=0), 1),
        ("streaming, workers=2", dict(cache_limit_mb=0), 2),
    ]
    for label, dataset_kwargs, workers in cases:
        dataset = ImageDataset("builtin:digits", use_labels=True, **dataset_kwargs)
        rates = [images_per_second(dataset, args.batch, args.batches, workers) for _ in range(args.repeats)]
        print(
            f"{label:32s} median {statistics.median(rates):10.0f} img/s  "
            f"(batch {args.batch}, {args.repeats} runs of {args.batches} batches; min {min(rates):.0f}, "
            f"max {max(rates):.0f})"
        )


if __name__ == "__main__":
    main()
