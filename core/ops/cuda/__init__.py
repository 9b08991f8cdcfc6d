"""Fused kernels for CUDA tensors, written in Triton (no nvcc, no build step: Triton compiles them
on first use from the wheel PyTorch's CUDA builds already depend on).

Two ops have one: ``bias_act`` (bias + lrelu/relu/linear + gain + clamp, one pass over memory
instead of four) and ``upfirdn2d`` (zero-insertion, padding, FIR filter and subsampling in one
pass). Both are differentiable to any order, as R1 and path-length regularisation need.

A kernel is only used after it has checked itself once per process against the reference path on
the device it is about to run on (:func:`kernel_ready`); a kernel that fails to compile or
disagrees is logged and the reference path runs instead. Under ``TRITON_INTERPRET=1`` Triton runs
the kernels on the CPU with numpy, which is how the tests check them on a machine without a GPU
(``impl='cuda'`` then accepts CPU tensors).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType

import torch

log = logging.getLogger(__name__)

OPS = ("bias_act", "upfirdn2d")
# The activations bias_act's kernel covers (piecewise linear; their index is the kernel's code).
BIAS_ACT_KERNEL_ACTS = ("linear", "relu", "lrelu")

_lock = threading.Lock()
_checked: dict[tuple[str, str], bool] = {}


def triton_available() -> bool:
    if "triton" in sys.modules:  # imported, or kept out of this process (None: the GUI, see viz.app)
        return sys.modules["triton"] is not None
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton runs kernels on the CPU through its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def kernel_module(op: str) -> ModuleType:
    """The module holding ``op``'s kernel; imported lazily, so nothing loads Triton until it is used."""
    if op not in OPS:
        raise KeyError(op)
    return importlib.import_module(f"core.ops.cuda.{op}")


def kernel_ready(op: str, device: torch.device) -> bool:
    """Whether ``op`` has a working fused kernel on ``device``: checked once per (op, device)."""
    if op not in OPS or not triton_available():
        return False
    if device.type != "cuda" and not interpreting():
        return False
    key = (op, str(device))
    with _lock:
        if key not in _checked:
            _checked[key] = _self_check(op, device)
        return _checked[key]


def _self_check(op: str, device: torch.device) -> bool:
    check: Callable[[torch.device], float] = kernel_module(op).self_check
    try:
        with torch.inference_mode(False), torch.enable_grad():  # the first call may come from a no_grad render
            err = check(device)
    except Exception as exc:  # a compiler or driver failure must not stop training: the reference path runs
        log.warning("%s on %s: the Triton kernel failed to run (%s: %s); using the reference path",
                    op, device, type(exc).__name__, exc)
        return False
    if err > 1e-4:
        log.warning("%s on %s: the Triton kernel differs from the reference path by %.3g; using the reference path",
                    op, device, err)
        return False
    return True


def forget_checks() -> None:
    """Drops the cached self-checks (tests)."""
    with _lock:
        _checked.clear()
