"""A reduced map (a sampled layer over the density of all points) and the rule by which a box or lasso selects
exactly among all points, without Streamlit (the frame that applies it: tests/e2e/test_linked_maps_frame.py)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from alignscope.dashboard import plots_projection
from alignscope.dashboard.map_reduction import (
    density_image,
    drawn_samples,
    samples_in_box,
    samples_in_lasso,
)


def test_small_maps_draw_every_sample():
    assert drawn_samples(500, budget=1000).tolist() == list(range(500))


def test_a_reduced_layer_is_seeded_and_the_same_whatever_is_selected():
    drawn = drawn_samples(100_000, budget=2_000)
    assert np.all(np.diff(drawn) > 0) and len(drawn) == 2_000  # ascending, no repeats
    assert np.array_equal(drawn, drawn_samples(100_000, budget=2_000))  # the same on every rerun
    assert not np.array_equal(drawn, drawn_samples(100_000, budget=2_000, seed=1))


def test_density_counts_every_finite_point_once():
    coords = np.random.default_rng(0).normal(size=(5_000, 2))
    coords[:7] = np.nan
    image = density_image(coords, bins=20)
    assert image.counts.shape == (20, 20) and image.counts.sum() == 4_993
    # rows are y bins, columns x bins: two points at (0, 0), three at (1, 0) (right, bottom), one at (0, 2)
    # (left, top) on a 2 x 2 grid over x in [0, 1], y in [0, 2]; transposed it would read [[2, 1], [3, 0]]
    known = np.array([[0, 0]] * 2 + [[1, 0]] * 3 + [[0, 2]], dtype=float)
    image = density_image(known, bins=2)
    assert image.counts.tolist() == [[2, 3], [1, 0]]
    assert image.x_centres.tolist() == [0.25, 0.75] and image.y_centres.tolist() == [0.5, 1.5]


def test_box_selects_exactly_the_points_inside_whatever_the_drag_direction():
    coords = np.random.default_rng(1).uniform(-1, 1, size=(10_000, 2))
    expected = np.flatnonzero((np.abs(coords[:, 0] - 0.1) <= 0.3) & (np.abs(coords[:, 1] + 0.2) <= 0.25))
    assert np.array_equal(samples_in_box(coords, [0.4, -0.2], [-0.45, 0.05]), expected)
    assert np.array_equal(samples_in_box(coords, [-0.2, 0.4], [0.05, -0.45]), expected)


def test_lasso_selects_the_points_inside_the_polygon():
    coords = np.random.default_rng(2).uniform(-1, 1, size=(20_000, 2))
    # a triangle with vertices (0, 0), (1, 0), (0, 1): inside iff x > 0, y > 0, x + y < 1
    picked = samples_in_lasso(coords, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    inside = np.flatnonzero((coords[:, 0] > 0) & (coords[:, 1] > 0) & (coords.sum(axis=1) < 1))
    assert np.array_equal(picked, inside) and 2_000 < len(picked) < 3_000  # area 1/2 of 4: ~2,500
    # a concave polygon (an L): the notch is outside
    ell_x, ell_y = [0, 1, 1, 0.5, 0.5, 0], [0, 0, 0.5, 0.5, 1, 1]
    picked = set(samples_in_lasso(coords, ell_x, ell_y).tolist())
    notch = np.flatnonzero(
        (coords[:, 0] > 0.55) & (coords[:, 0] < 0.95) & (coords[:, 1] > 0.55) & (coords[:, 1] < 0.95)
    )
    body = np.flatnonzero((coords[:, 0] > 0.05) & (coords[:, 0] < 0.45) & (coords[:, 1] > 0.05) & (coords[:, 1] < 0.95))
    assert not picked & set(notch.tolist()) and set(body.tolist()) <= picked
    assert samples_in_lasso(coords, [0, 1], [0, 1]).size == 0  # a line encloses nothing


def _reduced_figure(n=30_000, budget=2_000, **kwargs) -> tuple[go.Figure, np.ndarray]:
    rng = np.random.default_rng(5)
    coords = rng.normal(size=(n, 2))
    drawn = drawn_samples(n, budget=budget)
    fig = plots_projection.projection_scatter(
        coords,
        sample_ids=[f"s{i}" for i in range(n)],
        title="A",
        labels=[str(i % 4) for i in range(n)],
        overlap=np.linspace(0, 1, n),
        drawn=drawn,
        **kwargs,
    )
    return fig, drawn


def test_a_reduced_figure_draws_the_layer_over_the_density_of_all_points():
    fig, drawn = _reduced_figure()
    scatter, density = fig.data
    assert isinstance(scatter, go.Scattergl) and isinstance(density, go.Heatmap)
    assert len(scatter.x) == len(drawn) < 30_000
    # point j is sample drawn[j]: its id and its overlap follow it
    ids = [row[0] for row in scatter.customdata]
    assert ids == [f"s{i}" for i in drawn]
    assert np.allclose([row[2] for row in scatter.customdata], np.linspace(0, 1, 30_000)[drawn])
    assert np.asarray(density.customdata).sum() == 30_000
    # label colours and names come from all samples: four labels, each named once
    assert len(fig.layout.annotations) == 4 and len(set(np.asarray(scatter.marker.color).tolist())) == 4


def test_an_unreduced_figure_has_no_density_trace():
    fig, drawn = _reduced_figure(n=500, budget=1_000)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 500


@pytest.mark.parametrize("n", [1_000, 1_001])
def test_a_map_is_reduced_only_above_its_budget(n):
    assert (len(drawn_samples(n, budget=1_000)) < n) is (n > 1_000)


def test_the_budget_is_a_setting(monkeypatch):
    from alignscope.core.settings import Settings, settings_from_env

    assert Settings().map_points == 10_000
    monkeypatch.setenv("ALIGNSCOPE_MAP_POINTS", "5000")
    assert settings_from_env().map_points == 5_000
    monkeypatch.setenv("ALIGNSCOPE_MAP_POINTS", "3")
    assert settings_from_env().map_points == 100  # never a map of nothing
