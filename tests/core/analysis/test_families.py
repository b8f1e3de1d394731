"""The engine's model × model matrix: each cell is its pair's layer matrix; the lower triangle is reused
from the upper one only where the metric is symmetric at the parameters asked for."""

from __future__ import annotations

import numpy as np
import pytest

from alignscope.core.analysis.cost import pair_seconds
from alignscope.core.analysis.requests import MatrixRequest, ModelMatrixRequest, metric_params

NETS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
N = 150


@pytest.mark.parametrize("mode", ["one_to_one", "semi"])
def test_every_cell_is_the_best_of_its_own_layer_matrix(engine, mode):
    params = metric_params("unit_match", mode=mode)
    result = engine.run(ModelMatrixRequest(NETS, "digits", N, 0, "unit_match", params))
    for i, a in enumerate(NETS):
        for j, b in enumerate(NETS):
            if i == j:
                continue
            own = engine.run(MatrixRequest(a, b, "digits", N, 0, "unit_match", params))
            assert result.values[i, j] == pytest.approx(own.best_value, abs=1e-12), (a, b)
            assert tuple(result.layers[i, j]) == own.best_index
            # the level the best of the search lands at with no alignment: the same matrix's (a symmetric
            # metric's lower triangle mirrors the upper one, whose shuffles reordered the other model)
            assert own.best_chance is not None and own.best_chance > own.chance[own.best_index]
            if mode == "semi" or i < j:
                assert result.search_chance[i, j] == own.best_chance
            else:
                assert result.search_chance[i, j] == result.search_chance[j, i]
    if mode == "semi":  # a's units to their best unit of b differs from b's to a's
        assert not np.allclose(result.values, result.values.T)
    else:
        assert np.allclose(result.values, result.values.T)


def test_a_fixed_depth_has_no_search_and_no_search_chance(engine):
    result = engine.run(
        ModelMatrixRequest(NETS[:2], "digits", N, 0, "mutual_knn", metric_params("mutual_knn", k=5), 1.0)
    )
    assert result.search_chance is None and np.allclose(result.chance, 5 / (N - 1))


def test_a_best_pair_search_stores_its_layer_matrix_for_the_heatmap_and_the_next_search(engine):
    # Many models' per-cell p (a best-pair search) and Compare's heatmap of the pair it opens ask for the
    # same layer matrix with the same permutations: it is computed once and read from the store after
    from alignscope.core.analysis.requests import PairRequest

    params = metric_params("mutual_knn", k=5)
    matrix_request = MatrixRequest(*NETS[:2], "digits", N, 0, "mutual_knn", params, 49)
    assert engine.request(matrix_request).state == "needs_click"
    with_interval = PairRequest(*NETS[:2], "digits", N, 0, "mutual_knn", params, "all", 49, 20)
    cold = engine.request(with_interval).estimate_seconds
    score = engine.run(PairRequest(*NETS[:2], "digits", N, 0, "mutual_knn", params, "all", 49))
    left = engine.request(with_interval).estimate_seconds  # what is left: the best pair's chance and interval
    dims = engine.prepare(with_interval).plans[0].dims
    best_a, best_b = engine.request(matrix_request).result.best_index
    dims_b = engine.prepare(with_interval).plans[1].dims
    expected = pair_seconds("mutual_knn", N, (dims[best_a],), (dims_b[best_b],), dict(params), search=False,
                            permutations=0, bootstrap=20)  # fmt: skip
    assert left == pytest.approx(expected) and left < cold
    stored = engine.request(matrix_request)
    assert stored.state == "ready"
    matrix = stored.result
    assert (score.layer_a, score.layer_b) == matrix.best_index and score.value == matrix.best_value
    assert score.search_chance == matrix.best_chance
    assert score.p_maxstat == matrix.p_corrected[matrix.best_index]


def test_a_model_matrix_costs_nothing_more_once_its_layer_matrices_are_stored(engine):
    request = ModelMatrixRequest(NETS[:2], "digits", N, 0, "mutual_knn", metric_params("mutual_knn", k=5))
    assert engine.request(request).estimate_seconds > 0
    for a, b in ((0, 1), (0, 0), (1, 1)):  # what model_matrix reads: a symmetric metric mirrors (1, 0)
        engine.run(request.matrix_request(NETS[a], NETS[b]))
    assert engine.request(request).estimate_seconds == 0


def test_a_depth_sweep_reads_the_layer_matrix_many_models_reads(engine):
    from alignscope.core.analysis.requests import SweepRequest

    params = metric_params("mutual_knn", k=5)
    sweep = engine.run(SweepRequest("depth", *NETS[:2], "digits", N, 0, "mutual_knn", params))
    cell = ModelMatrixRequest(NETS[:2], "digits", N, 0, "mutual_knn", params).matrix_request(*NETS[:2])
    stored = engine.request(cell)
    assert stored.state == "ready"  # computed once, by whichever page asked first
    assert dict(sweep.series)["best layer of B"] == pytest.approx(np.nanmax(stored.result.values, axis=1))


def test_a_queued_job_whose_result_another_job_stored_meanwhile_reads_it(engine, monkeypatch):
    """Many models' best-pair search computes the pair's layer matrix for itself; Compare's heatmap job of
    that matrix, queued behind it on one worker, computed it a second time."""
    from alignscope.core.analysis import scorer
    from alignscope.core.analysis.jobs import LocalRunner
    from alignscope.core.analysis.requests import PairRequest

    computed = []
    original = scorer.layer_matrix_of
    monkeypatch.setattr(scorer, "layer_matrix_of", lambda *a, **k: computed.append(1) or original(*a, **k))
    engine.runner = LocalRunner(workers=1)
    params = metric_params("mutual_knn", k=5)
    search = PairRequest(*NETS[:2], "digits", N, 0, "mutual_knn", params, "all", 19)
    first, second = (engine.request(r, start=True) for r in (search, search.matrix_request()))
    assert first.job.wait(120) and second.job.wait(120)
    assert (first.job.state, second.job.state) == ("done", "done") and len(computed) == 1


def test_a_search_that_reads_its_stored_matrix_still_reports_its_whole_progress(engine):
    from alignscope.core.analysis.jobs import Progress
    from alignscope.core.analysis.requests import PairRequest

    params = metric_params("mutual_knn", k=5)
    search = PairRequest(*NETS[:2], "digits", N, 0, "mutual_knn", params, "all", 19, 10)
    engine.run(search.matrix_request())
    progress = Progress()
    engine.run(search, progress)
    assert progress.fraction == pytest.approx(1.0)  # the matrix stage counted as done, not left at 0
