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

from alignscope.core.analysis.cost import CHANCE_SHUFFLES
from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.jobs import Progress
from alignscope.core.analysis.requests import MatrixRequest, PairRequest, parse_layers
from alignscope.core.analysis.results import LayerMatrix, PairScore
from alignscope.core.errors import InputError
from alignscope.core.metrics.layers import layer_matrix
from alignscope.core.metrics.registry import MetricSpec, compute, get_metric
from alignscope.core.stats import bootstrap_ci, chance_level, permutation_test


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
    if spec.chance is not None and spec.chance_exact:
        value = spec.chance(int(np.shape(feats_a)[0]), **spec.resolve_params(params))
        if value is not None:
            return Chance(float(value), "analytic", 0.0, 0)
    level = chance_level(metric, feats_a, feats_b, n_shuffles=n_shuffles, seed=seed, progress=progress, **params)
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
    """Shares of the job's progress per stage, roughly by cost."""
    weights = {
        "matrix": 3.0 if request.layers == "all" else 0.0,
        "score": 0.5,
        "chance": 0.0 if (spec.chance is not None and spec.chance_exact) else 1.0,
        "permutations": 0.02 * request.permutations,
        "bootstrap": 0.1 * request.bootstrap,
    }
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def score_pair(
    request: PairRequest, view_a: ViewFeatures, view_b: ViewFeatures, progress: Progress | None = None
) -> PairScore:
    """Score ``request`` on the two models' features: its pair (or the best of all pairs), chance, p, CI."""
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
    matrix = None
    if pair is None:
        scored = layer_matrix_of(
            MatrixRequest(
                request.model_a,
                request.model_b,
                request.dataset,
                request.n,
                request.seed,
                request.metric,
                request.params,
            ),
            view_a,
            view_b,
            progress=stage("matrix"),
        )
        if not np.isfinite(scored.best_value):
            raise InputError(f"{request.metric} could not score any layer pair: {scored.problems[0][2]}")
        i, j = scored.best_index
        value, matrix = scored.best_value, scored.values
    else:
        i = resolve_layer(pair[0], len(view_a.values), view_a.model)
        j = resolve_layer(pair[1], len(view_b.values), view_b.model)
        stage("score")
        value = compute(
            request.metric, view_a.values[i], view_b.values[j], name_a=view_a.model, name_b=view_b.model, **params
        )
    a, b = view_a.values[i], view_b.values[j]
    chance = chance_of(request.metric, a, b, params, seed=request.seed, progress=stage("chance"))
    p_value = None
    if request.permutations:
        p_value = permutation_test(
            request.metric,
            a,
            b,
            n_permutations=request.permutations,
            seed=request.seed,
            progress=stage("permutations"),
            **params,
        ).p_value
    ci_low = ci_high = None
    failed = 0
    if request.bootstrap:
        interval = bootstrap_ci(
            request.metric, a, b, n_boot=request.bootstrap, seed=request.seed, progress=stage("bootstrap"), **params
        )
        ci_low, ci_high, failed = interval.low, interval.high, interval.n_failed
    searched = 1 if pair is not None else len(view_a.values) * len(view_b.values)
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
        matrix=matrix,
    )


def layer_matrix_of(
    request: MatrixRequest,
    view_a: ViewFeatures,
    view_b: ViewFeatures,
    progress: Callable[[int, int], None] | None = None,
) -> LayerMatrix:
    """Every layer pair of two models; cells the metric cannot score are NaN with their reason."""
    check_same_samples(view_a, view_b)
    spec = get_metric(request.metric)
    params = dict(request.params)
    names_a = [f"{view_a.model}:{name}" for name in view_a.layer_names]
    names_b = [f"{view_b.model}:{name}" for name in view_b.layer_names]
    problems: list[tuple[int, int, str]] = []
    try:
        values = layer_matrix(
            view_a.values, view_b.values, request.metric, names_a=names_a, names_b=names_b, progress=progress, **params
        ).values
    except InputError:
        values, problems = _cell_by_cell(spec, view_a.values, view_b.values, names_a, names_b, params, progress)
    best = best_cell(values, spec.higher_is_better)
    return LayerMatrix(
        metric=request.metric,
        model_a=request.model_a,
        model_b=request.model_b,
        dataset=request.dataset,
        n_samples=view_a.n_samples,
        names_a=tuple(view_a.layer_names),
        names_b=tuple(view_b.layer_names),
        values=values,
        best_index=best,
        best_value=float(values[best]),
        higher_is_better=spec.higher_is_better,
        params=spec.resolve_params(params),
        problems=tuple(problems),
    )


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
