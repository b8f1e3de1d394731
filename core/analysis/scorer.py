"""The one scorer: a metric for a layer pair with its chance level, permutation p and bootstrap interval.

Every score Alignscope shows — CLI, dashboard, README, tests — comes from :func:`score_pair`. The
chance level is the metric's closed form wherever one exists exactly (mutual k-NN: k/(n−1)), else the
mean over :data:`CHANCE_SHUFFLES` shuffled sample correspondences (seeded). Layer matrices come from
:func:`layer_matrix_of`, which scores what it can: a pair the metric cannot score is NaN with its
reason, never an error for the whole matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alignscope.core.analysis.cost import CHANCE_SHUFFLES, matrix_shuffles
from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.jobs import Progress
from alignscope.core.analysis.requests import MatrixRequest, PairRequest, parse_layers
from alignscope.core.analysis.results import LayerMatrix, PairScore
from alignscope.core.comparisons import max_stat_test
from alignscope.core.errors import InputError
from alignscope.core.metrics.layers import layer_matrix
from alignscope.core.metrics.registry import MetricSpec, compute, get_metric
from alignscope.core.stats import at_least, bootstrap_ci, chance_level, permutation_test

MatrixSource = Callable[[MatrixRequest, Callable[[int, int], None] | None], LayerMatrix]
"""Gives a pair's layer matrix for a :class:`MatrixRequest`, reporting ``(done, total)`` progress."""


@dataclass(frozen=True)
class Chance:
    """A chance level: ``method`` is ``"analytic"`` (closed form, ``std`` 0) or ``"shuffled"``."""

    value: float | None
    method: str
    std: float | None
    shuffles: int


def chance_of(
    metric: str,
    feats_a: Any,
    feats_b: Any,
    params: dict[str, Any],
    *,
    seed: int,
    n_shuffles: int = CHANCE_SHUFFLES,
    progress: Callable[[int, int], None] | None = None,
) -> Chance:
    """The chance level of ``metric`` for these inputs (closed form where exact, else shuffled)."""
    spec = get_metric(metric)
    value = spec.exact_chance(int(np.shape(feats_a)[0]), params)
    if value is not None:
        return Chance(value, "analytic", 0.0, 0)
    level = chance_level(
        metric, feats_a, feats_b, n_shuffles=n_shuffles, seed=seed, progress=progress, metric_params=params
    )
    return Chance(level.empirical, "shuffled", level.empirical_std, n_shuffles)


def check_same_samples(view_a: ViewFeatures, view_b: ViewFeatures) -> None:
    if view_a.sample_ids != view_b.sample_ids:
        raise InputError(
            f"{view_a.model!r} has {view_a.n_samples} samples and {view_b.model!r} {view_b.n_samples}; "
            "both must hold the same samples in the same order"
        )


def resolve_layer(index: int, n_layers: int, model: str) -> int:
    if not -n_layers <= index < n_layers:
        raise InputError(f"{model!r} has layers 0..{n_layers - 1}; got {index}")
    return index % n_layers


def _stages(request: PairRequest, spec: MetricSpec) -> dict[str, float]:
    """Shares of the job's progress per stage, roughly by cost (a search's shuffles are its matrix's)."""
    search = parse_layers(request.layers) is None
    weights = {
        "matrix": 3.0 + 0.02 * request.permutations if search else 0.0,
        "score": 0.0 if search else 0.5,
        "chance": 0.0 if (spec.chance is not None and spec.chance_exact) else 1.0,
        "permutations": 0.0 if search else 0.02 * request.permutations,
        "bootstrap": 0.1 * request.bootstrap,
    }
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def approximate_recall(spec: MetricSpec, a: Any, b: Any, params: dict[str, Any]) -> float | None:
    """The recall@k of the approximate neighbour lists behind a k-NN score (None when exact): the lists
    of both inputs are found as the metric finds them, and each search measures its own recall."""
    if params.get("neighbors") != "approx" or spec.prepare is None:
        return None
    from alignscope.core.metrics.knn import measured_recall

    states = [spec.prepare(values, name=name, **params) for values, name in ((a, "a"), (b, "b"))]
    return measured_recall(*states)


def score_pair(
    request: PairRequest,
    view_a: ViewFeatures,
    view_b: ViewFeatures,
    progress: Progress | None = None,
    matrix_of: MatrixSource | None = None,
) -> PairScore:
    """Score ``request`` on the two models' features: its pair (or the best of all pairs), chance, p, CI.
    The best of all pairs reads the layer matrix (with ``request.permutations``) from ``matrix_of`` (the
    engine passes its stored one, which Compare's heatmap and Many models share); by default it is
    computed here."""
    check_same_samples(view_a, view_b)
    spec = get_metric(request.metric)
    params = dict(request.params)
    spec.resolve_params(params)  # fail on a bad parameter before any work
    shares = _stages(request, spec)

    def stage(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        progress.stage(name, shares[name])
        return progress.update

    pair = parse_layers(request.layers)
    matrix = best_chance = None
    p_value = p_maxstat = None
    if pair is None:  # the best of every pair: its p comes from the same shuffles as the whole search's
        matrix_request = request.matrix_request()
        on_progress = stage("matrix")
        if matrix_of is None:
            scored = layer_matrix_of(matrix_request, view_a, view_b, progress=on_progress)
        else:
            scored = matrix_of(matrix_request, on_progress)
            if on_progress is not None:  # a stored matrix reports nothing: its stage is done
                on_progress(1, 1)
        scored.require_a_best()
        i, j = scored.best_index
        value, matrix, best_chance = scored.best_value, scored.values, scored.best_chance
        if scored.p_values is not None and scored.p_corrected is not None:
            p_value, p_maxstat = float(scored.p_values[i, j]), float(scored.p_corrected[i, j])
    else:
        i = resolve_layer(pair[0], len(view_a.values), view_a.model)
        j = resolve_layer(pair[1], len(view_b.values), view_b.model)
        stage("score")
        value = compute(
            request.metric, view_a.values[i], view_b.values[j], name_a=view_a.model, name_b=view_b.model, **params
        )
    a, b = view_a.values[i], view_b.values[j]
    recall = approximate_recall(spec, a, b, params)
    chance = chance_of(request.metric, a, b, params, seed=request.seed, progress=stage("chance"))
    if request.permutations and pair is not None:
        p_value = permutation_test(
            request.metric,
            a,
            b,
            n_permutations=request.permutations,
            seed=request.seed,
            progress=stage("permutations"),
            metric_params=params,
        ).p_value
    ci_low = ci_high = None
    failed = 0
    if request.bootstrap:
        interval = bootstrap_ci(
            request.metric,
            a,
            b,
            n_boot=request.bootstrap,
            seed=request.seed,
            progress=stage("bootstrap"),
            metric_params=params,
        )
        ci_low, ci_high, failed = interval.low, interval.high, interval.n_failed
    searched = 1 if pair is not None else int(scored.searchable.sum())
    return PairScore(
        metric=request.metric,
        model_a=request.model_a,
        model_b=request.model_b,
        dataset=request.dataset,
        n_samples=view_a.n_samples,
        layer_a=i,
        layer_b=j,
        layer_a_name=view_a.layer_names[i],
        layer_b_name=view_b.layer_names[j],
        value=float(value),
        higher_is_better=spec.higher_is_better,
        params=params,
        chance=chance.value,
        chance_method=chance.method,
        chance_std=chance.std,
        chance_shuffles=chance.shuffles,
        p_value=p_value,
        n_permutations=request.permutations,
        ci_low=ci_low,
        ci_high=ci_high,
        n_bootstrap=request.bootstrap,
        bootstrap_failed=failed,
        interval_method="recentred" if request.bootstrap else None,
        pairs_searched=searched,
        p_bonferroni=None if p_value is None else min(1.0, p_value * searched),
        p_maxstat=p_maxstat,
        matrix=matrix,
        recall=recall,
        search_chance=best_chance,
    )


def search_chance(null: np.ndarray, higher_is_better: bool, valid: np.ndarray) -> float | None:
    """The chance level of the best of a search: the mean over shuffles of each shuffled matrix's best
    valid cell. ``null``: ``[P, La, Lb]`` scores of shuffled correspondences; ``valid``: ``[La, Lb]`` bool.

    Example:
        >>> null = np.array([[[0.1, 0.3]], [[0.2, 0.0]]])
        >>> search_chance(null, True, np.array([[True, True]])), search_chance(null, False, np.array([[True, True]]))
        (0.25, 0.05)
    """
    sign = 1.0 if higher_is_better else -1.0  # oriented so that the best is the largest
    oriented = sign * np.where(valid[None], null, np.nan).reshape(len(null), -1)
    finite = np.isfinite(oriented).any(axis=1)
    if not finite.any():
        return None
    return float(sign * np.nanmax(oriented[finite], axis=1).mean())


def row_search_chance(null: np.ndarray, higher_is_better: bool, valid: np.ndarray) -> np.ndarray:
    """``[La]``: for each layer of A, the chance level of its best layer of B — the mean over shuffles of
    that row's best valid cell (NaN where the row has none). ``null``: ``[P, La, Lb]``; ``valid``: ``[La, Lb]``.

    Example:
        >>> null = np.array([[[0.1, 0.3], [0.5, 0.0]], [[0.2, 0.0], [0.1, 0.2]]])
        >>> row_search_chance(null, True, np.array([[True, True], [True, False]]))
        array([0.25, 0.3 ])
    """
    sign = 1.0 if higher_is_better else -1.0  # oriented so that the best is the largest
    oriented = sign * np.where(valid[None] & np.isfinite(null), null, -np.inf / sign)
    best = oriented.max(axis=2)  # [P, La]; -inf where a shuffle scored nothing in that row
    finite = np.isfinite(best)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, best, 0.0).sum(axis=0) / finite.sum(axis=0)
    return sign * np.where(finite.any(axis=0), mean, np.nan) + 0.0  # + 0.0: no -0.0 for lower-is-better


def layer_matrix_of(
    request: MatrixRequest,
    view_a: ViewFeatures,
    view_b: ViewFeatures,
    progress: Callable[[int, int], None] | None = None,
) -> LayerMatrix:
    """Every layer pair of two models; cells the metric cannot score are NaN with their reason, degenerate
    cells are flagged and never the best. Each cell's chance level comes from its closed form or from the
    shuffled null; with ``request.permutations`` every cell gets its p and its search-corrected p."""
    check_same_samples(view_a, view_b)
    spec = get_metric(request.metric)
    params = dict(request.params)
    resolved = spec.resolve_params(params)
    names_a = [f"{view_a.model}:{name}" for name in view_a.layer_names]
    names_b = [f"{view_b.model}:{name}" for name in view_b.layer_names]
    problems: list[tuple[int, int, str]] = []
    n = view_a.n_samples
    degenerate = np.zeros((len(view_a.values), len(view_b.values)), dtype=bool)
    if spec.degenerate is not None:
        for i, feats_a in enumerate(view_a.values):
            for j, feats_b in enumerate(view_b.values):
                reason = spec.degenerate(n, int(feats_a.shape[1]), int(feats_b.shape[1]), resolved)
                if reason:
                    degenerate[i, j] = True
                    problems.append((i, j, reason))
    closed = spec.exact_chance(n, resolved)
    shuffles = matrix_shuffles(request.metric, request.permutations, degenerate.size)
    chance = p_values = p_corrected = None
    best_chance = row_best_chance = None

    def shuffled(cells: np.ndarray | None = None) -> np.ndarray:
        """The matrix, with its chance, p and search levels from the shuffles (of ``cells`` only, if given)."""
        nonlocal chance, p_values, p_corrected, best_chance, row_best_chance
        tested = max_stat_test(
            view_a.values,
            view_b.values,
            request.metric,
            n_permutations=shuffles,
            seed=request.seed,
            progress=progress,
            names_a=names_a,
            names_b=names_b,
            metric_params=params,
            cells=cells,
        )
        observed, null = np.asarray(tested.observed, dtype=np.float64), np.asarray(tested.null_values)
        with np.errstate(invalid="ignore"):
            chance = null.mean(axis=0)
        best_chance = search_chance(null, spec.higher_is_better, ~degenerate)
        row_best_chance = row_search_chance(null, spec.higher_is_better, ~degenerate)
        if request.permutations:
            p_values = np.asarray(tested.p_cells_raw, dtype=np.float64)
            p_corrected = studentised_max_t(observed, null, spec.higher_is_better, valid=~degenerate)
        return observed

    try:
        if shuffles:
            values = shuffled()
        else:
            values = layer_matrix(
                view_a.values,
                view_b.values,
                request.metric,
                names_a=names_a,
                names_b=names_b,
                progress=progress,
                **params,
            ).values
    except InputError:  # some pair cannot be scored: score the others, one by one, and shuffle those
        values, failed = _cell_by_cell(spec, view_a.values, view_b.values, names_a, names_b, params, progress)
        problems.extend(failed)
        scoreable = np.isfinite(values)
        if shuffles and scoreable.any():
            try:
                shuffled(scoreable)
            except InputError:  # some pair fails only on shuffled rows: the scores stand, without a null
                chance = p_values = p_corrected = best_chance = row_best_chance = None
    if closed is not None:
        chance = np.full(values.shape, float(closed))
    best = best_cell(values, spec.higher_is_better, valid=~degenerate)
    return LayerMatrix(
        metric=request.metric,
        model_a=request.model_a,
        model_b=request.model_b,
        dataset=request.dataset,
        n_samples=n,
        names_a=tuple(view_a.layer_names),
        names_b=tuple(view_b.layer_names),
        values=values,
        best_index=best,
        best_value=float(values[best]),
        higher_is_better=spec.higher_is_better,
        params=resolved,
        chance=chance,
        p_values=p_values,
        p_corrected=p_corrected,
        n_permutations=request.permutations,
        best_chance=best_chance,
        row_best_chance=row_best_chance,
        degenerate=degenerate,
        problems=tuple(problems),
    )


def studentised_max_t(
    observed: np.ndarray, null: np.ndarray, higher_is_better: bool, valid: np.ndarray | None = None
) -> np.ndarray:
    """Single-step max-T adjusted p of every cell (Westfall & Young 1993), on studentised scores.

    ``observed`` [La, Lb]; ``null`` [P, La, Lb] the same cells under P shuffles. Each cell is put on its
    null's scale, t = (score − mean) / sd (sign flipped when lower is better), and compared with the
    distribution of the per-shuffle maximum of t over the ``valid`` cells: p = (1 + #{max_p ≥ t}) / (1 + P).
    Its floor is 1 / (P + 1) however many cells were searched.
    """
    sign = 1.0 if higher_is_better else -1.0
    mean, sd = null.mean(axis=0), null.std(axis=0, ddof=1)
    sd = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mean)), sd, np.inf)  # a constant null: no evidence
    t_observed = sign * (observed - mean) / sd
    t_null = sign * (null - mean) / sd
    mask = np.ones(observed.shape, dtype=bool) if valid is None else valid
    mask = mask & np.isfinite(observed)
    if not mask.any():
        return np.ones(observed.shape)
    maxima = np.where(mask[None], t_null, -np.inf).reshape(null.shape[0], -1).max(axis=1)
    exceed = at_least(maxima[:, None, None], t_observed[None]).sum(axis=0)
    p_values = (1.0 + exceed) / (1.0 + null.shape[0])
    return np.where(np.isfinite(t_observed), p_values, 1.0)


def _cell_by_cell(
    spec: MetricSpec,
    layers_a: Sequence[np.ndarray],
    layers_b: Sequence[np.ndarray],
    names_a: list[str],
    names_b: list[str],
    params: dict[str, Any],
    progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    values = np.full((len(layers_a), len(layers_b)), np.nan)
    problems = []
    total = values.size
    for i, (feats_a, label_a) in enumerate(zip(layers_a, names_a)):
        for j, (feats_b, label_b) in enumerate(zip(layers_b, names_b)):
            try:
                values[i, j] = compute(spec.name, feats_a, feats_b, name_a=label_a, name_b=label_b, **params)
            except InputError as error:
                problems.append((i, j, str(error)))
            if progress is not None:
                progress(i * len(layers_b) + j + 1, total)
    return values, problems


def best_cell(values: np.ndarray, higher_is_better: bool, valid: np.ndarray | None = None) -> tuple[int, int]:
    """(i, j) of the best finite cell (among ``valid`` ones, when given); (0, 0) if there is none."""
    candidates = np.isfinite(values) if valid is None else (np.isfinite(values) & valid)
    if not candidates.any():
        return (0, 0)
    masked = np.where(candidates, values, -np.inf if higher_is_better else np.inf)
    flat = int(np.argmax(masked) if higher_is_better else np.argmin(masked))
    i, j = np.unravel_index(flat, values.shape)
    return (int(i), int(j))
