"""Fused bias + activation + gain + clamp, as StyleGAN2 uses after every layer."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.ops._impl import resolve_impl
from core.ops.cuda import BIAS_ACT_KERNEL_ACTS


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


activation_funcs: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Adds bias ``b`` along ``dim``, applies ``act``, scales by ``gain`` and clamps to [-clamp, clamp].

    ``alpha`` and ``gain`` default to the activation's own values (e.g. sqrt(2) for lrelu), so that
    signal magnitudes stay constant through the network.
    """
    if act not in activation_funcs:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose from {sorted(activation_funcs)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 or None, got {clamp}")
    spec = activation_funcs[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias_act: bias of shape {tuple(b.shape)} does not match dim {dim} of {tuple(x.shape)}")
    if resolve_impl("bias_act", impl, x, supported=_kernel_supports(act, x)) == "cuda":
        from core.ops.cuda import bias_act as kernel

        return kernel.bias_act(x, b, kernel.Spec(dim, act, alpha, gain, None if clamp is None else float(clamp)))
    return bias_act_ref(x, b, dim, act, alpha, gain, clamp)


def _kernel_supports(act: str, x: torch.Tensor) -> bool:
    return act in BIAS_ACT_KERNEL_ACTS and x.dtype.is_floating_point


def bias_act_ref(
    x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float, clamp: float | None
) -> torch.Tensor:
    """The reference path, plain PyTorch, with resolved ``alpha`` and ``gain``."""
    if b is not None:
        x = x + b.reshape([-1 if i == dim % x.ndim else 1 for i in range(x.ndim)])
    x = activation_funcs[act].func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
