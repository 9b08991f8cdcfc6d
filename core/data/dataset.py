"""Image datasets read straight from a folder or a zip, in the layout of the public dataset tool.

A dataset is a set of same-sized, square, power-of-two PNG/JPEG/WebP images (1 or 3 channels),
optionally with a ``dataset.json`` at its root holding ``{"labels": [[relative_name, label], ...]}``
(or ``{"labels": null}``). ``python -m core.data.tool`` turns any pile of images into one.

Index order: files sorted by relative path; ``subset`` keeps a seeded random selection (kept in file
order); ``mirror`` then appends x-flipped copies of that selection, doubling its length.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import numpy as np
from PIL import Image, features

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
# Datasets that ship inside the package, addressed as ``builtin:<name>``.
BUILTIN_DATASETS = MappingProxyType({"digits": "digits32.zip"})
LABELS_FILE = "dataset.json"
# Pre-decode the whole selection into memory when it is at most this big (decoded bytes).
DEFAULT_CACHE_LIMIT_MB = 512


class DatasetError(ValueError):
    """A dataset that cannot be used as it is; the message says which file and what to do."""


def image_extensions() -> tuple[str, ...]:
    """File extensions read as images (WebP only where this Pillow build decodes it)."""
    exts = (".png", ".jpg", ".jpeg")
    return exts + (".webp",) if features.check("webp") else exts


def resolve_data_path(spec: str | os.PathLike[str]) -> Path:
    """Turn a data argument into an existing path: ``builtin:<name>`` or a folder/zip path."""
    text = os.fspath(spec)
    if text.startswith("builtin:"):
        name = text.removeprefix("builtin:")
        if name not in BUILTIN_DATASETS:
            known = ", ".join(f"builtin:{n}" for n in BUILTIN_DATASETS)
            raise DatasetError(f"unknown built-in dataset {text!r}; available: {known}")
        return BUILTIN_DIR / BUILTIN_DATASETS[name]
    path = Path(text).expanduser()
    if not path.exists():
        raise DatasetError(
            f"dataset {text!r} does not exist; give a folder of images, a zip, or builtin:digits"
        )
    if path.is_file() and not zipfile.is_zipfile(path):
        raise DatasetError(f"dataset {text!r} is a file but not a zip; give a folder of images or a zip")
    return path


def tool_command(source: Path | str, resolution: int) -> str:
    """The exact dataset-tool command that makes ``source`` usable at ``resolution``."""
    stem = Path(source).name.removesuffix(".zip")
    dest = Path(source).with_name(f"{stem}-{resolution}.zip")
    return (
        f"python -m core.data.tool --source {source} --dest {dest} "
        f"--resolution {resolution} --transform center-crop"
    )


def _largest_pow2_at_most(n: int) -> int:
    return 1 << max(n.bit_length() - 1, 0)


def _is_pow2(n: int) -> bool:
    return n >= 4 and n & (n - 1) == 0


class Storage:
    """Read access to the files of a folder (recursively) or a zip; safe to pickle into workers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.is_file()
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1

    def __getstate__(self) -> dict[str, Any]:
        # An open zip handle cannot cross a process boundary; each process opens its own.
        return {**self.__dict__, "_zip": None, "_zip_pid": -1}

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def all_names(self) -> list[str]:
        """Every file, as a relative posix path, sorted."""
        if self.is_zip:
            return sorted(n for n in self._zipfile().namelist() if not n.endswith("/"))
        names = []
        # Linked folders are followed (a dataset assembled from links is common); a link back to a
        # folder already walked (a loop, or the same folder twice) is walked once, with a warning.
        seen: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(self.path, followlinks=True):
            st = os.stat(root)
            if (st.st_dev, st.st_ino) in seen:
                log.warning("%s: already read through another path (a linked folder); not read again", root)
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            rel_root = Path(root).relative_to(self.path)
            names += [(rel_root / f).as_posix() for f in files]
        return sorted(names)

    def exists(self, name: str) -> bool:
        if self.is_zip:
            return name in self._zipfile().NameToInfo
        return (self.path / name).is_file()

    def open(self, name: str) -> IO[bytes]:
        """A binary stream, for reading just a header without the whole file."""
        if self.is_zip:
            return self._zipfile().open(name)
        return (self.path / name).open("rb")

    def read(self, name: str) -> bytes:
        if self.is_zip:
            return self._zipfile().read(name)
        return (self.path / name).read_bytes()

    def fingerprint_entries(self) -> Iterator[tuple[str, int, int]]:
        """(name, size, content tag) per file: the zip's CRC-32, or a folder file's mtime."""
        if self.is_zip:
            for info in sorted(self._zipfile().infolist(), key=lambda i: i.filename):
                yield info.filename, info.file_size, info.CRC
        else:
            for name in self.all_names():
                st = (self.path / name).stat()
                yield name, st.st_size, st.st_mtime_ns

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


def _is_image_name(name: str, exts: Sequence[str]) -> bool:
    parts = name.split("/")
    # Skip macOS resource forks and hidden files, which carry image extensions but no images.
    if parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return False
    return name.lower().endswith(tuple(exts))


@dataclass(frozen=True)
class _ImageHeader:
    name: str
    width: int
    height: int
    channels: int | None  # None: a mode we do not read directly (palette, alpha, CMYK, 16-bit)
    mode: str


def _read_header(storage: Storage, name: str) -> _ImageHeader:
    try:
        with storage.open(name) as stream, Image.open(stream) as img:
            width, height, mode = img.width, img.height, img.mode
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{storage.path}: cannot read image {name!r} ({exc}); rebuild the dataset with "
            f"python -m core.data.tool, which lists and skips unreadable files"
        ) from None
    channels = {"L": 1, "RGB": 3}.get(mode)
    return _ImageHeader(name, width, height, channels, mode)


def _check_headers(storage: Storage, names: Sequence[str], resolution: int | None) -> tuple[int, int]:
    """Check every image has the first one's size and channels; return (resolution, channels)."""
    first = _read_header(storage, names[0])
    side = min(first.width, first.height)
    suggestion = resolution or _largest_pow2_at_most(side)
    if first.width != first.height or not _is_pow2(first.width):
        raise DatasetError(
            f"{storage.path}: image {first.name!r} is {first.width}x{first.height}; images must be square "
            f"with a power-of-two side (>= 4). Convert with: {tool_command(storage.path, suggestion)}"
        )
    if resolution is not None and first.width != resolution:
        raise DatasetError(
            f"{storage.path}: images are {first.width}x{first.height} but resolution={resolution} was "
            f"requested. Convert with: {tool_command(storage.path, resolution)}"
        )
    for name in names:
        header = first if name == first.name else _read_header(storage, name)
        if header.channels is None:
            raise DatasetError(
                f"{storage.path}: image {name!r} has mode {header.mode}; only 8-bit grayscale (L) and RGB "
                f"are read directly. Convert with: {tool_command(storage.path, first.width)}"
            )
        if (header.width, header.height, header.channels) != (first.width, first.height, first.channels):
            raise DatasetError(
                f"{storage.path}: image {name!r} is {header.width}x{header.height} with {header.channels} "
                f"channel(s) but {first.name!r} is {first.width}x{first.height} with {first.channels}; all "
                f"images must match. Convert with: {tool_command(storage.path, first.width)}"
            )
    assert first.channels is not None
    return first.width, first.channels


def _parse_labels(storage: Storage, names: Sequence[str]) -> np.ndarray | None:
    """Labels in file order: int64 [N] class indices, float32 [N, D] vectors, or None."""
    if not storage.exists(LABELS_FILE):
        return None
    where = f"{storage.path}/{LABELS_FILE}"
    try:
        labels = json.loads(storage.read(LABELS_FILE)).get("labels")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise DatasetError(f"{where}: not a JSON object with a 'labels' key ({exc})") from None
    if labels is None:
        return None
    try:
        by_name = {str(fname).replace("\\", "/"): label for fname, label in labels}
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'labels' must be a list of [file_name, label] pairs") from None
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DatasetError(f"{where}: no label for image {missing[0]!r} ({len(missing)} unlabelled in all)")
    values = [by_name[n] for n in names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        array = np.asarray(values, dtype=np.int64)
        if array.min() < 0:
            raise DatasetError(f"{where}: class labels must be >= 0")
        return array
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{where}: labels must all be class indices or equal-length number lists"
        ) from None
    if array.ndim != 2:
        raise DatasetError(f"{where}: labels must all be class indices or equal-length number lists")
    return array


def _decode(data: bytes, name: str, channels: int, resolution: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        array = np.asarray(img)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.shape != (resolution, resolution, channels) or array.dtype != np.uint8:
        raise DatasetError(
            f"image {name!r} decoded to {array.shape} {array.dtype}, expected "
            f"({resolution}, {resolution}, {channels}) uint8"
        )
    return np.ascontiguousarray(array.transpose(2, 0, 1))


class ImageDataset:
    """Images (uint8, CHW) and labels (float32, one-hot for class labels) from a folder or zip.

    Args:
        path: a folder (searched recursively), a zip, or ``builtin:<name>`` (e.g. ``builtin:digits``).
        resolution: expected side length; None takes it from the images. A mismatch is an error.
        mirror: append x-flipped copies of the (subset of the) images, doubling the length.
        subset: keep a random subset of this many images, drawn with ``seed`` (None: all).
        seed: seed for ``subset``.
        use_labels: read labels from ``dataset.json``; an error if the dataset has none.
        cache_limit_mb: pre-decode the selection into memory (see ``preload``) when it fits this.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        resolution: int | None = None,
        mirror: bool = False,
        subset: int | None = None,
        seed: int = 0,
        use_labels: bool = False,
        cache_limit_mb: float = DEFAULT_CACHE_LIMIT_MB,
    ) -> None:
        self.spec = os.fspath(path)
        self.path = resolve_data_path(path)
        self.mirror = mirror
        self.subset = subset
        self.seed = seed
        self.use_labels = use_labels
        self.cache_limit_mb = cache_limit_mb
        self._storage = Storage(self.path)
        all_names = self._storage.all_names()
        self._names = [n for n in all_names if _is_image_name(n, image_extensions())]
        if not self._names:
            raise DatasetError(f"{self.path}: no images found (looked for {', '.join(image_extensions())})")
        self._resolution, self._channels = _check_headers(self._storage, self._names, resolution)
        self._labels = _parse_labels(self._storage, self._names) if use_labels else None
        if use_labels and self._labels is None:
            raise DatasetError(
                f"{self.path}: labels requested (conditional training) but {LABELS_FILE} is "
                f'missing or has "labels": null'
            )
        self._raw_idx = self._select(subset, seed)
        self._cache: np.ndarray | None = None

    def _select(self, subset: int | None, seed: int) -> np.ndarray:
        count = len(self._names)
        if subset is None or subset >= count:
            if subset is not None:
                log.warning("%s: subset=%d >= %d images; using all of them", self.path, subset, count)
            return np.arange(count)
        if subset < 1:
            raise DatasetError(f"subset must be >= 1, got {subset}")
        chosen = np.random.default_rng(seed).choice(count, size=subset, replace=False)
        return np.sort(chosen)

    # --- properties -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The dataset name: the folder or zip name without extension."""
        return self.path.name.removesuffix(".zip") if self.path.is_file() else self.path.name

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def num_channels(self) -> int:
        return self._channels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self._channels, self._resolution, self._resolution)

    @property
    def label_dim(self) -> int:
        """Size of the label vector c (0 without labels)."""
        if self._labels is None:
            return 0
        return int(self._labels.max()) + 1 if self._labels.ndim == 1 else self._labels.shape[1]

    @property
    def has_labels(self) -> bool:
        return self.label_dim > 0

    @property
    def num_raw_images(self) -> int:
        """Image files in the dataset, before subset and mirror."""
        return len(self._names)

    @property
    def raw_indices(self) -> np.ndarray:
        """The file indices this dataset draws from, in index order (a copy): which images a
        ``subset`` kept, e.g. to hold the others out."""
        return self._raw_idx.copy()

    @property
    def storage(self) -> Storage:
        return self._storage

    def __len__(self) -> int:
        return len(self._raw_idx) * (2 if self.mirror else 1)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.spec!r}, {len(self)} images, {self._channels}x{self._resolution}x"
            f"{self._resolution}, label_dim={self.label_dim}, mirror={self.mirror}, subset={self.subset})"
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (for run.json and checkpoint metadata)."""
        return dict(
            path=self.spec,
            name=self.name,
            resolution=self.resolution,
            num_channels=self.num_channels,
            label_dim=self.label_dim,
            num_images=len(self),
            num_raw_images=self.num_raw_images,
            mirror=self.mirror,
            subset=self.subset,
            seed=self.seed,
            use_labels=self.use_labels,
        )

    # --- access -----------------------------------------------------------------------------------
    def _locate(self, index: int) -> tuple[int, bool]:
        """(raw file index, x-flipped) for a dataset index."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        count = len(self._raw_idx)
        return int(self._raw_idx[index % count]), index >= count

    def cacheable(self) -> bool:
        """Whether the decoded selection fits ``cache_limit_mb``."""
        nbytes = len(self._raw_idx) * int(np.prod(self.image_shape))
        return nbytes <= self.cache_limit_mb * 2**20

    def preload(self) -> bool:
        """Decode the selection into memory if it fits ``cache_limit_mb``; return whether it is cached."""
        if self._cache is None and self.cacheable():
            log.info("%s: decoding %d images into memory", self.name, len(self._raw_idx))
            self._cache = np.stack([self._load_raw(int(i)) for i in self._raw_idx])
        return self._cache is not None

    def _load_raw(self, raw: int) -> np.ndarray:
        name = self._names[raw]
        return _decode(self._storage.read(name), name, self._channels, self._resolution)

    def get_image(self, index: int) -> np.ndarray:
        """uint8 [C, H, W]."""
        raw, flip = self._locate(index)
        if self._cache is not None:
            image = self._cache[index % len(self._raw_idx)]
        else:
            image = self._load_raw(raw)
        return np.ascontiguousarray(image[:, :, ::-1]) if flip else image

    def get_label(self, index: int) -> np.ndarray:
        """float32 [label_dim]: one-hot for class labels, the vector itself otherwise."""
        raw, _flip = self._locate(index)
        return self._label_rows(np.asarray([raw]))[0]

    def _label_rows(self, raws: np.ndarray) -> np.ndarray:
        if self._labels is None:
            return np.zeros((len(raws), 0), dtype=np.float32)
        if self._labels.ndim == 2:
            return self._labels[raws].astype(np.float32)
        onehot = np.zeros((len(raws), self.label_dim), dtype=np.float32)
        onehot[np.arange(len(raws)), self._labels[raws]] = 1
        return onehot

    def get_class(self, index: int) -> int | None:
        """The integer class of an image (None for unlabelled or vector-labelled datasets)."""
        raw, _flip = self._locate(index)
        if self._labels is None or self._labels.ndim != 1:
            return None
        return int(self._labels[raw])

    def file_name(self, index: int) -> str:
        """Relative path of the file behind an index (mirrored copies share their original's)."""
        return self._names[self._locate(index)[0]]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.get_image(index), self.get_label(index)

    def load_batch(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images uint8 [B, C, H, W] and labels float32 [B, label_dim]; vectorised when preloaded."""
        indices = np.asarray(indices, dtype=np.int64) % max(len(self), 1)
        count = len(self._raw_idx)
        local, flips = indices % count, indices >= count
        if self._cache is not None:
            images = self._cache[local]
            images[flips] = images[flips, :, :, ::-1]
        else:
            images = np.stack([self.get_image(int(i)) for i in indices])
        return images, self._label_rows(self._raw_idx[local])

    def close(self) -> None:
        self._storage.close()
