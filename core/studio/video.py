"""``video``: a latent walk in W between keyframes, one walk per grid cell, streamed to a file.

Keyframes are seeds (mapped to ws, with truncation) or ws saved in projected_w.npz files, or
both in one list (``--keyframes 3,proj/projected_w.npz,7``: a plain number is a seed). As in
StyleGAN3's gen_video, the keyframes are dealt to the cells in order: with a 2x1 grid and seeds
0-5, the left cell walks 0, 1, 2 and the right one 3, 4, 5. Between two keyframes the weight
follows smoothstep, so the walk slows down at each keyframe instead of turning abruptly.

Outputs: ``.mp4`` (H.264 through imageio-ffmpeg's bundled ffmpeg), ``.gif`` (Pillow), or a folder
(name ending in ``/``) of PNG frames. Frames are rendered one at a time and handed to the encoder,
so memory does not grow with the length of the video.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np
import PIL.Image
import torch
from PIL import GifImagePlugin
from torch import nn
from tqdm import tqdm

from core.io.atomic import atomic_path
from core.io.images import tile, to_hwc
from core.studio import common

log = logging.getLogger(__name__)

KINDS = ("lerp", "slerp")
FrameReport = Callable[[int, int], None]  # (frames written, frames in the video), after each frame
MP4_QUALITY = 8  # imageio-ffmpeg's 0-10 scale; 8 is crf 10: small files without visible blocks


@dataclass(frozen=True)
class VideoOptions(common.NetworkOptions):
    out: str = "walk.mp4"
    seeds: tuple[int, ...] = ()
    keyframes: tuple[str, ...] = ()
    grid: str = "1x1"
    seconds: float = 8.0
    fps: float = 30.0
    kind: str = "lerp"
    loop: bool = False


# ---------------------------------------------------------------------------------------------
# Interpolation


def smoothstep(u: float) -> float:
    return u * u * (3 - 2 * u)


def keyframe_position(frame: int, num_frames: int, num_keys: int, loop: bool) -> tuple[int, int, float]:
    """(keyframe a, keyframe b, eased weight of b) for a frame.

    Looping videos spread all ``num_keys`` segments (the last one back to keyframe 0) over the
    frames, so frame ``num_frames`` would be frame 0 again; others end exactly on the last keyframe.
    """
    if num_keys == 1:
        return 0, 0, 0.0
    if loop:
        pos = frame * num_keys / num_frames
        a = math.floor(pos)
        return a % num_keys, (a + 1) % num_keys, smoothstep(pos - a)
    pos = frame * (num_keys - 1) / max(num_frames - 1, 1)
    a = min(math.floor(pos), num_keys - 2)
    return a, a + 1, smoothstep(pos - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, center: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of each row's offset from ``center`` (W is centred on w_avg)."""
    u, v = a - center, b - center
    norm_u, norm_v = u.norm(dim=-1, keepdim=True), v.norm(dim=-1, keepdim=True)
    cos = ((u * v).sum(-1, keepdim=True) / (norm_u * norm_v).clamp_min(1e-12)).clamp(-1, 1)
    theta = torch.acos(cos)
    sin = torch.sin(theta)
    # Nearly parallel rows: slerp tends to lerp, and the sin ratio would divide by ~0.
    near = sin.abs() < 1e-6
    safe = torch.where(near, torch.ones_like(sin), sin)
    wa = torch.where(near, torch.full_like(sin, 1 - t), torch.sin((1 - t) * theta) / safe)
    wb = torch.where(near, torch.full_like(sin, t), torch.sin(t * theta) / safe)
    return center + wa * u + wb * v


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, kind: str, center: torch.Tensor) -> torch.Tensor:
    if t == 0:
        return a  # exactly the keyframe, not a rounding of it
    if kind == "slerp":
        return slerp(a, b, t, center)
    return a + (b - a) * t


def frame_ws(
    keys: torch.Tensor, frame: int, num_frames: int, loop: bool, kind: str, center: torch.Tensor
) -> torch.Tensor:
    """ws [cells, num_ws, w_dim] of one frame; ``keys`` is [cells, keyframes, num_ws, w_dim]."""
    a, b, t = keyframe_position(frame, num_frames, keys.shape[1], loop)
    return interpolate(keys[:, a], keys[:, b], t, kind, center)


@torch.no_grad()
def render_frames(
    G: nn.Module, keys: torch.Tensor, grid: tuple[int, int], num_frames: int, loop: bool, kind: str,
    noise_mode: str,
) -> Iterator[np.ndarray]:  # fmt: skip
    """uint8 frames [H, W, C]: all cells of a frame in one synthesis batch."""
    w_avg = getattr(G.mapping, "w_avg", None)
    center = w_avg if w_avg is not None else torch.zeros([G.w_dim], device=keys.device)
    for frame in range(num_frames):
        ws = frame_ws(keys, frame, num_frames, loop, kind, center)
        yield tile(list(to_hwc(G.synthesis(ws, noise_mode=noise_mode))), *grid)


# ---------------------------------------------------------------------------------------------
# Writers


class FrameSink(Protocol):
    def add(self, frame: np.ndarray) -> None: ...


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame


def _even(frame: np.ndarray) -> np.ndarray:
    # H.264 in yuv420p needs even sides; pad with black rather than rescale the picture.
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0))) if h % 2 or w % 2 else frame


def video_kind(out: str) -> str:
    """``mp4``, ``gif`` or ``frames`` (a folder) from the --out name."""
    if out.endswith(("/", "\\")) or Path(out).is_dir():
        return "frames"
    suffix = Path(out).suffix.lower()
    if suffix in (".mp4", ".gif"):
        return suffix[1:]
    raise common.StudioError(f"--out {out}: name a .mp4 or .gif file, or a folder ending in / for PNG frames")


def check_video_out(out: str, option: str = "--out") -> Path:
    kind = video_kind(out)
    if kind == "frames":
        return common.check_writable_dir(Path(out), option)
    if kind == "mp4":
        _ffmpeg_module(option)
    return common.check_writable_file(Path(out), option)


def _ffmpeg_module(option: str) -> ModuleType:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise common.StudioError(
            f"{option}: MP4 needs imageio-ffmpeg (pip install 'ada-studio[video]'); or write .gif or a folder/"
        ) from None
    return imageio_ffmpeg


@contextlib.contextmanager
def _mp4_sink(path: Path, fps: float) -> Iterator[FrameSink]:
    imageio_ffmpeg = _ffmpeg_module("--out")

    class Sink:
        writer = None

        def add(self, frame: np.ndarray) -> None:
            frame = _even(_rgb(frame))
            if self.writer is None:
                self.writer = imageio_ffmpeg.write_frames(
                    str(tmp), (frame.shape[1], frame.shape[0]), fps=fps, codec="libx264", quality=MP4_QUALITY,
                    macro_block_size=1, ffmpeg_log_level="error", output_params=["-f", "mp4"],
                )  # fmt: skip
                self.writer.send(None)
            self.writer.send(np.ascontiguousarray(frame))

    with atomic_path(path) as tmp:
        sink = Sink()
        try:
            yield sink
        finally:
            if sink.writer is not None:
                sink.writer.close()
        if sink.writer is None:  # an empty temporary file must not become the video
            raise common.StudioError(f"--out {path}: no frames to write")


@contextlib.contextmanager
def _frames_sink(folder: Path) -> Iterator[FrameSink]:
    class Sink:
        count = 0

        def add(self, frame: np.ndarray) -> None:
            common.save_png(folder / f"frame{self.count:06d}.png", frame)
            self.count += 1

    yield Sink()


def write_gif(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """Encode and write each frame as it comes, with its own 256-colour palette; loops forever.

    Pillow's ``save(save_all=True)`` keeps every frame until the end (to merge equal ones), so the
    file is assembled from Pillow's per-frame GIF helpers instead: header, frames, trailer.
    """
    duration = round(1000 / fps)
    count = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for frame in frames:
            image = PIL.Image.fromarray(_rgb(frame), "RGB").convert("P", palette=PIL.Image.Palette.ADAPTIVE)
            if count == 0:
                header, _ = GifImagePlugin.getheader(image, None, {"loop": 0, "duration": duration})
                f.writelines(header)
            f.writelines(GifImagePlugin.getdata(image, (0, 0), duration=duration, include_color_table=True))
            count += 1
        if count == 0:
            raise common.StudioError(f"--out {path}: no frames to write")
        f.write(b";")  # the GIF trailer
    return count


def write_video(out: str, frames: Iterator[np.ndarray], fps: float) -> int:
    """Stream ``frames`` to ``out`` (.mp4, .gif or folder/); returns the number of frames written."""
    kind = video_kind(out)
    if kind == "gif":
        return write_gif(Path(out), frames, fps)
    sink_cm = _mp4_sink(Path(out), fps) if kind == "mp4" else _frames_sink(Path(out))
    count = 0
    with sink_cm as sink:
        for frame in frames:
            sink.add(frame)
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Command


def keyframe_seed(key: str) -> int | None:
    """The seed a --keyframes entry names (a plain number), or None for a ws file."""
    key = key.strip()
    return int(key) if key.isdigit() else None


def _seed_or_file(key: str) -> int | str:
    seed = keyframe_seed(key)
    return key if seed is None else seed


def _keyframe_ws(G: nn.Module, opts: VideoOptions, device: torch.device) -> torch.Tensor:
    """All keyframes' ws [K, num_ws, w_dim], in order: seeds, saved ws files, or both mixed."""
    keys: list[int | str] = list(opts.seeds) or [_seed_or_file(k) for k in opts.keyframes]
    if any(isinstance(k, int) for k in keys):
        label = common.make_label(G, opts.class_idx, device)
        common.check_truncation(G, opts.trunc)
        too_big = [k for k in keys if isinstance(k, int) and k > common.SEED_MAX]
        if too_big:
            raise common.StudioError(f"--keyframes: seed {too_big[0]} is out of range (at most {common.SEED_MAX})")
    parts = []
    with torch.no_grad():
        for key in keys:
            if isinstance(key, int):
                # One seed at a time: each keyframe is then the very ws `generate --seeds` renders.
                z = common.seeds_to_z([key], G.z_dim, device)
                parts.append(G.mapping(z, label, truncation_psi=opts.trunc))
            else:
                parts.append(torch.from_numpy(common.load_ws_file(Path(key), G, "--keyframes")).to(device))
    return torch.cat(parts)


def _reported(frames: Iterable[np.ndarray], total: int, on_frame: FrameReport | None) -> Iterator[np.ndarray]:
    """Pass frames through, calling ``on_frame`` once each has been handed on (i.e. written)."""
    for count, frame in enumerate(frames, 1):
        yield frame
        if on_frame is not None:
            on_frame(count, total)


def run_video(opts: VideoOptions, on_frame: FrameReport | None = None) -> tuple[Path, int]:
    """Write the walk; ``on_frame`` (if given) hears of each frame written, from this thread."""
    if bool(opts.seeds) == bool(opts.keyframes):
        raise common.StudioError("pass either --seeds (e.g. 0-31) or --keyframes 3,a.npz,7 (not both)")
    if opts.kind not in KINDS:
        raise common.StudioError(f"--kind {opts.kind!r}: choose {' or '.join(KINDS)}")
    if not (opts.fps > 0 and opts.seconds > 0 and math.isfinite(opts.fps * opts.seconds)):
        raise common.StudioError(f"--seconds {opts.seconds:g} --fps {opts.fps:g}: both must be > 0")
    num_frames = round(opts.seconds * opts.fps)
    if num_frames < 1:
        raise common.StudioError(f"--seconds {opts.seconds:g} at --fps {opts.fps:g} makes no frame")
    grid = common.parse_grid(opts.grid)
    cells = grid[0] * grid[1]
    if opts.seeds and len(opts.seeds) % cells:
        raise common.StudioError(
            f"--grid {opts.grid} has {cells} cells: give a multiple of {cells} seeds, not {len(opts.seeds)}"
        )
    out = check_video_out(opts.out)
    device = common.resolve_device(opts.device)
    G = common.load_generator(opts.network, device)
    keys = _keyframe_ws(G, opts, device)
    if len(keys) % cells:
        raise common.StudioError(f"--grid {opts.grid} has {cells} cells: the keyframe files hold {len(keys)} ws")
    keys = keys.reshape(cells, len(keys) // cells, G.num_ws, G.w_dim)
    frames = render_frames(G, keys, grid, num_frames, opts.loop, opts.kind, opts.noise_mode)
    shown = tqdm(frames, total=num_frames, unit="frame", disable=None if on_frame is None else True)
    count = write_video(opts.out, _reported(shown, num_frames, on_frame), opts.fps)
    return out, count
