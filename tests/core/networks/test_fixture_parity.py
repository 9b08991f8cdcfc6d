"""Every reference fixture in shared/fixtures loads strictly and is reproduced within tolerance.

The test is written over the folder, not one configuration: each `<name>.json` with G_kwargs and
D_kwargs beside a `<name>.safetensors` is checked the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.networks import Discriminator, Generator
from tests.conftest import SHARED_FIXTURES

IMG_ATOL = 1e-4
GRAD2_RTOL = 1e-3


def _fixture_names() -> list[str]:
    if not SHARED_FIXTURES.is_dir():
        return []
    names = []
    for meta_path in sorted(SHARED_FIXTURES.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        if "G_kwargs" in meta and meta_path.with_suffix(".safetensors").is_file():
            names.append(meta_path.stem)
    return names


FIXTURES = _fixture_names()


@pytest.fixture(scope="module", params=FIXTURES or [pytest.param(None, marks=pytest.mark.skip("no fixtures"))])
def fixture(request) -> dict:
    name = request.param
    meta = json.loads((SHARED_FIXTURES / f"{name}.json").read_text())
    tensors = load_file(str(SHARED_FIXTURES / f"{name}.safetensors"))
    G = Generator(**meta["G_kwargs"]).eval()
    D = Discriminator(**meta["D_kwargs"]).eval()
    G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")}, strict=True)
    D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")}, strict=True)
    return dict(name=name, meta=meta, t=tensors, G=G, D=D)


def test_at_least_one_fixture(shared_fixtures: Path) -> None:
    assert FIXTURES, f"no network fixtures found in {shared_fixtures}"


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= IMG_ATOL, f"{what}: max abs difference {err:.3g} > {IMG_ATOL}"


@torch.no_grad()
def test_mapping(fixture: dict) -> None:
    G, t = fixture["G"], fixture["t"]
    _close(G.mapping(t["z"], t["c"], truncation_psi=1, skip_w_avg_update=True), t["ws"], "ws")
    if "ws_psi07" in t:
        _close(G.mapping(t["z"], t["c"], truncation_psi=0.7, skip_w_avg_update=True), t["ws_psi07"], "ws_psi07")


@torch.no_grad()
@pytest.mark.parametrize("key,ws_key,noise_mode", [
    ("img_const", "ws", "const"), ("img_psi07_const", "ws_psi07", "const"), ("img_none", "ws", "none"),
])
@pytest.mark.parametrize("fused", [True, False, None])  # None: the device-dependent default
def test_synthesis(fixture: dict, key: str, ws_key: str, noise_mode: str, fused: bool | None) -> None:
    G, t = fixture["G"], fixture["t"]
    if key not in t:
        pytest.skip(f"{fixture['name']} has no {key}")
    img = G.synthesis(t[ws_key], noise_mode=noise_mode, fused_modconv=fused)
    _close(img, t[key], f"{key} (fused_modconv={fused})")


@torch.no_grad()
def test_discriminator(fixture: dict) -> None:
    D, t = fixture["D"], fixture["t"]
    _close(D(t["img_const"], t["c"]), t["d_logits_fake"], "d_logits_fake")
    _close(D(t["x_real"], t["c"]), t["d_logits_real"], "d_logits_real")


def test_r1_penalty_and_second_order_gradient(fixture: dict) -> None:
    D, t, meta = fixture["D"], fixture["t"], fixture["meta"]
    x = t["x_real"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, t["c"]).sum(), x, create_graph=True)
    r1 = grad.square().sum(dim=[1, 2, 3])
    _close(r1, t["r1_penalty"], "r1_penalty")
    param = dict(D.named_parameters())[meta.get("first_D_param", "b32.fromrgb.weight")]
    (g2,) = torch.autograd.grad(r1.sum(), param)
    expected = t["r1_grad_first_param"]
    rel = ((g2 - expected).abs().max() / expected.abs().max()).item()
    assert rel <= GRAD2_RTOL, f"r1 second-order gradient: relative error {rel:.3g} > {GRAD2_RTOL}"
