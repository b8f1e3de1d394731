"""Devices and dtypes: ``auto`` picks cuda, then mps, then cpu; half precision only on accelerators."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator
from pathlib import Path

import torch

from alignscope.core.errors import ModelLoadError

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


def free_cores(loadavg: Path = Path("/proc/loadavg"), tasks: Path = Path("/proc/self/task"), reads: int = 5) -> int:
    """CPUs this process may use that other processes are not running on right now: the usable CPUs minus
    the runnable tasks of other processes (the ``R`` of /proc/loadavg's ``R/T`` field, less this process's
    own running threads, e.g. OpenMP workers still spinning after a parallel region; median of ``reads``
    reads). All usable CPUs where /proc cannot be read (not Linux)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    others = []
    for _ in range(reads):
        try:
            running = int(loadavg.read_text().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return usable
        others.append(max(0, running - _own_running_threads(tasks)))
    return max(0, usable - int(statistics.median(others)))


def _own_running_threads(tasks: Path) -> int:
    """Threads of this process in state R (``/proc/self/task/<tid>/stat``: the state follows the ``(comm)``)."""
    count = 0
    try:
        for stat in tasks.glob("*/stat"):
            try:
                count += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(1, count)  # the reader itself is running


@contextlib.contextmanager
def threads_for_load(free: int | None = None) -> Iterator[int]:
    """Run the block on as many torch intra-op threads as cores are free (at least one, at most torch's
    own count), restoring the setting after; yields the count. On a loaded machine a multi-threaded op
    waits at every barrier for a descheduled thread (bench/results/contention.json: one thread degrades
    about half as much under load); idle, every core is used. ``free``: the free-core count to assume
    instead of reading the machine."""
    threads = torch.get_num_threads()
    count = max(1, min(threads, free_cores() if free is None else free))
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(threads)
