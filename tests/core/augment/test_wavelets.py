"""The wavelet constants and the imgfilter bank: orthonormality, vanishing moments, the public values."""

from __future__ import annotations

import collections
import pickle

import numpy as np
import pytest
import torch

from core.augment.wavelets import SYM2, SYM6, filter_bank, geom_lowpass


@pytest.mark.parametrize("taps,moments", [(SYM2, 2), (SYM6, 6)])
def test_symlet_is_an_orthonormal_wavelet_with_vanishing_moments(taps, moments):
    h = np.asarray(taps)
    assert h.sum() == pytest.approx(np.sqrt(2), abs=1e-12)
    # Orthonormal to its even shifts: sum_k h[k] h[k + 2m] = delta_m.
    for m in range(len(h) // 2):
        assert np.dot(h[: len(h) - 2 * m], h[2 * m :]) == pytest.approx(float(m == 0), abs=1e-12)
    # The high-pass g[k] = (-1)^k h[k] kills polynomials of degree < moments.
    g = h * (-1.0) ** np.arange(len(h))
    k = np.arange(len(h), dtype=np.float64)
    for degree in range(moments):
        assert abs(np.dot(g, k**degree)) < 1e-9 * max(1.0, float(len(h)) ** degree)


def test_sym6_is_the_least_asymmetric_choice_not_daubechies():
    # db6 (minimum phase) has its energy at the start; the symlet is centred.
    h = np.asarray(SYM6)
    centre = (h**2 * np.arange(len(h))).sum() / (h**2).sum()
    assert 4.5 < centre < 6.5


def test_filter_bank_partitions_unity_and_splits_octaves():
    bank = filter_bank()
    assert bank.shape == (4, 43)
    impulse = np.zeros(43)
    impulse[21] = 1
    np.testing.assert_allclose(bank.sum(axis=0), impulse, atol=1e-12)
    np.testing.assert_allclose(bank.sum(axis=1), [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(bank, bank[:, ::-1], atol=1e-12)  # zero phase
    # Band k carries most of its energy in its octave: [0, 1/8], [1/8, 1/4], [1/4, 1/2], [1/2, 1] x Nyquist.
    freqs = np.linspace(0, 1, 2001)  # in units of Nyquist
    response = np.abs(np.exp(-1j * np.pi * np.outer(freqs, np.arange(43) - 21)) @ bank.T) ** 2
    edges = [0, 1 / 8, 1 / 4, 1 / 2, 1]
    for band in range(4):
        inside = (freqs >= edges[band]) & (freqs <= edges[band + 1])
        share = response[inside, band].sum() / response[:, band].sum()
        assert share > 0.6, f"band {band}: only {share:.2f} of its energy in its octave"


class _Persistent:
    def __init__(self, meta):
        self.meta = meta


class _SnapshotReader(pickle.Unpickler):
    """Reads the public snapshot fixture's tensors without executing anything from it."""

    def find_class(self, module, name):
        allowed = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): _Persistent,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
            ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
            ("torch.storage", "_load_from_bytes"): torch.storage._load_from_bytes,
            ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        return allowed[(module, name)]


def test_filters_equal_the_public_pipes_buffers(shared_fixtures):
    with open(shared_fixtures / "sg2_res32_skip_resnet.snapshot.pkl", "rb") as f:
        snapshot = _SnapshotReader(f).load()
    buffers = snapshot["augment_pipe"].meta["state"]["_buffers"]
    np.testing.assert_allclose(geom_lowpass(), buffers["Hz_geom"].double().numpy(), atol=1e-7)
    np.testing.assert_allclose(filter_bank(), buffers["Hz_fbank"].double().numpy(), atol=1e-7)
