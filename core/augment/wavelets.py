"""The two wavelet low-pass filters ADA uses, and the 4-band filter bank built from one of them.

* ``sym6`` (12 taps) is the anti-aliasing filter of the geometric resampling: long and nearly
  linear-phase, and orthogonal, so upsampling then downsampling with it is the identity.
* ``sym2`` (4 taps) generates the octave filter bank of the ``imgfilter`` op.

The coefficients are the standard Daubechies "least asymmetric" (symlet) decomposition low-pass
filters, scaled to sum to sqrt(2); tests check orthonormality and vanishing moments to 1e-12.
"""

from __future__ import annotations

import numpy as np

SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)  # fmt: skip

NUM_BANDS = 4
# Expected share of image power per band (a 1/f prior): band 0 (lowest) holds most of it.
BAND_EXPECTED_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)


def geom_lowpass() -> np.ndarray:
    """The sym6 low-pass filter normalised to unit DC gain (what ``setup_filter`` would make)."""
    taps = np.asarray(SYM6, dtype=np.float64)
    return taps / taps.sum()


def _dilate(taps: np.ndarray, factor: int) -> np.ndarray:
    """Inserts ``factor - 1`` zeros between taps: the filter H(z^factor)."""
    out = np.zeros((taps.size - 1) * factor + 1)
    out[::factor] = taps
    return out


def _center_pad(taps: np.ndarray, size: int) -> np.ndarray:
    pad = (size - taps.size) // 2
    return np.pad(taps, (pad, size - taps.size - pad))


def filter_bank(num_bands: int = NUM_BANDS) -> np.ndarray:
    """[num_bands, taps] zero-phase octave bank from sym2; rows sum to a unit impulse.

    With H the sym2 low-pass, lo = H(z)H(1/z)/2 and hi = H(-z)H(-1/z)/2 are symmetric
    half-band filters with lo + hi = 1 (power complementarity of an orthogonal wavelet). Band k
    from the top is hi dilated by 2^k after k low-passes (an undecimated wavelet cascade); the
    last band is the low-pass remainder. Band 0 is the lowest (0 - 1/8 of Nyquist for 4 bands).
    """
    h = np.asarray(SYM2, dtype=np.float64)
    lo = np.convolve(h, h[::-1]) / 2
    hi_taps = h * (-1.0) ** np.arange(h.size)
    hi = np.convolve(hi_taps, hi_taps[::-1]) / 2
    levels = num_bands - 1
    size = (lo.size - 1) * (2**levels - 1) + 1
    bank = np.zeros((num_bands, size))
    smooth = np.ones(1)  # product of the low-passes applied so far
    for level in range(levels):
        bank[num_bands - 1 - level] = _center_pad(np.convolve(smooth, _dilate(hi, 2**level)), size)
        smooth = np.convolve(smooth, _dilate(lo, 2**level))
    bank[0] = _center_pad(smooth, size)
    return bank
