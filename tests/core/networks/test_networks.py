"""Properties of the StyleGAN2 networks across architectures and configurations."""

from __future__ import annotations

import pytest
import torch

from core.networks import Discriminator, Generator

SMALL = dict(channel_base=256, channel_max=32)


def make_G(res=16, c_dim=0, channels=3, arch="skip", **kw) -> Generator:
    return Generator(
        z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=res, img_channels=channels,
        mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(architecture=arch, **SMALL, **kw),
    )


def make_D(res=16, c_dim=0, channels=3, arch="resnet", **kw) -> Discriminator:
    return Discriminator(c_dim=c_dim, img_resolution=res, img_channels=channels, architecture=arch, **SMALL, **kw)


@pytest.mark.parametrize("arch", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_shapes(arch: str, channels: int) -> None:
    G = make_G(arch=arch, channels=channels).eval()
    z = torch.randn(2, 16)
    img = G(z, None, noise_mode="const")
    assert img.shape == (2, channels, 16, 16) and img.dtype == torch.float32
    assert G.num_ws == G.mapping.num_ws == 1 + 2 * 2 + 1  # conv1 at 4 px, 2 convs at 8 and 16 px, last torgb


@pytest.mark.parametrize("arch", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_discriminator_shapes_and_grad(arch: str, channels: int) -> None:
    D = make_D(arch=arch, channels=channels)
    x = torch.randn(4, channels, 16, 16, requires_grad=True)
    logits = D(x, None)
    assert logits.shape == (4, 1)
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    g.square().sum().backward()
    # R1 reaches every weight (the output bias alone cannot influence the input gradient).
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters() if p.ndim > 1)


def test_public_state_dict_names() -> None:
    G, D = make_G(res=8, arch="skip"), make_D(res=8, arch="resnet", c_dim=3)
    g_keys, d_keys = set(G.state_dict()), set(D.state_dict())
    for key in ["mapping.fc0.weight", "mapping.fc1.bias", "mapping.w_avg", "synthesis.b4.const",
                "synthesis.b4.conv1.affine.weight", "synthesis.b4.conv1.noise_const",
                "synthesis.b4.conv1.noise_strength", "synthesis.b8.conv0.weight", "synthesis.b8.torgb.affine.bias",
                "synthesis.b8.resample_filter"]:
        assert key in g_keys, key
    for key in ["b8.fromrgb.weight", "b8.conv0.weight", "b8.conv1.bias", "b8.skip.weight",
                "b4.conv.weight", "b4.fc.weight", "b4.out.weight", "mapping.embed.weight", "mapping.fc0.weight"]:
        assert key in d_keys, key


def test_conditional_models() -> None:
    G, D = make_G(c_dim=4).eval(), make_D(c_dim=4)
    z, c = torch.randn(4, 16), torch.eye(4)
    img = G(z, c, noise_mode="const")
    assert D(img, c).shape == (4, 1)
    # The label changes the image and the logits.
    c2 = c.roll(1, dims=0)
    assert not torch.allclose(img, G(z, c2, noise_mode="const"))
    assert not torch.allclose(D(img, c), D(img, c2))
    with pytest.raises(ValueError, match="conditional"):
        G(z, None)


def test_truncation_and_w_avg() -> None:
    G = make_G()
    z = torch.randn(8, 16)
    G.train()
    G.mapping(z, None)  # training mode tracks w_avg
    assert G.mapping.w_avg.abs().sum() > 0
    G.eval()
    ws = G.mapping(z, None)
    avg = G.mapping(z, None, truncation_psi=0)
    torch.testing.assert_close(avg, G.mapping.w_avg.expand_as(avg))
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
    assert not torch.allclose(cut[:, :2], ws[:, :2])


def test_noise_modes_and_fused_paths_agree() -> None:
    G = make_G(arch="resnet").eval()
    ws = G.mapping(torch.randn(3, 16), None)
    a = G.synthesis(ws, noise_mode="const", fused_modconv=True)
    b = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for p in G.parameters():
        if p.ndim == 0:  # noise strengths start at 0: make noise visible
            p.data.fill_(0.5)
    r1, r2 = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
    assert not torch.allclose(r1, r2)
    torch.testing.assert_close(G.synthesis(ws, noise_mode="none"), G.synthesis(ws, noise_mode="none"))


def test_fp16_layers_run_fp32_on_cpu() -> None:
    G = make_G(num_fp16_res=2, conv_clamp=256).eval()
    assert G.synthesis.b16.use_fp16 and not G.synthesis.b4.use_fp16
    img = G(torch.randn(2, 16), None)
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    D = make_D(num_fp16_res=2, conv_clamp=256)
    assert D.b16.use_fp16 and D(img, None).dtype == torch.float32


def test_freeze_d_layers() -> None:
    D = make_D(block_kwargs=dict(freeze_layers=2))
    assert "b16.fromrgb.weight" not in dict(D.named_parameters())  # frozen: a buffer
    assert "b16.fromrgb.weight" in D.state_dict()
    assert "b16.conv1.weight" in dict(D.named_parameters())


def test_constructor_keywords_are_kept() -> None:
    G = make_G()
    assert Generator(**G.init_kwargs).state_dict().keys() == G.state_dict().keys()
    D = make_D()
    assert Discriminator(**D.init_kwargs).state_dict().keys() == D.state_dict().keys()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="power of two"):
        make_G(res=24)
    with pytest.raises(ValueError, match="architecture"):
        make_D(arch="dense")
    with pytest.raises(ValueError, match="ws must be"):
        make_G().synthesis(torch.zeros(1, 3, 16))
