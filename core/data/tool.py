"""Dataset tool: turn a folder or zip of arbitrary images into a training dataset.

    python -m core.data.tool --source DIR|ZIP --dest OUT.zip|DIR --resolution N
        [--transform center-crop|center-crop-wide|pad] [--resize-filter box|lanczos]
        [--background R,G,B] [--channels auto|1|3] [--max-images N] [--png-compression 0-9]

The output has the public StyleGAN2-ADA layout: PNGs named ``NNNNN/imgNNNNNNNN.png`` and a
``dataset.json`` holding ``{"labels": [[name, label], ...]}`` or ``{"labels": null}``, so datasets made
by either tool work with both. Zips are stored uncompressed and written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from core.data.dataset import LABELS_FILE, Storage, _is_image_name, image_extensions
from core.io.atomic import atomic_path, remove_stale_temps
from core.io.cli import OneLineParser

TRANSFORMS = ("center-crop", "center-crop-wide", "pad")
RESIZE_FILTERS = {"box": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
# Fixed zip timestamps make the output a function of the input only (reproducible builds).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Pillow's errors for unreadable, truncated or unsupported files.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError)


class ToolError(ValueError):
    """Bad options or an unusable source; the CLI prints it as one line and exits with code 2."""


@dataclass(frozen=True)
class ToolOptions:
    source: Path
    dest: Path
    resolution: int
    transform: str = "center-crop"
    resize_filter: str = "lanczos"
    background: tuple[int, int, int] = (0, 0, 0)
    channels: str = "auto"  # auto: 1 if every source image is grayscale, else 3
    max_images: int | None = None
    png_compression: int = 0  # 0 like the public tool: fastest to decode while training


@dataclass
class ToolReport:
    written: int = 0
    channels: int = 0
    label_dim: int | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    ignored: list[str] = field(default_factory=list)  # files that are not images (dataset.json aside)


class _Writer(Protocol):
    def add(self, name: str, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class _ZipWriter:
    """Fills a temp file beside ``dest`` (core.io.atomic) that replaces ``dest`` only when complete."""

    def __init__(self, dest: Path) -> None:
        self._atomic = atomic_path(dest)
        self.zip = zipfile.ZipFile(self._atomic.__enter__(), "w", compression=zipfile.ZIP_STORED)

    def add(self, name: str, data: bytes) -> None:
        self.zip.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data)

    def commit(self) -> None:
        self.zip.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        self.zip.close()
        with contextlib.suppress(ToolError):
            self._atomic.__exit__(ToolError, ToolError("aborted"), None)


class _DirWriter:
    """Fills a temp folder beside ``dest`` and renames it into place only when complete."""

    def __init__(self, dest: Path) -> None:
        if dest.exists() and any(dest.iterdir()):
            raise ToolError(f"--dest {dest} is a folder that is not empty; give a new or empty folder")
        remove_stale_temps(dest)  # what an earlier, killed conversion to the same folder left
        self.dest = dest
        # os.mkdir applies the umask (mkdtemp would force 0700 on the finished dataset).
        self.tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"
        self.tmp.mkdir()

    def add(self, name: str, data: bytes) -> None:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def commit(self) -> None:
        os.replace(self.tmp, self.dest)  # POSIX rename onto an empty folder replaces it

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def archive_name(index: int) -> str:
    """The public tool's file name for the index-th image."""
    digits = f"{index:08d}"
    return f"{digits[:5]}/img{digits}.png"


def _background_for(mode: str, background: tuple[int, int, int]) -> int | tuple[int, int, int]:
    if mode == "L":
        return int(Image.new("RGB", (1, 1), background).convert("L").getpixel((0, 0)))  # type: ignore[arg-type]
    return background


def to_mode(img: Image.Image, channels: int, background: tuple[int, int, int]) -> Image.Image:
    """Any Pillow image as 8-bit L (channels=1) or RGB, alpha composited over ``background``."""
    if img.mode in SIXTEEN_BIT_MODES:
        # Pillow clips 16-bit values when converting to L; scale them instead.
        scaled = np.clip(np.asarray(img, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        img = Image.fromarray(scaled, mode="L")
    has_alpha = img.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("L" if channels == 1 else "RGB")


def apply_transform(img: Image.Image, opts: ToolOptions) -> Image.Image:
    """Square ``resolution`` image from ``img`` by crop, wide-crop or padding (see docs/datasets.md)."""
    size, resample = opts.resolution, RESIZE_FILTERS[opts.resize_filter]
    width, height = img.size
    if opts.transform == "center-crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        return img if img.size == (size, size) else img.resize((size, size), resample)
    if opts.transform == "center-crop-wide":
        # Keep the full width; crop the height to the square or letterbox it.
        new_height = max(1, round(height * size / width))
        img = img.resize((size, new_height), resample) if (size, new_height) != img.size else img
        if new_height >= size:
            top = (new_height - size) // 2
            return img.crop((0, top, size, top + size))
    else:  # pad: fit the longer side, pad the shorter one
        scale = size / max(width, height)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        img = img.resize(new_size, resample) if new_size != img.size else img
    canvas = Image.new(img.mode, (size, size), _background_for(img.mode, opts.background))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def _read_source_labels(storage: Storage) -> dict[str, Any] | None:
    if not storage.exists(LABELS_FILE):
        return None
    try:
        labels = json.loads(storage.read(LABELS_FILE)).get("labels")
        return None if labels is None else {str(n).replace("\\", "/"): v for n, v in labels}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise ToolError(
            f'{storage.path}/{LABELS_FILE}: not {{"labels": [[name, label], ...] | null}} ({exc})'
        ) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognisable image (unknown format or corrupt header)"
    return str(exc) or type(exc).__name__


def _scan(storage: Storage, names: Sequence[str], report: ToolReport) -> list[tuple[str, str]]:
    """(name, mode) of every file whose header reads; the others go to ``report.skipped``."""
    readable = []
    for name in tqdm(names, desc="scanning", unit="img", leave=False, file=sys.stderr, disable=None):
        try:
            with storage.open(name) as stream, Image.open(stream) as img:
                readable.append((name, img.mode))
        except DECODE_ERRORS as exc:
            report.skipped.append((name, _reason(exc)))
    return readable


def _encode(storage: Storage, name: str, channels: int, opts: ToolOptions) -> bytes:
    with Image.open(io.BytesIO(storage.read(name))) as img:
        img.load()
        img = ImageOps.exif_transpose(img)  # phone photos store their rotation in EXIF
        img = apply_transform(to_mode(img, channels, opts.background), opts)
    buffer = io.BytesIO()
    img.save(buffer, format="png", compress_level=opts.png_compression, optimize=False)
    return buffer.getvalue()


def convert_dataset(opts: ToolOptions) -> ToolReport:
    """Convert ``opts.source`` into ``opts.dest``; returns what was written, skipped and ignored."""
    storage = Storage(opts.source)
    report = ToolReport()
    all_names = [n for n in storage.all_names() if n != LABELS_FILE]
    names = [n for n in all_names if _is_image_name(n, image_extensions())]
    image_names = set(names)
    report.ignored = [n for n in all_names if n not in image_names]
    source_labels = _read_source_labels(storage)
    readable = _scan(storage, names, report)
    if not readable:
        raise ToolError(f"--source {opts.source}: no readable images ({len(report.skipped)} unreadable)")
    if opts.channels == "auto":
        report.channels = 1 if all(mode in GRAY_MODES for _n, mode in readable) else 3
    else:
        report.channels = int(opts.channels)
    if source_labels is not None:
        unlabelled = [n for n, _m in readable if n not in source_labels]
        if unlabelled:
            raise ToolError(
                f"{opts.source}/{LABELS_FILE} has no label for {unlabelled[0]!r} "
                f"({len(unlabelled)} in all); add them or remove {LABELS_FILE}"
            )
    writer: _Writer = _ZipWriter(opts.dest) if opts.dest.suffix.lower() == ".zip" else _DirWriter(opts.dest)
    out_labels: list[list[Any]] = []
    try:
        total = min(len(readable), opts.max_images or len(readable))
        with tqdm(total=total, desc="converting", unit="img", file=sys.stderr, disable=None) as bar:
            for position, (name, _mode) in enumerate(readable):
                if report.written == total:
                    break
                try:
                    data = _encode(storage, name, report.channels, opts)
                except DECODE_ERRORS as exc:
                    report.skipped.append((name, _reason(exc)))
                    tqdm.write(f"skipped {name}: {report.skipped[-1][1]}", file=sys.stderr)
                    bar.total = min(total, report.written + len(readable) - position - 1)
                    bar.refresh()
                    continue
                writer.add(archive_name(report.written), data)
                if source_labels is not None:
                    out_labels.append([archive_name(report.written), source_labels[name]])
                report.written += 1
                bar.update(1)
        if report.written == 0:
            raise ToolError(f"--source {opts.source}: no image could be decoded")
        labels_json = {"labels": out_labels if source_labels is not None else None}
        writer.add(LABELS_FILE, json.dumps(labels_json).encode())
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        storage.close()
    if source_labels is not None and all(isinstance(v, int) for _n, v in out_labels):
        report.label_dim = max(v for _n, v in out_labels) + 1
    return report


def _background(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(f"expected R,G,B with values 0-255, got {text!r}")
    return values  # type: ignore[return-value]


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m core.data.tool", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, type=Path, help="folder (searched recursively) or zip")
    p.add_argument("--dest", required=True, type=Path, help="output .zip (recommended) or new folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --dest zip")
    p.add_argument("--resolution", required=True, type=int, help="output side length, a power of two")
    p.add_argument(
        "--transform",
        choices=TRANSFORMS,
        default="center-crop",
        help="center-crop: largest centred square; center-crop-wide: keep the width, crop or "
        "letterbox the height; pad: fit the whole image, pad with --background",
    )
    p.add_argument("--resize-filter", choices=tuple(RESIZE_FILTERS), default="lanczos")
    p.add_argument(
        "--background",
        type=_background,
        default=(0, 0, 0),
        help="R,G,B behind transparent pixels and padding (default 0,0,0)",
    )
    p.add_argument(
        "--channels",
        choices=("auto", "1", "3"),
        default="auto",
        help="auto: 1 if every image is grayscale, else 3",
    )
    p.add_argument("--max-images", type=int, default=None, help="stop after this many images")
    p.add_argument(
        "--png-compression",
        type=int,
        default=0,
        choices=range(10),
        metavar="0-9",
        help="PNG zlib level; 0 (default) decodes fastest",
    )
    return p


def _options(args: argparse.Namespace) -> ToolOptions:
    res = args.resolution
    if res < 4 or res & (res - 1):
        raise ToolError(f"--resolution must be a power of two >= 4, got {res}")
    if args.max_images is not None and args.max_images < 1:
        raise ToolError(f"--max-images must be >= 1, got {args.max_images}")
    if not args.source.exists():
        raise ToolError(f"--source {args.source} does not exist")
    if args.source.is_file() and not zipfile.is_zipfile(args.source):
        raise ToolError(f"--source {args.source} is neither a folder nor a zip")
    if args.dest.resolve() == args.source.resolve():
        raise ToolError("--dest must differ from --source")
    if not args.dest.parent.is_dir():
        raise ToolError(f"--dest {args.dest}: folder {args.dest.parent} does not exist")
    if args.dest.is_file() and not args.overwrite:
        raise ToolError(f"--dest {args.dest} exists; add --overwrite to replace it, or give a new name")
    try:  # the real test of writing there (access() says yes to root on read-only and virtual file systems)
        with tempfile.TemporaryFile(dir=args.dest.parent):
            pass
    except OSError as e:
        raise ToolError(f"--dest {args.dest}: cannot write in {args.dest.parent} ({e.strerror or e}); choose "
                        "another place") from None
    return ToolOptions(
        source=args.source,
        dest=args.dest,
        resolution=res,
        transform=args.transform,
        resize_filter=args.resize_filter,
        background=args.background,
        channels=args.channels,
        max_images=args.max_images,
        png_compression=args.png_compression,
    )


def _print_report(report: ToolReport, opts: ToolOptions) -> None:
    labels = "none" if report.label_dim is None else f"{report.label_dim} classes"
    print(
        f"wrote {report.written} images ({opts.resolution}x{opts.resolution}, {report.channels} channel(s), "
        f"labels: {labels}) to {opts.dest}"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable file(s):")
        for name, reason in report.skipped:
            print(f"  {name}: {reason}")
    if report.ignored:
        shown = ", ".join(report.ignored[:5]) + (", ..." if len(report.ignored) > 5 else "")
        print(
            f"ignored {len(report.ignored)} file(s) that are not {'/'.join(image_extensions())} images: "
            f"{shown}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        opts = _options(args)
        report = convert_dataset(opts)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the destination refused the write (a read-only or virtual file system, a full disk)
        print(f"error: --dest {args.dest}: cannot write it ({exc.strerror or exc}); choose another place",
              file=sys.stderr)
        return 2
    _print_report(report, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
