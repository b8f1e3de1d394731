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
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"device {device!r} is not a torch device (auto, cpu, cuda, cuda:1, mps)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device auto or cpu")
    return resolved


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


def one_thread_each(work: Callable[[Item], Result], items: Sequence[Item]) -> Iterator[Result]:
    """``work(item)`` for each item, in order, up to torch's thread count of them at once, each on one torch
    thread (torch's ops release the GIL). For many medium ops (top-k, gathers, sorts over 10^5–10^6
    entries), which a second thread barely speeds up: two items at once keep both cores busy. A result does
    not depend on the core count (one thread each, whatever the machine). Memory: that many items' work at
    once.

    Example:
        >>> list(one_thread_each(lambda x: int(torch.arange(x).sum()), [3, 4, 5]))
        [3, 6, 10]
    """
    workers = min(torch.get_num_threads(), len(items))
    with torch_threads(1):
        if workers < 2:
            yield from map(work, items)
            return
        # each pool thread sets its own count (another thread may restore the shared one meanwhile)
        with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            yield from pool.map(work, items)
