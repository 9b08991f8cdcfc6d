"""Frechet distance, KID and precision/recall against closed forms and brute-force references."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from core.metrics import frechet_distance, kernel_distance, mean_cov, precision_recall


def random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_mean_cov_is_the_population_covariance() -> None:
    x = np.random.default_rng(0).normal(size=(50, 4))
    mu, sigma = mean_cov(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False, bias=True), rtol=1e-12, atol=1e-12)


def test_frechet_matches_the_closed_form_for_non_commuting_gaussians() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = random_spd(rng, 5), random_spd(rng, 5)
    # tr((S1 S2)^(1/2)) is the sum of the square roots of the (real, positive) eigenvalues of S1 S2.
    trace_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_frechet_of_diagonal_gaussians_and_identical_sets() -> None:
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    shift = np.array([3.0, 0.0, -4.0])
    expected = 25 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # = 25 + 1 + 1
    assert frechet_distance(np.zeros(3), np.diag(a), shift, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    features = np.random.default_rng(2).normal(size=(400, 8))
    mu, sigma = mean_cov(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9


def test_frechet_of_samples_approaches_the_population_value() -> None:
    rng = np.random.default_rng(3)
    s1, s2 = np.diag([1.0, 2.0, 0.5]), np.diag([2.0, 1.0, 0.5])
    x = rng.multivariate_normal(np.zeros(3), s1, size=200_000)
    y = rng.multivariate_normal(np.ones(3), s2, size=200_000)
    expected = 3 + 2 * (np.sqrt(2) - 1) ** 2
    assert frechet_distance(*mean_cov(x), *mean_cov(y)) == pytest.approx(expected, abs=0.03)


def test_frechet_warns_about_real_imaginary_parts(caplog: pytest.LogCaptureFixture) -> None:
    # Not a covariance: S1 S2 has a negative eigenvalue, so its square root is genuinely complex.
    bad = np.diag([1.0, -1.0])
    with caplog.at_level(logging.WARNING, logger="core.metrics.distances"):
        value = frechet_distance(np.zeros(2), bad, np.zeros(2), np.eye(2))
    assert value == pytest.approx(0.0, abs=1e-9)  # 0 + (1 - 1) + 2 - 2 * real(1 + i) trace
    assert "imaginary parts up to 1" in caplog.text
    caplog.clear()
    rng = np.random.default_rng(4)
    with caplog.at_level(logging.WARNING, logger="core.metrics.distances"):
        frechet_distance(np.zeros(4), random_spd(rng, 4), np.zeros(4), random_spd(rng, 4))
    assert caplog.text == ""


def naive_kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out pair by pair."""
    d, m = x.shape[1], len(x)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd() -> None:
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(7, 4)), rng.normal(loc=0.5, size=(7, 4))
    # One subset of the full size is a permutation of each set: exactly the plain estimator.
    assert kernel_distance(real, fake, num_subsets=1, max_subset_size=100) == pytest.approx(
        naive_kid(fake, real), rel=1e-10
    )


def test_kid_separates_distributions() -> None:
    rng = np.random.default_rng(6)
    real = rng.normal(size=(600, 16))
    same = kernel_distance(real, rng.normal(size=(600, 16)), num_subsets=20, max_subset_size=200)
    shifted = kernel_distance(real, rng.normal(loc=1.0, size=(600, 16)), num_subsets=20, max_subset_size=200)
    assert abs(same) < 0.01 and shifted > 0.5
    assert kernel_distance(real, real, num_subsets=3, seed=3) == kernel_distance(
        real, real, num_subsets=3, seed=3
    )


def brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def share(probes: np.ndarray, manifold: np.ndarray) -> float:
        radii = np.sort(cdist(manifold, manifold), axis=1)[:, k]
        return float((cdist(probes, manifold) <= radii[None]).any(axis=1).mean())

    return share(fake, real), share(real, fake)


@pytest.mark.parametrize("max_batch_elements", [2**26, 37])
def test_precision_recall_matches_brute_force(max_batch_elements: int) -> None:
    rng = np.random.default_rng(7)
    real = rng.normal(size=(120, 3)).astype(np.float32)
    fake = rng.normal(loc=0.7, scale=1.3, size=(90, 3)).astype(np.float32)
    got = precision_recall(real, fake, k=3, max_batch_elements=max_batch_elements)
    expected = brute_precision_recall(real.astype(np.float64), fake.astype(np.float64), 3)
    assert got == pytest.approx(expected, abs=1e-6)
    assert 0 < got[0] < 1 and 0 < got[1] < 1


def test_precision_recall_known_answers() -> None:
    rng = np.random.default_rng(8)
    real = rng.normal(size=(50, 6)).astype(np.float32)
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall(real, real + 1000) == (0.0, 0.0)
    half = np.concatenate([real[:25], real[25:] + 1000])  # half the fakes on the data, half far away
    precision, recall = precision_recall(real, half)
    assert precision == 0.5 and 0.4 <= recall <= 1
