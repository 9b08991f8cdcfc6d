"""Gradients through the pipe: to the images (G's pass) and of second order (R1 through the pipe)."""

from __future__ import annotations

import pytest
import torch

from core.augment import AugmentPipe

from .helpers import gen, smooth_image


def tiny_discriminator() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.Softplus(),  # smooth, so the R1 penalty has a non-trivial second derivative
        torch.nn.Conv2d(4, 1, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )


def test_gradient_reaches_the_images_and_matches_the_linear_map():
    pipe = AugmentPipe.from_preset("bgcfnc", p=1)
    x = smooth_image(2, 3, 16).requires_grad_(True)
    out = pipe(x, generator=gen(1))
    weight = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weight).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # The pipe is affine in the images for fixed draws: <w, f(x + d) - f(x)> = <grad, d>.
    d = torch.randn_like(x) * 1e-2
    lhs = (weight * (pipe(x + d, generator=gen(1)) - out)).sum().detach()
    assert float(lhs) == pytest.approx(float((grad * d).sum()), rel=1e-3)


def test_r1_second_order_gradient_reaches_d_parameters_through_the_pipe():
    D = tiny_discriminator()
    pipe = AugmentPipe.from_preset("bgcfnc", p=1)
    reals = smooth_image(2, 3, 16).requires_grad_(True)
    logits = D(pipe(reals, generator=gen(2)))
    (grad,) = torch.autograd.grad(logits.sum(), reals, create_graph=True)
    penalty = grad.square().sum()
    (w_grad,) = torch.autograd.grad(penalty, D[0].weight)
    assert torch.isfinite(w_grad).all() and w_grad.abs().sum() > 0
    # Check against a finite difference of the penalty along the gradient direction.
    eps = 1e-3
    direction = w_grad / w_grad.norm()
    with torch.no_grad():
        D[0].weight += eps * direction
    logits = D(pipe(reals, generator=gen(2)))
    (grad2,) = torch.autograd.grad(logits.sum(), reals)
    slope = (grad2.square().sum() - penalty.detach()) / eps
    assert float(slope) == pytest.approx(float(w_grad.norm()), rel=0.05)


@pytest.mark.parametrize("preset", ["bgc", "bgcfnc"])
def test_gradgradcheck_in_float64(preset):
    pipe = AugmentPipe.from_preset(preset, p=1)
    x = (smooth_image(1, 3, 8, dtype=torch.float64) * 0.5).requires_grad_(True)

    def f(images: torch.Tensor) -> torch.Tensor:
        return pipe(images, generator=gen(3))

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=True)


@pytest.mark.parametrize(("preset", "p"), [("blit", 0.3), ("bgc", 0.08), ("bgcfnc", 0.08)])
def test_each_image_gets_gradient_from_its_own_output_only(preset, p):
    # At a p where some images are left alone and others take different subsets of the ops, every
    # output image must depend on its own input image alone: an index slip in the per-subset
    # execution would hand G the gradient of another fake.
    pipe = AugmentPipe.from_preset(preset, p=p)
    x = smooth_image(16, 3, 16).requires_grad_(True)
    out, fired = pipe(x, generator=gen(4), explain=True)
    assert 2 <= sum(bool(f) for f in fired) < len(fired), "the draw should move some images and not others"
    weight = torch.randn_like(out)
    for i in range(len(fired)):
        (grad,) = torch.autograd.grad((out[i] * weight[i]).sum(), x, retain_graph=True)
        others = torch.cat([grad[:i], grad[i + 1 :]])
        assert float(others.abs().max()) == 0.0, f"output {i} sends gradient to other images"
        assert float(grad[i].abs().sum()) > 0
        if not fired[i]:
            assert torch.equal(out[i], x[i].detach()) and torch.equal(grad[i], weight[i])
