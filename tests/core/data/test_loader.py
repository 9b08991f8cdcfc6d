"""The training batch stream: shuffled, reproducible, sharded, and exactly resumable."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import ImageDataset, InfiniteLoader
from core.data.loader import ShardedOrder
from tests.core.data.helpers import write_folder

COUNT = 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("data") / "d", COUNT, res=4, labels=list(range(COUNT)))


def ids(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].tolist()


def take(loader, count: int) -> list[list[int]]:
    return [ids(images) for images, _labels in itertools.islice(loader, count)]


def test_batches_are_reproducible_and_cover_each_epoch(folder: Path) -> None:
    ds = ImageDataset(folder, use_labels=True)
    first, again, other = (take(InfiniteLoader(ds, 5, seed=s), 8) for s in (7, 7, 8))
    assert first == again and first != other
    epoch0, epoch1 = sum(first[:4], []), sum(first[4:], [])
    assert sorted(epoch0) == sorted(epoch1) == list(range(COUNT))  # a permutation per epoch
    assert epoch0 != epoch1
    images, labels = next(InfiniteLoader(ds, 5, seed=7))
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 4, 4)
    assert labels.dtype == torch.float32 and labels.shape == (5, COUNT)
    assert labels.argmax(1).tolist() == ids(images)  # labels travel with their images


def test_batches_run_across_epoch_ends(folder: Path) -> None:
    stream = sum(take(InfiniteLoader(ImageDataset(folder), 7, seed=1), 6), [])  # 42 = 2 epochs + 2
    order = ShardedOrder(COUNT, seed=1)
    expected = np.concatenate([order.epoch_indices(e) for e in range(3)])[:42]
    ds = ImageDataset(folder)
    assert stream == [int(ds.get_image(int(i))[0, 0, 0]) for i in expected]


@pytest.mark.parametrize("cache_limit_mb,workers", [(512, 1), (0, 0), (0, 1)])
def test_resume_continues_exactly(folder: Path, cache_limit_mb: float, workers: int) -> None:
    ds = ImageDataset(folder, mirror=True, cache_limit_mb=cache_limit_mb)
    reference = take(InfiniteLoader(ds, 6, seed=3, workers=workers), 12)
    loader = InfiniteLoader(ds, 6, seed=3, workers=workers)
    assert take(loader, 9) == reference[:9]  # workers have prefetched further by now
    state = loader.state_dict()
    assert state == {"epoch": 1, "position": 14, "world_size": 1, "seed": 3}  # 54 = 40 + 14
    resumed = InfiniteLoader(ds, 6, seed=3, workers=workers)
    resumed.load_state_dict(state)
    assert take(resumed, 3) == reference[9:]
    assert resumed.state_dict() == {"epoch": 1, "position": 32, "world_size": 1, "seed": 3}


def test_ranks_get_disjoint_shards_in_lockstep(folder: Path) -> None:
    ds = ImageDataset(folder)
    ranks = [InfiniteLoader(ds, 2, seed=5, rank=r, world_size=3) for r in range(3)]
    per_epoch = COUNT // 3  # 6: two images per epoch are left out, different ones each epoch
    shards = [sum(take(loader, 3), []) for loader in ranks]
    assert all(len(s) == per_epoch for s in shards)
    assert len(set(sum(shards, []))) == 3 * per_epoch
    assert (
        ranks[0].state_dict()
        == ranks[2].state_dict()
        == {"epoch": 1, "position": 0, "world_size": 3, "seed": 5}
    )
    with pytest.raises(ValueError, match="rank 3 is outside world_size 3"):
        InfiniteLoader(ds, 2, rank=3, world_size=3)


def test_resume_on_another_world_size_keeps_the_epoch(folder: Path) -> None:
    ds = ImageDataset(folder)
    loader = InfiniteLoader(ds, 2, seed=0, world_size=2)
    take(loader, 3)
    resumed = InfiniteLoader(ds, 2, seed=0, world_size=1)
    resumed.load_state_dict(loader.state_dict())
    assert resumed.state_dict()["epoch"] == 0 and resumed.state_dict()["position"] == 12
