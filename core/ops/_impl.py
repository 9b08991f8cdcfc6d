"""Choice between the pure-PyTorch reference path and fused CUDA kernels.

Every op takes ``impl='auto'|'ref'|'cuda'``. ``auto`` picks the fused kernel (core.ops.cuda,
Triton) for CUDA tensors when that op has one and it passed its self-check, else the reference
path. The choice is logged once per op and device type, so users always know which
implementation runs (a silent fallback was the most common complaint about the public tools).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

import torch

from core.ops import cuda as cuda_kernels

log = logging.getLogger(__name__)

IMPLS = ("auto", "ref", "cuda")

# What impl='auto' means, for every op (the networks call the ops with 'auto'). ADA_STUDIO_OPS=ref
# forces the reference path everywhere (to rule a kernel out when chasing a numerical problem on a
# GPU); =cuda forces the fused kernels (on CPU only under TRITON_INTERPRET=1, as the tests do).
_default_impl = os.environ.get("ADA_STUDIO_OPS", "auto")
if _default_impl not in IMPLS:
    log.warning("ADA_STUDIO_OPS=%r is not one of %s; ignoring it (auto)", _default_impl, ", ".join(IMPLS))
    _default_impl = "auto"


def set_default_impl(impl: str) -> str:
    """Makes ``impl`` what 'auto' resolves through; returns the previous setting."""
    global _default_impl
    if impl not in IMPLS:
        raise ValueError(f"ADA_STUDIO_OPS / set_default_impl: use one of {', '.join(IMPLS)}, got {impl!r}")
    previous, _default_impl = _default_impl, impl
    return previous


@contextlib.contextmanager
def default_impl(impl: str) -> Iterator[None]:
    """``set_default_impl(impl)`` for the duration of a ``with`` block."""
    previous = set_default_impl(impl)
    try:
        yield
    finally:
        set_default_impl(previous)


class _ChoiceLog:
    """Remembers which (op, device, impl) choices were already logged."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def once(self, op: str, device: str, impl: str, why: str) -> None:
        # Under torch.compile the lock and the set would break the graph (and the set's contents
        # would become guards that recompile it); the eager call before compiling has logged it.
        if torch.compiler.is_compiling():
            return
        key = (op, device, impl)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        log.info("%s on %s: using the %s implementation (%s)", op, device, impl, why)


_choices = _ChoiceLog()


def resolve_impl(op: str, impl: str, x: torch.Tensor, supported: bool = True) -> str:
    """Returns 'ref' or 'cuda' for ``op`` applied to ``x``; raises with the fix for a bad choice.

    'cuda' means the op's fused Triton kernel (core.ops.cuda). ``supported`` False says the
    kernel does not cover this call (an activation or dtype it lacks): 'auto' then takes the
    reference path and 'cuda' raises. Under torch.compile 'auto' takes the reference path, which
    Inductor fuses into kernels of its own.
    """
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {IMPLS}, got {impl!r}")
    forced = impl == "auto" and _default_impl != "auto"  # by ADA_STUDIO_OPS / set_default_impl
    if impl == "auto":
        impl = _default_impl
    device = x.device.type
    if impl == "ref":
        _choices.once(op, device, "ref", "requested")
        return "ref"
    if impl == "cuda":
        if device != "cuda" and not cuda_kernels.interpreting():
            raise ValueError(f"{op}: impl='cuda' needs a CUDA tensor, got one on {device}; use impl='auto'")
        if not supported and forced:
            _choices.once(op, device, "ref", "the fused kernel does not cover this call")
            return "ref"
        if not supported:
            raise ValueError(f"{op}: the fused kernel does not cover this call; use impl='auto' or 'ref'")
        if not cuda_kernels.kernel_ready(op, x.device):
            raise RuntimeError(
                f"{op}: no working fused kernel on {device} (Triton missing, or its self-check failed: see the log); "
                "use impl='auto' or 'ref'"
            )
        _choices.once(op, device, "cuda", "requested")
        return "cuda"
    if device != "cuda":
        _choices.once(op, device, "ref", "auto: CPU tensor")
        return "ref"
    if torch.compiler.is_compiling():
        return "ref"
    if supported and cuda_kernels.kernel_ready(op, x.device):
        _choices.once(op, device, "cuda", "auto: fused Triton kernel, self-checked")
        return "cuda"
    why = "auto: the fused kernel does not cover this call" if not supported else "auto: no working fused kernel"
    _choices.once(op, device, "ref", why)
    return "ref"
