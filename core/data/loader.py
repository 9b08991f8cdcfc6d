"""An endless, shuffled, shardable and resumable stream of training batches.

Order: epoch ``e`` is the permutation ``default_rng([seed, e]).permutation(len(dataset))``; rank ``r`` of
``W`` takes every W-th entry starting at ``r``, cut to ``len // W`` so all ranks step through epochs in
lockstep. The state (epoch, position within the rank's share) is therefore the same on every rank, so
the state saved by rank 0 resumes all of them exactly. Batches run across epoch ends without a gap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from core.data.dataset import DatasetError, ImageDataset

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class LoaderState:
    """Where the stream stands: ``position`` samples of ``epoch`` consumed by each rank."""

    epoch: int = 0
    position: int = 0
    world_size: int = 1
    seed: int = 0


@dataclass(frozen=True)
class ShardedOrder:
    """The index order seen by one rank."""

    length: int
    seed: int
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside world_size {self.world_size}")
        if self.length < self.world_size:
            raise DatasetError(f"{self.length} images cannot be shared among {self.world_size} ranks")

    @property
    def shard_length(self) -> int:
        return self.length // self.world_size

    def epoch_indices(self, epoch: int) -> np.ndarray:
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.length)
        return perm[self.rank :: self.world_size][: self.shard_length]

    def stream(self, epoch: int, position: int) -> Iterator[int]:
        while True:
            yield from (int(i) for i in self.epoch_indices(epoch)[position:])
            epoch, position = epoch + 1, 0


class _StreamSampler(Sampler[int]):
    """Feeds a DataLoader from a ShardedOrder starting at a given state (endless; no __len__)."""

    def __init__(self, order: ShardedOrder, epoch: int, position: int) -> None:
        self.order, self.epoch, self.position = order, epoch, position

    def __iter__(self) -> Iterator[int]:
        return self.order.stream(self.epoch, self.position)


class InfiniteLoader:
    """Iterator of (images uint8 [B, C, H, W], labels float32 [B, label_dim]) batches, forever.

    Preloaded (small) datasets are gathered in this process with one numpy index per batch; larger
    ones are decoded by ``workers`` DataLoader processes (0: in this process).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 1,
        pin_memory: bool = False,
        prefetch: int = 2,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.dataset = dataset
        self.batch = batch
        self.workers = workers
        self.pin_memory = pin_memory
        self.prefetch = prefetch
        self.order = ShardedOrder(len(dataset), seed, rank, world_size)
        self.in_memory = dataset.preload()
        self._start = LoaderState(0, 0, world_size, seed)
        self._consumed_batches = 0
        self._batches: Iterator[Batch] | None = None

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> Batch:
        if self._batches is None:
            self._batches = self._open(self._start.epoch, self._start.position)
        batch = next(self._batches)
        self._consumed_batches += 1
        return batch

    def _open(self, epoch: int, position: int) -> Iterator[Batch]:
        if self.in_memory or self.workers == 0:
            return self._gather(self.order.stream(epoch, position))
        loader = DataLoader(
            self.dataset,  # type: ignore[arg-type]  # a map-style dataset by protocol
            batch_size=self.batch,
            sampler=_StreamSampler(self.order, epoch, position),
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch if self.workers > 0 else None,
        )
        return iter(loader)

    def _gather(self, stream: Iterator[int]) -> Iterator[Batch]:
        while True:
            indices = np.fromiter(stream, dtype=np.int64, count=self.batch)
            images, labels = (torch.from_numpy(a) for a in self.dataset.load_batch(indices))
            if self.pin_memory:
                images, labels = images.pin_memory(), labels.pin_memory()
            yield images, labels

    def state(self) -> LoaderState:
        """The state after the batches handed out so far (prefetched ones do not count)."""
        total = self._start.position + self._consumed_batches * self.batch
        shard = self.order.shard_length
        return LoaderState(
            self._start.epoch + total // shard, total % shard, self.order.world_size, self.order.seed
        )

    def state_dict(self) -> dict[str, Any]:
        return asdict(self.state())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved state; a different world size keeps the epoch and its progress."""
        loaded = LoaderState(**state)
        if loaded.seed != self.order.seed:
            log.warning("data loader: resuming seed %d order with seed %d", loaded.seed, self.order.seed)
        position = loaded.position
        if loaded.world_size != self.order.world_size:
            # Same fraction of the epoch done, measured in samples over all ranks.
            position = loaded.position * loaded.world_size // self.order.world_size
            log.warning(
                "data loader: world size changed %d -> %d; the data order resumes approximately",
                loaded.world_size,
                self.order.world_size,
            )
        position = min(position, self.order.shard_length - 1)
        self.close()
        self._start = LoaderState(loaded.epoch, position, self.order.world_size, self.order.seed)
        self._consumed_batches = 0

    def close(self) -> None:
        """Stop worker processes (a later ``next`` starts them again at the current state)."""
        if self._batches is not None:
            self._start = self.state()
            self._consumed_batches = 0
            self._batches = None

