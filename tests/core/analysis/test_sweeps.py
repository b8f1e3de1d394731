"""The one sweep engine: every point equals the metric computed directly on that point's inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignscope.core.analysis.sweeps import geometric_grid, k_points, n_points, prefix_points, sweep_curve
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import compute


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_k_sweep_values_and_closed_form_chance():
    a, b = gaussian(90, 5, 12), gaussian(90, 5, 13)
    b[:, :2] += a[:, :2]
    x, values, chance, chance_std, analytic = sweep_curve(
        k_points(a, b, "mutual_knn", {}, ks=[1, 5, 20]), "mutual_knn", seed=0
    )
    assert x.tolist() == [1, 5, 20]
    assert values.tolist() == [compute("mutual_knn", a, b, k=k) for k in (1, 5, 20)]
    assert np.allclose(chance, [k / 89 for k in (1, 5, 20)]) and np.allclose(analytic, chance)
    assert (chance_std == 0).all()  # a closed form has no spread
    with pytest.raises(InputError, match="no parameter k"):
        k_points(a, b, "linear_cka", {})


def test_default_k_grid_stops_at_half_of_n():
    a = gaussian(60, 4, 1)
    ks = [point.x for point in k_points(a, a, "cknna", {})]
    assert ks[0] == 2 and ks[-1] == 30  # CKNNA's k starts at 2; k -> n - 1 makes every set everything


def test_n_sweep_uses_nested_subsets_and_shuffled_chance():
    a, b = gaussian(90, 5, 12), gaussian(90, 5, 13)
    b[:, :2] += a[:, :2]
    points = n_points(a, b, {}, seed=4, ns=[30, 60, 90])
    order = torch.randperm(90, generator=torch.Generator().manual_seed(4)).numpy()
    x, values, chance, chance_std, analytic = sweep_curve(points, "debiased_cka", seed=4, n_shuffles=5)
    for m, value in zip(x, values):
        rows = np.sort(order[: int(m)])
        assert value == pytest.approx(compute("debiased_cka", a[rows], b[rows]), abs=1e-12)
    assert set(np.sort(order[:30])) <= set(np.sort(order[:60]))  # nested
    assert np.isnan(analytic).all() and (chance_std > 0).all()
    assert values[-1] == pytest.approx(compute("debiased_cka", a, b), abs=1e-12)


def test_prefix_sweep_uses_leading_dimensions():
    a = gaussian(50, 16, 9)
    b = np.hstack([a[:, :4], gaussian(50, 12, 10)])  # only the first 4 dims are shared
    points = prefix_points(a, b, {})
    assert [p.x for p in points][0] == 2  # m = 1 is all ties for cosine k-NN: not a default
    x, values, *_ = sweep_curve(points, "linear_cka", seed=0, n_shuffles=2)
    assert values[:2] == pytest.approx(1.0, abs=1e-12) and values[-1] < 0.9
    with pytest.raises(InputError, match="prefix lengths"):
        prefix_points(a, b, {}, dims=[17])


def test_geometric_grid_is_distinct_sorted_and_ends_at_both_bounds():
    grid = geometric_grid(2, 1000)
    assert grid[0] == 2 and grid[-1] == 1000 and grid == sorted(set(grid))
