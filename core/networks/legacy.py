"""Safe import of public StyleGAN2-ADA ``.pkl`` training snapshots.

Those files pickle each network as a "persistent object": a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` holds the Python
source of the network's module (``module_src``), its class name and its ``__dict__`` (constructor
keywords, parameters, buffers, sub-modules). The usual loader executes ``module_src``; a file
from a stranger can therefore run anything. This importer never does:

- a restricted unpickler resolves only the globals such a file needs, each to a checking
  replacement of our own (nothing is imported by name from the file, nothing else is callable);
- the persistence reconstructor becomes a function that returns the meta dict as plain data;
- our Generator / Discriminator / AugmentPipe are then built from the class name and constructor
  keywords, and the tensors are loaded strictly (same names and shapes as the public code).
"""

from __future__ import annotations

import collections
import io
import logging
import math
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from core.networks.checkpoint import (
    LEGACY_SOURCE,
    NETWORK_NAMES,
    Checkpoint,
    CheckpointError,
    build_augment_pipe,
    build_network,
)
from core.rundir import layout

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "import_legacy_pkl", "read_legacy_pkl"]

log = logging.getLogger(__name__)

# Classes of the public networks.py / augment.py. Only the top-level ones are rebuilt; the others
# are walked for their tensors. Any other persistent class (e.g. StyleGAN3's) is refused.
TOP_LEVEL_CLASSES = MappingProxyType(
    {"G": "Generator", "G_ema": "Generator", "D": "Discriminator", "augment_pipe": "AugmentPipe"}
)
KNOWN_CLASSES = frozenset(
    {
        "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
        "FullyConnectedLayer", "Conv2dLayer", "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue",
        "MinibatchStdLayer", "AugmentPipe",
    }
)  # fmt: skip
_MAX_MODULE_DEPTH = 16


class UnsafePickleError(CheckpointError):
    """The pickle refers to something a StyleGAN2-ADA snapshot never needs; nothing was run."""


class _EasyDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: a plain dict (the public code's keyword dicts)."""


@dataclass(frozen=True, slots=True)
class PersistentRecord:
    """A persistent object as data: what ``_reconstruct_persistent_obj`` received, minus its code."""

    class_name: str
    version: Any
    state: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Checking replacements for the allowed globals


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict):
        raise CheckpointError(f"persistent object: expected a meta dict, got {type(meta).__name__}")
    if meta.get("type") != "class":
        raise CheckpointError(f"persistent object of type {meta.get('type')!r}; only 'class' is supported")
    class_name, state = meta.get("class_name"), meta.get("state")
    if class_name not in KNOWN_CLASSES:
        raise CheckpointError(
            f"unknown persistent class {class_name!r} (its embedded source is never run); this importer knows "
            f"the StyleGAN2-ADA classes only: {', '.join(sorted(KNOWN_CLASSES))}"
        )
    if not isinstance(state, dict):
        raise CheckpointError(f"persistent {class_name}: state must be a dict, got {type(state).__name__}")
    # module_src is dropped here, unread.
    return PersistentRecord(class_name=class_name, version=meta.get("version"), state=state)


def _rebuild_tensor_v2(
    storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any, backward_hooks: Any,
    metadata: Any = None,
) -> torch.Tensor:  # fmt: skip
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise CheckpointError(f"tensor rebuild: expected a storage, got {type(storage).__name__}")
    if backward_hooks or metadata:
        raise CheckpointError("tensor rebuild: tensors with hooks or metadata are not expected in a snapshot")
    if not isinstance(storage_offset, int) or not _int_tuple(size) or not _int_tuple(stride):
        raise CheckpointError("tensor rebuild: malformed offset/size/stride")
    # torch checks that size/stride/offset stay inside the storage.
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False, collections.OrderedDict())


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor) or backward_hooks:
        raise CheckpointError("parameter rebuild: expected a plain tensor without hooks")
    return data


def _load_storage_from_bytes(data: Any) -> Any:
    # The real torch.storage._load_from_bytes calls torch.load(weights_only=False), i.e. a second,
    # unrestricted unpickler. torch's weights-only loader reads the same bytes safely.
    if not isinstance(data, bytes):
        raise CheckpointError(f"storage: expected bytes, got {type(data).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; we report below
            storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(
            f"refused: a tensor storage holds a pickle that torch's weights-only loader rejects ({_reason(exc)}); "
            "nothing from it was run"
        ) from None
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise CheckpointError(f"storage: bytes decoded to a {type(storage).__name__}, not a storage")
    return storage


def _reason(exc: BaseException) -> str:
    """One line out of torch's multi-paragraph weights-only error: the reason it gives."""
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    for line in str(exc).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not line.startswith(boilerplate):
            return line
    return type(exc).__name__


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise CheckpointError("numpy dtype: malformed arguments")
    dtype = np.dtype(spec, align, copy)
    if dtype.kind not in "biufc":
        raise UnsafePickleError(f"numpy dtype {spec!r} is not a plain number type")
    return dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
    # The dtype went through _numpy_dtype, but pickle may have changed it since (BUILD sets its
    # state): rebuild a clean number dtype from its kind and size before decoding the bytes.
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biufc":
        raise UnsafePickleError("numpy scalar: only plain number types are allowed")
    order = dtype.byteorder if dtype.byteorder in "<>" else "="
    clean = np.dtype(f"{order}{dtype.kind}{dtype.itemsize}")
    if not isinstance(data, bytes) or len(data) != clean.itemsize:
        raise CheckpointError("numpy scalar: malformed data")
    return np.frombuffer(data, dtype=clean)[0]


def _int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


# The complete list of what a snapshot may refer to. dnnlib.util.EasyDict is not in the fixture
# but appears in published snapshots (the keyword dicts of the public train.py); it maps to a
# plain dict subclass.
ALLOWED_GLOBALS: MappingProxyType[tuple[str, str], Callable[..., Any]] = MappingProxyType(
    {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy", "dtype"): _numpy_dtype,
        ("dnnlib.util", "EasyDict"): _EasyDict,
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only ALLOWED_GLOBALS (never imports anything); everything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"refused: the pickle refers to {module}.{name}, which a StyleGAN2-ADA snapshot never needs "
                "(the file may be malicious; nothing from it was run)"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused: the pickle uses persistent ids, which a StyleGAN2-ADA .pkl never has")


# ---------------------------------------------------------------------------------------------
# Reading


def read_legacy_pkl(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with the restricted unpickler: persistent objects come back as records."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except CheckpointError as exc:
        raise type(exc)(f"{p}: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    except RecursionError:
        raise CheckpointError(f"{p}: not a usable StyleGAN2-ADA snapshot (nested too deeply)") from None
    except Exception as exc:  # pickle reports damage through many exception types
        raise CheckpointError(
            f"{p}: not a readable StyleGAN2-ADA .pkl (damaged or truncated: {type(exc).__name__}: {exc})"
        ) from None


def _flat_state(
    record: PersistentRecord, prefix: str, out: dict[str, torch.Tensor], where: str, depth: int = 0
) -> None:
    """The module tree's ``state_dict()`` equivalent, walking nested persistent records."""
    if depth > _MAX_MODULE_DEPTH:  # StyleGAN2 nests 4 deep; more means a cycle built by hand
        raise CheckpointError(f"{where}: not a usable StyleGAN2-ADA snapshot (module tree cyclic or too deep)")
    state = record.state
    skipped = set(state.get("_non_persistent_buffers_set") or ())
    for kind in ("_parameters", "_buffers"):
        entries = state.get(kind) or {}
        if not isinstance(entries, dict):
            raise CheckpointError(f"{where}: {prefix or record.class_name} {kind} is not a dict")
        for name, tensor in entries.items():
            if tensor is None or (kind == "_buffers" and name in skipped):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{where}: {prefix}{name} is a {type(tensor).__name__}, not a tensor")
            out[prefix + name] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise CheckpointError(f"{where}: sub-module {prefix}{name} is a {type(child).__name__}")
        _flat_state(child, f"{prefix}{name}.", out, where, depth + 1)


def _plain(value: Any) -> Any:
    """JSON-able copy: EasyDicts to dicts, tuples to lists, numpy scalars to Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(type(value).__name__)


def _init_kwargs(record: PersistentRecord, key: str, where: Path) -> dict[str, Any]:
    args, kwargs = record.state.get("_init_args", ()), record.state.get("_init_kwargs")
    if args:
        raise CheckpointError(f"{where}: {key} was built with positional arguments; expected keywords only")
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{where}: {key} has no _init_kwargs; cannot rebuild it")
    try:
        return _plain(kwargs)
    except TypeError as exc:
        raise CheckpointError(f"{where}: {key} init kwargs hold a {exc}, not plain data") from None


def _network_from_record(key: str, record: Any, where: Path, ignored: list[str]) -> nn.Module:
    expected = TOP_LEVEL_CLASSES[key]
    if not isinstance(record, PersistentRecord) or record.class_name != expected:
        found = record.class_name if isinstance(record, PersistentRecord) else type(record).__name__
        raise CheckpointError(f"{where}: {key} is a {found}; expected a StyleGAN2-ADA {expected}")
    flat: dict[str, torch.Tensor] = {}
    _flat_state(record, "", flat, str(where))
    cast = sorted(k for k, t in flat.items() if t.dtype != torch.float32 and t.is_floating_point())
    if cast:
        ignored.append(f"{key}: {len(cast)} non-float32 tensor(s) cast to float32 ({cast[0]}, ...)")
    # Private float32 copies: pickle's memo may share one tensor between G and G_ema (or two
    # names), and the networks adopt these tensors as their parameters.
    flat = {k: t.to(torch.float32 if t.is_floating_point() else t.dtype, copy=True) for k, t in flat.items()}
    return build_network(key, expected, _init_kwargs(record, key, where), flat, where)


def _augment_from_record(record: Any, where: Path, ignored: list[str]) -> tuple[dict[str, Any], dict]:
    if not isinstance(record, PersistentRecord) or record.class_name != "AugmentPipe":
        found = record.class_name if isinstance(record, PersistentRecord) else type(record).__name__
        raise CheckpointError(f"{where}: augment_pipe is a {found}; expected a StyleGAN2-ADA AugmentPipe")
    flat: dict[str, torch.Tensor] = {}
    _flat_state(record, "", flat, str(where))
    p = flat.get("p")
    if p is None or p.numel() != 1:
        raise CheckpointError(f"{where}: augment_pipe has no scalar buffer p")
    derived = sorted(k for k in flat if k != "p")
    if derived:
        # Hz_geom / Hz_fbank: filter constants our AugmentPipe derives itself.
        ignored.append(f"augment_pipe buffers {', '.join(derived)} (constants, recomputed)")
    settings = {"stylegan2_ada_kwargs": _init_kwargs(record, "augment_pipe", where), "p": float(p)}
    return settings, {"p": p.detach().float().reshape([])}


def import_legacy_pkl(path: str | os.PathLike[str]) -> Checkpoint:
    """A public StyleGAN2-ADA snapshot as our modules, without running any of its code.

    Returns G, D, G_ema (those present), the augment settings (public constructor keywords and p,
    as data, plus an AugmentPipe when core.augment provides one) and meta: kimg (from the file
    name), p, dataset info (training_set_kwargs), and ``meta['ignored']``: what was not used.
    """
    where = Path(path)
    data = read_legacy_pkl(where)
    try:
        return _checkpoint_from_data(data, where)
    except CheckpointError:
        raise
    except RecursionError:  # self-referencing keyword dicts, built by hand
        raise CheckpointError(f"{where}: not a usable StyleGAN2-ADA snapshot (cyclic or too deeply nested)") from None
    except (TypeError, AttributeError, KeyError, ValueError, RuntimeError) as exc:
        # Well-formed pickles of odd shape (e.g. non-string parameter names), made by hand.
        raise CheckpointError(
            f"{where}: malformed StyleGAN2-ADA snapshot ({type(exc).__name__}: {exc})"
        ) from None


def _checkpoint_from_data(data: Any, where: Path) -> Checkpoint:
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: expected a snapshot dict (G, D, G_ema, ...), got {type(data).__name__}")
    ignored: list[str] = []
    ckpt = Checkpoint(path=where, meta={"source": LEGACY_SOURCE, "source_file": str(where)})
    for key in NETWORK_NAMES:
        if data.get(key) is not None:
            setattr(ckpt, key, _network_from_record(key, data[key], where, ignored))
    if not ckpt.networks():
        raise CheckpointError(f"{where}: no G, D or G_ema in this snapshot (keys: {', '.join(map(str, data))})")
    if data.get("augment_pipe") is not None:
        ckpt.augment_settings, ckpt.augment_state = _augment_from_record(data["augment_pipe"], where, ignored)
        ckpt.meta["p"] = ckpt.augment_settings["p"]
        ckpt.augment_pipe = build_augment_pipe(ckpt.augment_settings, {}, ignored)
    _collect_extras(data, ckpt.meta, ignored)
    kimg = layout.snapshot_kimg(where)  # the public name: network-snapshot-<kimg>.pkl
    if "kimg" not in ckpt.meta and kimg is not None:
        ckpt.meta["kimg"] = int(kimg) if kimg.is_integer() else kimg
    ckpt.meta["ignored"] = ignored
    for line in ignored:
        log.info("%s: ignored %s", where, line)
    return ckpt


def _collect_extras(data: dict[Any, Any], meta: dict[str, Any], ignored: list[str]) -> None:
    """Keep what else the snapshot dict holds as JSON metadata where it is plain data."""
    for key, value in data.items():
        if key in (*NETWORK_NAMES, "augment_pipe"):
            continue
        try:
            plain = _plain(value)
        except TypeError as exc:
            ignored.append(f"{key} (holds a {exc}, not plain data)")
            continue
        if key == "training_set_kwargs":
            meta["dataset"] = plain
        elif key == "progress" and isinstance(plain, dict):
            meta["progress"] = plain
            if isinstance(plain.get("cur_nimg"), int | float):
                meta["kimg"] = plain["cur_nimg"] / 1000
        else:
            meta.setdefault("extra", {})[str(key)] = plain
