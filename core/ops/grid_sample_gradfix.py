"""Bilinear ``grid_sample`` whose gradient w.r.t. the input can itself be differentiated.

PyTorch's ``grid_sampler_2d_backward`` has no derivative, so R1 through ADA's geometric
augmentation ("derivative for aten::grid_sampler_2d_backward is not implemented") fails with the
stock op. The public fix called private aten ops, which broke on torch upgrades. Here we use only
public API: for a fixed grid the op is linear in the input, y = A x, so its input gradient is the
adjoint A^T g (computed by autograd of ``F.grid_sample`` itself), and the adjoint's derivative is
A again. Alternating the two gives derivatives of any order w.r.t. the input.

The grid is treated as a constant (augmentation draws are not learned); gradients never flow to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_KW = dict(mode="bilinear", padding_mode="zeros", align_corners=False)


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(grid)
        ctx.input_shape = x.shape
        return F.grid_sample(x, grid, **_KW)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # noqa: D102
        (grid,) = ctx.saved_tensors
        grad_x = _GridSampleAdjoint.apply(grad_y, grid, ctx.input_shape) if ctx.needs_input_grad[0] else None
        return grad_x, None


class _GridSampleAdjoint(torch.autograd.Function):
    """x -> A^T x for the grid's sampling operator A."""

    @staticmethod
    def forward(ctx, grad_y: torch.Tensor, grid: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(grid)
        with torch.enable_grad():
            probe = torch.zeros(input_shape, dtype=grad_y.dtype, device=grad_y.device, requires_grad=True)
            (grad_x,) = torch.autograd.grad(F.grid_sample(probe, grid.detach(), **_KW), probe, grad_y)
        return grad_x

    @staticmethod
    def backward(ctx, grad_grad_x: torch.Tensor):  # noqa: D102
        (grid,) = ctx.saved_tensors
        out = _GridSample.apply(grad_grad_x, grid) if ctx.needs_input_grad[0] else None
        return out, None, None


def grid_sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of ``x`` [N, C, H, W] at ``grid`` [N, Ho, Wo, 2] (zeros padding,
    align_corners=False), differentiable to any order w.r.t. ``x``."""
    return _GridSample.apply(x, grid)
