"""Alignment across a family of models against a model property (the Platonic Representation
Hypothesis figure), and paired differences of two models' alignment to a third.

A trend has one point per model: x = a property of the model (ImageNet top-1, held-out accuracy,
parameters), y = its mean alignment to a reference set (fixed models, or all the *other* models of the
family), each pair scored at its best layer pair or at one relative depth. Every point carries a
bootstrap interval over samples (the same resampled rows for every pair, so points are comparable), the
chance level of the same pairs, and the trend itself is summarised by Spearman's ρ across models with a
permutation p (all orderings when there are at most 8 models, else a seeded sample).
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import stats as scipy_stats

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import MatrixRequest, Params, Request
from alignscope.core.analysis.results import LayerMatrix, register_result_type
from alignscope.core.analysis.sweeps import depth_layer
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import compute, get_metric

EXACT_ORDERINGS_UP_TO = 8
ORDERINGS_SAMPLED = 20_000


@dataclass(frozen=True)
class TrendRequest(Request):
    """Each of ``models`` against ``reference`` (empty: the other models of ``models``), y = mean alignment,
    x = ``x``: the values of ``property``, part of the request so that a changed value is a new result.
    Empty ``x`` is looked up when the features are cached (training a digits net measures its accuracy)."""

    kind: ClassVar[str] = "trend"
    result_version: ClassVar[int] = 5  # 2: search_chance; 3: search_rho; 4: no ρ of a constant; 5: unscoreable cells
    models: tuple[str, ...]
    reference: tuple[str, ...]
    dataset: str
    n: int
    seed: int = 0
    metric: str = "mutual_knn"
    params: Params = ()
    relative_depth: float | None = None  # None: each pair's best layer pair
    property: str = "imagenet_top1"
    x: tuple[float | None, ...] = ()
    bootstrap: int = 100

    def __post_init__(self) -> None:
        if len(self.models) < 2 and not self.reference:
            raise InputError("a trend needs at least two models (or a reference set)")
        if self.x and len(self.x) != len(self.models):
            raise InputError(f"{len(self.x)} property values for {len(self.models)} models")

    def with_cached_features(self) -> TrendRequest:
        if self.x:
            return self
        from alignscope.core.properties import model_properties

        x = tuple(getattr(model_properties(m).get(self.property), "value", None) for m in self.models)
        if all(value is None for value in x):
            raise InputError(f"none of {', '.join(self.models)} has the property {self.property!r}")
        return self.replace(x=x)

    def matrix_request(self, model: str, reference: str) -> MatrixRequest:
        """The layer matrix a best-layer point's pair is the best of (Many models' cell of that pair)."""
        return MatrixRequest(model, reference, self.dataset, self.n, self.seed, self.metric, self.params)

    def feature_models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.models, *self.reference)))

    def references_of(self, model: str) -> tuple[str, ...]:
        """The models ``model`` is scored against: never itself (a reference set may contain it)."""
        return tuple(m for m in (self.reference or self.models) if m != model)


@register_result_type
@dataclass(frozen=True)
class Trend:
    """One point per model (see the module docstring).

    Attributes:
        x: the property value of each model (NaN where the model has none: left out of ρ).
        y: mean alignment of each model to its references; ``ci_low``/``ci_high`` its bootstrap interval.
        chance: the mean chance level of the same pairs, each for one layer pair fixed in advance.
        search_chance: with ``relative_depth`` None (each pair at its best of many layer pairs), the mean
            over the same pairs of where that best lands on average with no alignment
            (:attr:`LayerMatrix.best_chance`: on the PRH preset 0.27–0.28 against a fixed pair's 0.21): the
            level each point is read against — a mean, not a threshold. NaN for a point unless every one of
            its pairs has it; None at a fixed depth (``chance`` applies) or where no pair has it (a metric
            whose shuffles would recompute every pair: retrieval).
        search_rho: Spearman's ρ between x and ``search_chance``: how strongly the search alone moves with
            the property (deeper models search more layer pairs); None without both.
        pair_scores: ``[m, R]`` the individual pair scores (NaN where a model is its own reference).
        pairs: ``((model, reference, layer_a, layer_b), ...)`` the layers behind every pair.
        rho, p_value: Spearman's ρ between x and y over the models that have x, and its two-sided
            permutation p (``None`` with fewer than 3 such models).
    """

    models: tuple[str, ...]
    references: tuple[str, ...]
    dataset: str
    n_samples: int
    metric: str
    property: str
    x: np.ndarray
    y: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    chance: np.ndarray
    pair_scores: np.ndarray
    pairs: tuple[tuple[str, str, int, int], ...]
    rho: float | None
    p_value: float | None
    n_orderings: int
    n_bootstrap: int
    higher_is_better: bool
    relative_depth: float | None = None
    search_chance: np.ndarray | None = None
    search_rho: float | None = None

    def why_no_rho(self) -> str:
        """Why ``rho`` is None, in words ("" when it is not)."""
        if self.rho is not None:
            return ""
        usable = np.isfinite(self.x) & np.isfinite(self.y)
        if usable.sum() < 3:
            return f"Spearman ρ needs at least 3 models with both a score and {self.property}."
        if np.ptp(self.x[usable]) == 0:
            return f"Spearman ρ is undefined: {self.property} is the same for every model."
        return "Spearman ρ is undefined: every model scores the same."

    def null_level(self) -> np.ndarray:
        """``[m]`` the level each point would sit at with no alignment: ``search_chance`` where the point
        is a search's best and it is known, else ``chance``."""
        if self.search_chance is None:
            return self.chance
        return np.where(np.isfinite(self.search_chance), self.search_chance, self.chance)


def spearman_with_permutation_p(x: Sequence[float], y: Sequence[float], *, seed: int = 0) -> tuple[float, float, int]:
    """(ρ, two-sided p, orderings used): p = share of orderings of y with |ρ| at least the observed.

    Example:
        >>> rho, p, count = spearman_with_permutation_p([1, 2, 3, 4, 5], [2, 4, 5, 8, 9])
        >>> round(rho, 12), round(p, 4), count
        (1.0, 0.0167, 120)
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:  # no ranking to correlate (every model scores the same)
        return math.nan, 1.0, 0
    observed = float(scipy_stats.spearmanr(xs, ys).statistic)
    if not math.isfinite(observed):
        return observed, 1.0, 0
    rank_x = scipy_stats.rankdata(xs)
    if len(ys) <= EXACT_ORDERINGS_UP_TO:
        orderings = np.array(list(itertools.permutations(range(len(ys)))))
    else:
        rng = np.random.default_rng(seed)
        orderings = np.array([rng.permutation(len(ys)) for _ in range(ORDERINGS_SAMPLED)])
    rank_y = scipy_stats.rankdata(ys)
    centred_x = rank_x - rank_x.mean()
    shuffled = rank_y[orderings] - rank_y.mean()
    rhos = shuffled @ centred_x / (np.linalg.norm(centred_x) * np.linalg.norm(rank_y - rank_y.mean()))
    extreme = np.abs(rhos) >= abs(observed) - 1e-12
    if len(ys) <= EXACT_ORDERINGS_UP_TO:
        return observed, float(extreme.mean()), len(orderings)
    return observed, float((1 + extreme.sum()) / (1 + len(orderings))), len(orderings)


def _pair_layers(
    request: TrendRequest, view_a: ViewFeatures, view_b: ViewFeatures, matrix: Callable[[MatrixRequest], LayerMatrix]
) -> tuple[int, int, float, float, float]:
    """(layer_a, layer_b, score, chance, chance of the search's best) of one pair: its best layer pair
    (with the chance of that best: NaN when not shuffled) or the layers at the depth (NaN: no search)."""
    spec = get_metric(request.metric)
    if request.relative_depth is None:
        scored = matrix(request.matrix_request(view_a.model, view_b.model))
        scored.require_a_best()
        i, j = scored.best_index
        chance = float(scored.chance[i, j]) if scored.chance is not None else math.nan
        best_chance = math.nan if scored.best_chance is None else scored.best_chance
        return i, j, scored.best_value, chance, best_chance
    i = depth_layer(request.relative_depth, len(view_a.values))
    j = depth_layer(request.relative_depth, len(view_b.values))
    value = compute(request.metric, view_a.values[i], view_b.values[j], **dict(request.params))
    closed = spec.exact_chance(view_a.n_samples, dict(request.params))
    return i, j, float(value), math.nan if closed is None else closed, math.nan


def compute_trend(
    request: TrendRequest,
    views: dict[str, ViewFeatures],
    matrix: Callable[[MatrixRequest], LayerMatrix],
    progress: Callable[[int, int], None] | None = None,
) -> Trend:
    """The trend a request asks for (``matrix`` gives a pair's layer matrix from the store or computes it).
    A symmetric metric scores each unordered pair once."""
    spec = get_metric(request.metric)
    references = request.feature_models() if not request.reference else request.reference
    scores = np.full((len(request.models), len(references)), np.nan)
    chances = np.full_like(scores, np.nan)
    search_chances = np.full_like(scores, np.nan)
    pairs = []
    scored: dict[tuple[str, str], tuple[int, int, float, float, float]] = {}
    total = len(request.models) * len(references) + request.bootstrap
    done = 0
    for index, model in enumerate(request.models):
        for column, reference in enumerate(references):
            if reference not in request.references_of(model):
                continue
            if spec.symmetric_for(dict(request.params)) and (reference, model) in scored:
                j, i, value, chance, best_chance = scored[(reference, model)]
            else:
                i, j, value, chance, best_chance = _pair_layers(request, views[model], views[reference], matrix)
            scored[(model, reference)] = (i, j, value, chance, best_chance)
            scores[index, column], chances[index, column] = value, chance
            search_chances[index, column] = best_chance
            pairs.append((model, reference, i, j))
            done += 1
            if progress is not None:
                progress(done, total)
    with warnings.catch_warnings():  # a model with no reference to score has no point (NaN), said as such
        warnings.simplefilter("ignore", RuntimeWarning)
        y = np.nanmean(scores, axis=1)
    low, high = _bootstrap_points(request, views, pairs, y, lambda b: progress and progress(done + b, total))
    x = np.array([math.nan if v is None else float(v) for v in request.x])
    usable = np.isfinite(x) & np.isfinite(y)
    rho = p_value = None
    orderings = 0
    if usable.sum() >= 3:
        rho, p_value, orderings = spearman_with_permutation_p(x[usable], y[usable], seed=request.seed)
        if not math.isfinite(rho):  # a constant property or score: no ranking to correlate (why_no_rho says)
            rho = p_value = None
    search_chance = None if request.relative_depth is not None else _complete_row_means(search_chances, scores)
    search_rho = None
    if search_chance is not None:
        searched = usable & np.isfinite(search_chance)
        if searched.sum() >= 3 and np.ptp(x[searched]) > 0 and np.ptp(search_chance[searched]) > 0:
            search_rho = float(scipy_stats.spearmanr(x[searched], search_chance[searched]).statistic)
    return Trend(
        models=tuple(request.models),
        references=tuple(references),
        dataset=request.dataset,
        n_samples=next(iter(views.values())).n_samples,
        metric=request.metric,
        property=request.property,
        x=x,
        y=y,
        ci_low=low,
        ci_high=high,
        chance=_row_means(chances),
        pair_scores=scores,
        pairs=tuple(pairs),
        rho=rho,
        p_value=p_value,
        n_orderings=orderings,
        n_bootstrap=request.bootstrap,
        higher_is_better=spec.higher_is_better,
        relative_depth=request.relative_depth,
        search_chance=search_chance,
        search_rho=search_rho,
    )


def _complete_row_means(values: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
    """``[m]`` each row's mean of ``values`` over the pairs it scored (``scores`` finite), NaN for a row
    where one of them lacks a value (the level would cover fewer pairs than the point); None when no row
    has one.

    Example:
        >>> scores = np.array([[0.5, 0.4, np.nan], [0.3, np.nan, 0.2]])
        >>> _complete_row_means(np.array([[0.1, 0.3, np.nan], [0.2, np.nan, np.nan]]), scores)
        array([0.2, nan])
    """
    scored = np.isfinite(scores)
    complete = (np.isfinite(values) | ~scored).all(axis=1) & scored.any(axis=1)
    if not complete.any():
        return None
    sums = np.where(scored, np.nan_to_num(values, nan=0.0), 0.0).sum(axis=1)
    return np.where(complete, sums / np.maximum(scored.sum(axis=1), 1), np.nan)


class _ResampleScorer:
    """Pair scores on one resample of rows; with a metric's split form each (model, layer) is prepared
    once per resample and shared by all its pairs (the neighbour lists of a k-NN metric, a Gram)."""

    def __init__(self, request: TrendRequest, views: dict[str, ViewFeatures]) -> None:
        self.spec = get_metric(request.metric)
        self.params = self.spec.resolve_params(dict(request.params))
        self.views = views
        prepare = self.spec.prepare
        self.split = (
            prepare is not None
            and self.spec.compare is not None
            and (not self.spec.takes_sample_ids or "sample_ids" in inspect.signature(prepare).parameters)
        )

    def scores(self, rows: np.ndarray, pairs: Sequence[tuple[str, str, int, int]]) -> dict[tuple, float]:
        extra = {"sample_ids": torch.as_tensor(rows)} if self.spec.takes_sample_ids else {}
        states: dict[tuple[str, int], Any] = {}
        out: dict[tuple, float] = {}

        def state(model: str, layer: int) -> Any:
            if (model, layer) not in states:
                values = self.views[model].values[layer][rows]
                states[model, layer] = self.spec.prepare(values, name=model, **self.params, **extra)  # type: ignore[misc]
            return states[model, layer]

        for model, reference, i, j in pairs:
            if self.spec.symmetric_for(self.params) and (reference, model, j, i) in out:
                out[model, reference, i, j] = out[reference, model, j, i]
                continue
            try:
                if self.split:
                    value = self.spec.compare(state(model, i), state(reference, j), **self.params)  # type: ignore[misc]
                else:
                    value = self.spec.fn(
                        self.views[model].values[i][rows], self.views[reference].values[j][rows], **self.params, **extra
                    )
            except InputError:
                continue
            out[model, reference, i, j] = float(value)
        return out


def _bootstrap_points(
    request: TrendRequest,
    views: dict[str, ViewFeatures],
    pairs: list[tuple[str, str, int, int]],
    y: np.ndarray,
    progress: Callable[[int], Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Re-centred percentile intervals of every point, from the same resampled rows for every pair."""
    count = len(request.models)
    if not request.bootstrap:
        return np.full(count, np.nan), np.full(count, np.nan)
    n = next(iter(views.values())).n_samples
    generator = torch.Generator().manual_seed(int(request.seed))
    draws = np.full((request.bootstrap, count), np.nan)
    row_of = {model: index for index, model in enumerate(request.models)}
    scorer = _ResampleScorer(request, views)
    for b in range(request.bootstrap):
        rows = torch.randint(0, n, (n,), generator=generator).numpy()
        sums, counts = np.zeros(count), np.zeros(count)
        for (model, *_), value in scorer.scores(rows, pairs).items():
            sums[row_of[model]] += value
            counts[row_of[model]] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[b] = sums / counts
        progress(b + 1)
    with warnings.catch_warnings():  # a model with no score (its only reference is itself): NaN, said in the plot
        warnings.simplefilter("ignore", RuntimeWarning)
        bias = np.nanmean(draws, axis=0) - y
        low, high = np.nanquantile(draws - bias, [0.025, 0.975], axis=0)
    return low, high


# --------------------------------------------------------------------------------------------------
# Building a request from names, and the presets of the embedded default
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPreset:
    """A named trend on the embedded default (``models``/``reference`` may name ``family:NAME``)."""

    name: str
    title: str
    question: str
    models: tuple[str, ...]
    reference: tuple[str, ...]
    dataset: str
    n: int
    metric: str
    k: int
    property: str
    log_x: bool = False
    layers: str = "best"


PRESETS: dict[str, TrendPreset] = {
    preset.name: preset
    for preset in (
        TrendPreset(
            "prh",
            "Vision → language alignment vs ImageNet top-1",
            "Do stronger vision models represent images more like language models represent their captions?",
            ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"),
            ("minilm-l6", "e5-small"),
            "captions",
            25,
            "mutual_knn",
            5,
            "imagenet_top1",
        ),
        TrendPreset(
            "ladder",
            "Alignment among the digits ladder vs held-out accuracy",
            "Are stronger digit classifiers more alike (mean alignment to the other rungs)?",
            ("family:digits-ladder",),
            (),
            "digits",
            500,
            "mutual_knn",
            10,
            "test_accuracy",
            # the penultimate layer (fc1): every rung's best layer pair is conv1 × conv1, nearly the pixels
            layers="depth:0.75",
        ),
    )
}


def trend_request(
    models: Sequence[str],
    reference: Sequence[str],
    dataset: str,
    *,
    n: int,
    seed: int = 0,
    metric: str = "mutual_knn",
    k: int | None = None,
    layers: str = "best",
    prop: str = "imagenet_top1",
    bootstrap: int = 100,
    similarity: str | None = None,
    neighbors: str | None = None,
    extra_params: Sequence[str] = (),
) -> TrendRequest:
    """A :class:`TrendRequest` from model names and families; each model's ``prop`` is looked up once
    its features are cached (a model without it gets x = None and is left out of ρ). ``extra_params``:
    ``NAME=VALUE`` items for the metric (the CLI's ``--param``)."""
    from alignscope.core.analysis.requests import command_params, parse_layer_choice, parse_param_items
    from alignscope.core.properties import resolve_models

    members = resolve_models(list(models))
    references = resolve_models(list(reference)) if reference else ()
    choice = parse_layer_choice(layers)
    if choice == "last":
        choice = 1.0
    extra = parse_param_items(list(extra_params), [metric])[metric]
    params = command_params(metric, {"k": k, "similarity": similarity, "neighbors": neighbors}, extra)
    return TrendRequest(
        members,
        references,
        dataset,
        n,
        seed,
        metric,
        params,
        None if choice == "best" else float(choice),
        prop,
        (),
        bootstrap,
    )


def preset_request(name: str, *, bootstrap: int = 100) -> TrendRequest:
    """The request of a preset (an unknown name is an InputError listing the presets)."""
    if name not in PRESETS:
        raise InputError(f"no trend preset {name!r}; presets: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    return trend_request(
        preset.models,
        preset.reference,
        preset.dataset,
        n=preset.n,
        metric=preset.metric,
        k=preset.k,
        layers=preset.layers,
        prop=preset.property,
        bootstrap=bootstrap,
    )


def _row_means(values: np.ndarray) -> np.ndarray:
    """[models, pairs] -> [models]: each row's mean over its finite entries; NaN for a row with none (a
    model with no scoreable pair), without numpy's empty-slice warning."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
