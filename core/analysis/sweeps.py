"""The one sweep engine: a score as k, n, the Matryoshka prefix length or the layer depth varies.

Default grids (the dashboard's stopping rules, also used by the CLI and the API):

* ``k``: 9 geometric steps from 1 (2 for metrics whose k starts there) up to min(n / 2, 1000) — as k
  approaches n − 1 every neighbour set becomes the whole dataset (score = chance = 1).
* ``n``: 9 geometric steps from max(k + 2, 10) up to n, as *nested* subsets: one seeded permutation of
  the samples, its first m rows for each m, so each smaller set is contained in the larger ones.
* ``prefix``: 10 geometric steps from 2 to the narrower width: both inputs truncated to their first m
  dimensions (Matryoshka embeddings front-load information). m = 1 is left out: one dimension makes
  every cosine ±1 and k-NN lists all ties.
* ``depth``: layer i of A against the layer of B at the same relative depth, plus the best layer of B
  for each layer of A (from the layer matrix) as a second curve.

At every point the chance level is the closed form where the metric has an exact one, else the mean
(and sd) over :data:`~alignscope.core.analysis.scorer.CHANCE_SHUFFLES` shuffled correspondences.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alignscope.core.analysis.cost import matrix_shuffles
from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import MatrixRequest, SweepRequest
from alignscope.core.analysis.results import LayerMatrix, Sweep
from alignscope.core.analysis.scorer import CHANCE_SHUFFLES, check_same_samples, layer_matrix_of, resolve_layer
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import compute, get_metric
from alignscope.core.stats import chance_level

X_TITLES = {
    "k": "neighbours k (count)",
    "n": "samples n (count)",
    "prefix": "Matryoshka prefix length (leading feature dimensions)",
    "depth": "relative depth of A's layer (0 = first, 1 = last)",
}


def geometric_grid(low: int, high: int, count: int = 9) -> list[int]:
    """Distinct integers spaced geometrically from ``low`` to ``high`` (both included).

    Example:
        >>> geometric_grid(1, 100, 5)
        [1, 3, 10, 32, 100]
    """
    if high <= low:
        return [max(1, high)]
    return sorted({int(round(v)) for v in np.geomspace(low, high, count)})


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: the x value, the two inputs and the metric parameters there."""

    x: float
    feats_a: Any
    feats_b: Any
    params: dict[str, Any]


def k_points(
    feats_a: Any, feats_b: Any, metric: str, params: dict[str, Any], ks: Sequence[int] | None = None
) -> list[SweepPoint]:
    spec = get_metric(metric)
    if "k" not in spec.param_names:
        k_metrics = ", ".join(s.name for s in _k_metrics())
        raise InputError(f"{metric} has no parameter k; k sweeps apply to: {k_metrics}")
    if ks is None:
        ks = default_ks(metric, int(np.shape(feats_a)[0]))
    return [SweepPoint(k, feats_a, feats_b, {**params, "k": int(k)}) for k in ks]


def default_ks(metric: str, n_samples: int) -> list[int]:
    """The default k grid: from the metric's smallest k to min(n / 2, 1000)."""
    spec = get_metric(metric)
    low = 2 if any(p.name == "k" and (p.low or 1) >= 2 for p in spec.params) else 1
    return geometric_grid(low, max(low, min(n_samples // 2, 1000)))


def _k_metrics():
    from alignscope.core.metrics.registry import list_metrics

    return [spec for spec in list_metrics() if "k" in spec.param_names]


def n_points(
    feats_a: Any, feats_b: Any, params: dict[str, Any], seed: int, ns: Sequence[int] | None = None
) -> list[SweepPoint]:
    n_total = int(np.shape(feats_a)[0])
    order = torch.randperm(n_total, generator=torch.Generator().manual_seed(int(seed))).numpy()
    if ns is None:
        ns = geometric_grid(min(max(int(params.get("k", 1)) + 2, 10), n_total), n_total)
    ns = sorted(int(m) for m in ns)
    if not ns or ns[0] < 3 or ns[-1] > n_total:
        raise InputError(f"subsample sizes must lie in [3, {n_total}], got {ns}")
    points = []
    for m in ns:
        rows = np.sort(order[:m])
        points.append(SweepPoint(m, np.asarray(feats_a)[rows], np.asarray(feats_b)[rows], params))
    return points


def prefix_points(
    feats_a: Any, feats_b: Any, params: dict[str, Any], dims: Sequence[int] | None = None
) -> list[SweepPoint]:
    width = min(int(np.shape(feats_a)[1]), int(np.shape(feats_b)[1]))
    if dims is None:
        dims = geometric_grid(min(2, width), width, 10)
    dims = sorted({int(m) for m in dims})
    if not dims or dims[0] < 1 or dims[-1] > width:
        raise InputError(f"prefix lengths must lie in [1, {width}] (the narrower input's width), got {dims}")
    return [SweepPoint(m, np.asarray(feats_a)[:, :m], np.asarray(feats_b)[:, :m], params) for m in dims]


def depth_layer(relative_depth: float, n_layers: int) -> int:
    """The layer at a relative depth in [0, 1] (0 = first, 1 = last), rounded to the nearest.

    Example:
        >>> depth_layer(0.5, 5), depth_layer(1.0, 7)
        (2, 6)
    """
    return int(round(relative_depth * (n_layers - 1)))


def sweep_curve(
    points: Sequence[SweepPoint],
    metric: str,
    *,
    seed: int,
    n_shuffles: int = CHANCE_SHUFFLES,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, values, chance, chance_std, chance_analytic) over ``points``; chance as the module says."""
    spec = get_metric(metric)
    x, values, chance, chance_std, analytic = [], [], [], [], []
    for index, point in enumerate(points):
        x.append(point.x)
        values.append(compute(metric, point.feats_a, point.feats_b, **point.params))
        closed = None
        if spec.chance is not None:
            closed = spec.chance(int(np.shape(point.feats_a)[0]), **spec.resolve_params(point.params))
        analytic.append(np.nan if closed is None else float(closed))
        if closed is not None and spec.chance_exact:
            chance.append(float(closed))
            chance_std.append(0.0)
        else:
            level = chance_level(
                metric, point.feats_a, point.feats_b, n_shuffles=n_shuffles, seed=seed, metric_params=point.params
            )
            chance.append(float(level.empirical if level.empirical is not None else np.nan))
            chance_std.append(float(level.empirical_std or 0.0))
        if progress is not None:
            progress(index + 1, len(points))
    return tuple(np.asarray(v, dtype=np.float64) for v in (x, values, chance, chance_std, analytic))  # type: ignore[return-value]


def run_sweep(
    request: SweepRequest,
    view_a: ViewFeatures,
    view_b: ViewFeatures,
    progress: Callable[[int, int], None] | None = None,
    matrix_of: Callable[[MatrixRequest], LayerMatrix] | None = None,
) -> Sweep:
    """The sweep a request asks for, on the default grid of its kind. A depth sweep's best layer of B
    comes from the pair's layer matrix, read from ``matrix_of`` (the engine's store: the one Many models'
    cell of this pair is the best of) or computed here."""
    check_same_samples(view_a, view_b)
    params = dict(request.params)
    get_metric(request.metric).resolve_params(params)
    layer_a = resolve_layer(request.layer_a, len(view_a.values), view_a.model)
    layer_b = resolve_layer(request.layer_b, len(view_b.values), view_b.model)
    a, b = view_a.values[layer_a], view_b.values[layer_b]
    series: tuple[tuple[str, tuple[float, ...]], ...] = ()
    series_chance: tuple[tuple[str, tuple[float, ...]], ...] = ()
    note = ""
    if request.sweep == "k":
        points = k_points(a, b, request.metric, params)
    elif request.sweep == "n":
        points = n_points(a, b, params, request.seed)
        note = "Nested subsets: each smaller set is contained in the larger ones."
    elif request.sweep == "prefix":
        points = prefix_points(a, b, params)
        note = (
            f"Both representations truncated to their first m dimensions (widths {a.shape[1]} and "
            f"{b.shape[1]}); meaningful for Matryoshka-trained embeddings, whose leading dimensions carry "
            "the most information."
        )
    else:
        count_a, count_b = len(view_a.values), len(view_b.values)
        points = []
        for i in range(count_a):
            depth = i / max(1, count_a - 1)
            points.append(SweepPoint(depth, view_a.values[i], view_b.values[depth_layer(depth, count_b)], params))
        matrix_request = request.matrix_request()
        matrix = layer_matrix_of(matrix_request, view_a, view_b) if matrix_of is None else matrix_of(matrix_request)
        scored = np.where(matrix.searchable, matrix.values, np.nan)
        with warnings.catch_warnings():  # a row with no valid cell is NaN, said as such
            warnings.simplefilter("ignore", RuntimeWarning)
            best = (np.nanmax if matrix.higher_is_better else np.nanmin)(scored, axis=1)
        series = (("best layer of B", tuple(float(v) for v in best)),)
        note = (
            "Layer i of A against the layer of B at the same relative depth; dotted: the best layer of B, a best "
            "of every layer of B, which sits above the chance band with no alignment at all"
        )
        if matrix.row_best_chance is not None:
            series_chance = (("best layer of B", tuple(float(v) for v in matrix.row_best_chance)),)
            note += (
                f"; its own chance curve is where that best lands on average with no alignment (the mean over "
                f"{matrix_shuffles(request.metric, 0, matrix.values.size)} shuffled sample correspondences of "
                "each shuffled row's best)."
            )
        else:
            note += "."
    x, values, chance, chance_std, analytic = sweep_curve(points, request.metric, seed=request.seed, progress=progress)
    return Sweep(
        kind=request.sweep,
        metric=request.metric,
        model_a=request.model_a,
        model_b=request.model_b,
        dataset=request.dataset,
        n_samples=view_a.n_samples,
        x=x,
        values=values,
        chance=chance,
        chance_std=chance_std,
        chance_analytic=analytic,
        x_title=X_TITLES[request.sweep],
        note=note,
        series=series,
        series_chance=series_chance,
        layer_a=layer_a,
        layer_b=layer_b,
    )
