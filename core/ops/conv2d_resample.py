"""2-D convolution with optional up/down-sampling, done in the cheapest correct order.

Up-sampling uses a strided transposed convolution followed by a low-pass filter; down-sampling
filters first and then uses a strided convolution. Both are equivalent to "resample with f, then
convolve with w" but touch far fewer pixels. Built on ``torch.nn.functional`` convolutions, which
have native double backward, so R1 and path-length regularisation differentiate through them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.ops.upfirdn2d import IntOrPair, get_filter_size, parse_padding, upfirdn2d


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: int | list[int] = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    kh, kw = w.shape[2:]
    # torch convolutions correlate; flip_weight=False asks for a true convolution.
    if not flip_weight and (kw > 1 or kh > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: IntOrPair = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolves ``x`` [N, C, H, W] with ``w`` [O, C/groups, kh, kw], resampling by ``up``/``down``.

    ``f`` is the low-pass filter from ``setup_filter`` (needed when up or down > 1). ``padding`` is
    in the output's frame of the plain convolution. ``flip_weight`` True correlates (like
    ``F.conv2d``), False convolves.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_resample: expected 4-D x and w, got {tuple(x.shape)} and {tuple(w.shape)}")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f"conv2d_resample: up and down must be ints >= 1, got up={up}, down={down}")
    if (up > 1 or down > 1) and f is None:
        raise ValueError("conv2d_resample: up/down-sampling needs a filter f (see setup_filter)")
    out_channels, in_channels_per_group, kh, kw = w.shape
    fw, fh = get_filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)

    # Account for the resampling filter in the padding.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel with down-sampling: filter and subsample first, then the cheap convolution.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel with up-sampling: convolve at low resolution, then up-sample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    # Down-sampling only: low-pass, then strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Up-sampling: strided transposed convolution, then low-pass (and optional down-sampling).
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter
        )
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # Plain convolution with symmetric, non-negative padding: one call.
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case: pad/crop (and up-sample), convolve, down-sample.
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x
