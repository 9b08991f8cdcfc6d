"""APA: per-image replacement of reals by detached fakes with probability p."""

from __future__ import annotations

import pytest
import torch

from core.augment import AdaController, PseudoAugment, apa_replace

from .helpers import assert_fraction, gen


def test_p_zero_returns_the_reals_tensor_itself():
    reals, fakes = torch.rand(8, 3, 4, 4), torch.rand(8, 3, 4, 4)
    mixed, mask = apa_replace(reals, fakes, 0.0)
    assert mixed is reals and not mask.any()
    assert apa_replace(reals, None, 0.9)[0] is reals  # no fakes stored yet


def test_p_one_replaces_everything_and_cycles_a_smaller_fake_batch():
    reals, fakes = torch.zeros(5, 1, 2, 2), torch.arange(2.0).reshape(2, 1, 1, 1).expand(2, 1, 2, 2)
    mixed, mask = apa_replace(reals, fakes, 1.0, gen(0))
    assert mask.all()
    assert mixed[:, 0, 0, 0].tolist() == [0, 1, 0, 1, 0]


def test_each_image_is_replaced_with_probability_p():
    n = 20000
    reals, fakes = torch.zeros(n, 1, 1, 1), torch.ones(n, 1, 1, 1)
    mixed, mask = apa_replace(reals, fakes, 0.3, gen(1))
    assert_fraction(int(mask.sum()), n, 0.3)
    assert torch.equal(mixed[:, 0, 0, 0].bool(), mask)
    # Same generator seed, same choice.
    assert torch.equal(apa_replace(reals, fakes, 0.3, gen(1))[1], mask)


def test_fakes_are_detached_and_r1_gradient_reaches_only_kept_reals():
    reals = torch.rand(64, 3, 2, 2, requires_grad=True)
    fakes = torch.rand(64, 3, 2, 2, requires_grad=True)
    mixed, mask = apa_replace(reals, fakes, 0.5, gen(2))
    (grad,) = torch.autograd.grad(mixed.sum(), reals)
    assert torch.equal(grad[:, 0, 0, 0], (~mask).float())
    assert 0 < int(mask.sum()) < 64


def test_shape_mismatch_is_one_clear_error():
    with pytest.raises(ValueError, match=r"APA: fake images \(3, 8, 8\) do not match real images \(3, 4, 4\)"):
        apa_replace(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8), 0.5)


def test_pseudo_augment_keeps_the_latest_fakes_and_its_controller():
    apa = PseudoAugment(AdaController(target=0.6, p=1.0, mode="fixed"))
    reals = torch.zeros(4, 3, 2, 2)
    assert apa(reals) is reals  # nothing stored yet
    g = torch.ones(4, 3, 2, 2, requires_grad=True)
    apa.store(g * 2)
    mixed, mask = apa(reals, generator=gen(0), return_mask=True)
    assert mask.all() and torch.equal(mixed, torch.full_like(reals, 2.0)) and not mixed.requires_grad
    state = apa.state_dict()
    other = PseudoAugment()
    other.load_state_dict(state)
    assert other.p == 1.0 and other.controller.mode == "fixed"
