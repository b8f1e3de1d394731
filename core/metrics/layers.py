"""A metric over every (layer i of model A, layer j of model B), with per-layer work done once.

Metrics with a split form in the registry (``prepare`` / ``compare``: the k-NN family, CKNNA, the
kernel and CCA families, Procrustes and RSA) prepare each layer once — neighbour lists, centred Gram
matrices, SVD bases, Gram factors, ranked RDMs — and only compare prepared states per pair
(``bench/bench_metrics.py``, n = 1024, d = 768, 8 × 8 layers: RSA 7.3×, SVCCA 4.3×, PWCCA and mean CCA
3.0× faster than per pair; Procrustes 1.1×, its per-pair SVD of AᵀB dominates). Metrics that fit
something per pair (ridge, retrieval, unit matching) or need all inputs at once (GRAM) are called once
per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alignscope.core.devices import side_by_side
from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import check_features
from alignscope.core.metrics.registry import get_metric

# Up to this many samples a layer matrix prepares two layers at once (both n x n Grams held at once)
PARALLEL_PREPARE_MAX_SAMPLES = 4096


@dataclass(frozen=True)
class LayerMatrix:
    """Scores of every layer pair.

    Attributes:
        values: float64 [La, Lb]; ``values[i, j]`` compares layer i of A with layer j of B.
        best_index: (i, j) of the best value (max, or min when lower is better).
        best_value: the value at ``best_index``.
        metric: the metric name.
        params: the resolved metric parameters.
    """

    values: np.ndarray
    best_index: tuple[int, int]
    best_value: float
    metric: str
    params: dict[str, Any]


def layer_matrix(
    layers_a: Sequence[Any],
    layers_b: Sequence[Any],
    metric: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    names_a: Sequence[str] | None = None,
    names_b: Sequence[str] | None = None,
    **params: Any,
) -> LayerMatrix:
    """Compute ``metric`` for every pair of layers.

    Args:
        layers_a: La feature matrices [n, d_i] (widths may differ), tensors or arrays.
        layers_b: Lb feature matrices [n, d_j], the same n samples in the same order.
        metric: a registered metric name.
        progress: optional ``progress(done, total)`` callback; ``total`` counts layer preparations
            plus pairs.
        names_a, names_b: optional layer labels for error messages (default ``"A layer 3"``).
        **params: the metric's parameters, validated against the registry.

    Returns:
        A :class:`LayerMatrix`.

    Example:
        >>> import torch
        >>> layers = [torch.randn(30, 4, generator=torch.Generator().manual_seed(s)) for s in range(2)]
        >>> result = layer_matrix(layers, layers, "linear_cka")
        >>> result.values.shape, round(result.best_value, 12)
        ((2, 2), 1.0)
    """
    spec = get_metric(metric)
    resolved = spec.resolve_params(params)
    if len(layers_a) == 0 or len(layers_b) == 0:
        raise InputError(f"layer_matrix needs at least one layer on each side; got {len(layers_a)} and {len(layers_b)}")
    labels_a = list(names_a) if names_a is not None else [f"A layer {i}" for i in range(len(layers_a))]
    labels_b = list(names_b) if names_b is not None else [f"B layer {j}" for j in range(len(layers_b))]
    tensors_a = [check_features(feats, label) for feats, label in zip(layers_a, labels_a)]
    tensors_b = [check_features(feats, label) for feats, label in zip(layers_b, labels_b)]
    device = tensors_a[0].device  # one device for every prepared state (as _check_inputs does per pair)
    tensors_a = [tensor.to(device) for tensor in tensors_a]
    tensors_b = [tensor.to(device) for tensor in tensors_b]
    n_samples = tensors_a[0].shape[0]
    for tensor, label in zip(tensors_a + tensors_b, labels_a + labels_b):
        if tensor.shape[0] != n_samples:
            raise InputError(
                f"{labels_a[0]} has {n_samples} rows but {label} has {tensor.shape[0]}; "
                "all layers must hold the same samples in the same order"
            )
    n_a, n_b = len(tensors_a), len(tensors_b)
    split = spec.prepare is not None and spec.compare is not None
    total = (n_a + n_b if split else 0) + n_a * n_b
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    if split:
        values = _split_matrix(spec, tensors_a, tensors_b, labels_a, labels_b, resolved, tick)
    else:
        values = np.empty((n_a, n_b), dtype=np.float64)
        for i, (tensor_a, label_a) in enumerate(zip(tensors_a, labels_a)):
            for j, (tensor_b, label_b) in enumerate(zip(tensors_b, labels_b)):
                values[i, j] = spec.fn(tensor_a, tensor_b, name_a=label_a, name_b=label_b, **resolved)
                tick()
    if np.isnan(values).all():
        raise InputError(f"{metric} is undefined (NaN) for every layer pair; the features may be constant")
    flat = int(np.nanargmax(values) if spec.higher_is_better else np.nanargmin(values))
    best = np.unravel_index(flat, values.shape)
    best_index = (int(best[0]), int(best[1]))
    return LayerMatrix(
        values=values, best_index=best_index, best_value=float(values[best_index]), metric=metric, params=resolved
    )


def _split_matrix(spec, tensors_a, tensors_b, labels_a, labels_b, resolved, tick) -> np.ndarray:
    """All pairs through the split form: each layer prepared once, then compared (batched when it can)."""
    states = _prepare_all(spec, tensors_a + tensors_b, labels_a + labels_b, resolved, tick)
    states_a, states_b = states[: len(tensors_a)], states[len(tensors_a) :]
    values = np.empty((len(states_a), len(states_b)), dtype=np.float64)
    batched = spec.compare_all(states_a, states_b, **resolved) if spec.compare_all is not None else None
    if batched is not None:
        values[:] = batched
        for _ in range(values.size):
            tick()
        return values
    for i, state_a in enumerate(states_a):
        for j, state_b in enumerate(states_b):
            values[i, j] = spec.compare(state_a, state_b, **resolved)
            tick()
    return values


def _prepare_all(spec, tensors, labels, resolved, tick) -> list:
    """Each layer's prepared state, in order. On the CPU, up to n = :data:`PARALLEL_PREPARE_MAX_SAMPLES`,
    two layers are prepared at once, sharing torch's threads (:func:`side_by_side`; one each on 2 cores): a
    preparation is a large product and many medium ops (top-k, sorts, gathers) that more threads barely
    speed up. Memory: two preparations at once (an RBF kernel or RSA at n = 4,096: ~0.5 GiB each)."""

    def prepare(index: int):
        return spec.prepare(tensors[index], name=labels[index], **resolved)

    small = tensors[0].shape[0] <= PARALLEL_PREPARE_MAX_SAMPLES and tensors[0].device.type == "cpu"
    states = []
    for state in side_by_side(prepare, range(len(tensors))) if small else map(prepare, range(len(tensors))):
        states.append(state)
        tick()
    return states
