"""Checkpoints: our safe format (safetensors + JSON) and the resume state.

A snapshot ``<name>`` is two files (design 3.2):

- ``<name>.safetensors``: every tensor, named ``G.<key>``, ``D.<key>``, ``G_ema.<key>`` and
  ``augment_pipe.<key>`` (the modules' ``state_dict()`` keys).
- ``<name>.json``: format name and version, each network's class name and constructor keywords
  (``module.init_kwargs``), the augmentation settings, the caller's metadata (kimg, p, training
  options, dataset info, ...) and library versions.

Both are written atomically, tensors first and the JSON last: the JSON is the commit marker, and
both carry the same random ``snapshot_id`` so that a JSON never pairs with tensors of another
write. Loading reads only safetensors and JSON, never a pickle, and rebuilds networks from a fixed
registry of classes; nothing named in a file is imported.

Public StyleGAN2-ADA ``.pkl`` snapshots go through :mod:`core.networks.legacy`, which never runs
their embedded code; :func:`core.networks.sources.load_any` opens either, or a run directory, and
``ada-convert`` (:mod:`core.networks.convert`) inspects and converts them.
"""

from __future__ import annotations

import base64
import importlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from core.io.atomic import atomic_path, atomic_write_json
from core.io.tensors import read_tensor_file
from core.networks.stylegan2 import Discriminator, Generator

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LEGACY_SOURCE",
    "RESUME_FORMAT_NAME",
    "RESUME_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "load_resume_state",
    "resume_paths",
    "save_checkpoint",
    "save_resume_state",
    "snapshot_paths",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "ada-studio-checkpoint"
FORMAT_VERSION = 1
# Checkpoint.meta["source"]: FORMAT_NAME for our snapshots, LEGACY_SOURCE for imported .pkl files.
LEGACY_SOURCE = "legacy-pkl"
RESUME_FORMAT_NAME = "ada-studio-resume"
RESUME_FORMAT_VERSION = 1

NETWORK_NAMES = ("G", "D", "G_ema")
AUGMENT_NAME = "augment_pipe"
# Networks are rebuilt only from this table, never from a name read in a file.
NETWORK_CLASSES: Mapping[str, type[nn.Module]] = MappingProxyType(
    {"Generator": Generator, "Discriminator": Discriminator}
)
# Keys of Checkpoint.meta that describe a loaded file rather than a training state; they are
# recomputed on every save instead of being copied from one file to the next.
DERIVED_META_KEYS = frozenset({"versions", "ignored", "source", "source_file"})


class CheckpointError(ValueError):
    """A snapshot could not be written or read; the message names the file and the problem."""


@dataclass
class Checkpoint:
    """What a snapshot holds. Networks are ``None`` when the snapshot did not contain them."""

    G: nn.Module | None = None
    D: nn.Module | None = None
    G_ema: nn.Module | None = None
    augment_pipe: Any | None = None  # core.augment.AugmentPipe when it could be rebuilt
    augment_settings: dict[str, Any] | None = None  # always the raw settings, as data
    augment_state: dict[str, torch.Tensor] = field(default_factory=dict)  # pipe tensors, as data
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def networks(self) -> dict[str, nn.Module]:
        """The networks present, by name (G, D, G_ema)."""
        found = {name: getattr(self, name) for name in NETWORK_NAMES}
        return {name: net for name, net in found.items() if net is not None}

    def to(self, device: torch.device | str) -> Checkpoint:
        """Move every network (and the augment pipe) to ``device``, in place; returns self."""
        for net in self.networks().values():
            net.to(device)
        if isinstance(self.augment_pipe, nn.Module):
            self.augment_pipe.to(device)
        return self


# ---------------------------------------------------------------------------------------------
# Paths


def snapshot_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(``<name>.safetensors``, ``<name>.json``) for a stem, a .safetensors or a .json path."""
    p = Path(path)
    if p.name.endswith((".resume.json", ".resume.safetensors")):
        raise CheckpointError(f"{p}: this is a resume-state file; pass the snapshot itself (without .resume)")
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def resume_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(``<name>.resume.safetensors``, ``<name>.resume.json``) for a snapshot or resume path."""
    p = Path(path)
    for suffix in (".resume.safetensors", ".resume.json", ".safetensors", ".json"):
        if p.name.endswith(suffix):
            p = p.with_name(p.name[: -len(suffix)])
            break
    return p.with_name(p.name + ".resume.safetensors"), p.with_name(p.name + ".resume.json")


# ---------------------------------------------------------------------------------------------
# Shared helpers


def library_versions() -> dict[str, str]:
    try:
        ours = importlib.metadata.version("ada-studio")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    return {"ada-studio": ours, "torch": torch.__version__, "python": platform.python_version()}


def _check_jsonable(value: Any, what: str, file: Path) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{file}: {what} cannot be stored as JSON ({exc}); pass plain data") from exc


def _cpu_copy(t: torch.Tensor) -> torch.Tensor:
    # A private contiguous CPU copy: safetensors refuses tensors sharing storage, and the caller
    # may keep training (changing the originals) while we write.
    return t.detach().to("cpu", copy=True).contiguous()


def _write_tensor_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)


def _read_json(path: Path, expected_format: str, expected_version: int) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc}); the file is damaged") from exc
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != expected_format:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path}: not an {expected_format} file (format: {found!r})")
    version = doc.get("format_version")
    if version != expected_version:
        raise CheckpointError(
            f"{path}: {expected_format} format version {version!r} is not supported "
            f"(this ada-studio reads version {expected_version}); upgrade ada-studio"
        )
    return doc


def _read_tensor_file(path: Path, json_path: Path, snapshot_id: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (named by {json_path.name}); the snapshot is incomplete")
    try:
        # One open for header and data alike (see core.io.tensors): a snapshot written again
        # meanwhile cannot hand us its new tensors under the old snapshot_id.
        tensors, meta = read_tensor_file(path)
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"{path}: disappeared before it could be read (deleted, or the snapshot is being rewritten): retry"
        ) from exc
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path}: damaged safetensors file ({type(exc).__name__}: {exc})") from exc
    file_id = meta.get("snapshot_id")
    if file_id != snapshot_id:
        raise CheckpointError(
            f"{path}: belongs to another write than {json_path.name} (snapshot_id {file_id!r} != "
            f"{snapshot_id!r}); the snapshot was being rewritten: retry, or use an older one"
        )
    return tensors


def _split_prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    head = prefix + "."
    return {key[len(head) :]: t for key, t in tensors.items() if key.startswith(head)}


# ---------------------------------------------------------------------------------------------
# Networks and augmentation


def _network_entry(name: str, net: nn.Module, file: Path) -> dict[str, Any]:
    class_name = type(net).__name__
    if NETWORK_CLASSES.get(class_name) is not type(net):
        raise CheckpointError(
            f"{file}: {name} is a {type(net).__qualname__}; only {', '.join(NETWORK_CLASSES)} can be saved "
            "(unwrap DistributedDataParallel with .module)"
        )
    init_kwargs = getattr(net, "init_kwargs", None)
    if not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{file}: {name} has no init_kwargs dict, so it could not be rebuilt")
    _check_jsonable(init_kwargs, f"{name}.init_kwargs", file)
    return {"class_name": class_name, "init_kwargs": init_kwargs}


def build_network(
    name: str, class_name: str, init_kwargs: dict[str, Any], state: dict[str, torch.Tensor], file: Path
) -> nn.Module:
    """Rebuild a registered network from its constructor keywords and load ``state`` strictly."""
    cls = NETWORK_CLASSES.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise CheckpointError(
            f"{file}: {name} has class {class_name!r}; only {', '.join(NETWORK_CLASSES)} can be loaded"
        )
    if not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{file}: {name} init_kwargs must be a JSON object")
    try:
        net = cls(**init_kwargs)
    except Exception as exc:  # the keywords come from a file; any failure is "this file is unusable"
        raise CheckpointError(f"{file}: cannot build {name} = {class_name}(**init_kwargs): {exc}") from exc
    _load_state_strict(net, state, name, file)
    return net.eval()


def _load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], name: str, file: Path) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(f"{file}: missing tensor(s) for {name}: {_few(f'{name}.{k}' for k in missing)}")
    if extra:
        raise CheckpointError(f"{file}: unexpected tensor(s) for {name}: {_few(f'{name}.{k}' for k in extra)}")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{file}: tensor {name}.{key} has shape {list(state[key].shape)}, "
                f"but {name} built from its init_kwargs expects {list(ref.shape)}"
            )
    # Networks keep their own dtypes (float32): stored fp16/bf16 values are cast first. The loaded
    # tensors are then adopted as they are (assign) instead of being copied once more.
    cast = {k: v if v.dtype == expected[k].dtype else v.to(expected[k].dtype) for k, v in state.items()}
    module.load_state_dict(cast, strict=True, assign=True)


def _few(items: Iterator[str] | list[str], limit: int = 5) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def _augment_pipe_class() -> type | None:
    """core.augment's AugmentPipe when that package provides it; imported lazily (optional)."""
    for module_name in ("core.augment", "core.augment.pipeline"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, "AugmentPipe", None)
        if cls is not None:
            return cls
    return None


def build_augment_pipe(
    settings: dict[str, Any], state: dict[str, torch.Tensor], ignored: list[str]
) -> Any | None:
    """An AugmentPipe from saved settings, or None (noted in ``ignored``) when it cannot be built.

    Settings from a public snapshot carry the public constructor keywords under
    ``stylegan2_ada_kwargs`` plus ``p``; ours are whatever ``AugmentPipe.settings()`` returned.
    """
    cls = _augment_pipe_class()
    if cls is None:
        ignored.append("augment_pipe: core.augment.AugmentPipe is not available; settings kept as data")
        return None
    try:
        if "stylegan2_ada_kwargs" in settings:
            pipe = cls(**settings["stylegan2_ada_kwargs"])
            with torch.no_grad():
                pipe.p.copy_(torch.as_tensor(float(settings["p"])))
            return pipe
        pipe = cls.from_settings(settings)
        # The settings are exact (JSON); the pipe's buffers mostly repeat them in float32. Load
        # only tensors that carry something the settings did not reproduce.
        own = pipe.state_dict()
        skipped = sorted(k for k, v in state.items() if k not in own or tuple(own[k].shape) != tuple(v.shape))
        if skipped:
            ignored.append(f"augment_pipe tensors not used by this AugmentPipe: {_few(skipped)}")
        extra = {k: v for k, v in state.items() if k not in skipped and not torch.equal(own[k], v.to(own[k]))}
        if extra:
            pipe.load_state_dict({**own, **extra}, strict=False)
        return pipe
    except Exception as exc:  # the settings come from a file; any failure leaves them as data
        ignored.append(f"augment_pipe: could not rebuild ({type(exc).__name__}: {exc}); settings kept as data")
        return None


def _augment_to_save(augment: Any, file: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if isinstance(augment, Mapping):
        settings = dict(augment)
        state: dict[str, torch.Tensor] = {}
    elif callable(getattr(augment, "settings", None)) and isinstance(augment, nn.Module):
        settings = augment.settings()
        state = dict(augment.state_dict())
    else:
        raise CheckpointError(
            f"{file}: augment_pipe must be an AugmentPipe (with .settings()) or a settings dict, "
            f"got {type(augment).__name__}"
        )
    _check_jsonable(settings, "augment_pipe settings", file)
    return settings, state


# ---------------------------------------------------------------------------------------------
# Our format: save / load


def save_checkpoint(path: str | os.PathLike[str], **modules_and_metadata: Any) -> Path:
    """Write a snapshot ``<name>.safetensors`` + ``<name>.json`` atomically; returns the JSON path.

    Keywords ``G``, ``D``, ``G_ema`` (modules or None), ``augment_pipe`` (an AugmentPipe or its
    settings dict, or None) and ``augment_state`` (raw pipe tensors, when no AugmentPipe object
    is at hand) are stored as networks; every other keyword is JSON metadata (kimg, p, training
    options, dataset info, ...). Derived keys of a loaded ``Checkpoint.meta`` (versions, ignored,
    source, source_file) are recomputed rather than copied.
    """
    st_path, json_path = snapshot_paths(path)
    items = dict(modules_and_metadata)
    nets = {name: items.pop(name, None) for name in NETWORK_NAMES}
    augment = items.pop(AUGMENT_NAME, None)
    augment_state = dict(items.pop("augment_state", None) or {})
    meta = {k: v for k, v in items.items() if k not in DERIVED_META_KEYS}
    _check_jsonable(meta, "metadata", json_path)

    tensors: dict[str, torch.Tensor] = {}
    networks: dict[str, Any] = {}
    for name, net in nets.items():
        if net is None:
            continue
        networks[name] = _network_entry(name, net, json_path)
        tensors.update({f"{name}.{k}": _cpu_copy(v) for k, v in net.state_dict().items()})
    augment_doc = None
    if augment is not None:
        settings, state = _augment_to_save(augment, json_path)
        state = state or augment_state
        augment_doc = {"settings": settings, "tensors": sorted(state)}
        tensors.update({f"{AUGMENT_NAME}.{k}": _cpu_copy(v) for k, v in state.items()})
    if not networks and augment_doc is None:
        raise CheckpointError(f"{json_path}: nothing to save; pass G, D, G_ema and/or augment_pipe")

    snapshot_id = uuid.uuid4().hex
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "snapshot_id": snapshot_id,
        "tensors_file": st_path.name,
        "networks": networks,
        "augment": augment_doc,
        "meta": meta,
        "versions": library_versions(),
    }
    # Drop the old commit marker first: a crash below then leaves "incomplete", never a JSON that
    # describes tensors from another write.
    json_path.unlink(missing_ok=True)
    _write_tensor_file(st_path, tensors, {"format": FORMAT_NAME, "snapshot_id": snapshot_id})
    atomic_write_json(json_path, doc)
    log.info("saved snapshot %s (%s)", json_path, ", ".join([*networks, *(["augment_pipe"] * bool(augment_doc))]))
    return json_path


def load_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Checkpoint:
    """Load one of our snapshots (stem, .safetensors or .json); raises CheckpointError if unusable."""
    st_path, json_path = snapshot_paths(path)
    if not json_path.is_file():
        if st_path.is_file():
            raise CheckpointError(
                f"{json_path}: missing, but {st_path.name} exists: the snapshot is incomplete "
                "(its write was interrupted); use an older snapshot"
            )
        raise CheckpointError(f"{Path(path)}: no snapshot found (expected {json_path.name} + {st_path.name})")
    doc = _read_json(json_path, FORMAT_NAME, FORMAT_VERSION)
    snapshot_id = doc.get("snapshot_id")
    networks = doc.get("networks")
    augment_doc = doc.get("augment")
    meta = doc.get("meta", {})
    if not isinstance(snapshot_id, str) or not isinstance(networks, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"{json_path}: malformed snapshot description (snapshot_id/networks/meta)")
    if augment_doc is not None and not isinstance(augment_doc, dict):
        raise CheckpointError(f"{json_path}: malformed snapshot description (augment)")
    tensors = _read_tensor_file(st_path, json_path, snapshot_id)

    known = set(networks) | ({AUGMENT_NAME} if augment_doc is not None else set())
    unknown_names = set(networks) - set(NETWORK_NAMES)
    if unknown_names:
        raise CheckpointError(f"{json_path}: unknown network name(s) {sorted(unknown_names)}")
    stray = sorted(k for k in tensors if k.split(".", 1)[0] not in known)
    if stray:
        raise CheckpointError(f"{st_path}: unexpected tensor(s) not described by {json_path.name}: {_few(stray)}")

    ckpt = Checkpoint(meta=dict(meta), path=json_path)
    ignored: list[str] = []
    for name, entry in networks.items():
        if not isinstance(entry, dict):
            raise CheckpointError(f"{json_path}: malformed entry for {name}")
        state = _split_prefixed(tensors, name)
        net = build_network(name, entry.get("class_name"), entry.get("init_kwargs"), state, st_path)
        setattr(ckpt, name, net)
    if augment_doc is not None:
        _load_augment(ckpt, augment_doc, _split_prefixed(tensors, AUGMENT_NAME), json_path, ignored)
    ckpt.meta["versions"] = doc.get("versions", {})
    ckpt.meta["source"] = FORMAT_NAME
    ckpt.meta["ignored"] = ignored
    for line in ignored:
        log.info("%s: ignored %s", json_path, line)
    return ckpt.to(device)


def _load_augment(
    ckpt: Checkpoint, augment_doc: dict[str, Any], state: dict[str, torch.Tensor], file: Path, ignored: list[str]
) -> None:
    settings = augment_doc.get("settings")
    if not isinstance(settings, dict):
        raise CheckpointError(f"{file}: augment settings must be a JSON object")
    declared = augment_doc.get("tensors", [])
    if not isinstance(declared, list) or not all(isinstance(k, str) for k in declared):
        raise CheckpointError(f"{file}: augment tensors must be a list of names")
    if sorted(declared) != sorted(state):
        raise CheckpointError(
            f"{file}: augment_pipe tensors {sorted(state)} do not match the declared {sorted(declared)}"
        )
    ckpt.augment_settings = settings
    ckpt.augment_state = state
    ckpt.augment_pipe = build_augment_pipe(settings, state, ignored)


# ---------------------------------------------------------------------------------------------
# Resume state: nested data with tensors, stored without pickle

_TAGS = ("__tensor__", "__tuple__", "__items__", "__bytes__", "__float__", "__ndarray__", "__npscalar__")


@dataclass
class _TreeEncoder:
    """Turns nested Python data into JSON plus a flat dict of tensors keyed by dotted paths."""

    file: Path
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def encode(self, value: Any, key: str) -> Any:
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, torch.Tensor):
            return {"__tensor__": self._add_tensor(value, key)}
        if isinstance(value, np.ndarray):
            return {"__ndarray__": _encode_ndarray(value, self.file, key)}
        if isinstance(value, np.generic):
            return {"__npscalar__": _encode_ndarray(np.asarray(value), self.file, key)}
        if isinstance(value, bytes | bytearray):
            return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, list):
            return [self.encode(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{key}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            return self._encode_dict(value, key)
        raise CheckpointError(
            f"{self.file}: resume state {key or '<root>'} is a {type(value).__name__}; "
            "only tensors, numpy arrays, numbers, strings, bytes, lists, tuples and dicts can be stored"
        )

    def _encode_dict(self, value: dict[Any, Any], key: str) -> Any:
        def child(k: Any) -> str:
            return f"{key}.{k}" if key else str(k)

        if all(isinstance(k, str) for k in value) and not any(k in _TAGS for k in value):
            return {k: self.encode(v, child(k)) for k, v in value.items()}
        # Non-string keys (optimizer param ids) keep their type through an explicit item list.
        return {"__items__": [[self.encode(k, child(k) + ".key"), self.encode(v, child(k))] for k, v in value.items()]}

    def _add_tensor(self, t: torch.Tensor, key: str) -> str:
        name = key or "tensor"
        while name in self.tensors:  # dotted paths can collide (e.g. keys 0 and "0")
            name += "_"
        self.tensors[name] = _cpu_copy(t)
        return name


def _encode_ndarray(a: np.ndarray, file: Path, key: str) -> dict[str, Any]:
    if a.dtype.hasobject or a.dtype.kind not in "biufc":
        raise CheckpointError(f"{file}: resume state {key}: numpy dtype {a.dtype} cannot be stored")
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _decode_ndarray(spec: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    if dtype.hasobject or dtype.kind not in "biufc":
        raise ValueError(f"numpy dtype {dtype} is not allowed")
    return np.frombuffer(base64.b64decode(spec["data"]), dtype=dtype).reshape(spec["shape"]).copy()


def _decode_tree(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode_tree(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, payload), = value.items()
        if tag == "__tensor__":
            return tensors[payload]
        if tag == "__tuple__":
            return tuple(_decode_tree(v, tensors) for v in payload)
        if tag == "__items__":
            return {_decode_tree(k, tensors): _decode_tree(v, tensors) for k, v in payload}
        if tag == "__bytes__":
            return base64.b64decode(payload)
        if tag == "__float__":
            return float(payload)
        if tag == "__ndarray__":
            return _decode_ndarray(payload)
        if tag == "__npscalar__":
            return _decode_ndarray(payload)[()]
    return {k: _decode_tree(v, tensors) for k, v in value.items()}


def save_resume_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``<name>.resume.safetensors`` + ``<name>.resume.json`` atomically.

    ``state`` is nested data: tensors (optimizer moments, torch RNG states) go to safetensors under
    dotted keys such as ``G_opt.state.0.exp_avg``; everything else (kimg, tick, Python/numpy RNG
    states, controller state) goes to JSON with tuples, bytes, non-string dict keys, numpy arrays
    and non-finite floats tagged so that they come back with their exact types. ``path`` may be the
    snapshot stem, its .json/.safetensors, or a .resume.* path. Returns the JSON path.
    """
    st_path, json_path = resume_paths(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{json_path}: resume state must be a dict, got {type(state).__name__}")
    encoder = _TreeEncoder(json_path)
    tree = encoder.encode(state, "")
    snapshot_id = uuid.uuid4().hex
    doc = {
        "format": RESUME_FORMAT_NAME,
        "format_version": RESUME_FORMAT_VERSION,
        "snapshot_id": snapshot_id,
        "tensors_file": st_path.name,
        "state": tree,
        "versions": library_versions(),
    }
    _check_jsonable(doc, "resume state", json_path)
    json_path.unlink(missing_ok=True)
    _write_tensor_file(st_path, encoder.tensors, {"format": RESUME_FORMAT_NAME, "snapshot_id": snapshot_id})
    atomic_write_json(json_path, doc)
    return json_path


def load_resume_state(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read what :func:`save_resume_state` wrote; tensors are placed on ``device``."""
    st_path, json_path = resume_paths(path)
    if not json_path.is_file():
        hint = " (incomplete: its write was interrupted)" if st_path.is_file() else ""
        raise CheckpointError(f"{json_path}: resume state not found{hint}")
    doc = _read_json(json_path, RESUME_FORMAT_NAME, RESUME_FORMAT_VERSION)
    if not isinstance(doc.get("snapshot_id"), str) or "state" not in doc:
        raise CheckpointError(f"{json_path}: malformed resume state (snapshot_id/state)")
    tensors = _read_tensor_file(st_path, json_path, doc["snapshot_id"])
    try:
        state = _decode_tree(doc["state"], tensors)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{json_path}: malformed resume state ({type(exc).__name__}: {exc})") from exc
    used = _tensor_refs(doc["state"])
    if set(tensors) != used:
        raise CheckpointError(f"{st_path}: tensors {_few(sorted(set(tensors) ^ used))} do not match {json_path.name}")
    if not isinstance(state, dict):
        raise CheckpointError(f"{json_path}: resume state must be a JSON object")
    return _tensors_to(state, torch.device(device))


def _tensor_refs(tree: Any) -> set[str]:
    if isinstance(tree, list):
        return set().union(*(_tensor_refs(v) for v in tree)) if tree else set()
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return {tree["__tensor__"]}
        return set().union(*(_tensor_refs(v) for v in tree.values())) if tree else set()
    return set()


def _tensors_to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _tensors_to(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_tensors_to(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_tensors_to(v, device) for v in value)
    return value
