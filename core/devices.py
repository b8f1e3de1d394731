"""Devices and dtypes: ``auto`` picks cuda, then mps, then cpu; half precision only on accelerators."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
