"""Choice between the pure-PyTorch reference path and fused CUDA kernels.

Every op takes ``impl='auto'|'ref'|'cuda'``. ``auto`` picks CUDA kernels for CUDA tensors when a
kernel for that op is available, else the reference path. The choice is logged once per op and
device type, so users always know which implementation runs (a silent fallback was the most
common complaint about the public tools).
"""

from __future__ import annotations

import logging
import threading

import torch

log = logging.getLogger(__name__)

IMPLS = ("auto", "ref", "cuda")

# Ops that ship a compiled CUDA kernel. Empty in this release: the kernels have not been built and
# verified on a GPU yet, so CUDA tensors run the reference path (correct, slower).
_CUDA_KERNELS: dict[str, object] = {}


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


def resolve_impl(op: str, impl: str, x: torch.Tensor) -> str:
    """Returns 'ref' or 'cuda' for ``op`` applied to ``x``; raises with the fix for a bad choice."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {IMPLS}, got {impl!r}")
    device = x.device.type
    if impl == "ref":
        _choices.once(op, device, "ref", "requested")
        return "ref"
    kernel_ready = device == "cuda" and op in _CUDA_KERNELS
    if impl == "cuda":
        if device != "cuda":
            raise ValueError(f"{op}: impl='cuda' needs a CUDA tensor, got one on {device}; use impl='auto'")
        if not kernel_ready:
            raise RuntimeError(
                f"{op}: no CUDA kernel is built in this release; use impl='auto' or 'ref' "
                "(the reference path runs on CUDA too)"
            )
        _choices.once(op, device, "cuda", "requested")
        return "cuda"
    if kernel_ready:
        _choices.once(op, device, "cuda", "auto: fused kernel available")
        return "cuda"
    why = "auto: no fused kernel in this release" if device == "cuda" else "auto: CPU tensor"
    _choices.once(op, device, "ref", why)
    return "ref"
