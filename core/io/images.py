"""Images between the networks' float range and uint8 pixels, and image grids: one convention.

The networks produce NCHW floats in [-1, 1]; files and textures hold uint8. The conversion is the
public StyleGAN2-ADA tools' (``x * 127.5 + 128`` clamped, truncated to uint8), so the same weights
give the same pixels here as there. NaNs (a diverged G) become black and infinities are clipped,
so a broken run still shows what it draws.
"""

from __future__ import annotations

import numpy as np
import torch


def to_uint8(images: torch.Tensor, drange: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Float images with values in ``drange`` -> uint8, same layout (NCHW stays NCHW)."""
    lo, hi = drange
    scale = 255.0 / (hi - lo)
    x = torch.nan_to_num(images.detach().to(torch.float32), nan=lo, posinf=hi, neginf=lo)
    # For drange (-1, 1): x * 127.5 + 128, the public tools' exact arithmetic.
    return (x * scale + (0.5 - lo * scale)).clamp(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images (as stored in datasets) -> float32 in [-1, 1], the networks' range."""
    x = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    return x.to(torch.float32) / 127.5 - 1


def to_hwc(images: torch.Tensor, rgb: bool = False, drange: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """[N, C, H, W] floats in ``drange`` -> uint8 [N, H, W, C]; ``rgb``: grayscale repeated to 3 channels."""
    img = to_uint8(images, drange).cpu()
    if rgb and img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    if rgb:
        img = img[:, :3]
    return img.permute(0, 2, 3, 1).contiguous().numpy()


def image_grid(
    images: torch.Tensor | np.ndarray, cols: int, drange: tuple[float, float] = (-1.0, 1.0), rgb: bool = False
) -> np.ndarray:
    """Tile images [N, C, H, W] (values in ``drange``) into one uint8 [rows*H, cols*W, C] grid, row-major.

    Missing cells at the end of the last row stay black. ``rgb``: grayscale repeated to 3 channels
    (and an alpha channel dropped), for textures.
    """
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if x.ndim != 4:
        raise ValueError(f"image_grid: expected images [N, C, H, W], got shape {list(x.shape)}")
    return tile(list(to_hwc(x, rgb=rgb, drange=drange)), cols)


def tile(images: list[np.ndarray], cols: int, rows: int | None = None) -> np.ndarray:
    """uint8 images [H, W, C] in row-major cells of a black canvas ``rows`` (default: as many as needed)
    by ``cols`` cells; cells past the last image stay black."""
    if cols < 1:
        raise ValueError(f"image grid: cols must be >= 1, got {cols}")
    h, w, c = images[0].shape
    rows = -(-len(images) // cols) if rows is None else rows
    grid = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = image
    return grid

