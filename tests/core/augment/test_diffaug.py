"""DiffAugment: the three policies, reproducibility and differentiability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.augment import DiffAugment, diff_augment
from core.augment.diffaug import color, cutout, translation

from .helpers import gen, smooth_image


def test_reproducible_with_a_generator_and_seed_dependent():
    x = smooth_image(4, 3, 16)
    a = diff_augment(x, generator=gen(1))
    assert torch.equal(a, diff_augment(x, generator=gen(1)))
    assert not torch.equal(a, diff_augment(x, generator=gen(2)))
    assert torch.equal(DiffAugment("color,translation,cutout")(x, generator=gen(1)), a)


def test_color_on_a_grey_image_is_a_uniform_brightness_shift():
    x = torch.full((4000, 3, 2, 2), 0.1)
    out = color(x, gen(0))
    shift = (out - x).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-6)  # contrast/saturation: no-op
    assert shift.min() >= -0.5 and shift.max() <= 0.5
    assert abs(float(shift[:, 0].mean())) < 0.02 and abs(float(shift[:, 0].var()) - 1 / 12) < 0.01


def test_translation_is_a_zero_filled_whole_pixel_shift_of_at_most_an_eighth():
    x = smooth_image(40, 3, 16) + 2  # nonzero everywhere, so zero fill is visible
    out = translation(x, gen(3))
    padded = F.pad(x, [2, 2, 2, 2])
    seen = set()
    for i in range(40):
        matches = [
            (tx, ty) for tx in range(-2, 3) for ty in range(-2, 3)
            if torch.equal(out[i], padded[i, :, 2 - ty : 18 - ty, 2 - tx : 18 - tx])
        ]  # fmt: skip
        assert len(matches) == 1, f"image {i}"
        seen.add(matches[0])
    assert len(seen) > 10


def test_cutout_zeroes_one_square_of_half_the_size():
    x = torch.ones(2000, 1, 16, 16)
    out = cutout(x, gen(4))
    size, inner = 8, 0
    for i in range(2000):
        zero = out[i, 0] == 0
        rows = zero.any(dim=1).nonzero().flatten()
        cols = zero.any(dim=0).nonzero().flatten()
        (r0, r1), (c0, c1) = (int(rows.min()), int(rows.max()) + 1), (int(cols.min()), int(cols.max()) + 1)
        assert zero.sum() == (r1 - r0) * (c1 - c0) and zero[r0:r1, c0:c1].all(), f"image {i}: not one rectangle"
        for lo, hi in ((r0, r1), (c0, c1)):
            # Whole where it is inside; where it hangs over a border, by at most half its size.
            assert hi - lo == size or (lo == 0 or hi == 16) and size // 2 <= hi - lo < size, f"image {i}: {lo}..{hi}"
        inner += r1 - r0 == size and c1 - c0 == size
    assert inner > 400  # (9/17)^2 of them, ~560, lie wholly inside
    # Top-left corners -4..12 on each axis, uniformly (17 values): the expected side is 116/17 pixels.
    area = (out == 0).flatten(1).float().mean(1)
    assert float(area.mean()) == pytest.approx((116 / 17) ** 2 / 256, abs=0.01)


def test_differentiable_to_second_order():
    x = smooth_image(2, 3, 8, dtype=torch.float64).requires_grad_(True)

    def f(images):
        return diff_augment(images, generator=gen(5))

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=True)


def test_unknown_policy_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown policy colour; choose from color, translation, cutout"):
        DiffAugment("colour,cutout")
