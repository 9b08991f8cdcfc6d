"""Geometric execution of ADA: batched 3x3 matrices, the single-resample path and the exact copy path.

Coordinates are pixels with the origin at the image centre (pixel centres at +-(W-1)/2). The
pipeline builds ``G_inv``, the *inverse* transform (output pixel -> input pixel) of every image.
Matrices are composed in float64 on the draw device (a few dozen numbers per image) and cast to
the working dtype only for the sampling grid, so fp16/fp32 images see the same geometry.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.ops import grid_sample

DEG_PER_RAD = 180 / math.pi


def _batched(rows: list[list[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    """Stacks a matrix whose entries are [N] tensors or scalars into [N, R, C]."""
    n = like.shape[0]
    full = [[torch.as_tensor(e, dtype=like.dtype, device=like.device).expand(n) for e in row] for row in rows]
    return torch.stack([torch.stack(row, dim=-1) for row in full], dim=-2)


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return _batched([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return _batched([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _batched([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def rotate90_2d(quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotation by i*90 degrees with exact 0/+-1 entries (cos(pi/2) in floating point is not 0)."""
    k = quarter_turns.long() % 4
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=quarter_turns.dtype, device=k.device)[k]
    sin = torch.tensor([0.0, 1.0, 0.0, -1.0], dtype=quarter_turns.dtype, device=k.device)[k]
    return _batched([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], quarter_turns)


def _fixed(matrix: list[list[float]], n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(matrix, dtype=like.dtype, device=like.device).expand(n, 3, 3)


def reflect_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """Maps any integer index into [0, size) by mirroring about the edge pixels ('reflect' mode,
    edge not repeated), however far outside it lies."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = torch.remainder(index, period)
    return torch.where(index >= size, period - index, index)


def reflect_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflect padding (x0, x1, y0, y1) of any width, also wider than the image."""
    x0, x1, y0, y1 = pad
    h, w = x.shape[-2:]
    if max(x0, x1) < w and max(y0, y1) < h:
        return F.pad(x, [x0, x1, y0, y1], mode="reflect")
    ix = reflect_index(torch.arange(-x0, w + x1, device=x.device), w)
    iy = reflect_index(torch.arange(-y0, h + y1, device=x.device), h)
    return x.index_select(-1, ix).index_select(-2, iy)


def blit(images: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
    """Exact pixel copy for matrices made only of flips, quarter turns and whole-pixel shifts.

    The pipe uses it for whole-pixel shifts, where it equals the resampling; flips and turns it
    resamples like the public tool (pipeline docstring). Odd quarter turns need square images.
    Source pixels that fall outside are mirrored, as reflect padding would give.
    """
    n, c, h, w = images.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=g_inv.dtype, device=g_inv.device) - (h - 1) / 2,
        torch.arange(w, dtype=g_inv.dtype, device=g_inv.device) - (w - 1) / 2,
        indexing="ij",
    )
    out_xy1 = torch.stack([xs.flatten(), ys.flatten(), torch.ones_like(xs.flatten())])  # [3, HW]
    src = g_inv @ out_xy1  # [N, 3, HW]
    sx = reflect_index(torch.round(src[:, 0] + (w - 1) / 2).long(), w)
    sy = reflect_index(torch.round(src[:, 1] + (h - 1) / 2).long(), h)
    index = (sy * w + sx).to(images.device)
    return images.flatten(2).gather(2, index[:, None, :].expand(n, c, h * w)).reshape(n, c, h, w)


def upfirdn1d_matrix(
    n_in: int, taps: np.ndarray, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0),
    flip_filter: bool = False, gain: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """[n_out, n_in] matrix of ``upfirdn2d`` along one axis (same zero insertion, padding, tap
    order and decimation), so a separable 2-D call equals ``M_y @ x @ M_x.T``."""
    u = np.zeros((n_in * up, n_in))
    u[::up] = np.eye(n_in)
    pad0, pad1 = pad
    u = np.pad(u, ((max(pad0, 0), max(pad1, 0)), (0, 0)))
    u = u[max(-pad0, 0) : u.shape[0] - max(-pad1, 0)]
    f = np.asarray(taps, dtype=np.float64) * gain
    if not flip_filter:
        f = f[::-1]
    out = sum(f[t] * u[t : u.shape[0] - f.size + 1 + t] for t in range(f.size))
    return out[::down]


def periodic_upsample_matrix(n: int, taps: np.ndarray) -> np.ndarray:
    """[4(n-1)+1, n]: one period (plus one wrap-around sample) of the 2x-upsampled mirror extension.

    Reflect padding repeats the image with period 2(n-1) (mirror without repeating the edge), so
    upsampling the reflect-padded image gives, away from its outer edge, one fixed periodic signal.
    Sample ``i`` of it sits at original pixel ``i / 2``, as in ``upsample2d``.
    """
    extra = 4  # original pixels each side: covers the 12-tap filter's reach at 2x
    ext = reflect_index(torch.arange(-extra, 2 * (n - 1) + extra), n).numpy()
    extend = np.zeros((ext.size, n))
    extend[np.arange(ext.size), ext] = 1
    fw = len(taps)
    up = upfirdn1d_matrix(ext.size, taps, up=2, pad=((fw + 1) // 2, (fw - 2) // 2), gain=2.0)
    period = 4 * (n - 1)
    return (up @ extend)[2 * extra : 2 * extra + period + 1]


def downsample_matrix(n_canvas: int, taps: np.ndarray, crop: int) -> np.ndarray:
    """[(n_canvas - 2 crop) / 2, n_canvas]: ``downsample2d(padding=-crop, flip_filter=True)``."""
    fw = len(taps)
    pad = (-crop + (fw - 1) // 2, -crop + (fw - 2) // 2)
    return upfirdn1d_matrix(n_canvas, taps, down=2, pad=pad, flip_filter=True)


class BandedMatrix:
    """A banded [M, K] matrix applied along one image axis as a few dense GEMM blocks.

    Row blocks only multiply the column range they touch, so a 12-tap filter at 1024 samples costs
    ~100 MACs per output, not 1024; BLAS runs these small GEMMs far faster than CPU depthwise
    convolution runs the equivalent filter (measured: bench/bench_augment.py). The backward pass
    applies the transposed matrix the same way (autograd through the block slices would allocate
    a full-size gradient per block), and is itself differentiable, to any order.
    """

    _ROWS_PER_BLOCK = 64
    _DENSE_UP_TO = 128  # columns; narrower matrices are one GEMM

    def __init__(self, matrix: np.ndarray) -> None:
        self.shape = matrix.shape
        self._dense = matrix
        self._blocks: list[tuple[int, int, int, int]] = []  # (row0, row1, col0, col1)
        self._tensors: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        self._transposed: BandedMatrix | None = None
        if matrix.shape[1] <= self._DENSE_UP_TO:
            self._blocks = [(0, matrix.shape[0], 0, matrix.shape[1])]
            return
        nonzero = matrix != 0
        for r0 in range(0, matrix.shape[0], self._ROWS_PER_BLOCK):
            r1 = min(r0 + self._ROWS_PER_BLOCK, matrix.shape[0])
            cols = np.flatnonzero(nonzero[r0:r1].any(axis=0))
            c0, c1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
            self._blocks.append((r0, r1, c0, c1))

    @property
    def T(self) -> BandedMatrix:  # noqa: N802 (the usual name for a transpose)
        if self._transposed is None:
            self._transposed = BandedMatrix(np.ascontiguousarray(self._dense.T))
            self._transposed._transposed = self
        return self._transposed

    def _blocks_for(self, like: torch.Tensor) -> list[torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self._tensors:
            self._tensors[key] = [
                torch.tensor(self._dense[r0:r1, c0:c1], dtype=like.dtype, device=like.device)
                for r0, r1, c0, c1 in self._blocks
            ]
        return self._tensors[key]

    def apply_raw(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        """The product along ``axis`` (-1: [..., K] -> [..., M]; -2: [..., K, W] -> [..., M, W])."""
        blocks = zip(self._blocks, self._blocks_for(x), strict=True)
        if axis == -1:
            parts = [x[..., c0:c1] @ b.T for (_, _, c0, c1), b in blocks]
        else:
            parts = [b @ x[..., c0:c1, :] for (_, _, c0, c1), b in blocks]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=axis)

    def along_x(self, x: torch.Tensor) -> torch.Tensor:
        """[..., K] -> [..., M]."""
        return _BandedProduct.apply(x, self, -1)

    def along_y(self, x: torch.Tensor) -> torch.Tensor:
        """[..., K, W] -> [..., M, W]."""
        return _BandedProduct.apply(x, self, -2)


class _BandedProduct(torch.autograd.Function):
    """x -> M x along an axis; linear, so the gradient is M^T g along the same axis."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, matrix: BandedMatrix, axis: int) -> torch.Tensor:  # noqa: D102
        ctx.matrix, ctx.axis = matrix, axis
        return matrix.apply_raw(x, axis)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return _BandedProduct.apply(grad, ctx.matrix.T, ctx.axis), None, None


class Resampler:
    """Single-pass anti-aliased resampling of a batch by per-image inverse matrices.

    Same result as the public pipeline (reflect pad, 2x upsample with the wavelet low-pass, bilinear
    ``grid_sample``, low-pass + 2x downsample, crop) up to float rounding, computed differently:

    * Reflect padding is periodic, so instead of padding every image by the batch's largest
      excursion (often ~3x the size per axis) we upsample ONE period of the mirrored image (2x the
      size per axis) and wrap the sampling coordinates into it. That is 2.25x fewer pixels at the
      largest padding, and nothing in the result depends on the other images of the batch. (Where
      the public tool clamps its padding and samples zeros, the period keeps mirroring.)
    * Up/down-sampling are separable banded matrices applied with GEMMs (``BandedMatrix``).

    Matrices are built once per image size and cached on this object.
    """

    def __init__(self, lowpass: np.ndarray) -> None:
        self.taps = np.asarray(lowpass, dtype=np.float64)
        self.hz_pad = self.taps.size // 4
        self._up: dict[int, BandedMatrix] = {}
        self._down: dict[int, BandedMatrix] = {}

    def _up_matrix(self, n: int) -> BandedMatrix:
        if n not in self._up:
            self._up[n] = BandedMatrix(periodic_upsample_matrix(n, self.taps))
        return self._up[n]

    def _down_matrix(self, n: int) -> BandedMatrix:
        canvas = (n + 2 * self.hz_pad) * 2
        if n not in self._down:
            self._down[n] = BandedMatrix(downsample_matrix(canvas, self.taps, crop=2 * self.hz_pad))
        return self._down[n]

    def __call__(self, images: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
        """Applies the inverse transforms ``g_inv`` [N, 3, 3] (centred pixel coordinates).
        Differentiable to any order w.r.t. ``images``; the matrices are constants."""
        n, c, h, w = images.shape
        if h < 2 or w < 2:
            raise ValueError(f"AugmentPipe: geometric ops need images of at least 2x2 pixels, got {h}x{w}")
        # y first: the batched (bmm) pass then makes the smaller tensor, and the pass that makes the
        # big upsampled tensor is along x, a single GEMM over all rows.
        up = self._up_matrix(w).along_x(self._up_matrix(h).along_y(images))  # [N, C, Py+1, Px+1]
        out_h, out_w = (h + 2 * self.hz_pad) * 2, (w + 2 * self.hz_pad) * 2
        grid = self._grid(g_inv, h, w, out_h, out_w, images)
        canvas = grid_sample(up, grid)
        return self._down_matrix(h).along_y(self._down_matrix(w).along_x(canvas))

    @staticmethod
    def _grid(g_inv: torch.Tensor, h: int, w: int, out_h: int, out_w: int, like: torch.Tensor) -> torch.Tensor:
        g = g_inv.to(torch.float64)
        # Canvas pixels at 2x, centred; the half-pixel shift keeps 2x pixel centres aligned.
        g = translate_const(-0.5, -0.5, g) @ scale_const(2, 2, g) @ g @ scale_const(0.5, 0.5, g)
        g = g @ translate_const(0.5, 0.5, g)
        # Canvas pixel index -> sample index in the upsampled period (pixel i of the image sits at 2i).
        centre = translate_const(-(out_w - 1) / 2, -(out_h - 1) / 2, g)
        theta = (translate_const(w - 0.5, h - 0.5, g) @ g @ centre)[:, :2, :]
        theta = theta.to(device=like.device, dtype=like.dtype)[:, :, :, None, None]
        xs = torch.arange(out_w, device=like.device, dtype=like.dtype)
        ys = torch.arange(out_h, device=like.device, dtype=like.dtype)[:, None]
        coords = []
        for axis, size in ((0, w), (1, h)):
            period = 4.0 * (size - 1)
            s = theta[:, axis, 0] * xs + theta[:, axis, 1] * ys + theta[:, axis, 2]  # [N, H, W]
            s = s.sub_(torch.floor(s * (1 / period)).mul_(period))  # wrap into one period
            # grid_sample (align_corners=False) reads index s at normalised (2 s + 1) / size - 1.
            coords.append(s.mul_(2 / (period + 1)).add_(1 / (period + 1) - 1))
        return torch.stack(coords, dim=-1)


def translate_const(tx: float, ty: float, like: torch.Tensor) -> torch.Tensor:
    return _fixed([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like.shape[0], like)


def scale_const(sx: float, sy: float, like: torch.Tensor) -> torch.Tensor:
    return _fixed([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like.shape[0], like)


def is_identity(matrices: torch.Tensor) -> torch.Tensor:
    """[N] bool: which of the [N, K, K] matrices are exactly the identity."""
    eye = torch.eye(matrices.shape[-1], dtype=matrices.dtype, device=matrices.device)
    return (matrices == eye).flatten(1).all(dim=1)

