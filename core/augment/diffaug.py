"""DiffAugment (Zhao et al., NeurIPS 2020), for comparison runs.

Always on (no p): the same kind of random transform is applied to every image D sees, reals and
fakes, in D's and G's passes. Each op is differentiable w.r.t. the images (G's gradient flows
through). Policies (comma-separated, applied in the given order):

* ``color``: brightness + U(-0.5, 0.5); saturation: chroma around the per-pixel channel mean
  times U(0, 2); contrast: around the image mean times U(0.5, 1.5).
* ``translation``: whole-pixel shift by up to 1/8 of the size in x and y, zero fill.
* ``cutout``: a square of half the image size at a random position is set to 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import torch

POLICIES = ("color", "translation", "cutout")


def _uniform(n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.rand(n, 1, 1, 1, generator=generator, device=device).to(device=like.device, dtype=like.dtype)


def _randint(low: int, high: int, n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """n integers in [low, high] inclusive, on like.device."""
    device = generator.device if generator is not None else like.device
    return torch.randint(low, high + 1, (n,), generator=generator, device=device).to(like.device)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_uniform(n, generator, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(n, generator, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, generator, x) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    n, c, h, w = x.shape
    sx, sy = int(w * ratio + 0.5), int(h * ratio + 0.5)
    tx = _randint(-sx, sx, n, generator, x)
    ty = _randint(-sy, sy, n, generator, x)
    # Output pixel (i, j) reads input (i - ty, j - tx) of the zero-padded image.
    padded = torch.nn.functional.pad(x, [sx, sx, sy, sy])
    hp, wp = h + 2 * sy, w + 2 * sx
    rows = torch.arange(h, device=x.device)[None, :, None] + sy - ty[:, None, None]
    cols = torch.arange(w, device=x.device)[None, None, :] + sx - tx[:, None, None]
    index = (rows * wp + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, hp * wp).gather(2, index).reshape(n, c, h, w)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Centres such that the square may hang over any border by up to half its size.
    cy = _randint(0, h - 1 + (1 - size_y % 2), n, generator, x)
    cx = _randint(0, w - 1 + (1 - size_x % 2), n, generator, x)
    top, left = cy - size_y // 2, cx - size_x // 2
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top[:, None, None]) & (ys < (top + size_y)[:, None, None])
    inside = inside & (xs >= left[:, None, None]) & (xs < (left + size_x)[:, None, None])
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS: Mapping[str, Callable[..., torch.Tensor]] = MappingProxyType(
    {"color": color, "translation": translation, "cutout": cutout}
)


def parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"DiffAugment: unknown policy {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    for name in parse_policy(policy):
        x = _OPS[name](x, generator)
    return x


class DiffAugment(torch.nn.Module):
    """Module form of ``diff_augment`` (same call signature as AugmentPipe: images, generator)."""

    def __init__(self, policy: str = "color,translation,cutout") -> None:
        super().__init__()
        self.policy = ",".join(parse_policy(policy))

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return diff_augment(images, self.policy, generator)

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}"
