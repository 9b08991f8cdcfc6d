"""StyleGAN2's modulated convolution: per-sample weights scaled by styles, then demodulated."""

from __future__ import annotations

import math

import torch

from core.ops.conv2d_resample import conv2d_resample
from core.ops.fma import fma


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Convolves ``x`` [N, I, H, W] with ``weight`` [O, I, kh, kw] modulated by ``styles`` [N, I].

    Fused: one grouped convolution with a weight per sample (fast at inference). Non-fused: scale
    the activations instead of the weights and use one shared convolution (cheaper to train).
    Both give the same result. ``noise`` [N or 1, 1, H', W'] is added after demodulation.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if styles.shape != (batch_size, in_channels):
        raise ValueError(f"modulated_conv2d: styles must be {[batch_size, in_channels]}, got {list(styles.shape)}")

    # Keep fp16 in range: pre-normalise weight and styles (demodulation undoes the scale).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate and fused_modconv:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    elif demodulate:
        # The same sum without the per-sample weights: sum_i,k (w_oik s_ni)^2 = sum_i s_ni^2 sum_k w_oik^2,
        # one [N, I] x [I, O] product instead of an [N, O, I, kh, kw] tensor (and its gradient).
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if demodulate and noise is not None:
            return fma(x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1), noise.to(x.dtype))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
        flip_weight=flip_weight,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
