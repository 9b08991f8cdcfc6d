"""Looking inside the generator: capture a synthesis layer's output and turn its channels into an image.

Worker thread only for :func:`capture_layers` (it runs the generator); the rest is plain numpy so
it can be tested without a model. A layer is any submodule of ``G.synthesis`` whose output is a
4-D tensor [N, C, H, W]; a block returns (x, img), listed as ``b8`` (features) and ``b8:img``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "LayerInfo",
    "LayerOptions",
    "LayerStats",
    "LayerView",
    "capture_layers",
    "channel_stats",
    "fft_magnitude",
    "layer_image",
    "normalise",
]

NORMS = ("minmax", "std")  # per-image min/max, or mean +- k * std
MODES = ("rgb", "gray")  # three channels as R, G, B, or one channel as gray


@dataclass(frozen=True)
class LayerInfo:
    name: str
    shape: tuple[int, ...]  # [C, H, W] of one image


@dataclass(frozen=True)
class LayerOptions:
    """How to show a layer's channels (part of the render request, so hashable)."""

    mode: str = "rgb"
    channels: tuple[int, int, int] = (0, 1, 2)  # R, G, B in rgb mode; the first alone in gray mode
    norm: str = "minmax"
    std_k: float = 2.0
    gain: float = 1.0
    fft: bool = False

    def shown(self, num_channels: int) -> list[int]:
        """The channel indices displayed, wrapped into the layer's channel count."""
        picked = self.channels if self.mode == "rgb" else self.channels[:1]
        return [int(c) % max(num_channels, 1) for c in picked]


@dataclass(frozen=True)
class LayerStats:
    mean: float
    std: float
    max: float


@dataclass
class LayerView:
    """What a render found out about the layers: the list, the chosen one's stats, or an error."""

    layers: list[LayerInfo] = field(default_factory=list)
    name: str | None = None  # the layer shown (None: the generator output)
    all_channels: LayerStats | None = None
    selected: LayerStats | None = None
    shown_channels: list[int] = field(default_factory=list)
    error: str | None = None


def capture_layers(
    synthesis: object, run: Callable[[], torch.Tensor], keep: str | None
) -> tuple[torch.Tensor, list[LayerInfo], torch.Tensor | None]:
    """Run ``run()`` with forward hooks on every submodule of ``synthesis``.

    Returns the run's output, every layer's name and shape (in the order they ran) and the output
    of the layer named ``keep`` (None if no layer has that name). Only shapes are kept for the
    others, so looking at a layer costs one tensor, not all of them.
    """
    infos: list[LayerInfo] = []
    kept: list[torch.Tensor] = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: object, output: object) -> None:
            outs = output if isinstance(output, tuple) else (output,)
            suffixes = ("", ":img")  # a block returns (features, image)
            for i, out in enumerate(outs[:2]):
                if isinstance(out, torch.Tensor) and out.ndim == 4:
                    full = name + suffixes[i]
                    infos.append(LayerInfo(full, tuple(int(s) for s in out.shape[1:])))
                    if full == keep:
                        kept.append(out.detach().to(torch.float32))

        return hook

    # A stand-in synthesis that is a plain function (tests, tools) has no layers to list.
    modules = synthesis.named_modules() if isinstance(synthesis, torch.nn.Module) else []
    handles = [m.register_forward_hook(hook_for(n)) for n, m in modules if n]
    try:
        output = run()
    finally:
        for h in handles:
            h.remove()
    return output, infos, (kept[0] if kept else None)


def normalise(x: np.ndarray, norm: str = "minmax", std_k: float = 2.0, gain: float = 1.0) -> np.ndarray:
    """Values [C, H, W] of one image -> [0, 1], jointly over the channels (so colours compare).

    minmax maps [min, max] to [0, 1]; std maps mean +- k*std to [0, 1]. ``gain`` stretches the
    contrast around mid-grey. A constant input has no spread to show: it becomes flat mid-grey.
    """
    x = x.astype(np.float64)
    if norm == "minmax":
        lo, hi = float(x.min()), float(x.max())
        centre, half = (lo + hi) / 2, (hi - lo) / 2
    elif norm == "std":
        centre, half = float(x.mean()), std_k * float(x.std())
    else:
        raise ValueError(f"normalisation {norm!r}: choose from {', '.join(NORMS)}")
    # A spread at rounding level (the std of equal floats is rarely exactly 0) is no spread.
    flat = half <= 1e-9 * max(1.0, abs(centre))
    unit = np.zeros_like(x) if flat else (x - centre) / half
    return np.clip(0.5 + 0.5 * gain * unit, 0.0, 1.0)


def fft_magnitude(x: np.ndarray) -> np.ndarray:
    """log(1 + |FFT|) of each channel [C, H, W], zero frequency moved to the centre (H//2, W//2)."""
    spectrum = np.fft.fftshift(np.fft.fft2(x.astype(np.float64), axes=(-2, -1)), axes=(-2, -1))
    return np.log1p(np.abs(spectrum))


def channel_stats(x: np.ndarray) -> LayerStats:
    return LayerStats(float(x.mean()), float(x.std()), float(x.max()))


def layer_image(act: np.ndarray, opts: LayerOptions) -> np.ndarray:
    """One image's activations [C, H, W] -> uint8 [H, W, 3] as ``opts`` asks."""
    chosen = act[opts.shown(act.shape[0])]
    if opts.fft:
        chosen = fft_magnitude(chosen)
    img = normalise(chosen, opts.norm, opts.std_k, opts.gain)
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    return np.round(img.transpose(1, 2, 0) * 255).astype(np.uint8)
