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
    if mode == "semi":  # a's units to their best unit of b differs from b's to a's
        assert not np.allclose(result.values, result.values.T)
    else:
        assert np.allclose(result.values, result.values.T)
