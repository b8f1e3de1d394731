"""The engine's model × model matrix: each cell is its pair's layer matrix; the lower triangle is reused
from the upper one only where the metric is symmetric at the parameters asked for."""

from __future__ import annotations

import numpy as np
import pytest

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
