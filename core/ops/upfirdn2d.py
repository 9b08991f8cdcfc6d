"""Upsample, FIR-filter, downsample: the resampling primitive of StyleGAN2 and of ADA's geometry.

``upfirdn2d`` pads the input with zeros between samples (``up``), pads or crops the borders
(``padding``), convolves with a 2-D or separable FIR filter and keeps every ``down``-th sample.
The reference path is plain PyTorch (pad, reshape, grouped conv2d, slicing), so it runs on any
device and is differentiable to any order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from core.ops._impl import resolve_impl

IntOrPair = int | Sequence[int]


def _pair(value: IntOrPair, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"upfirdn2d: {name} must be >= 1, got {value}")
        return value, value
    vx, vy = value
    if vx < 1 or vy < 1:
        raise ValueError(f"upfirdn2d: {name} must be >= 1, got {value}")
    return int(vx), int(vy)


def parse_padding(padding: IntOrPair) -> tuple[int, int, int, int]:
    """int, [x, y] or [x0, x1, y0, y1] -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return padding[0], padding[1], padding[2], padding[3]
    raise ValueError(f"upfirdn2d: padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding}")


def get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; (1, 1) for no filter."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(
    f: Sequence[float] | torch.Tensor | float | None,
    device: torch.device | str | None = None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turns filter taps into the float32 tensor upfirdn2d expects.

    A 1-D filter stays separable (applied along x then y) when ``separable`` is True, or when it is
    None and the filter has 8 taps or more; otherwise it becomes the outer product with itself.
    ``normalize`` makes the taps sum to one; ``gain`` scales the overall response. ``device`` None
    means torch's current default device (so networks can be built on the meta device).
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32, device="cpu")
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: expected a scalar, 1-D or 2-D filter, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=torch.get_default_device() if device is None else device)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Upsample by ``up``, pad/crop by ``padding``, filter with ``f``, downsample by ``down``.

    ``x`` is [N, C, H, W]. ``f`` is a 2-D [fh, fw] or separable 1-D [ft] filter, or None for
    identity. Negative padding crops. ``flip_filter`` False convolves (the filter is flipped),
    True correlates. ``gain`` multiplies the output.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: expected an NCHW tensor, got shape {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    up, down, pad = _pair(up, "up"), _pair(down, "down"), parse_padding(padding)
    if resolve_impl("upfirdn2d", impl, x, supported=not f.requires_grad) == "cuda":
        from core.ops.cuda import upfirdn2d as kernel

        return kernel.upfirdn2d(x, f, kernel.Geometry(up, down, pad, flip_filter, float(gain)))
    return _upfirdn2d_ref(x, f, up, down, pad, flip_filter, gain)


def _upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    up: tuple[int, int],
    down: tuple[int, int],
    padding: tuple[int, int, int, int],
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    n, c, h, w = x.shape
    upx, upy = up
    downx, downy = down
    padx0, padx1, pady0, pady1 = padding

    # Zero-insertion upsampling.
    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    # Pad (positive) then crop (negative).
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0) : x.shape[2] - max(-pady1, 0), max(-padx0, 0) : x.shape[3] - max(-padx1, 0)]

    fh, fw = (f.shape[0], f.shape[-1])
    if x.shape[2] < fh or x.shape[3] < fw:
        raise ValueError(
            f"upfirdn2d: the padded input ({x.shape[2]}x{x.shape[3]}) is smaller than the filter ({fh}x{fw}); "
            "pad more or use a smaller filter"
        )

    # FIR filter as a depthwise convolution (conv2d correlates, so flip to convolve).
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, f.shape[0]), groups=c)
        x = F.conv2d(x, f[None, None, :, None].expand(c, 1, f.shape[0], 1), groups=c)

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


def filter2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Filters ``x`` with ``f``, keeping its size (plus ``padding``)."""
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntOrPair = 2,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Upsamples ``x`` by ``up`` with low-pass filter ``f``; output is ``up`` times larger."""
    upx, upy = _pair(up, "up")
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: IntOrPair = 2,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Downsamples ``x`` by ``down`` after low-pass filter ``f``; output is ``down`` times smaller."""
    downx, downy = _pair(down, "down")
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
