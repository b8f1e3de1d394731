"""The corrected p of a layer search: studentised max-T, and which cell it finds when the best score is
not the strongest evidence (a wide null on noise layers against a narrow one on a real pair)."""

from __future__ import annotations

import numpy as np
import torch

from alignscope.core.analysis.results import LayerMatrix
from alignscope.core.analysis.scorer import studentised_max_t
from alignscope.core.comparisons import max_stat_test


def _searched(values, p_corrected, degenerate=None) -> LayerMatrix:
    best = tuple(int(i) for i in np.unravel_index(np.nanargmax(values), values.shape))
    rows, cols = values.shape
    names_a, names_b = tuple(f"a{i}" for i in range(rows)), tuple(f"b{j}" for j in range(cols))
    return LayerMatrix(
        "linear_cka", "A", "B", "d", 40, names_a, names_b, values, best, float(values[best]), True,
        p_values=p_corrected, p_corrected=p_corrected, n_permutations=999, degenerate=degenerate,
    )  # fmt: skip


def test_a_real_one_dimensional_pair_survives_where_the_best_scoring_noise_pair_does_not():
    # biased linear CKA at n = 40: two 200-d noise layers score ~0.85 with each other by width alone
    rng = np.random.default_rng(3)
    shared = rng.standard_normal((40, 1))
    layers_a = [shared + rng.standard_normal((40, 1)), rng.standard_normal((40, 200))]
    layers_b = [shared + rng.standard_normal((40, 1)), rng.standard_normal((40, 200))]
    tested = max_stat_test(
        [torch.tensor(x) for x in layers_a], [torch.tensor(x) for x in layers_b], "linear_cka", n_permutations=999
    )
    values = np.asarray(tested.observed, dtype=np.float64)
    p = studentised_max_t(values, np.asarray(tested.null_values), True)
    assert tuple(tested.best_index) == (1, 1) and values[1, 1] > 0.8  # noise × noise scores best
    assert p[1, 1] > 0.5 and p[0, 0] <= 0.01  # the real pair is the evidence
    assert tested.p_cells_maxstat[0, 0] > 0.5  # the raw maximum, dominated by the wide null, misses it
    matrix = _searched(values, p)
    assert matrix.best_index == (1, 1) and not matrix.best_significant and matrix.surviving_index == (0, 0)


def test_no_surviving_cell_without_a_test_or_when_only_a_degenerate_cell_is_small():
    values = np.array([[0.9, 0.2], [0.3, 0.1]])
    assert _searched(values, None).surviving_index is None
    p = np.array([[0.6, 0.01], [0.4, 0.3]])
    degenerate = np.array([[False, True], [False, False]])
    assert _searched(values, p, degenerate).surviving_index is None
    assert _searched(values, p).surviving_index == (0, 1)
    # cells tied at the floor (a real effect): the best-scoring of them, not the first in row order
    at_floor = np.array([[0.001, 0.001], [0.001, 0.5]])
    assert _searched(np.array([[0.2, 0.9], [0.4, 0.95]]), at_floor).surviving_index == (0, 1)
