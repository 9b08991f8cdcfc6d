"""``project``: a few steps toward an image G made reduce the distance and give a usable w.

The real VGG16 file is never available to the tests; its call path is exercised with a scripted
stand-in that has the same signature (``module(img, resize_images=False, return_lpips=True)``).
"""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from core.studio.__main__ import main
from core.studio.project import FALLBACK_KIND, VGG_KIND, VggDistance
from tests.core.studio.conftest import DEMO

STEPS = 20
# torch >= 2.10 flags TorchScript as deprecated; the public VGG16 file is TorchScript all the same.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _VggStandIn(torch.nn.Module):
    """Unit-length features of a 4x-pooled image, behind the public VGG16 file's call signature."""

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        if resize_images or not return_lpips:
            raise RuntimeError("not called as the public projector calls VGG16")
        features = torch.nn.functional.avg_pool2d(img / 255, 4).flatten(1)
        return features / features.square().sum(dim=1, keepdim=True).sqrt()


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> np.ndarray:
    """An image the demo G makes (seed 42, psi 0.7), so a w that reproduces it exists."""
    folder = tmp_path_factory.mktemp("target")
    assert main(["generate", "--network", str(DEMO), "--seeds", "42", "--trunc", "0.7", "--outdir", str(folder)]) == 0
    return folder / "seed0042.png"


def _project(target, outdir, *extra: str, steps: int = STEPS) -> dict:
    args = ["project", "--network", str(DEMO), "--target", str(target), "--steps", str(steps), "--seed", "303"]
    assert main([*args, "--outdir", str(outdir), *extra]) == 0
    return json.loads((outdir / "proj.json").read_text())


def test_fallback_projection_reduces_distance_and_round_trips(target, tmp_path, monkeypatch):
    monkeypatch.delenv("ADA_STUDIO_VGG16", raising=False)
    monkeypatch.delenv("ADA_VGG16_WEIGHTS", raising=False)
    meta = _project(target, tmp_path, "--save-video")
    assert meta["distance"] == FALLBACK_KIND and meta["vgg16"] is None
    assert meta["distance_last"] < 0.5 * meta["distance_first"]
    with np.load(tmp_path / "projected_w.npz") as data:
        assert data.files == ["w"]
        w = data["w"]
    assert w.dtype == np.float32 and w.shape == (1, 8, 64)  # [1, num_ws, w_dim], the public format
    assert np.array_equal(w[0], np.repeat(w[0, :1], 8, axis=0))
    assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / "target.png")), np.asarray(PIL.Image.open(target)))
    # generate --projected-w renders exactly proj.png.
    assert main(["generate", "--network", str(DEMO), "--projected-w", str(tmp_path / "projected_w.npz"),
                 "--outdir", str(tmp_path / "render")]) == 0  # fmt: skip
    rendered = np.asarray(PIL.Image.open(tmp_path / "render" / "proj00.png"))
    assert np.array_equal(rendered, np.asarray(PIL.Image.open(tmp_path / "proj.png")))
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "proj.mp4"))[0] == STEPS


def test_vgg_path_with_a_torchscript_stand_in(target, tmp_path, monkeypatch):
    vgg = tmp_path / "vgg16-standin.pt"
    torch.jit.script(_VggStandIn()).save(str(vgg))
    monkeypatch.setenv("ADA_STUDIO_VGG16", str(vgg))  # the environment names it; --vgg would too
    meta = _project(target, tmp_path / "out", steps=8)
    assert meta["distance"] == VGG_KIND and meta["vgg16"] == str(vgg)
    assert meta["distance_last"] < meta["distance_first"]


def test_vgg_sees_at_most_256_px():
    class Shape(torch.nn.Module):
        def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
            return torch.tensor([img.shape[1], img.shape[2], img.shape[3]])

    distance = VggDistance(torch.jit.script(Shape()))
    assert distance.features(torch.zeros([1, 3, 512, 512])).tolist() == [3, 256, 256]
    assert distance.features(torch.zeros([1, 1, 64, 64])).tolist() == [3, 64, 64]  # grey -> RGB
