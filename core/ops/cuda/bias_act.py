"""bias_act as one Triton kernel: y = clamp(act(x + b) * gain), and its gradient as a second one.

The activations with a kernel are the piecewise-linear ones the networks use (linear, relu,
lrelu): their second derivative is zero, so the gradient of the gradient is the gradient kernel
again, and double backward (R1, path length) costs nothing extra. Other activations take the
reference path.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from core.ops.cuda import BIAS_ACT_KERNEL_ACTS

ACTS = {name: code for code, name in enumerate(BIAS_ACT_KERNEL_ACTS)}
BLOCK = 1024


class Spec(NamedTuple):
    dim: int
    act: str
    alpha: float
    gain: float
    clamp: float | None


@triton.jit
def _act_grad_scale(z, alpha, ACT: tl.constexpr):
    # d act / dz for the piecewise-linear activations, in z's dtype (torch's convention at z == 0).
    zero = tl.full(z.shape, 0.0, z.dtype)  # builtins only (tl.zeros is a jit function)
    if ACT == 1:
        return tl.where(z > 0, zero + 1.0, zero)
    elif ACT == 2:
        return tl.where(z > 0, zero + 1.0, zero + alpha)
    else:
        return zero + 1.0


@triton.jit
def _bias_act_fwd(x_ptr, b_ptr, y_ptr, n, inner, channels, alpha, gain, clamp,
                  HAS_BIAS: tl.constexpr, ACT: tl.constexpr, CLAMP: tl.constexpr, UPCAST: tl.constexpr,
                  BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    z = tl.load(x_ptr + offs, mask=mask, other=0.0)
    if UPCAST:
        z = z.to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(b_ptr + (offs // inner) % channels, mask=mask, other=0.0)
        z = z + bias.to(z.dtype)
    if ACT == 1:
        z = tl.maximum(z, 0.0)
    elif ACT == 2:
        z = tl.where(z > 0, z, z * alpha)
    y = z * gain
    if CLAMP:
        y = tl.minimum(tl.maximum(y, -clamp), clamp)
    tl.store(y_ptr + offs, y, mask=mask)


@triton.jit
def _bias_act_grad(dy_ptr, x_ptr, b_ptr, dx_ptr, n, inner, channels, alpha, gain, clamp,
                   HAS_BIAS: tl.constexpr, ACT: tl.constexpr, CLAMP: tl.constexpr, UPCAST: tl.constexpr,
                   BLOCK: tl.constexpr):
    # dx = dy * gain * act'(x + b), zero where the clamp cut the output (as torch.clamp's gradient).
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    z = tl.load(x_ptr + offs, mask=mask, other=0.0)
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
    if UPCAST:
        z = z.to(tl.float32)
        dy = dy.to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(b_ptr + (offs // inner) % channels, mask=mask, other=0.0)
        z = z + bias.to(z.dtype)
    scale = _act_grad_scale(z, alpha, ACT) * gain
    dx = dy * scale
    if CLAMP:
        v = z * scale  # the output before clamping (act(z) == z * act'(z) for these activations)
        dx = tl.where((v >= -clamp) & (v <= clamp), dx, 0.0)
    tl.store(dx_ptr + offs, dx, mask=mask)


def _launch(kernel, first: torch.Tensor | None, x: torch.Tensor, b: torch.Tensor | None, spec: Spec) -> torch.Tensor:
    """Runs ``kernel`` over contiguous ``x`` (and ``first``, dy for the gradient); returns its output."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    n = x.numel()
    if n == 0:
        return out
    dim = spec.dim % x.ndim
    inner = 1
    for size in x.shape[dim + 1:]:
        inner *= size
    args = [] if first is None else [first]
    kernel[(triton.cdiv(n, BLOCK),)](
        *args, x, x if b is None else b, out, n, inner, x.shape[dim], spec.alpha, spec.gain,
        0.0 if spec.clamp is None else spec.clamp,
        HAS_BIAS=b is not None, ACT=ACTS[spec.act], CLAMP=spec.clamp is not None,
        UPCAST=x.dtype in (torch.float16, torch.bfloat16), BLOCK=BLOCK,
    )
    return out


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, b: torch.Tensor | None, spec: Spec) -> torch.Tensor:
        x = x.contiguous()
        b = None if b is None else b.contiguous()
        y = _launch(_bias_act_fwd, None, x, b, spec)
        ctx.save_for_backward(x, b)
        ctx.spec = spec
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, b = ctx.saved_tensors
        spec: Spec = ctx.spec
        dx = _BiasActGrad.apply(dy, x, b, spec)
        db = None
        if b is not None and ctx.needs_input_grad[1]:
            dim = spec.dim % x.ndim
            db = dx.sum([i for i in range(dx.ndim) if i != dim]).to(b.dtype)
        return (dx if ctx.needs_input_grad[0] else None), db, None


class _BiasActGrad(torch.autograd.Function):
    """dx from dy. Linear in dy; its derivative in x and b is zero (piecewise-linear activations)."""

    @staticmethod
    def forward(ctx, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor | None, spec: Spec) -> torch.Tensor:
        dx = _launch(_bias_act_grad, dy.contiguous(), x, b, spec)
        ctx.save_for_backward(x, b)
        ctx.spec = spec
        return dx

    @staticmethod
    def backward(ctx, ddx: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, b = ctx.saved_tensors
        d_dy = _BiasActGrad.apply(ddx, x, b, ctx.spec) if ctx.needs_input_grad[0] else None
        return d_dy, None, None, None


def bias_act(x: torch.Tensor, b: torch.Tensor | None, spec: Spec) -> torch.Tensor:
    """The fused op; ``spec`` holds resolved values (alpha and gain as floats, clamp or None)."""
    return _BiasAct.apply(x, b, spec)


def self_check(device: torch.device) -> float:
    """Largest difference from the reference path, forward and backward, on a small random input."""
    from core.ops.bias_act import bias_act_ref

    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(2, 6, 5, 7, generator=gen).to(device).requires_grad_(True)
    b = torch.randn(6, generator=gen).to(device).requires_grad_(True)
    dy = torch.randn(2, 6, 5, 7, generator=gen).to(device)
    err = 0.0
    for act, clamp in (("lrelu", 0.8), ("linear", None), ("relu", None)):
        spec = Spec(1, act, 0.2, 1.4, clamp)
        y_k = bias_act(x, b, spec)
        gx_k, gb_k = torch.autograd.grad(y_k, [x, b], dy)
        y_r = bias_act_ref(x, b, *spec)
        gx_r, gb_r = torch.autograd.grad(y_r, [x, b], dy)
        for k, r in ((y_k, y_r), (gx_k, gx_r), (gb_k, gb_r)):
            err = max(err, float((k - r).abs().max().detach()))
    return err
