"""Layer view: capture with forward hooks, normalisation, gain, FFT, and the render path that uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from viz.layer_view import LayerOptions, capture_layers, fft_magnitude, layer_image, normalise
from viz.renderer import RenderRequest, model_from_generator, render_images, render_view


class _TwoLayers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 3, padding=1)
        self.pool = torch.nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


def test_capture_lists_every_layer_keeps_only_the_chosen_one_and_removes_its_hooks() -> None:
    net = _TwoLayers()
    x = torch.randn(2, 3, 8, 8)
    out, infos, kept = capture_layers(net, lambda: net(x), keep="conv")
    assert [(i.name, i.shape) for i in infos] == [("conv", (5, 8, 8)), ("pool", (5, 4, 4))]
    assert kept is not None and kept.shape == (2, 5, 8, 8)
    torch.testing.assert_close(net.pool(kept), out)
    assert not net.conv._forward_hooks and not net.pool._forward_hooks
    assert capture_layers(net, lambda: net(x), keep="missing")[2] is None


def test_a_constant_channel_gives_a_flat_mid_grey_image() -> None:
    act = np.full((4, 6, 6), 3.7)
    for norm in ("minmax", "std"):
        img = layer_image(act, LayerOptions(mode="gray", channels=(2, 0, 0), norm=norm, gain=5.0))
        assert img.shape == (6, 6, 3) and img.dtype == np.uint8
        assert (img == 128).all()


def test_minmax_spans_zero_to_one_and_gain_stretches_around_mid_grey() -> None:
    x = np.linspace(-2.0, 6.0, 3 * 4 * 4).reshape(3, 4, 4)
    plain = normalise(x, "minmax")
    assert plain.min() == 0.0 and plain.max() == 1.0
    doubled = normalise(x, "minmax", gain=2.0)
    np.testing.assert_allclose(doubled, np.clip(0.5 + 2 * (plain - 0.5), 0, 1))
    half = normalise(x, "minmax", gain=0.5)
    assert half.min() == pytest.approx(0.25) and half.max() == pytest.approx(0.75)
    # mean +- k*std maps to [0, 1]: a value k std above the mean is white.
    std = normalise(x, "std", std_k=1.0)
    above = x >= x.mean() + x.std()
    assert (std[above] == 1.0).all() and (std[~above] < 1.0).all()


def test_rgb_takes_three_channels_and_wraps_indices_beyond_the_layer() -> None:
    act = np.zeros((3, 2, 2))
    act[0, 0, 0] = act[1, 0, 1] = act[2, 1, 0] = 1.0
    img = layer_image(act, LayerOptions(mode="rgb", channels=(0, 1, 5)))  # 5 wraps to 2
    assert img.shape == (2, 2, 3)
    assert img[0, 0].tolist() == [255, 0, 0] and img[0, 1].tolist() == [0, 255, 0]
    assert img[1, 0].tolist() == [0, 0, 255] and img[1, 1].tolist() == [0, 0, 0]


def test_fft_of_a_sinusoid_peaks_at_its_frequency_bin() -> None:
    h, w, cycles = 16, 32, 5
    xs = np.arange(w)
    wave = np.cos(2 * np.pi * cycles * xs / w)[None, None, :].repeat(h, axis=1)  # [1, H, W]
    mag = fft_magnitude(wave)[0]
    assert mag.shape == (h, w)
    peaks = sorted(zip(*np.unravel_index(np.argsort(mag, axis=None)[-2:], mag.shape), strict=True))
    assert peaks == [(h // 2, w // 2 - cycles), (h // 2, w // 2 + cycles)]  # zero frequency at the centre


def test_render_view_shows_a_layer_with_its_stats_and_an_unknown_name_is_one_line(
    fixture_generator: torch.nn.Module,
) -> None:
    model = model_from_generator(fixture_generator, "fixture")
    with torch.inference_mode():
        plain = render_view(model, RenderRequest(model.key, x=3))
        layer = render_view(model, RenderRequest(model.key, x=3, layer="b8.conv1", grid_w=2, grid_h=2))
        gray = render_images(
            model, RenderRequest(model.key, x=3, layer="b16.conv1", layer_opts=LayerOptions(mode="gray"))
        )
        fft = render_images(model, RenderRequest(model.key, x=3, layer="b16.conv1", layer_opts=LayerOptions(fft=True)))
        unknown = render_view(model, RenderRequest(model.key, x=3, layer="b9.nothing"))
    names = [i.name for i in plain.layers.layers]
    assert "b8.conv1" in names and "b32:img" in names and plain.layers.name is None
    assert layer.image.shape == (16, 16, 3)  # 2 x 2 cells of the 8 x 8 layer
    assert layer.layers.name == "b8.conv1" and layer.layers.shown_channels == [0, 1, 2]
    assert layer.layers.all_channels is not None and layer.layers.selected is not None
    assert gray.shape == (16, 16, 3) and (gray[..., 0] == gray[..., 1]).all()
    assert fft.shape == (16, 16, 3) and not np.array_equal(fft, render_images(
        model, RenderRequest(model.key, x=3, layer="b16.conv1")))  # fmt: skip
    err = unknown.layers.error
    assert err is not None and "\n" not in err and "b9.nothing" in err
    np.testing.assert_array_equal(unknown.image, plain.image)  # the output stays on screen


def test_a_render_of_another_layer_is_not_an_intermediate_step_of_this_view() -> None:
    # The renderer shows a superseded result only when it has the same shape key.
    a = RenderRequest("m", x=1.0, layer="b8.conv1")
    assert a.shape_key() == RenderRequest("m", x=2.5, layer="b8.conv1").shape_key()
    assert a.shape_key() != RenderRequest("m", x=1.0, layer="b16.conv1").shape_key()
    assert a.shape_key() != RenderRequest("m", x=1.0).shape_key()
