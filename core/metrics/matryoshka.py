"""Matryoshka prefix sweep: any registered metric using only the first m dimensions of each input.

Matryoshka-trained embeddings (Kusupati et al. 2022) front-load information into their leading
dimensions; this sweep shows how alignment grows with the prefix length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs
from alignscope.core.metrics.registry import compute


@dataclass(frozen=True)
class PrefixSweep:
    """``values[i]`` is ``metric`` computed on the first ``dims[i]`` columns of both inputs."""

    metric: str
    dims: np.ndarray
    values: np.ndarray


def prefix_sweep(
    metric: str,
    feats_a: Any,
    feats_b: Any,
    dims: Sequence[int] | None = None,
    **params: Any,
) -> PrefixSweep:
    """Sweep prefix lengths; ``dims`` defaults to powers of two from 2 up to the narrower width, plus that
    width. m = 1 is left out of the default: one dimension has cosine ±1 between every pair of samples,
    so the k-NN metrics see only ties (broken by sample index the same way in both spaces, which reads as
    spurious agreement).

    Example:
        >>> import torch
        >>> feats = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
        >>> prefix_sweep("linear_cka", feats, feats, dims=[2, 16]).values.round(12).tolist()
        [1.0, 1.0]
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b)
    width = min(tensor_a.shape[1], tensor_b.shape[1])
    if dims is None:
        dims = [2**p for p in range(1, int(np.log2(width)) + 1)] or [width]
        if dims[-1] != width:
            dims.append(width)
    dims = sorted({int(m) for m in dims})
    if not dims or dims[0] < 1 or dims[-1] > width:
        raise InputError(f"prefix lengths must lie in [1, {width}] (the narrower input's width), got {dims}")
    values = [compute(metric, tensor_a[:, :m], tensor_b[:, :m], **params) for m in dims]
    return PrefixSweep(metric, np.asarray(dims), np.asarray(values, dtype=np.float64))
