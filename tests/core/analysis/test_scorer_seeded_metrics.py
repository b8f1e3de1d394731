"""Metrics with their own ``seed`` parameter (held-out folds, anchor draws, train/test splits) score
through the engine with chance, permutations and bootstrap: the metric's seed is the metric's, the
request's seed drives the shuffles — one never overrides the other."""

from __future__ import annotations

import pytest

from alignscope.core.analysis.requests import PairRequest, metric_params
from alignscope.core.metrics.registry import compute, list_metrics

NETS = ("digits-cnn-s0", "digits-cnn-s1")
REFERENCE = "digits-cnn-s2"
N = 120
SEEDED = [spec.name for spec in list_metrics() if "seed" in spec.param_names]


def test_there_are_seeded_metrics():
    assert {"shape_distance", "relative", "ridge_r2"} <= set(SEEDED)


@pytest.mark.parametrize("metric", SEEDED)
def test_a_seeded_metric_scores_with_chance_permutations_and_bootstrap(engine, metric):
    extra = {"n_folds": 3} if metric == "shape_distance" else {}
    params = metric_params(metric, seed=5, **extra)
    request = PairRequest(*NETS, "digits", N, 1, metric, params, "3,3", permutations=9, bootstrap=4)
    score = engine.run(request)
    view = engine.views(engine.prepare(request))
    a, b = view[NETS[0]].values[3], view[NETS[1]].values[3]
    assert score.value == pytest.approx(compute(metric, a, b, **dict(params)), abs=1e-9)
    assert score.chance is not None and score.p_value is not None and score.ci_low is not None
    assert 1 / 10 <= score.p_value <= 1.0


@pytest.mark.parametrize("metric", ["shape_distance", "relative"])
def test_a_seeded_metric_has_layer_matrices_with_max_stat_p_and_paired_differences(engine, metric):
    from alignscope.core.analysis.differences import DifferenceRequest
    from alignscope.core.analysis.requests import MatrixRequest

    params = metric_params(metric, seed=3)
    matrix = engine.run(MatrixRequest(*NETS, "digits", N, 0, metric, params, permutations=9))
    assert matrix.p_corrected is not None and matrix.p_corrected.min() >= 1 / 10
    view = engine.views(engine.prepare(MatrixRequest(*NETS, "digits", N, 0, metric, params)))
    a, b = view[NETS[0]].values[2], view[NETS[1]].values[2]
    assert matrix.values[2, 2] == pytest.approx(compute(metric, a, b, **dict(params)), abs=1e-9)
    difference = engine.run(DifferenceRequest(*NETS, REFERENCE, "digits", N, 0, metric, params, "last", 5))
    x = engine.views(engine.prepare(MatrixRequest(NETS[1], REFERENCE, "digits", N, 0, metric, params)))[REFERENCE]
    expected_b = compute(metric, view[NETS[1]].values[4], x.values[4], **dict(params))
    assert difference.test.score_b == pytest.approx(expected_b, abs=1e-9)
    assert difference.test.ci_low is not None
