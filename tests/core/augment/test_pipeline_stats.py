"""Each op alone at p = 1 (or a given p * multiplier) follows its documented distribution, measured
from explain() and, where an image statistic exists, from the pixels themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from core.augment import AugmentPipe

from .helpers import assert_fraction, assert_mean, assert_std, blob, gen, moments, param, smooth_image

N = 4000  # images for explain()-only and tiny-image statistics


def run(images: torch.Tensor, seed: int = 0, p: float = 1.0, **kwargs):
    return AugmentPipe(p=p, **kwargs)(images, generator=gen(seed), explain=True)


# ---- firing probability ------------------------------------------------------------------------


@pytest.mark.parametrize("p,mult,expected", [(0.3, 1, 0.3), (1.0, 0.5, 0.5), (0.6, 0.5, 0.3), (0.6, 2.0, 1.0)])
def test_ops_fire_with_probability_p_times_multiplier(p, mult, expected):
    _, ex = run(torch.zeros(N, 3, 1, 1), p=p, brightness=mult, contrast=mult, noise=mult, cutout=mult)
    for op in ("brightness", "contrast", "noise", "cutout"):
        assert_fraction(sum(op in e for e in ex), N, expected)
    # Independent decisions per op: both fire with probability expected^2.
    assert_fraction(sum("brightness" in e and "noise" in e for e in ex), N, expected**2)


def test_rotation_fires_with_probability_p_in_total_from_two_draws():
    _, ex = run(torch.zeros(N, 1, 2, 2), p=0.5, rotate=1)
    fired = [e["rotate"] for e in ex if "rotate" in e]
    assert_fraction(len(fired), N, 0.5)
    p_rot = 1 - math.sqrt(0.5)
    assert_fraction(sum("pre_deg" in r for r in fired), N, p_rot)
    assert_fraction(sum("pre_deg" in r and "post_deg" in r for r in fired), N, p_rot**2)


# ---- blits -----------------------------------------------------------------------------------


def test_xflip_half_of_the_images_mirror():
    # Mirrored through the resampling, as in the public pipe: smooth content comes out as the
    # mirror image to within 3 grey levels of 255; the others are untouched (test_pipeline_geometry
    # checks every frequency against the public execution).
    x = smooth_image(1, 3, 16).expand(1000, 3, 16, 16)
    out, ex = run(x, xflip=1)
    flags = param(ex, "xflip", "i").bool()
    assert len(flags) == 1000
    assert_fraction(int(flags.sum()), 1000, 0.5)
    torch.testing.assert_close(out[flags], x[flags].flip(-1), atol=0.025, rtol=0)
    assert torch.equal(out[~flags], x[~flags])


def test_rotate90_uniform_over_quarter_turns():
    x = smooth_image(1, 3, 16).expand(1000, 3, 16, 16)
    out, ex = run(x, rotate90=1)
    turns = param(ex, "rotate90", "i").long()
    counts = torch.bincount(turns, minlength=4)
    assert stats.chisquare(counts.numpy()).pvalue > 1e-4
    assert torch.equal(out[turns == 0], x[turns == 0])
    for k in range(1, 4):  # counter-clockwise as displayed, like torch.rot90 on (H, W); resampled
        torch.testing.assert_close(out[turns == k], torch.rot90(x[turns == k], k, dims=(-2, -1)), atol=0.025, rtol=0)


def test_xint_whole_pixel_shifts_within_bounds_reflected_exactly():
    size = 32
    x = smooth_image(1, 1, size).expand(600, 1, size, size)
    out, ex = run(x, xint=1)
    tx, ty = param(ex, "xint", "tx_px"), param(ex, "xint", "ty_px")
    bound = round(0.125 * size)
    assert tx.abs().max() <= bound and ty.abs().max() <= bound
    assert tx.abs().max() == bound  # the range is used
    # t ~ U(-1/8, 1/8) of the size, rounded: variance (size/8)^2 / 3 + 1/12.
    assert_std(torch.cat([tx, ty]), math.sqrt((size / 8) ** 2 / 3 + 1 / 12), sigmas=6)
    ref = np.pad(x[0, 0].numpy(), size, mode="reflect")
    for i in range(0, 600, 37):
        sx, sy = int(tx[i]), int(ty[i])
        expected = ref[size - sy : 2 * size - sy, size - sx : 2 * size - sx]
        np.testing.assert_array_equal(out[i, 0].numpy(), expected)


# ---- general geometry ---------------------------------------------------------------------------


def test_scale_lognormal_in_explain_and_in_the_pixels():
    _, ex = run(torch.zeros(N, 1, 2, 2), scale=1)
    s = param(ex, "scale", "s")
    assert_std(torch.log2(s), 0.2)
    assert_mean(torch.log2(s), 0.0, 0.2)
    x = blob(200, 64, 2.5)
    out, ex = run(x, seed=1, scale=1)
    s = param(ex, "scale", "s")
    _, cov0, _ = moments(x[:1], window=16)
    _, cov, _ = moments(out, window=16)
    measured = torch.sqrt(cov[:, 0, 0] / cov0[0, 0, 0])  # the blob's width grows by s
    torch.testing.assert_close(measured, s, rtol=0.02, atol=0)


def test_rotation_angles_uniform_and_visible_in_the_pixels():
    _, ex = run(torch.zeros(N, 1, 2, 2), rotate=1)
    pre = param(ex, "rotate", "pre_deg")
    assert stats.kstest(pre.numpy(), stats.uniform(loc=-180, scale=360).cdf).pvalue > 1e-4
    # An elongated blob; rotate at small p so that most fired images turned once.
    x = blob(400, 32, 5.0, 2.0)
    out, ex = run(x, seed=2, p=0.5, rotate=1)
    checked = 0
    for i, e in enumerate(ex):
        r = e.get("rotate", {})
        if len(r) != 2:  # exactly one of pre/post fired
            continue
        _, cov, _ = moments(out[i : i + 1])
        # Principal axis angle, counter-clockwise as displayed (y axis points down).
        axis = -0.5 * math.degrees(math.atan2(2 * float(cov[0, 0, 1]), float(cov[0, 0, 0] - cov[0, 1, 1])))
        diff = (axis - r["angle_deg"] + 90) % 180 - 90
        assert abs(diff) < 1.5, f"image {i}: axis {axis:.1f} deg, explain {r['angle_deg']:.1f} deg"
        checked += 1
    assert checked > 100


def test_aniso_lognormal_and_visible_in_the_pixels():
    _, ex = run(torch.zeros(N, 1, 2, 2), aniso=1)
    assert_std(torch.log2(param(ex, "aniso", "s")), 0.2)
    x = blob(200, 64, 2.5)
    out, ex = run(x, seed=3, aniso=1)
    s = param(ex, "aniso", "s")
    _, cov, _ = moments(out, window=16)
    ratio = torch.sqrt(cov[:, 0, 0] / cov[:, 1, 1])  # x stretched by s, y by 1/s
    torch.testing.assert_close(ratio, s**2, rtol=0.03, atol=0)


def test_xfrac_normal_shift_and_the_centroid_moves_by_it():
    size = 32
    _, ex = run(torch.zeros(N, 1, 2, 2), xfrac=1)
    # In pixels of the image the shift is N(0, (0.125 * size)^2); here size 2.
    assert_std(param(ex, "xfrac", "tx_px"), 0.125 * 2)
    assert_std(param(ex, "xfrac", "ty_px"), 0.125 * 2)
    x = blob(200, size, 2.0)
    out, ex = run(x, seed=4, xfrac=1)
    shift = torch.stack([param(ex, "xfrac", "tx_px"), param(ex, "xfrac", "ty_px")], -1)
    assert_std(shift, 0.125 * size, sigmas=6)
    centre, _, _ = moments(out)
    small = shift.abs().amax(dim=1) < size / 2 - 8  # the blob stays away from the border
    torch.testing.assert_close(centre[small], shift[small], atol=0.05, rtol=0)


# ---- colour ----------------------------------------------------------------------------------


def test_brightness_shift_std_from_the_image_means():
    out, ex = run(torch.zeros(N, 3, 2, 2), brightness=1)
    means = out.mean(dim=(1, 2, 3)).double()
    assert_std(means, 0.2)
    assert_mean(means, 0.0, 0.2)
    torch.testing.assert_close(means, param(ex, "brightness", "b"), atol=1e-6, rtol=0)


def test_contrast_log2_std_from_the_pixels():
    out, ex = run(torch.full((N, 3, 2, 2), 0.5), contrast=1)
    gain = torch.log2(out.mean(dim=(1, 2, 3)).double() / 0.5)
    assert_std(gain, 0.5)
    torch.testing.assert_close(gain, torch.log2(param(ex, "contrast", "c")), atol=1e-5, rtol=0)


def test_lumaflip_negates_luma_and_keeps_chroma_half_the_time():
    colour = torch.tensor([0.3, -0.2, 0.5]).reshape(1, 3, 1, 1)
    x = colour.expand(N, 3, 2, 2)
    out, ex = run(x, lumaflip=1)
    flags = param(ex, "lumaflip", "i").bool()
    assert_fraction(int(flags.sum()), N, 0.5)
    luma = x.mean(dim=1, keepdim=True)
    expected = torch.where(flags[:, None, None, None], x - 2 * luma, x)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_hue_rotates_chroma_by_the_explained_uniform_angle():
    colour = torch.tensor([0.6, -0.1, 0.2]).reshape(1, 3, 1, 1)
    x = colour.expand(N, 3, 1, 1)
    out, ex = run(x, hue=1)
    angles = param(ex, "hue", "angle_deg")
    assert stats.kstest(angles.numpy(), stats.uniform(loc=-180, scale=360).cdf).pvalue > 1e-4
    luma_in, luma_out = x.mean(dim=1), out.mean(dim=1)
    torch.testing.assert_close(luma_out, luma_in, atol=1e-6, rtol=0)
    chroma_in, chroma_out = (x - x.mean(1, True))[:, :, 0, 0].double(), (out - out.mean(1, True))[:, :, 0, 0].double()
    torch.testing.assert_close(chroma_out.norm(dim=1), chroma_in.norm(dim=1), atol=1e-6, rtol=0)
    cos = (chroma_in * chroma_out).sum(1) / (chroma_in.norm(dim=1) * chroma_out.norm(dim=1))
    v = torch.full((3,), 1 / math.sqrt(3), dtype=torch.float64)
    sin = (torch.linalg.cross(chroma_in, chroma_out) @ v) / (chroma_in.norm(dim=1) * chroma_out.norm(dim=1))
    measured = torch.rad2deg(torch.atan2(sin, cos))
    torch.testing.assert_close(measured, angles, atol=1e-3, rtol=0)


def test_saturation_scales_chroma_lognormally():
    colour = torch.tensor([0.6, -0.1, 0.2]).reshape(1, 3, 1, 1)
    x = colour.expand(N, 3, 1, 1)
    out, ex = run(x, saturation=1)
    ratio = (out - out.mean(1, True)).flatten(1).norm(dim=1) / (x - x.mean(1, True)).flatten(1).norm(dim=1)
    assert_std(torch.log2(ratio.double()), 1.0)
    torch.testing.assert_close(ratio.double(), param(ex, "saturation", "s"), rtol=1e-5, atol=0)
    torch.testing.assert_close(out.mean(1), x.mean(1), atol=1e-6, rtol=0)


def test_one_channel_colour_is_brightness_contrast_and_negation():
    x = torch.full((N, 1, 2, 2), 0.25)
    out, ex = run(x, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    assert all("hue" not in e and "saturation" not in e for e in ex)
    b, c = param(ex, "brightness", "b"), param(ex, "contrast", "c")
    flip = 1 - 2 * param(ex, "lumaflip", "i")
    expected = flip * c * (0.25 + b)  # brightness, then contrast, then the luma flip
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)).double(), expected, atol=1e-5, rtol=0)


# ---- filter, noise, cutout -----------------------------------------------------------------


def test_imgfilter_band_gains_and_energy_normalisation():
    _, ex = run(torch.zeros(N, 1, 2, 2), imgfilter=1, imgfilter_bands=[0, 1, 0, 0])
    band = param(ex, "imgfilter", "band_gains")[:, 1]
    assert_std(torch.log2(band), 1.0)
    gains = torch.tensor([e["imgfilter"]["gains"] for e in ex], dtype=torch.float64)
    power = torch.tensor([10, 1, 1, 1], dtype=torch.float64) / 13
    # One band drawn: the gain vector is normalised to unit expected power exactly.
    torch.testing.assert_close((power * gains.square()).sum(1), torch.ones(N, dtype=torch.float64))
    assert all(e["imgfilter"]["band_gains"][0] == 1 for e in ex)  # band 0 disabled
    # All bands at p * band multiplier: band 2 at half rate.
    _, ex = run(torch.zeros(N, 1, 2, 2), p=0.8, imgfilter=1, imgfilter_bands=[1, 1, 0.5, 1])
    band2 = param(ex, "imgfilter", "band_gains")[:, 2]
    assert_fraction(int((band2 != 1).sum()), N, 0.4)


@pytest.mark.parametrize("size", [16, 32])
def test_imgfilter_pixels_equal_a_scipy_reference(size):
    x = torch.randn(3, 3, size, size)
    out, ex = run(x, imgfilter=1)
    from core.augment.wavelets import filter_bank

    bank = filter_bank()
    for i, e in enumerate(ex):
        taps = np.asarray(e["imgfilter"]["gains"]) @ bank
        ref = ndimage.convolve1d(x[i].double().numpy(), taps, axis=-1, mode="mirror")
        ref = ndimage.convolve1d(ref, taps, axis=-2, mode="mirror")
        np.testing.assert_allclose(out[i].numpy(), ref, atol=2e-5)


def test_noise_sigma_half_normal_and_pixel_std_matches():
    _, ex = run(torch.zeros(N, 1, 1, 1), noise=1)
    sigma = param(ex, "noise", "sigma")
    assert_mean(sigma, 0.1 * math.sqrt(2 / math.pi), 0.1 * math.sqrt(1 - 2 / math.pi))
    assert_std(torch.cat([sigma, -sigma]), 0.1)  # |N(0, 0.1^2)| mirrored is N(0, 0.1^2)
    x = smooth_image(300, 3, 16)
    out, ex = run(x, seed=5, noise=1)
    sigma = param(ex, "noise", "sigma")
    measured = (out - x).flatten(1).double().std(dim=1)
    torch.testing.assert_close(measured, sigma, rtol=0.15, atol=1e-4)
    assert abs(float((out - x).mean())) < 1e-3


def test_cutout_square_of_half_size_and_its_area():
    size = 16
    x = torch.ones(N // 2, 1, size, size)
    out, ex = run(x, cutout=1)
    assert all(e["cutout"]["size"] == 0.5 for e in ex)
    centre = torch.stack([param(ex, "cutout", "cx"), param(ex, "cutout", "cy")], -1)
    assert stats.kstest(centre.flatten().numpy(), "uniform").pvalue > 1e-4
    zero_fraction = (out == 0).flatten(1).double().mean(dim=1)
    # The same rectangle computed from the explained centre, pixel by pixel.
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    inside_x = ((coords[None, :] - centre[:, :1]).abs() < 0.25).double().mean(1)
    inside_y = ((coords[None, :] - centre[:, 1:]).abs() < 0.25).double().mean(1)
    torch.testing.assert_close(zero_fraction, inside_x * inside_y)
    # Nominal area 0.25; the square may hang over the border, so the mean on-image area is 0.4375^2.
    assert_mean(zero_fraction, 0.4375**2, float(zero_fraction.std()))
