"""G_ema: an exponential moving average of G's weights, with a half-life measured in images."""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch: int, ema_kimg: float, ema_rampup: float | None, cur_nimg: int) -> float:
    """Per-minibatch decay so that a weight's influence halves every ``ema_kimg`` thousand images.

    With a ramp-up the half-life is at most ``cur_nimg * ema_rampup`` images, so early in
    training (when G changes fast) the average follows G closely instead of lagging behind.
    """
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers (w_avg, noise) are copied."""
    ema_params = list(G_ema.parameters())
    params = list(G.parameters())
    if len(ema_params) != len(params):
        raise ValueError("update_ema: G_ema and G have different parameter lists")
    # One fused kernel over all tensors; lerp(end, weight) = self + weight * (end - self).
    torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
        b_ema.copy_(b)


__all__ = ["ema_beta", "update_ema"]
