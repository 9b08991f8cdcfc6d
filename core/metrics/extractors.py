"""Feature extractors: the public TorchScript detectors (Inception-v3, VGG16) and an offline net.

Every extractor takes uint8 images [N, 3, H, W] (any H, W) and returns float32 features [N, D]. Its
``identity`` names it exactly (file hash or weight hash), for cache keys and result records.

The public detector files are never downloaded here: pass the path (``--inception``/``--vgg16``) or
set the environment variable. The offline extractor is a fixed random-weight conv net; it needs no
file, so metrics run anywhere, but its numbers are NOT comparable to FID/KID/PR from Inception or
VGG16 (nor to other random nets); use them to compare runs measured the same way.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


class MetricsError(ValueError):
    """Metrics cannot run as asked; the message says what to pass or fix."""


@dataclass(frozen=True)
class DetectorSource:
    """Where a public detector comes from and how users point us at their copy."""

    label: str
    file_name: str
    option: str
    env: str
    url: str


DETECTORS = MappingProxyType(
    {
        "inception": DetectorSource(
            "Inception-v3",
            "inception-2015-12-05.pt",
            "--inception",
            "ADA_INCEPTION_WEIGHTS",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        ),
        "vgg16": DetectorSource(
            "VGG16",
            "vgg16.pt",
            "--vgg16",
            "ADA_VGG16_WEIGHTS",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",
        ),
    }
)


class FeatureExtractor(Protocol):
    identity: str
    feature_dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def find_detector(
    kind: str, path: str | os.PathLike[str] | None, metric: str, has_option: bool = True
) -> Path:
    """The local detector file from ``path`` or the environment; a one-line error naming both if absent.

    ``has_option`` False is for callers without a path option (the trainer): the error then names
    only the environment variable, never an option the user cannot pass there.
    """
    source = DETECTORS[kind]
    given = path or os.environ.get(source.env)
    ways = f"pass {source.option} PATH or set {source.env}=PATH" if has_option else f"set {source.env}=PATH"
    if not given:
        raise MetricsError(
            f"{metric} needs the {source.label} weights {source.file_name}: {ways} "
            f"(get the file once from {source.url}); the offline metrics "
            f"fd_offline/kid_offline/pr_offline need no file"
        )
    file = Path(given).expanduser()
    if not file.is_file():
        where = f"{source.option} or {source.env}" if has_option else source.env
        raise MetricsError(
            f"{source.label} weights {file} (from {where}) do not exist; get {source.file_name} from {source.url}"
        )
    return file


class TorchScriptDetector:
    """A public metrics detector, called as ``detector(images_uint8, return_features=True)``."""

    def __init__(self, kind: str, path: Path, device: torch.device) -> None:
        try:
            with warnings.catch_warnings():
                # The public detector files are TorchScript; torch >= 2.10 flags the loader as deprecated.
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MetricsError(
                f"{path}: not a loadable TorchScript {DETECTORS[kind].label} detector ({first_line})"
            ) from None
        self.device = device
        self.identity = f"{kind}-{_file_digest(path)}"
        self.feature_dim = 0  # known after the first call

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        features = self.module(images.to(self.device), return_features=True).float()
        self.feature_dim = features.shape[1]
        return features


class RandomConvExtractor(nn.Module):
    """Offline features: a fixed random-weight ReLU conv net (He-initialised from ``seed``).

    Images are scaled to 64x64 and [-1, 1]; four stages of conv3x3 + ReLU + 2x average pooling
    (16, 32, 64, 128 channels); the features are each stage's per-channel mean (240 values), so
    they see both fine texture and coarse layout, with few enough dimensions that a few thousand
    samples estimate their covariance well. Random conv features are a weaker but honest
    stand-in for a trained network: good for tracking one run, not for comparing with papers.
    """

    VERSION = 1
    CHANNELS = (16, 32, 64, 128)
    INPUT_SIZE = 64

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        weights, in_channels = [], 3
        for out_channels in self.CHANNELS:
            fan_in = in_channels * 9
            w = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * (2 / fan_in) ** 0.5
            weights.append(nn.Parameter(w, requires_grad=False))
            in_channels = out_channels
        self.weights = nn.ParameterList(weights)
        digest = hashlib.sha256(b"".join(w.detach().numpy().tobytes() for w in self.weights)).hexdigest()[:12]
        self.identity = f"offline-randconv-v{self.VERSION}-seed{seed}-{digest}"
        self.feature_dim = sum(self.CHANNELS)
        self.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        device = self.weights[0].device
        x = images.to(device=device, dtype=torch.float32) / 127.5 - 1
        if x.shape[-2:] != (self.INPUT_SIZE, self.INPUT_SIZE):
            x = F.interpolate(
                x,
                size=(self.INPUT_SIZE, self.INPUT_SIZE),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        pooled = []
        for w in self.weights:
            x = F.avg_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


class LayoutExtractor:
    """Layout features: the image itself at ``SIZE`` x ``SIZE`` (area average), RGB in [-1, 1].

    What the leak indicators compare: augmentation leaks are changes of geometry and colour,
    which a thumbnail keeps and the offline net's pooled features largely discard (measured on
    builtin:digits: an x-flip moves the pooled features by 1 % of their spread, the thumbnail by 8 %).
    """

    SIZE = 8
    VERSION = 1

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.identity = f"layout-thumb{self.SIZE}-v{self.VERSION}"
        self.feature_dim = 3 * self.SIZE * self.SIZE

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = to_rgb(images.to(self.device)).to(torch.float32) / 127.5 - 1
        return F.adaptive_avg_pool2d(x, self.SIZE).flatten(1)


def build_extractor(
    kind: str,
    device: torch.device,
    metric: str,
    inception: str | os.PathLike[str] | None = None,
    vgg16: str | os.PathLike[str] | None = None,
) -> FeatureExtractor:
    """The extractor a metric uses: ``inception``, ``vgg16``, ``offline`` or ``layout``."""
    if kind == "offline":
        return RandomConvExtractor().to(device)
    if kind == "layout":
        return LayoutExtractor(device)
    path = find_detector(kind, inception if kind == "inception" else vgg16, metric)
    return TorchScriptDetector(kind, path, device)


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Grayscale [N, 1, H, W] repeated to 3 channels; RGB passes through."""
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images
