"""core.io.images: the one float <-> uint8 convention (the public tools') and the one grid helper."""

from __future__ import annotations

import numpy as np
import torch

from core.io.images import from_uint8, image_grid, to_hwc, to_uint8


def test_to_uint8_is_the_public_tools_arithmetic() -> None:
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.3  # values beyond [-1, 1] too
    expected = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    assert torch.equal(to_uint8(x), expected)


def test_to_uint8_other_range_and_round_trip() -> None:
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert to_uint8(x, drange=(0.0, 1.0)).tolist() == [0, 64, 128, 255]
    pixels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(from_uint8(pixels)), pixels)  # exact both ways on every level
    assert from_uint8(np.array([0, 255], dtype=np.uint8)).tolist() == [-1.0, 1.0]


def test_image_grid_places_cells_row_major() -> None:
    images = torch.stack([torch.full((3, 2, 2), v) for v in (-1.0, 0.0, 1.0)])
    grid = image_grid(images, cols=2)
    assert grid.shape == (4, 4, 3) and grid.dtype == np.uint8
    assert (grid[:2, :2] == 0).all() and (grid[:2, 2:] == 128).all() and (grid[2:, :2] == 255).all()
    assert (grid[2:, 2:] == 0).all()  # empty cell
    broken = image_grid(torch.tensor([[[[float("nan"), float("inf")], [-float("inf"), 0.0]]]]), cols=1)
    assert broken[:, :, 0].tolist() == [[0, 255], [0, 128]]


def test_image_grid_orders_cells_and_makes_textures_rgb() -> None:
    imgs = torch.full([6, 3, 4, 5], -1.0)
    for i in range(6):
        imgs[i, 0] = i / 5 * 2 - 1  # red channel encodes the index
    grid = image_grid(imgs, cols=3)
    assert grid.shape == (8, 15, 3)
    reds = [grid[r * 4, c * 5, 0] for r in range(2) for c in range(3)]
    assert reds == sorted(reds) and len(set(reds)) == 6
    gray = image_grid(torch.zeros(2, 1, 4, 4), cols=2, rgb=True)
    assert gray.shape == (4, 8, 3) and (gray == 128).all()
    assert to_hwc(torch.zeros(1, 4, 2, 2), rgb=True).shape == (1, 2, 2, 3)  # alpha dropped for a texture
