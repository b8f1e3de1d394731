"""Devices and dtypes: ``auto`` picks cuda, then mps, then cpu; half precision only on accelerators."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from alignscope.core.errors import ModelLoadError

Item = TypeVar("Item")
Result = TypeVar("Result")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"device {device!r} is not a torch device (auto, cpu, cuda, cuda:1, mps)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device auto or cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ModelLoadError(
            f"device {device!r} was asked for but torch sees {torch.cuda.device_count()} CUDA GPU(s), "
            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    if resolved.type == "mps" and not _mps_available():
        raise ModelLoadError("device 'mps' was asked for but torch sees no Apple GPU (MPS); use --device auto or cpu")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"device {device!r} is not supported here; use auto, cpu, cuda, cuda:N or mps")
    return resolved


def _mps_available() -> bool:
    """Whether torch sees an Apple GPU (builds without the MPS backend have no ``torch.backends.mps``)."""
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Half precision only on accelerators; CPU always computes in float32."""
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {list(DTYPES)}")
    return torch.float32 if device.type == "cpu" else DTYPES[dtype]


def effective_dtype(dtype: str, device: str = "auto") -> str:
    """The dtype name features are computed in on ``device`` (part of every feature cache key).

    Example:
        >>> effective_dtype("bfloat16", "cpu")
        'float32'
    """
    return str(resolve_dtype(dtype, resolve_device(device))).removeprefix("torch.")


@contextlib.contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Run the block on ``count`` torch intra-op threads, restoring the setting after. Many small ops on
    2 busy cores run faster on one thread (a multi-threaded small op waits for a descheduled thread), and
    one thread keeps float reductions identical across machines with different core counts."""
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Torch's intra-op thread count when this module was imported. A thread's count is its own, but torch
# copies a process-wide value into a thread at its first torch call, and every set_num_threads writes that
# value: a thread starting while another runs on one thread would keep one for life.
PROCESS_THREADS = torch.get_num_threads()
# items run at once by side_by_side (memory: that many items' work at once, on any machine)
SIDE_BY_SIDE = 2


def _own_threads(count: int) -> None:
    """Put the calling thread on ``count`` torch threads (a pool thread's initializer)."""
    torch.get_num_threads()  # torch's lazy per-thread setup first, or it would overwrite the count below
    torch.set_num_threads(count)


def default_threads() -> None:
    """Put the calling thread on :data:`PROCESS_THREADS` torch threads (a long-lived thread's initializer)."""
    _own_threads(PROCESS_THREADS)


def side_by_side(
    work: Callable[[Item], Result], items: Sequence[Item], workers: int = SIDE_BY_SIDE
) -> Iterator[Result]:
    """``work(item)`` for each item, in order, ``workers`` of them at once on pool threads that share
    torch's threads between them (one each on 2 cores; torch's ops release the GIL). For many
    medium ops (top-k, gathers, sorts over 10^5–10^6 entries) that more threads barely speed up. With one
    thread to share, or one item, the items run in turn in the caller's thread, each on one thread. The
    caller's own count is not changed while the pool runs, and the process-wide count new threads start
    from is restored after.

    Example:
        >>> list(side_by_side(lambda x: int(torch.arange(x).sum()), [3, 4, 5]))
        [3, 6, 10]
    """
    threads = torch.get_num_threads()
    workers = min(workers, threads, len(items))
    if workers < 2:
        with torch_threads(1):
            yield from map(work, items)
        return
    try:
        with ThreadPoolExecutor(workers, initializer=_own_threads, initargs=(threads // workers,)) as pool:
            yield from pool.map(work, items)
    finally:
        torch.set_num_threads(threads)  # the pool threads wrote the process-wide count
