"""Shared images and statistics for the augmentation tests."""

from __future__ import annotations

import math

import torch


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_image(n: int, c: int, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Low-frequency content (well below Nyquist), different per image and channel."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    k = torch.arange(n * c, dtype=torch.float32).reshape(n, c, 1, 1)
    img = 0.5 * torch.sin(1.3 * xs + 0.7 * ys + k) + 0.3 * torch.cos(0.9 * xs * ys - 0.5 * k)
    return img.to(dtype)


def blob(n: int, size: int, sigma_x: float, sigma_y: float | None = None) -> torch.Tensor:
    """[n, 1, size, size] centred Gaussian blob (axis-aligned)."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    c = (size - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(size) - c, torch.arange(size) - c, indexing="ij")
    img = torch.exp(-(xs.double() ** 2) / (2 * sigma_x**2) - ys.double() ** 2 / (2 * sigma_y**2))
    return img.float().expand(n, 1, size, size).clone()


def moments(img: torch.Tensor, window: float = math.inf) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centroid [N, 2] (x, y, pixels from the centre), covariance [N, 2, 2] and mass of [N, 1, H, W],
    counting only pixels within ``window`` of the centre (keeps mirrored copies from the padding out)."""
    n, _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
    inside = (xs.abs() <= window) & (ys.abs() <= window)
    wgt = img[:, 0].double().clamp(min=0) * inside
    mass = wgt.sum(dim=(1, 2))
    mx = (wgt * xs).sum(dim=(1, 2)) / mass
    my = (wgt * ys).sum(dim=(1, 2)) / mass
    dx, dy = xs[None] - mx[:, None, None], ys[None] - my[:, None, None]
    cxx = (wgt * dx * dx).sum(dim=(1, 2)) / mass
    cyy = (wgt * dy * dy).sum(dim=(1, 2)) / mass
    cxy = (wgt * dx * dy).sum(dim=(1, 2)) / mass
    cov = torch.stack([torch.stack([cxx, cxy], -1), torch.stack([cxy, cyy], -1)], -2)
    return torch.stack([mx, my], -1), cov, mass


def assert_fraction(hits: int | float, n: int, p: float, sigmas: float = 4.5) -> None:
    """Binomial proportion within ``sigmas`` standard errors of ``p``."""
    se = math.sqrt(p * (1 - p) / n)
    assert abs(hits / n - p) <= sigmas * se + 1e-12, f"{hits}/{n} = {hits / n:.4f}, expected {p:.4f} +- {se:.4f}"


def assert_std(values: torch.Tensor, expected: float, sigmas: float = 4.5) -> None:
    """Sample std of normal values within ``sigmas`` standard errors (std / sqrt(2n))."""
    n = values.numel()
    se = expected / math.sqrt(2 * n)
    got = float(values.double().std())
    assert abs(got - expected) <= sigmas * se, f"std {got:.4f}, expected {expected:.4f} +- {se:.4f}"


def assert_mean(values: torch.Tensor, expected: float, std: float, sigmas: float = 4.5) -> None:
    se = std / math.sqrt(values.numel())
    got = float(values.double().mean())
    assert abs(got - expected) <= sigmas * se, f"mean {got:.4f}, expected {expected:.4f} +- {se:.4f}"


def param(explained: list[dict], op: str, key: str) -> torch.Tensor:
    """A parameter of ``op`` over the images where it fired."""
    return torch.tensor([e[op][key] for e in explained if op in e], dtype=torch.float64)
