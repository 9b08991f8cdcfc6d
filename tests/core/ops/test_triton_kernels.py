"""The fused Triton kernels (core.ops.cuda) against the reference path, run on the CPU by Triton's
interpreter (TRITON_INTERPRET=1): values, gradients and gradients of gradients, the public
network fixture through the kernels, and the dispatch around them (self-check, fallback, knobs).
"""

from __future__ import annotations

import importlib
import json
import logging
import os

import pytest
import torch
from safetensors.torch import load_file

if os.environ.get("CI"):
    import triton  # noqa: F401  (CI installs the dev extra: a skip would hide the kernels' tests)
else:
    pytest.importorskip("triton", reason="Triton (in the dev extra) runs the kernels' interpreter")

from core.networks import Discriminator, Generator  # noqa: E402
from core.ops import _impl, bias_act, setup_filter, upfirdn2d  # noqa: E402
from core.ops import cuda as cuda_kernels  # noqa: E402
from tests.conftest import SHARED_FIXTURES  # noqa: E402

FIXTURE = "sg2_res32_skip_resnet"


@pytest.fixture(scope="module", autouse=True)
def interpreter():
    """Triton decides at decoration time whether a kernel is interpreted: set the variable, then
    (re)load the kernel modules; afterwards put both back as they were."""
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    modules = [importlib.reload(cuda_kernels.kernel_module(op)) for op in cuda_kernels.OPS]
    cuda_kernels.forget_checks()
    yield
    if old is None:
        del os.environ["TRITON_INTERPRET"]
    else:
        os.environ["TRITON_INTERPRET"] = old
    for module in modules:
        importlib.reload(module)
    cuda_kernels.forget_checks()


def _grads(y: torch.Tensor, inputs: list[torch.Tensor], seed: int = 1) -> list[torch.Tensor | None]:
    """Gradients for a random dy, then the gradients of a random projection of them with respect to
    dy and the inputs: the double-backward path R1 and path-length regularisation take."""
    gen = torch.Generator().manual_seed(seed)
    dy = torch.randn(y.shape, generator=gen, dtype=y.dtype).requires_grad_()
    first = torch.autograd.grad(y, inputs, dy, create_graph=True)
    w = [torch.randn(g.shape, generator=gen, dtype=g.dtype) for g in first]
    second = torch.autograd.grad(sum((g * wi).sum() for g, wi in zip(first, w, strict=True)), [dy, *inputs],
                                 allow_unused=True)
    return [*first, *second]


def _same(kernel: list[torch.Tensor | None], ref: list[torch.Tensor | None], atol: float) -> None:
    for i, (k, r) in enumerate(zip(kernel, ref, strict=True)):
        if r is None or k is None:
            assert (k is None or not k.any()) and (r is None or not r.any()), f"output {i}: one side has no gradient"
            continue
        assert k.shape == r.shape and k.dtype == r.dtype, f"output {i}: {k.shape}/{k.dtype} vs {r.shape}/{r.dtype}"
        err = (k.double() - r.double()).abs().max().item()
        assert err <= atol, f"output {i}: max difference {err:.3g} > {atol}"


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
@pytest.mark.parametrize("clamp", [None, 0.7])
@pytest.mark.parametrize("shape,dim,bias", [((3, 5, 4, 6), 1, True), ((4, 7), 1, True), ((6, 3), 0, True),
                                            ((2, 5, 3, 3), 1, False)])
def test_bias_act_kernel_matches_reference(act: str, clamp: float | None, shape, dim: int, bias: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()
    b = torch.randn(shape[dim], generator=gen, dtype=torch.float64).requires_grad_() if bias else None
    inputs = [x] + ([b] if bias else [])
    outs = {}
    for impl in ("cuda", "ref"):
        y = bias_act(x, b, dim=dim, act=act, clamp=clamp, impl=impl)
        outs[impl] = [y, *_grads(y, inputs)]
    _same(outs["cuda"], outs["ref"], atol=1e-12)


def test_bias_act_kernel_in_float32_and_float16() -> None:
    gen = torch.Generator().manual_seed(0)
    x, b = torch.randn(2, 8, 5, 5, generator=gen) * 3, torch.randn(8, generator=gen)
    y_k = bias_act(x, b, act="lrelu", clamp=2.5, impl="cuda")
    _same([y_k], [bias_act(x, b, act="lrelu", clamp=2.5, impl="ref")], atol=1e-6)
    # fp16 in, fp16 out, computed in fp32 (the reference computes in fp16: within fp16's rounding)
    y_h = bias_act(x.half(), b.half(), act="lrelu", clamp=2.5, impl="cuda")
    assert y_h.dtype == torch.float16
    assert (y_h.float() - y_k).abs().max().item() < 5e-3


def test_bias_act_kernel_refuses_what_it_does_not_cover() -> None:
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="does not cover"):
        bias_act(x, act="tanh", impl="cuda")
    assert torch.equal(bias_act(x, act="tanh"), torch.tanh(x))  # auto on CPU: the reference path


GEOMETRIES = [
    # up, down, padding (x0, x1, y0, y1): the networks' upsample, downsample and filter calls, and
    # uneven ones (anisotropic, cropping, odd factors) that conv2d_resample and other callers may pass.
    ((2, 2), (1, 1), (2, 1, 2, 1)),
    ((1, 1), (2, 2), (1, 1, 1, 1)),
    ((1, 1), (1, 1), (1, 2, 0, -1)),
    ((2, 1), (1, 2), (3, 0, 1, 2)),
    ((3, 3), (2, 2), (0, 3, -1, 2)),
]


@pytest.mark.parametrize("up,down,padding", GEOMETRIES)
@pytest.mark.parametrize("taps,flip", [([1, 3, 3, 1], False), ([1, 2, 1], True), ([1, 2, 3, 4, 4, 3, 2, 1], False)])
def test_upfirdn2d_kernel_matches_reference(up, down, padding, taps, flip: bool) -> None:
    f = setup_filter(taps).double()  # 8 taps stay a separable 1-D filter (two passes)
    x = torch.randn(2, 3, 10, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    outs = {}
    for impl in ("cuda", "ref"):
        y = upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=1.7, impl=impl)
        outs[impl] = [y, *_grads(y, [x])]
    _same(outs["cuda"], outs["ref"], atol=1e-12)


def test_upfirdn2d_kernel_in_float16_and_with_a_trainable_filter() -> None:
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    y_ref = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], gain=4, impl="ref")
    y_h = upfirdn2d(x.half(), f, up=2, padding=[2, 1, 2, 1], gain=4, impl="cuda")
    assert y_h.dtype == torch.float16 and (y_h.float() - y_ref).abs().max().item() < 1e-2
    with pytest.raises(ValueError, match="does not cover"):
        upfirdn2d(x, f.clone().requires_grad_(), impl="cuda")


def test_dispatch_self_checks_once_and_falls_back(monkeypatch, caplog) -> None:
    cuda_kernels.forget_checks()
    cpu = torch.device("cpu")
    assert cuda_kernels.kernel_ready("bias_act", cpu) and cuda_kernels.kernel_ready("upfirdn2d", cpu)
    # A kernel that disagrees with the reference path is logged and never used.
    cuda_kernels.forget_checks()
    module = cuda_kernels.kernel_module("upfirdn2d")
    monkeypatch.setattr(module, "self_check", lambda device: 0.5)
    with caplog.at_level(logging.WARNING, logger="core.ops.cuda"):
        assert not cuda_kernels.kernel_ready("upfirdn2d", cpu)
    assert "differs from the reference path by 0.5; using the reference path" in caplog.text
    with pytest.raises(RuntimeError, match="self-check failed"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), setup_filter([1, 1]), impl="cuda")
    # One that fails to compile or run, too.
    cuda_kernels.forget_checks()

    def broken(device: torch.device) -> float:
        raise RuntimeError("ptxas fatal")

    monkeypatch.setattr(module, "self_check", broken)
    with caplog.at_level(logging.WARNING, logger="core.ops.cuda"):
        assert not cuda_kernels.kernel_ready("upfirdn2d", cpu)
    assert "failed to run (RuntimeError: ptxas fatal); using the reference path" in caplog.text
    monkeypatch.undo()
    cuda_kernels.forget_checks()
    # Outside the interpreter a CPU tensor never gets a kernel.
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not cuda_kernels.kernel_ready("bias_act", cpu)


@pytest.fixture()
def kernels_everywhere():
    with _impl.default_impl("cuda"):
        yield


@pytest.mark.skipif(not (SHARED_FIXTURES / f"{FIXTURE}.json").is_file(), reason="no shared fixture")
def test_public_fixture_through_the_kernels(kernels_everywhere, monkeypatch) -> None:
    """The public networks' reference outputs, with every bias_act and upfirdn2d on the kernels."""
    for op in cuda_kernels.OPS:  # fewer, larger programs: the interpreter's cost is per program
        monkeypatch.setattr(cuda_kernels.kernel_module(op), "BLOCK", 16384)
    meta = json.loads((SHARED_FIXTURES / f"{FIXTURE}.json").read_text())
    t = load_file(str(SHARED_FIXTURES / f"{FIXTURE}.safetensors"))
    G = Generator(**meta["G_kwargs"]).eval()
    D = Discriminator(**meta["D_kwargs"]).eval()
    G.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("G.")}, strict=True)
    D.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("D.")}, strict=True)
    with torch.no_grad():
        img = G.synthesis(t["ws"], noise_mode="const")
    assert (img - t["img_const"]).abs().max().item() <= 1e-4
    x = t["x_real"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, t["c"]).sum(), x, create_graph=True)
    r1 = grad.square().sum(dim=[1, 2, 3])
    assert (r1 - t["r1_penalty"]).abs().max().item() <= 1e-4 * max(1.0, t["r1_penalty"].abs().max().item())
    param = dict(D.named_parameters())[meta.get("first_D_param", "b32.fromrgb.weight")]
    (g2,) = torch.autograd.grad(r1.sum(), param)
    expected = t["r1_grad_first_param"]
    assert ((g2 - expected).abs().max() / expected.abs().max()).item() <= 1e-3


def test_ops_knob_forces_the_reference_path_or_the_kernels(kernels_everywhere) -> None:
    x = torch.randn(2, 3)
    # forced kernels: calls a kernel does not cover take the reference path instead of failing
    assert _impl.resolve_impl("bias_act", "auto", x) == "cuda"
    assert torch.equal(bias_act(x, act="tanh"), torch.tanh(x))
    _impl.set_default_impl("ref")
    assert _impl.resolve_impl("bias_act", "auto", x) == "ref"
    with pytest.raises(ValueError, match="use one of"):
        _impl.set_default_impl("fast")


def test_a_bad_ops_knob_is_one_warning_and_ignored() -> None:
    import subprocess
    import sys

    env = {**os.environ, "ADA_STUDIO_OPS": "fast"}
    code = "import core.ops._impl as i; print(i._default_impl)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "auto"
    expected = "ADA_STUDIO_OPS='fast' is not one of auto, ref, cuda; ignoring it (auto)"
    assert done.stderr.strip().splitlines() == [expected]

