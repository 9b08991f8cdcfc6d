"""Distances between two sets of features: Frechet distance, KID, and k-NN precision/recall.

Conventions follow the public StyleGAN2-ADA metrics so that numbers are comparable: covariances are
population covariances (divided by N), KID is the unbiased MMD^2 with the cubic polynomial kernel
``(x.y / d + 1)^3`` averaged over random subsets, and precision/recall use k-NN balls (k=3) as in
Kynkaanniemi et al. 2019.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.linalg
import torch

log = logging.getLogger(__name__)

# Relative size of the imaginary part of sqrtm(S1 S2) that we still call numerical noise.
IMAGINARY_TOLERANCE = 1e-3


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and population covariance [D, D] (float64) of features [N, D]."""
    x = np.asarray(features, dtype=np.float64)
    mu = x.mean(axis=0)
    centred = x - mu
    return mu, centred.T @ centred / len(x)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Frechet distance of two Gaussians."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    covmean = _sqrtm_product(sigma1, sigma2)
    if not np.isfinite(covmean).all():
        # Singular covariances (fewer samples than dimensions) can break sqrtm; a tiny ridge fixes it.
        eps = 1e-6
        log.warning(
            "Frechet distance: sqrtm(S1 S2) is not finite (singular covariances); adding %g to the diagonals",
            eps,
        )
        ridge = eps * np.eye(len(sigma1))
        covmean = _sqrtm_product(sigma1 + ridge, sigma2 + ridge)
    if np.iscomplexobj(covmean):
        imaginary = float(np.abs(covmean.imag).max())
        scale = max(float(np.abs(covmean.real).max()), 1e-12)
        if imaginary > IMAGINARY_TOLERANCE * scale:
            log.warning(
                "Frechet distance: sqrtm(S1 S2) has imaginary parts up to %.3g (%.2g of its largest "
                "entry), more than numerical noise; using the real part. Too few samples for the "
                "feature size make this likely.",
                imaginary,
                imaginary / scale,
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(value)


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # scipy warns on near-singular input; we check the result ourselves above.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return scipy.linalg.sqrtm(sigma1 @ sigma2)


def kernel_distance(
    real: np.ndarray,
    fake: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID: unbiased MMD^2 with kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    dim = real.shape[1]
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} real and {len(fake)} fake")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        across = (x @ y.T / dim + 1) ** 3
        # Off-diagonal mean of the within-set kernels minus twice the mean cross kernel.
        total += (within.sum() - np.trace(within)) / (m * (m - 1)) - 2 * across.mean()
    return float(total / num_subsets)


def precision_recall(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = 3,
    max_batch_elements: int = 2**26,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """(precision, recall): the share of fakes inside the real k-NN manifold, and vice versa.

    A point is inside a manifold when it lies within the k-th nearest-neighbour distance of some
    manifold point. Distances are computed in blocks of at most ``max_batch_elements`` entries.
    """
    real_t = torch.as_tensor(np.asarray(real, np.float32), device=device)
    fake_t = torch.as_tensor(np.asarray(fake, np.float32), device=device)
    precision = _share_inside(fake_t, real_t, _knn_radii(real_t, k, max_batch_elements), max_batch_elements)
    recall = _share_inside(real_t, fake_t, _knn_radii(fake_t, k, max_batch_elements), max_batch_elements)
    return precision, recall


def _knn_radii(manifold: torch.Tensor, k: int, max_elements: int) -> torch.Tensor:
    if len(manifold) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples, got {len(manifold)}")
    rows = max(1, max_elements // len(manifold))
    # k + 1: each point's nearest neighbour in its own set is itself, at distance 0.
    return torch.cat(
        [torch.cdist(chunk, manifold).kthvalue(k + 1, dim=1).values for chunk in manifold.split(rows)]
    )


def _share_inside(
    probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, max_elements: int
) -> float:
    cols = min(len(manifold), max(1, max_elements))
    rows = max(1, max_elements // cols)
    inside = []
    for probe_chunk in probes.split(rows):
        hit = torch.zeros(len(probe_chunk), dtype=torch.bool, device=probes.device)
        for points, point_radii in zip(manifold.split(cols), radii.split(cols), strict=True):
            hit |= (torch.cdist(probe_chunk, points) <= point_radii[None, :]).any(dim=1)
        inside.append(hit)
    return float(torch.cat(inside).float().mean())
