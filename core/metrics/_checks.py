"""Input validation shared by every metric: one place for shapes, NaN/Inf and parameter messages.

Every metric takes ``feats_a`` [n, d_a] and ``feats_b`` [n, d_b] whose rows are the same samples in
the same order. Tensors keep their device (so a GPU input is computed on the GPU); numpy arrays become
CPU tensors. Integer and half inputs are promoted to float32; float64 stays float64.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

from alignscope.core.errors import InputError

MIN_SAMPLES = 3
T = TypeVar("T")


def as_tensor(feats: Any, name: str = "feats") -> torch.Tensor:
    """Return ``feats`` as a 2-D floating tensor on its own device, without copying when possible."""
    if isinstance(feats, torch.Tensor):
        tensor = feats.detach()
    elif isinstance(feats, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(feats))
    else:
        try:
            tensor = torch.as_tensor(np.asarray(feats))
        except (TypeError, ValueError) as error:
            raise InputError(f"{name} must be a torch tensor or numpy array, got {type(feats).__name__}") from error
    if tensor.ndim != 2:
        raise InputError(f"{name} must be 2-D [n_samples, n_features], got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    elif tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.to(torch.float32)
    return tensor


def check_features(feats: Any, name: str = "feats", *, min_samples: int = MIN_SAMPLES) -> torch.Tensor:
    """Validate one feature matrix [n, d]: 2-D, finite, at least ``min_samples`` rows and one column."""
    tensor = as_tensor(feats, name)
    n_samples, n_features = tensor.shape
    if n_features == 0:
        raise InputError(f"{name} has no feature columns (shape {tuple(tensor.shape)})")
    if n_samples < min_samples:
        raise InputError(f"{name} has {n_samples} rows; at least {min_samples} samples are needed")
    # one NaN or Inf makes the sum non-finite (a finite overflow only costs the elementwise check)
    if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
        n_bad = int((~torch.isfinite(tensor)).sum())
        raise InputError(f"{name} contains {n_bad} NaN or Inf values; clean or drop those samples first")
    return tensor


def _check_inputs(
    feats_a: Any,
    feats_b: Any,
    *,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    min_samples: int = MIN_SAMPLES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair of feature matrices holding the same samples; return them as tensors.

    Raises:
        InputError: NaN/Inf, not 2-D, fewer than ``min_samples`` rows, or different numbers of rows.
    """
    tensor_a = as_tensor(feats_a, name_a)
    tensor_b = as_tensor(feats_b, name_b)
    if tensor_a.shape[0] != tensor_b.shape[0]:
        raise InputError(
            f"{name_a} has {tensor_a.shape[0]} rows but {name_b} has {tensor_b.shape[0]}; "
            "both must hold the same samples in the same order"
        )
    tensor_a = check_features(tensor_a, name_a, min_samples=min_samples)
    tensor_b = check_features(tensor_b, name_b, min_samples=min_samples)
    if tensor_a.device != tensor_b.device:
        tensor_b = tensor_b.to(tensor_a.device)
    return tensor_a, tensor_b


check_inputs = _check_inputs


def check_k(k: Any, n_samples: int, name: str = "k") -> int:
    """A neighbour count must be an integer in [1, n_samples - 1] (the sample itself is excluded)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise InputError(f"{name} must be at least 1, got {k}")
    if k >= n_samples:
        raise InputError(
            f"{name}={k} needs more samples: with {n_samples} samples each one has only "
            f"{n_samples - 1} others, so use {name} <= {n_samples - 1}"
        )
    return k


def present(value: T | None) -> T:
    """``value``, which the caller's state guarantees is set (narrows ``X | None`` to ``X`` for typing)."""
    if value is None:
        raise AssertionError("a prepared state is missing a field its mode needs")
    return value


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a number, got {value!r}") from error
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be finite and {bound}, got {value!r}")
    return number


def centered64(feats: torch.Tensor) -> torch.Tensor:
    """Columns centred, in float64 (sums of many products lose digits in float32)."""
    feats64 = feats.to(torch.float64)
    return feats64 - feats64.mean(dim=0, keepdim=True)
