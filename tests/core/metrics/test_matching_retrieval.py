import itertools

import numpy as np
import pytest
import slow_reference as ref

from alignscope.core.errors import InputError
from alignscope.core.metrics import matching, retrieval
from alignscope.core.metrics.matryoshka import prefix_sweep
from alignscope.core.metrics.registry import compute


def test_unit_correlation_matches_numpy_and_constant_units_are_zero():
    a, b = ref.gaussian(40, 3, 0), ref.gaussian(40, 4, 1)
    b[:, 3] = 2.0
    corr = matching.unit_correlation(a, b)
    expected = np.corrcoef(a.T, b[:, :3].T)[:3, 3:]
    assert corr[:, :3] == pytest.approx(expected, abs=1e-12)
    assert (corr[:, 3] == 0).all()


def test_hungarian_matching_equals_brute_force():
    a, b = ref.gaussian(30, 4, 2), ref.gaussian(30, 5, 3)
    b[:, :4] += 0.8 * a[:, [2, 0, 3, 1]]
    corr = np.abs(matching.unit_correlation(a, b))
    best = max(itertools.permutations(range(5), 4), key=lambda cols: sum(corr[i, c] for i, c in enumerate(cols)))
    result = matching.match_units(a, b)
    assert sorted(zip(result.units_a, result.units_b)) == list(enumerate(best))
    assert result.mean_abs_correlation == pytest.approx(np.mean([corr[i, c] for i, c in enumerate(best)]))
    assert list(result.curve) == sorted(result.curve, reverse=True)
    semi = matching.match_units(a, b, mode="semi")
    assert semi.units_b.tolist() == np.argmax(corr, axis=1).tolist()


def slow_topk(queries, gallery, top_k):
    q, g = ref.unit_rows(queries), ref.unit_rows(gallery)
    hits = 0
    for i in range(len(q)):
        order = sorted(range(len(g)), key=lambda j: (-(q[i] @ g[j]), j))
        hits += i in order[:top_k]
    return hits / len(q)


def test_retrieval_matches_slow_ranking():
    a = ref.gaussian(80, 6, 4)
    b = a @ ref.gaussian(6, 9, 5) + 0.5 * ref.gaussian(80, 9, 6)
    train, test = retrieval.split_indices(80, 0.5, seed=3)
    train, test = train.numpy(), test.numpy()
    x_mean, y_mean = a[train].mean(0), b[train].mean(0)
    x_c = a[train] - x_mean
    lam = 0.01 * (x_c**2).sum() / 6
    weights = np.linalg.solve(x_c.T @ x_c + lam * np.eye(6), x_c.T @ (b[train] - y_mean))
    mapped = (a[test] - x_mean) @ weights + y_mean
    for top_k in (1, 5):
        expected = slow_topk(mapped, b[test], top_k)
        assert retrieval.retrieval_accuracy(a, b, top_k=top_k, seed=3) == pytest.approx(expected, abs=1e-12)
    assert compute("retrieval_top1_unmapped", a, a) == 1.0
    with pytest.raises(InputError, match="unmapped retrieval needs equal widths"):
        compute("retrieval_top1_unmapped", a, b)


def test_retrieval_of_independent_data_is_near_chance():
    a, b = ref.gaussian(400, 8, 7), ref.gaussian(400, 8, 8)
    chance = 5 / 200
    assert abs(compute("retrieval_top5", a, b) - chance) < 5 * np.sqrt(chance / 200)


def test_prefix_sweep_uses_leading_dimensions():
    a = ref.gaussian(50, 16, 9)
    b = np.hstack([a[:, :4], ref.gaussian(50, 12, 10)])  # only the first 4 dims are shared
    sweep = prefix_sweep("linear_cka", a, b)
    assert sweep.dims.tolist() == [2, 4, 8, 16]  # m = 1 is all ties for cosine k-NN: not a default
    assert sweep.values[:2] == pytest.approx(1.0, abs=1e-12)
    assert sweep.values[-1] < 0.9
    with pytest.raises(InputError, match="prefix lengths"):
        prefix_sweep("linear_cka", a, b, dims=[17])
