"""``project``: find the w whose image looks like a target picture (the public projector's algorithm).

One w (broadcast to every layer) and the synthesis noise buffers are optimised with Adam. The
learning rate ramps up over the first 5% of the steps and down (cosine) over the last 25%; a
decaying Gaussian perturbation of w (scaled by the spread of W) helps early exploration; the
noise is kept from encoding the image by penalising its autocorrelation at every scale, and is
renormalised to zero mean and unit variance after each step. Defaults are the public ones.

Distance: the standard VGG16 TorchScript file (LPIPS features), which the user names with
``--vgg`` or ``$ADA_STUDIO_VGG16``; it is never downloaded. Without it a labelled fallback, a
multi-scale pixel L2 + L1 distance, is used: it is logged as a warning and recorded in proj.json.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from core.io.atomic import atomic_path, atomic_write_json
from core.io.images import from_uint8, to_hwc
from core.metrics.extractors import DETECTORS
from core.studio.common import (
    NetworkOptions,
    StudioError,
    check_writable_dir,
    load_generator,
    make_label,
    resolve_device,
    save_png,
)
from core.studio.video import check_video_out, write_video

log = logging.getLogger(__name__)

VGG_ENV = "ADA_STUDIO_VGG16"
VGG_ENV_METRICS = DETECTORS["vgg16"].env  # the metrics' variable names the same file
VGG_KIND = "vgg16-lpips"
FALLBACK_KIND = "fallback-multiscale-pixel-l2-l1"
VGG_MAX_SIZE = 256  # the public projector shrinks larger images to 256 before VGG16
# (steps done, steps in all, the step's distance, the image it scored [1, C, R, R] in 0-255), after each step
StepReport = Callable[[int, int, float, torch.Tensor], None]


@dataclass(frozen=True)
class ProjectConfig:
    """Hyper-parameters; the defaults are the public projector's."""

    num_steps: int = 1000
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5


@dataclass(frozen=True)
class ProjectOptions(NetworkOptions):
    target: str = ""
    outdir: str = "out"
    seed: int = 303
    save_video: bool = False
    vgg: str | None = None
    config: ProjectConfig = field(default_factory=ProjectConfig)


@dataclass
class Projection:
    """w after each step [steps, w_dim] and the distance before each step."""

    w_steps: torch.Tensor
    distances: list[float]
    distance_kind: str


# ---------------------------------------------------------------------------------------------
# Distances


class Distance(Protocol):
    kind: str

    def features(self, images: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, target: torch.Tensor, synth: torch.Tensor) -> torch.Tensor: ...


class VggDistance:
    """LPIPS-style VGG16 features, called exactly as the public projector calls the file."""

    kind = VGG_KIND

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat([1, 3, 1, 1])  # VGG16 sees RGB; grey repeats into each channel
        if images.shape[2] > VGG_MAX_SIZE:
            images = F.interpolate(images, size=(VGG_MAX_SIZE, VGG_MAX_SIZE), mode="area")
        return self.module(images, resize_images=False, return_lpips=True)

    def __call__(self, target: torch.Tensor, synth: torch.Tensor) -> torch.Tensor:
        return (target - synth).square().sum()


class PixelDistance:
    """Fallback without VGG16: mean squared + mean absolute difference, summed over a pyramid.

    Images are scaled to [-1, 1] and halved (area average) down to 8 px, so coarse layout counts
    as much as fine detail. It is NOT perceptual: projections look blurrier than with VGG16.
    """

    kind = FALLBACK_KIND
    MIN_SIZE = 8

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return from_uint8(images)

    def __call__(self, target: torch.Tensor, synth: torch.Tensor) -> torch.Tensor:
        total = synth.new_zeros([])
        while True:
            diff = target - synth
            total = total + diff.square().mean() + diff.abs().mean()
            if min(diff.shape[2:]) < 2 * self.MIN_SIZE:
                return total
            target, synth = F.avg_pool2d(target, 2), F.avg_pool2d(synth, 2)


def find_vgg(path: str | None) -> Path | None:
    """The VGG16 file named by --vgg or the environment; None means: use the fallback."""
    given = path or os.environ.get(VGG_ENV) or os.environ.get(VGG_ENV_METRICS)
    if not given:
        return None
    file = Path(given).expanduser()
    if not file.is_file():
        source = "--vgg" if path else f"${VGG_ENV} or ${VGG_ENV_METRICS}"
        url = DETECTORS["vgg16"].url
        raise StudioError(f"VGG16 weights {file} (from {source}) do not exist; get vgg16.pt once from {url}")
    return file


def load_distance(vgg_file: Path | None, device: torch.device) -> Distance:
    if vgg_file is None:
        log.warning(
            "no VGG16 file (--vgg or $%s): projecting with the %s distance, not the public perceptual one",
            VGG_ENV, FALLBACK_KIND,
        )  # fmt: skip
        return PixelDistance()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 flags TorchScript loading
            module = torch.jit.load(str(vgg_file), map_location=device).eval()
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudioError(f"--vgg {vgg_file}: not a loadable TorchScript VGG16 ({first})") from None
    return VggDistance(module)


# ---------------------------------------------------------------------------------------------
# Target


def load_target(path: Path, resolution: int, channels: int) -> np.ndarray:
    """The target as uint8 [R, R, C]: centre-cropped to a square and resized with Lanczos."""
    try:
        with PIL.Image.open(path) as opened:
            image = _checked_mode(opened, path, channels)
            image.load()
    except PIL.UnidentifiedImageError:
        raise StudioError(f"--target {path}: not an image Pillow can read") from None
    except PIL.Image.DecompressionBombError as exc:
        raise StudioError(f"--target {path}: {exc}") from None
    except OSError as exc:  # missing, unreadable, or truncated image data
        raise StudioError(f"--target {path}: cannot read the image ({exc.strerror or exc})") from None
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
    array = np.array(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def _checked_mode(image: PIL.Image.Image, path: Path, channels: int) -> PIL.Image.Image:
    """RGB (or palette) images for 3-channel G, greyscale for 1-channel; opaque alpha is dropped."""
    bands = image.getbands()
    if image.mode == "P":
        image, bands = image.convert("RGBA"), ("R", "G", "B", "A")
    colour = [b for b in bands if b != "A"]
    if "A" in bands and image.getchannel("A").getextrema()[0] < 255:
        raise StudioError(f"--target {path}: has transparent pixels; flatten it onto a background first")
    if len(colour) != channels or image.mode in ("I", "F", "I;16"):
        raise StudioError(
            f"--target {path}: {image.mode} image with {len(colour)} channel(s); this network makes "
            f"{channels}-channel ({'RGB' if channels == 3 else 'greyscale'}) images"
        )
    return image.convert("RGB" if channels == 3 else "L")


# ---------------------------------------------------------------------------------------------
# Optimisation


def w_statistics(G: nn.Module, label: torch.Tensor, samples: int) -> tuple[np.ndarray, float]:
    """Mean w [1, 1, w_dim] and the root-mean-square distance to it, from fixed z (seed 123)."""
    z = np.random.RandomState(123).randn(samples, G.z_dim)
    c = label.repeat([samples, 1]) if G.c_dim else None
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(z).to(label.device), c)[:, :1, :].cpu().numpy().astype(np.float32)
    w_avg = np.mean(w, axis=0, keepdims=True)
    return w_avg, float((np.sum((w - w_avg) ** 2) / samples) ** 0.5)


def learning_rate(step: int, cfg: ProjectConfig) -> float:
    t = step / cfg.num_steps
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
    return cfg.initial_learning_rate * ramp * min(1.0, t / cfg.lr_rampup_length)


def noise_regularisation(buffers: list[torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation (one pixel shift, both axes) of each noise map, down to 8 px."""
    reg = buffers[0].new_zeros([]) if buffers else torch.zeros([])
    for buf in buffers:
        noise = buf[None, None, :, :]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def project(
    G: nn.Module, target: torch.Tensor, label: torch.Tensor, distance: Distance, cfg: ProjectConfig,
    progress: bool = False, on_step: StepReport | None = None,
) -> Projection:  # fmt: skip
    """Optimise w (and a private copy of the noise buffers) toward ``target`` [C, R, R] uint8.

    ``on_step`` hears of each step from this thread; the image it gets is the one the step
    scored (w plus the exploration noise), so watching costs no extra synthesis."""
    device = label.device
    G = copy.deepcopy(G).eval().requires_grad_(False)  # the noise buffers change; the caller's G must not
    w_avg, w_std = w_statistics(G, label, cfg.w_avg_samples)
    noise_bufs = [buf for name, buf in G.synthesis.named_buffers() if "noise_const" in name]
    target_features = distance.features(target.unsqueeze(0).to(device, torch.float32))

    w_opt = torch.tensor(w_avg, dtype=torch.float32, device=device, requires_grad=True)
    w_steps = torch.zeros([cfg.num_steps, G.w_dim], dtype=torch.float32, device=device)
    optimizer = torch.optim.Adam([w_opt, *noise_bufs], betas=(0.9, 0.999), lr=cfg.initial_learning_rate)
    for buf in noise_bufs:
        buf[:] = torch.randn_like(buf)
        buf.requires_grad = True

    distances = []
    for step in tqdm(range(cfg.num_steps), unit="step", disable=None if progress else True):
        t = step / cfg.num_steps
        w_noise_scale = w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        ws = (w_opt + torch.randn_like(w_opt) * w_noise_scale).repeat([1, G.num_ws, 1])
        synth = (G.synthesis(ws, noise_mode="const") + 1) * (255 / 2)
        dist = distance(target_features, distance.features(synth))
        loss = dist + noise_regularisation(noise_bufs) * cfg.regularize_noise_weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        distances.append(float(dist.detach()))
        w_steps[step] = w_opt.detach()[0, 0]
        if on_step is not None:
            on_step(step + 1, cfg.num_steps, distances[-1], synth.detach())
        with torch.no_grad():  # back to zero mean, unit variance
            for buf in noise_bufs:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
    return Projection(w_steps=w_steps, distances=distances, distance_kind=distance.kind)


# ---------------------------------------------------------------------------------------------
# Command


def _progress_frames(G: nn.Module, projection: Projection, target: np.ndarray) -> Iterator[np.ndarray]:
    """target | projection after each step, side by side."""
    for w in projection.w_steps:
        with torch.no_grad():
            synth = to_hwc(G.synthesis(w.reshape(1, 1, -1).repeat([1, G.num_ws, 1]), noise_mode="const"))[0]
        yield np.concatenate([target, synth], axis=1)


def run_project(opts: ProjectOptions, on_step: StepReport | None = None) -> list[Path]:
    """Project and write the outputs; ``on_step`` (if given) replaces the console progress bar."""
    cfg = opts.config
    if cfg.num_steps < 1 or cfg.w_avg_samples < 1:
        raise StudioError("--steps and --w-avg-samples must be >= 1")
    if not 0 <= opts.seed <= 2**32 - 1:
        raise StudioError(f"--seed {opts.seed}: must be in 0-{2**32 - 1}")
    outdir = check_writable_dir(Path(opts.outdir), "--outdir")
    if opts.save_video:
        check_video_out(str(outdir / "proj.mp4"), "--save-video")
    vgg_file = find_vgg(opts.vgg)
    device = resolve_device(opts.device)
    G = load_generator(opts.network, device)
    target = load_target(Path(opts.target), G.img_resolution, G.img_channels)
    label = make_label(G, opts.class_idx, device)
    distance = load_distance(vgg_file, device)

    np.random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    start = time.perf_counter()
    target_chw = torch.from_numpy(target.transpose(2, 0, 1).copy())
    projection = project(G, target_chw, label, distance, cfg, progress=on_step is None, on_step=on_step)
    elapsed = time.perf_counter() - start
    return _write_outputs(G, opts, outdir, target, projection, elapsed, vgg_file)


def _write_outputs(
    G: nn.Module, opts: ProjectOptions, outdir: Path, target: np.ndarray, projection: Projection, elapsed: float,
    vgg_file: Path | None,
) -> list[Path]:  # fmt: skip
    # The public projected_w.npz: the last step's w repeated to every layer, [1, num_ws, w_dim].
    ws = projection.w_steps[-1].reshape(1, 1, -1).repeat([1, G.num_ws, 1])
    with torch.no_grad():
        proj = to_hwc(G.synthesis(ws, noise_mode="const"))[0]
    written = [save_png(outdir / "target.png", target), save_png(outdir / "proj.png", proj)]
    npz = outdir / "projected_w.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:
        np.savez(f, w=ws.cpu().numpy().astype(np.float32))
    written.append(npz)
    if opts.save_video:
        video = outdir / "proj.mp4"
        write_video(str(video), _progress_frames(G, projection, target), fps=10)
        written.append(video)
    meta = {
        "network": str(opts.network), "target": str(opts.target), "seed": opts.seed,
        "distance": projection.distance_kind, "vgg16": str(vgg_file) if vgg_file else None,
        "distance_first": projection.distances[0], "distance_last": projection.distances[-1],
        "seconds": round(elapsed, 3), "config": asdict(opts.config),
    }  # fmt: skip
    atomic_write_json(outdir / "proj.json", meta)
    written.append(outdir / "proj.json")
    return written
