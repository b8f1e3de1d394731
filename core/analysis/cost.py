"""Cost estimates: how many CPU-seconds a request would take here, before anything runs.

The dashboard starts a request by itself only when its estimate fits the budget
(``Settings.auto_budget_seconds``, ``ALIGNSCOPE_AUTO_BUDGET_S``); above it, a button shows the estimate.
Estimates are deliberately on the high side: a floating-point operation count per metric call
(similarities / Grams are n²·d, SVDs and solves d³ or n·d²), times :data:`SECONDS_PER_FLOP` measured
on a busy 2-core machine (``bench/bench_cost.py`` checks estimate ≥ measured), plus a per-call overhead.
Metrics with a split form pay the preparation once and only a cheap comparison per shuffle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from alignscope.core.metrics.registry import MetricSpec, get_metric

SECONDS_PER_FLOP = 1.0 / 1.5e9
CALL_OVERHEAD_SECONDS = 0.004
STATE_OP_OVERHEAD_SECONDS = 0.0012  # permuting or comparing prepared states: a few small tensor ops
REQUEST_OVERHEAD_SECONDS = 0.25  # a job's own start: reading its features, first-call warm-ups
UMAP_SECONDS_PER_SAMPLE = 0.004
UMAP_FIRST_COMPILE_SECONDS = 60.0


@dataclass(frozen=True)
class Scale:
    """Measured CPU-seconds per estimated second, per part of the work: a whole metric call, one shuffled
    correspondence, one bootstrap resample. Fitted with ``bench/bench_cost.py`` (one layer pair and 3 × 3
    layer matrices; n = 120–1797, d = 16–1280, 2 cores, a quiet box) as the smallest median estimate /
    measured ratio that keeps every case at 1.5× or more, within 0.25–4× of the scales fitted before."""

    call: float = 1.0
    shuffle: float = 1.0
    resample: float = 1.0


SCALES = {
    "knn": Scale(0.3, 0.55, 0.79),
    "kernel": Scale(0.24, 1.1, 0.33),
    "cca": Scale(0.29, 0.16, 0.28),
    "geometry": Scale(0.063, 0.89, 0.19),
    "gram": Scale(0.17, 0.025, 0.063),
    "matching": Scale(0.16, 0.03, 0.015),
    "rsa": Scale(1.15, 1.75, 0.8),
    "retrieval": Scale(0.048, 0.048, 0.03),
    "relative": Scale(0.25, 0.25, 0.25),
    "shape": Scale(0.25, 0.25, 0.25),
}


# metrics whose own work differs from their family's (CKNNA keeps kernel values and reverse positions)
METRIC_SCALES = {"cknna": Scale(0.63, 0.38, 0.63)}


def _scale(metric: str) -> Scale:
    return METRIC_SCALES.get(metric) or SCALES.get(get_metric(metric).family, Scale())


def _prepare_flops(spec: MetricSpec, n: int, d: int, params: dict) -> float:
    """One input's preparation (neighbour lists, Gram, SVD basis, RDM)."""
    family = spec.family
    if family == "knn":  # similarity blocks + top-k (whose cost grows with k) + ordering the lists
        k = int(params.get("k", 10))
        return 2.0 * n * n * d + 4.0 * n * n * (1.0 + math.log2(k + 1)) + 20.0 * n * k * math.log2(k + 1)
    if family in ("kernel", "rsa"):
        return 2.0 * n * n * min(d, n) + 8.0 * n * n * (3 if spec.name.startswith("rbf") else 1)
    if family in ("cca", "shape", "geometry"):
        width = min(n, d)
        return 4.0 * n * d * width + 10.0 * width**3
    return 2.0 * n * d * min(n, d)


def _compare_flops(spec: MetricSpec, n: int, d_a: int, d_b: int, params: dict) -> float:
    """One comparison of two prepared inputs (also the cost of a shuffle for split metrics)."""
    family = spec.family
    k = int(params.get("k", 10))
    if family == "knn":
        return 60.0 * n * k
    if family in ("kernel", "rsa"):
        return 12.0 * n * n
    width_a, width_b = min(n, d_a), min(n, d_b)
    return 2.0 * n * width_a * width_b + 10.0 * min(width_a, width_b) ** 3


def _whole_flops(spec: MetricSpec, n: int, d_a: int, d_b: int, params: dict) -> float:
    """A metric computed from scratch on one pair (what non-split metrics pay per shuffle too)."""
    if spec.prepare is not None and spec.compare is not None:
        return (
            _prepare_flops(spec, n, d_a, params)
            + _prepare_flops(spec, n, d_b, params)
            + _compare_flops(spec, n, d_a, d_b, params)
        )
    folds = int(params.get("n_folds", 1))
    big = max(d_a, d_b)
    flops = folds * (2.0 * n * big * min(n, big) + 10.0 * min(n, big) ** 3) + 2.0 * n * n * big
    if spec.family == "matching":
        flops += 2.0 * n * d_a * d_b + 5.0 * max(d_a, d_b) ** 3
    return flops


def seconds(flops: float, calls: int = 1) -> float:
    return flops * SECONDS_PER_FLOP + calls * CALL_OVERHEAD_SECONDS


def _call_seconds(metric: str, n: int, d_a: int, d_b: int, params: dict) -> float:
    return seconds(_whole_flops(get_metric(metric), n, d_a, d_b, params))


def metric_seconds(metric: str, n: int, d_a: int, d_b: int, params: dict) -> float:
    """One call of ``metric`` on [n, d_a] and [n, d_b]."""
    return _scale(metric).call * _call_seconds(metric, n, d_a, d_b, params)


def _permutable(metric: str) -> bool:
    spec = get_metric(metric)
    return spec.prepare is not None and spec.compare is not None and spec.permute is not None


def permute_seconds(metric: str, n: int, d: int, params: dict) -> float:
    """Reordering one prepared state's samples (neighbour lists: n·k; a Gram matrix: n²)."""
    spec = get_metric(metric)
    flops = 20.0 * n * int(params.get("k", 10)) if spec.family == "knn" else 4.0 * n * n
    return _scale(metric).shuffle * (flops * SECONDS_PER_FLOP + STATE_OP_OVERHEAD_SECONDS)


def compare_seconds(metric: str, n: int, d_a: int, d_b: int, params: dict) -> float:
    """Comparing two prepared states once."""
    flops = _compare_flops(get_metric(metric), n, d_a, d_b, params)
    return _scale(metric).shuffle * (flops * SECONDS_PER_FLOP + STATE_OP_OVERHEAD_SECONDS)


def shuffle_seconds(metric: str, n: int, d_a: int, d_b: int, params: dict) -> float:
    """One shuffled correspondence of one pair (permutation test, shuffled chance level)."""
    if _permutable(metric):
        return permute_seconds(metric, n, d_b, params) + compare_seconds(metric, n, d_a, d_b, params)
    return _scale(metric).shuffle * _call_seconds(metric, n, d_a, d_b, params)


def layer_matrix_seconds(metric: str, n: int, dims_a: Sequence[int], dims_b: Sequence[int], params: dict) -> float:
    spec = get_metric(metric)
    if spec.prepare is not None and spec.compare is not None:
        prepares = sum(_prepare_flops(spec, n, d, params) for d in (*dims_a, *dims_b))
        compares = sum(_compare_flops(spec, n, da, db, params) for da in dims_a for db in dims_b)
        calls = len(dims_a) + len(dims_b) + len(dims_a) * len(dims_b)
        return _scale(metric).call * seconds(prepares + compares, calls)
    return sum(metric_seconds(metric, n, da, db, params) for da in dims_a for db in dims_b)


def matrix_seconds(
    metric: str, n: int, dims_a: Sequence[int], dims_b: Sequence[int], params: dict, permutations: int
) -> float:
    """A MatrixRequest: every pair once, plus the shuffles that give each cell its chance level and p
    (``permutations``, or the chance level's shuffles when the metric has no exact closed form); each
    shuffle scores the whole matrix."""
    shuffles = matrix_shuffles(metric, permutations, len(dims_a) * len(dims_b))
    if _permutable(metric):  # one shuffle reorders each of B's states once and compares every pair
        per_shuffle = sum(permute_seconds(metric, n, db, params) for db in dims_b) + sum(
            compare_seconds(metric, n, da, db, params) for da in dims_a for db in dims_b
        )
    else:
        per_shuffle = sum(shuffle_seconds(metric, n, da, db, params) for da in dims_a for db in dims_b)
    return REQUEST_OVERHEAD_SECONDS + layer_matrix_seconds(metric, n, dims_a, dims_b, params) + shuffles * per_shuffle


def matrix_shuffles(metric: str, permutations: int, cells: int) -> int:
    """Shuffled correspondences a layer matrix of ``cells`` pairs scores: ``permutations`` when asked for,
    else :data:`CHANCE_SHUFFLES` for the chance level of each cell (no exact closed form) or for the chance
    of the best of the search (more than one cell and cheap shuffles: the metric reorders prepared
    states), else none."""
    if permutations:
        return permutations
    spec = get_metric(metric)
    if not (spec.chance is not None and spec.chance_exact) or (cells > 1 and _permutable(metric)):
        return CHANCE_SHUFFLES
    return 0


def chance_seconds(metric: str, n: int, d_a: int, d_b: int, params: dict, shuffles: int) -> float:
    spec = get_metric(metric)
    if spec.chance is not None and spec.chance_exact:
        return 0.0
    prepares = _scale(metric).call * seconds(
        _prepare_flops(spec, n, d_a, params) + _prepare_flops(spec, n, d_b, params)
    )
    return prepares + shuffles * shuffle_seconds(metric, n, d_a, d_b, params)


def umap_seconds(n: int, d: int, warm: bool) -> float:
    """A UMAP fit: neighbour graph (n²·d) plus the layout, plus the first JIT compile in a process."""
    return seconds(2.0 * n * n * d) + UMAP_SECONDS_PER_SAMPLE * n + (0.0 if warm else UMAP_FIRST_COMPILE_SECONDS)


CHANCE_SHUFFLES = 20
"""Shuffled correspondences averaged for the chance level of metrics without an exact closed form."""


def pair_seconds(
    metric: str,
    n: int,
    dims_a: Sequence[int],
    dims_b: Sequence[int],
    params: dict,
    *,
    search: bool,
    permutations: int,
    bootstrap: int,
) -> float:
    """One PairRequest: the score (or the whole layer matrix when ``search``), chance, shuffles, resamples.

    ``dims_a`` / ``dims_b``: the widths of every layer when searching, else of the one layer of each.
    """
    d_a, d_b = max(dims_a), max(dims_b)
    if search:  # the whole matrix with its shuffles: the best pair's p comes from them
        total = matrix_seconds(metric, n, dims_a, dims_b, params, permutations)
        permutations = 0
    else:
        total = metric_seconds(metric, n, d_a, d_b, params)
    total += chance_seconds(metric, n, d_a, d_b, params, CHANCE_SHUFFLES)
    if permutations:
        total += metric_seconds(metric, n, d_a, d_b, params)
        total += permutations * shuffle_seconds(metric, n, d_a, d_b, params)
    return REQUEST_OVERHEAD_SECONDS + total + bootstrap * resample_seconds(metric, n, d_a, d_b, params)


def resample_seconds(metric: str, n: int, d_a: int, d_b: int, params: dict) -> float:
    """One bootstrap resample: the metric from scratch on resampled rows (copies masked for k-NN)."""
    extra = 4.0 * n * n if get_metric(metric).takes_sample_ids else 0.0  # the id mask of k-NN blocks
    return _scale(metric).resample * (_call_seconds(metric, n, d_a, d_b, params) + seconds(extra, 0))


PROBE_ITERATIONS = 100  # lbfgs iterations a probe fit typically takes on standardised features


def probe_seconds(n: int, dims: Sequence[int], n_classes: int = 10, n_folds: int = 5) -> float:
    """A logistic-regression probe of every layer: per fold ~iterations × (forward + gradient) passes."""
    return REQUEST_OVERHEAD_SECONDS + sum(
        seconds(4.0 * PROBE_ITERATIONS * n * (n_folds - 1) / n_folds * d * n_classes * n_folds, 3 * n_folds)
        for d in dims
    )


def shared_resample_seconds(
    metric: str, n: int, state_dims: Sequence[int], pair_dims: Sequence[tuple[int, int]], params: dict
) -> float:
    """One resample scored for many pairs at once: with a split form each input (``state_dims``) is
    prepared once and every pair (``pair_dims``) only compared; without one, every pair from scratch."""
    spec = get_metric(metric)
    if spec.prepare is None or spec.compare is None:
        return sum(resample_seconds(metric, n, d_a, d_b, params) for d_a, d_b in pair_dims)
    extra = 4.0 * n * n if spec.takes_sample_ids else 0.0
    prepares = sum(_prepare_flops(spec, n, d, params) + extra for d in state_dims)
    compares = sum(_compare_flops(spec, n, d_a, d_b, params) for d_a, d_b in pair_dims)
    return _scale(metric).resample * seconds(prepares + compares, len(state_dims) + len(pair_dims))
