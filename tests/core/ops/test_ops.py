"""core.ops against naive references (numpy/scipy), plus first- and second-order gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from core.ops import (
    activation_funcs,
    bias_act,
    conv2d_resample,
    downsample2d,
    filter2d,
    grid_sample,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from core.ops._impl import resolve_impl

# ---------------------------------------------------------------------------------------------
# Naive references, written from the definitions.


def naive_upfirdn2d(x: np.ndarray, f: np.ndarray, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), gain=1.0, flip=False):
    """Zero-insert upsample, pad/crop, true 2-D convolution, subsample; per image and channel."""
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = pad
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    if flip:
        f = f[::-1, ::-1]
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * upy, w * upx))
    u[:, :, ::upy, ::upx] = x
    u = np.pad(u, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[:, :, max(-py0, 0) : u.shape[2] - max(-py1, 0), max(-px0, 0) : u.shape[3] - max(-px1, 0)]
    out = np.stack([np.stack([convolve2d(u[i, j], f, mode="valid") for j in range(c)]) for i in range(n)])
    return out[:, :, ::downy, ::downx]


def t64(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# bias_act


@pytest.mark.parametrize("act", sorted(activation_funcs))
def test_bias_act_matches_definition(act: str) -> None:
    x, b = t64(3, 5, 4, 4), t64(5)
    ref = {
        "linear": lambda v: v,
        "relu": lambda v: v.clamp(min=0),
        "lrelu": lambda v: torch.where(v >= 0, v, 0.2 * v),
        "tanh": torch.tanh,
        "sigmoid": lambda v: 1 / (1 + torch.exp(-v)),
        "elu": lambda v: torch.where(v >= 0, v, torch.exp(v) - 1),
        "selu": lambda v: 1.0507009873554805 * torch.where(v >= 0, v, 1.6732632423543772 * (torch.exp(v) - 1)),
        "softplus": lambda v: torch.log1p(torch.exp(v)),
        "swish": lambda v: v / (1 + torch.exp(-v)),
    }[act]
    expected_gain = math.sqrt(2) if act in ("relu", "lrelu", "swish") else 1.0
    y = bias_act(x, b, act=act)
    torch.testing.assert_close(y, ref(x + b[None, :, None, None]) * expected_gain)
    # Explicit gain, clamp, and another dim.
    y = bias_act(x, b[:4], dim=3, act=act, gain=3.0, clamp=0.5)
    torch.testing.assert_close(y, (ref(x + b[:4]) * 3.0).clamp(-0.5, 0.5))


def test_bias_act_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(torch.zeros(2, 3), act="gelu2")
    with pytest.raises(ValueError, match="does not match"):
        bias_act(torch.zeros(2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="impl must be"):
        bias_act(torch.zeros(2, 3), impl="fast")


def test_impl_choice_on_cpu() -> None:
    x = torch.zeros(1)
    assert resolve_impl("bias_act", "auto", x) == "ref"
    assert resolve_impl("bias_act", "ref", x) == "ref"
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        resolve_impl("bias_act", "cuda", x)


# ---------------------------------------------------------------------------------------------
# upfirdn2d family

FILTERS = {"box2": [1, 1], "binomial4": [1, 3, 3, 1], "odd3": [1, 2, 1], "sep8": [1, 2, 3, 4, 4, 3, 2, 1]}


@pytest.mark.parametrize("fname", sorted(FILTERS))
@pytest.mark.parametrize(
    "up,down,pad",
    [((1, 1), (1, 1), (0, 0, 0, 0)), ((2, 2), (1, 1), (2, 1, 2, 1)), ((1, 1), (2, 2), (1, 1, 1, 1)),
     ((2, 1), (1, 2), (1, -1, 0, 2)), ((3, 3), (2, 2), (0, 3, -1, 2))],
)
@pytest.mark.parametrize("flip", [False, True])
def test_upfirdn2d_matches_naive(fname: str, up, down, pad, flip: bool) -> None:
    f = setup_filter(FILTERS[fname])
    x = t64(2, 3, 9, 8)
    y = upfirdn2d(x, f.double(), up=up, down=down, padding=pad, flip_filter=flip, gain=1.5)
    fn = f.double().numpy()
    expected = naive_upfirdn2d(x.numpy(), fn, up, down, pad, gain=1.5, flip=flip)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)


def test_setup_filter() -> None:
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert torch.isclose(f.sum(), torch.tensor(1.0))
    sep = setup_filter([1] * 8)
    assert sep.shape == (8,)  # 8 taps or more stay separable
    assert torch.isclose(setup_filter([1, 2], gain=4).sum(), torch.tensor(4.0))
    assert torch.equal(setup_filter([1, 2, 3], flip_filter=True, normalize=False), torch.outer(
        torch.tensor([3.0, 2, 1]), torch.tensor([3.0, 2, 1])))
    with pytest.raises(ValueError):
        setup_filter(torch.zeros(2, 2, 2))


def test_resample_helpers_sizes_and_dc_gain() -> None:
    f = setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 2, 8, 8)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    same = filter2d(x, f)
    assert up.shape[-2:] == (16, 16) and down.shape[-2:] == (4, 4) and same.shape[-2:] == (8, 8)
    # A constant image keeps its value away from the zero-padded borders.
    torch.testing.assert_close(up[..., 3:-3, 3:-3], torch.ones_like(up[..., 3:-3, 3:-3]))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.ones_like(down[..., 1:-1, 1:-1]))
    torch.testing.assert_close(same[..., 2:-2, 2:-2], torch.ones_like(same[..., 2:-2, 2:-2]))


# ---------------------------------------------------------------------------------------------
# conv2d_resample: every fast path against "resample with the naive op, then plain conv2d".


def _conv_naive(x, w, f, up, down, padding, groups, flip_weight):
    fw = f.shape[-1]
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
    py0, py1 = px0 - padding + padding, px1  # square filters: same padding on y
    fn = f.numpy() if up > 1 else np.ones((1, 1))
    xn = naive_upfirdn2d(x.numpy(), fn, (up, up), (1, 1), (px0, px1, py0, py1), gain=up**2)
    if not flip_weight:
        w = w.flip([2, 3])
    y = F.conv2d(torch.from_numpy(xn), w, groups=groups)
    if down > 1:
        y = torch.from_numpy(naive_upfirdn2d(y.numpy(), f.numpy(), (1, 1), (down, down)))
    return y


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_matches_naive(k: int, up: int, down: int, groups: int, flip_weight: bool) -> None:
    f = setup_filter([1, 3, 3, 1]).double()
    x = t64(2, 4, 8, 8)
    w = t64(6, 4 // groups, k, k)
    padding = k // 2
    y = conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight)
    expected = _conv_naive(x, w, f, up, down, padding, groups, flip_weight)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-10)


def test_conv2d_resample_needs_filter_for_resampling() -> None:
    with pytest.raises(ValueError, match="needs a filter"):
        conv2d_resample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), up=2)


# ---------------------------------------------------------------------------------------------
# modulated conv: fused == non-fused == per-sample naive


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_paths_agree(up: int, demodulate: bool) -> None:
    f = setup_filter([1, 3, 3, 1]).double()
    x, w, s = t64(3, 4, 6, 6), t64(5, 4, 3, 3), t64(3, 4)
    res = 6 * up
    noise = t64(3, 1, res, res)
    flip = up == 1
    kw = dict(up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=flip)
    fused = modulated_conv2d(x, w, s, noise=noise, fused_modconv=True, **kw)
    split = modulated_conv2d(x, w, s, noise=noise, fused_modconv=False, **kw)
    torch.testing.assert_close(fused, split)
    for i in range(3):
        wi = w * s[i][None, :, None, None]
        if demodulate:
            wi = wi / wi.square().add(0).sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        yi = conv2d_resample(x[i : i + 1], wi, f=f, up=up, padding=1, flip_weight=flip) + noise[i : i + 1]
        torch.testing.assert_close(fused[i : i + 1], yi)


# ---------------------------------------------------------------------------------------------
# Gradients: first and second order, float64, small shapes. R1 and path-length regularisation
# differentiate twice through every one of these.


def _check(fn, *inputs) -> None:
    inputs = tuple(t.requires_grad_(True) for t in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("act", ["linear", "lrelu", "tanh", "softplus", "swish"])
def test_bias_act_gradients(act: str) -> None:
    _check(lambda x, b: bias_act(x, b, act=act, clamp=2.0), t64(2, 3, 3) + 0.05, t64(3))


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_upfirdn2d_gradients(up: int, down: int) -> None:
    f = setup_filter([1, 3, 3, 1]).double()
    _check(lambda x: upfirdn2d(x, f, up=up, down=down, padding=[1, 2, 1, 0]), t64(1, 2, 5, 5))


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
def test_conv2d_resample_gradients(up: int, down: int) -> None:
    f = setup_filter([1, 3, 3, 1]).double()
    _check(lambda x, w: conv2d_resample(x, w, f=f, up=up, down=down, padding=1), t64(2, 2, 4, 4), t64(3, 2, 3, 3))


def test_plain_conv_values_and_gradients() -> None:
    """Our convolution wrapper (conv2d_resample's _conv), not torch's: true convolution when asked,
    strided transposed convolution, both twice differentiable."""
    from core.ops.conv2d_resample import _conv

    x, w = t64(1, 2, 5, 6), t64(3, 2, 3, 2)
    expected = torch.stack([
        sum(torch.from_numpy(convolve2d(x[0, i].numpy(), w[o, i].numpy(), mode="valid")) for i in range(2))
        for o in range(3)
    ])[None]  # fmt: skip
    torch.testing.assert_close(_conv(x, w, flip_weight=False), expected)  # a true convolution
    torch.testing.assert_close(_conv(x, w.flip([2, 3])), expected)  # correlation with the flipped kernel
    up = _conv(x, t64(2, 3, 3, 3), stride=2, transpose=True)
    assert up.shape == (1, 3, 11, 13)  # (5 - 1) * 2 + 3, (6 - 1) * 2 + 3
    _check(lambda x, w: _conv(x, w, padding=1, flip_weight=False), t64(1, 2, 4, 4), t64(2, 2, 3, 3))
    _check(lambda x, w: _conv(x, w, stride=2, transpose=True), t64(1, 2, 3, 3), t64(2, 2, 3, 3))


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d_gradients(fused: bool) -> None:
    _check(
        lambda x, w, s: modulated_conv2d(x, w, s, padding=1, fused_modconv=fused),
        t64(2, 2, 4, 4), t64(3, 2, 3, 3), t64(2, 2),
    )


def test_grid_sample_matches_torch_and_is_twice_differentiable() -> None:
    x = t64(2, 3, 6, 5)
    theta = torch.tensor([[[0.9, 0.2, 0.1], [-0.3, 1.1, -0.05]]], dtype=torch.float64).repeat(2, 1, 1)
    grid = F.affine_grid(theta, [2, 3, 7, 7], align_corners=False)
    torch.testing.assert_close(grid_sample(x, grid), F.grid_sample(x, grid, align_corners=False))
    _check(lambda v: grid_sample(v, grid), x)
    # Stock grid_sample cannot do this (no derivative for grid_sampler_2d_backward); R1 needs it.
    v = x.clone().requires_grad_(True)
    w = t64(4, 3, 3, 3).requires_grad_(True)
    (g,) = torch.autograd.grad(F.conv2d(grid_sample(v, grid), w).square().sum(), v, create_graph=True)
    (gw,) = torch.autograd.grad(g.square().sum(), w)
    assert torch.isfinite(gw).all() and gw.abs().sum() > 0
