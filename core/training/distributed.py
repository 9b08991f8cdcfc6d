"""Process-group plumbing for torchrun: set-up, collectives the loop needs, and clean shutdown.

The trainer runs as one process per device. Under ``torchrun`` the usual environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...) are set and we join the group with
``init_method='env://'``: NCCL when each process drives a CUDA device, gloo on the CPU. Without
them the trainer is a single process and every collective here is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# Set once this process has joined a process group (two or more ranks); see exit_process.
_joined_group = False


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """Map ``--device auto|cpu|cuda`` to this process's device."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise RuntimeError(f"local rank {local_rank} has no GPU (this node has {count}); lower --nproc_per_node")
    return torch.device("cuda", local_rank)


def init(requested_device: str, timeout_s: float = 1800.0) -> DistEnv:
    """Join the torchrun process group if there is one and pin this process to its device."""
    global _joined_group
    if not launched_by_torchrun():
        return DistEnv(device=pick_device(requested_device))
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world_size > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {}
        if device.type == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
            kwargs["device_id"] = device  # binds NCCL to this GPU: no guessing in barrier() (torch >= 2.3)
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
        _joined_group = True
        log.debug("rank %d/%d joined the %s process group on %s", rank, world_size, backend, device)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown(env: DistEnv, success: bool) -> None:
    """Leave the process group. After success every rank meets at a barrier first, so no rank tears
    the group down while another still talks to it; after a failure the others may be gone, so no
    barrier (torchrun stops the remaining ranks)."""
    if not (env.distributed and dist.is_initialized()):
        return
    if success:
        try:
            dist.barrier()
        except Exception as e:  # a peer gone after its own success: nothing left to wait for
            log.warning("rank %d: the closing barrier failed (%s); leaving the process group anyway", env.rank, e)
    try:
        dist.destroy_process_group()
    except Exception as e:  # after a failure the group may already be broken
        log.debug("rank %d: destroy_process_group: %s", env.rank, e)


def exit_process(code: int) -> None:
    """End a process that joined a process group now, without the interpreter's finalisation.

    gloo's worker threads release the last collectives' work objects after the main thread has
    moved on, and releasing a tensor that Python gave up needs the GIL. If the interpreter is
    finalising by then, the thread is torn down inside a destructor and the process aborts
    ("terminate called without an active exception", SIGABRT; torchrun then reports the job
    failed) after a run that finished. Seen in 2 of 60 two-rank CPU runs on torch 2.13; gdb showed
    the ``pt_gloo_runloop`` thread in ``~AsyncBarrierWork`` -> ``decref_pyobject`` -> ``take_gil``
    while the main thread was in ``Py_FinalizeEx``. Everything the run writes is closed and flushed
    before this is called, so skipping finalisation loses nothing. A single process returns."""
    if not _joined_group:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def all_reduce_sum_(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max_(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def broadcast_(t: torch.Tensor, env: DistEnv, src: int = 0) -> torch.Tensor:
    if env.distributed:
        dist.broadcast(t, src=src)
    return t


def broadcast_object(obj: Any, env: DistEnv, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank (small control messages only)."""
    if not env.distributed:
        return obj
    box = [obj if env.rank == src else None]
    dist.broadcast_object_list(box, src=src, device=env.device if env.device.type == "cuda" else None)
    return box[0]


def broadcast_module_(module: torch.nn.Module, env: DistEnv) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if not env.distributed:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def average_gradients_(params: list[torch.nn.Parameter], env: DistEnv) -> None:
    """Average the gradients over ranks (one flat all-reduce) and replace non-finite values.

    NaN becomes 0 and +-inf becomes +-1e5, as in the public loop, so one bad minibatch cannot
    poison Adam's moments.
    """
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    if not env.distributed:
        for p in params:
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= env.world_size
    torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad.copy_(g.view_as(p.grad))


class Terminated(KeyboardInterrupt):
    """SIGTERM (e.g. torchrun stopping the other ranks) turned into an exception we unwind on."""


SIGTERM_RETRY_S = 0.05  # how soon a held-back SIGTERM is delivered again


class SigtermGuard:
    """Turns SIGTERM into ``Terminated`` in the main thread, except where that would cut short the
    code that records how the run ended.

    When a rank dies, the survivors' next collective fails and torchrun sends them SIGTERM a moment
    later: the signal lands while the collective's error is being handled (the traceback logged, the
    "failed" status written). An exception raised there would skip that status, so while an
    exception is being handled (an ``except`` or ``finally`` block, ``sys.exc_info()``) a SIGTERM is
    held back and delivered again ``SIGTERM_RETRY_S`` later; once ``ending()`` was called it is
    ignored: the process is on its way out, and torchrun's SIGKILL bounds the time that takes.
    """

    def __init__(self) -> None:
        self._ending = False
        self._main = threading.get_ident()
        self._lock = threading.Lock()  # no redelivery after the guard's handler was taken down

    def ending(self) -> None:
        """From now on a SIGTERM waits for the exit under way."""
        with self._lock:
            self._ending = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._ending:
            return
        if sys.exc_info()[1] is not None:
            retry = threading.Timer(SIGTERM_RETRY_S, self._redeliver, args=(signum,))
            retry.daemon = True
            retry.start()
            return
        raise Terminated(f"received signal {signum}")

    def _redeliver(self, signum: int) -> None:
        with self._lock:
            if not self._ending:
                signal.pthread_kill(self._main, signum)


@contextlib.contextmanager
def sigterm_as_exception() -> Iterator[SigtermGuard]:
    """While active, SIGTERM raises ``Terminated`` in the main thread so ``finally`` blocks run
    (see ``SigtermGuard`` for when it waits); call the guard's ``ending()`` where the exit begins."""
    guard = SigtermGuard()
    try:
        previous = signal.signal(signal.SIGTERM, guard._handle)
    except ValueError:  # not the main thread: leave signals alone
        yield guard
        return
    try:
        yield guard
    finally:
        guard.ending()
        signal.signal(signal.SIGTERM, previous)


__all__ = [
    "DistEnv",
    "SigtermGuard",
    "Terminated",
    "all_reduce_max_",
    "all_reduce_sum_",
    "average_gradients_",
    "broadcast_",
    "broadcast_module_",
    "broadcast_object",
    "env_world_size",
    "init",
    "launched_by_torchrun",
    "pick_device",
    "shutdown",
    "sigterm_as_exception",
]
