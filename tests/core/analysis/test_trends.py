"""Trends across a family: every point equals the pairs scored one by one, and ρ's p is exact."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import load_view, plan_features
from alignscope.core.analysis.requests import MatrixRequest, metric_params
from alignscope.core.analysis.trends import (
    PRESETS,
    TrendRequest,
    _ResampleScorer,
    preset_request,
    spearman_with_permutation_p,
    trend_request,
)
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import compute, get_metric

NETS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
N = 120


def _brute_force_p(x, y) -> float:
    observed = abs(scipy_stats.spearmanr(x, y).statistic)
    rhos = [
        abs(scipy_stats.spearmanr(x, [y[i] for i in order]).statistic)
        for order in itertools.permutations(range(len(y)))
    ]
    return float(np.mean(np.array(rhos) >= observed - 1e-12))


@pytest.mark.parametrize(
    "x, y",
    [
        ([1, 2, 3, 4, 5], [2, 4, 5, 8, 9]),  # perfectly monotone: p = 2 / 5!
        ([0.54, 0.59, 0.72, 0.89, 0.95, 0.98, 0.985], [0.323, 0.734, 0.659, 0.679, 0.739, 0.724, 0.709]),
        ([1, 1, 2, 3, 5, 8], [3, 1, 2, 2, 9, 4]),  # ties in both
    ],
)
def test_spearman_p_is_the_exact_share_of_orderings(x, y):
    rho, p, count = spearman_with_permutation_p(x, y)
    assert rho == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert count == math.factorial(len(y))
    assert p == pytest.approx(_brute_force_p(x, y), abs=1e-12)


def test_spearman_p_with_many_models_is_a_seeded_monte_carlo_p():
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=2.0, size=12)
    rho, p, count = spearman_with_permutation_p(x, y, seed=5)
    assert count == 20_000 and p > 1 / (count + 1)  # never 0
    assert spearman_with_permutation_p(x, y, seed=5) == (rho, p, count)
    exact_normal = scipy_stats.spearmanr(x, y).pvalue
    assert p == pytest.approx(exact_normal, abs=0.05)  # the t approximation is close at m = 12


@pytest.fixture
def engine(warm_cache_dir):
    engine = Engine()
    for model in NETS:
        engine.cache.get_or_extract(model, _dataset())
    return engine


def _dataset():
    from alignscope.core.datasets import load_dataset

    return load_dataset("digits")


def _request(**changes) -> TrendRequest:
    fields = dict(
        models=NETS,
        reference=(),
        dataset="digits",
        n=N,
        metric="mutual_knn",
        params=metric_params("mutual_knn", k=5),
        property="test_accuracy",
        x=(0.9, 0.95, 0.99),
        bootstrap=30,
    )
    return TrendRequest(**{**fields, **changes})


def test_each_point_is_the_mean_of_its_pairs_best_layer_scores(engine):
    trend = engine.run(_request())
    for index, model in enumerate(NETS):
        others = [m for m in NETS if m != model]
        best = [
            engine.run(MatrixRequest(model, other, "digits", N, 0, "mutual_knn", _request().params)) for other in others
        ]
        assert trend.y[index] == pytest.approx(np.mean([m.best_value for m in best]), abs=1e-12)
        assert trend.chance[index] == pytest.approx(np.mean([m.chance[m.best_index] for m in best]), abs=1e-12)
        # each point is a search's best: it is read against where that best lands with no alignment (an
        # unordered pair's matrix is the one with the earlier model of NETS as A: mutual k-NN is symmetric)
        first = [engine.run(MatrixRequest(*sorted((model, o), key=NETS.index), "digits", N, 0, "mutual_knn",
                                          _request().params)) for o in others]  # fmt: skip
        assert trend.search_chance[index] == pytest.approx(np.mean([m.best_chance for m in first]), abs=1e-12)
    assert (trend.search_chance > trend.chance).all() and np.array_equal(trend.null_level(), trend.search_chance)
    assert trend.search_rho == pytest.approx(scipy_stats.spearmanr(trend.x, trend.search_chance).statistic)


def test_a_metric_not_shuffled_for_its_search_has_no_search_chance_and_says_so(engine):
    from alignscope.core.cli_analysis import trend_chance_notes

    trend = engine.run(_request(metric="retrieval_top1", params=(), bootstrap=0))
    assert trend.search_chance is None and trend.search_rho is None
    assert np.array_equal(trend.null_level(), trend.chance)  # the fixed pair's, drawn as such ...
    (note,) = trend_chance_notes(trend)  # ... with the caveat that a best-of-search point sits above it
    assert "not shuffled for the search's own level" in note
    # mutual k-NN is symmetric: each unordered pair was scored once and both rows carry it
    assert np.allclose(trend.pair_scores, trend.pair_scores.T, equal_nan=True)
    assert np.isnan(np.diag(trend.pair_scores)).all()
    layers = {(a, b): (i, j) for a, b, i, j in trend.pairs}
    assert all(layers[a, b] == layers[b, a][::-1] for a, b in layers)


def test_bootstrap_intervals_hold_their_point_and_are_reproducible(engine):
    trend = engine.run(_request())
    assert (trend.ci_low <= trend.y).all() and (trend.y <= trend.ci_high).all()
    assert (trend.ci_high - trend.ci_low > 0).all()
    again = Engine().run(_request())  # a fresh engine reads the stored result
    assert np.array_equal(again.ci_low, trend.ci_low) and np.array_equal(again.y, trend.y)
    # three models give three orderings in each direction: |ρ| = 1 is 2 of 6
    assert trend.rho == pytest.approx(scipy_stats.spearmanr(trend.x, trend.y).statistic)
    assert trend.n_orderings == 6


def test_relative_depth_scores_the_layers_at_that_depth(engine):
    trend = engine.run(_request(relative_depth=1.0, reference=("digits-cnn-s0",), models=NETS[1:], x=(0.1, 0.2)))
    views = {m: load_view(plan_features(m, "digits", N, 0, engine.cache), engine.cache) for m in NETS}
    for index, model in enumerate(NETS[1:]):
        expected = compute("mutual_knn", views[model].values[-1], views["digits-cnn-s0"].values[-1], k=5)
        assert trend.y[index] == pytest.approx(expected, abs=1e-12)
    assert trend.chance == pytest.approx(5 / (N - 1))  # the closed form of mutual k-NN
    assert trend.search_chance is None and np.array_equal(trend.null_level(), trend.chance)  # no search
    assert trend.rho is None  # two models: no trend to test


def test_the_shared_resample_scores_equal_the_metric_on_the_resampled_rows(engine):
    request = _request(metric="linear_cka", params=())
    views = {m: load_view(plan_features(m, "digits", N, 0, engine.cache), engine.cache) for m in NETS}
    rows = torch.randint(0, N, (N,), generator=torch.Generator().manual_seed(1)).numpy()
    pairs = [("digits-cnn-s0", "digits-cnn-s1", 2, 3), ("digits-cnn-s1", "digits-cnn-s2", 4, 4)]
    scores = _ResampleScorer(request, views).scores(rows, pairs)
    for model, reference, i, j in pairs:
        direct = compute("linear_cka", views[model].values[i][rows], views[reference].values[j][rows])
        assert scores[model, reference, i, j] == pytest.approx(direct, abs=1e-9)


def test_models_without_the_property_are_left_out_of_rho(engine):
    trend = engine.run(_request(x=(0.9, None, 0.99)))
    assert np.isnan(trend.x[1]) and np.isfinite(trend.y[1])
    assert trend.rho is None and trend.p_value is None


def test_properties_are_looked_up_once_the_features_are_cached(engine):
    request = trend_request(list(NETS), [], "digits", n=N, prop="test_accuracy", k=5)
    assert request.x == ()  # training measures the accuracy: nothing to look up before
    prepared = engine.prepare(request)
    assert len(prepared.request.x) == 3 and all(0.9 < x <= 1 for x in prepared.request.x)
    outcome = engine.request(trend_request(list(NETS), [], "digits", n=N, prop="no_such_property"))
    assert outcome.state == "failed" and "none of digits-cnn-s0" in outcome.error
    assert "has the property 'no_such_property'" in outcome.error


def test_trend_requests_refuse_nonsense():
    with pytest.raises(InputError, match="presets: prh, ladder"):
        preset_request("nope")
    with pytest.raises(InputError, match="at least two models"):
        _request(models=NETS[:1], x=(0.5,))
    with pytest.raises(InputError, match="2 property values for 3 models"):
        _request(x=(0.5, 0.6))


def test_presets_name_installed_models_with_their_property():
    from alignscope.core.properties import model_properties, resolve_models

    for preset in PRESETS.values():
        assert len(resolve_models(list(preset.models))) >= 3 and get_metric(preset.metric).symmetric
    # published numbers come with the spec; the ladder's accuracies are measured when it trains
    prh = [model_properties(m)["imagenet_top1"].value for m in PRESETS["prh"].models]
    assert prh == [75.1, 76.7, 77.6]
    assert resolve_models(["family:digits-ladder"]) == tuple(f"digits-ladder-{i}" for i in range(1, 8))


def test_a_model_in_the_reference_set_is_never_scored_against_itself(engine):
    trend = engine.run(_request(reference=NETS[:2], models=NETS, x=(0.1, 0.2, 0.3)))
    assert trend.references == NETS[:2]
    assert np.isnan(trend.pair_scores[0, 0]) and np.isnan(trend.pair_scores[1, 1])
    assert trend.y[0] == pytest.approx(trend.pair_scores[0, 1])  # s0 against s1 only


def test_a_property_the_same_for_every_model_has_no_rho_and_says_why(engine):
    trend = engine.run(_request(x=(0.5, 0.5, 0.5), bootstrap=0))
    assert trend.rho is None and trend.p_value is None  # it printed rho = +nan, p = 1
    assert "the same for every model" in trend.why_no_rho()
    assert "at least 3 models" in engine.run(_request(x=(0.9, None, 0.99), bootstrap=0)).why_no_rho()


def test_a_k_no_layer_pair_can_take_is_an_error_not_an_empty_trend(engine):
    # every pair's matrix failed: the trend showed no scores, chance 1.25 and made-up layers, exit 0
    with pytest.raises(InputError, match="k=200 needs more samples"):
        engine.run(_request(n=150, params=metric_params("mutual_knn", k=200), bootstrap=0))
