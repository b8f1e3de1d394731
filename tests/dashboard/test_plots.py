"""Figure builders without Streamlit: axis titles, the best-pair marker, ordering, chance band."""

from __future__ import annotations

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from alignscope.core.analysis.results import LayerMatrix
from alignscope.dashboard import plots


def _axis_titles(fig: go.Figure) -> tuple[str, str]:
    return fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def _matrix(values, *, chance=None, p_corrected=None, problems=(), best=None) -> LayerMatrix:
    values = np.asarray(values, dtype=float)
    rows, cols = values.shape
    best = best or tuple(int(i) for i in np.unravel_index(np.nanargmax(values), values.shape))
    return LayerMatrix(
        "m",
        "A",
        "B",
        "d",
        100,
        tuple(f"a{i}" for i in range(rows)),
        tuple(f"b{j}" for j in range(cols)),
        values,
        best,
        float(values[best]),
        True,
        chance=chance,
        p_corrected=p_corrected,
        p_values=p_corrected,
        n_permutations=0 if p_corrected is None else 99,
        problems=problems,
    )


def _trace(fig, name_start):
    return next((t for t in fig.data if (t.name or "").startswith(name_start)), None)


def test_layer_heatmap_frames_the_best_pair_only_when_it_survives_the_correction():
    values = np.random.default_rng(0).random((4, 6))
    best = tuple(int(i) for i in np.unravel_index(np.argmax(values), values.shape))
    significant = np.full(values.shape, 0.5)
    significant[best] = 0.01
    fig = plots.layer_heatmap(_matrix(values, chance=np.full(values.shape, 0.2), p_corrected=significant))
    x_title, y_title = _axis_titles(fig)
    assert "B" in x_title and "A" in y_title
    heatmap, cells = fig.data[0], fig.data[1]
    assert len(cells.x) == values.size
    star = _trace(fig, "best pair")
    assert star.marker.symbol == "square-open" and star.x[0] == heatmap.x[best[1]] and star.y[0] == heatmap.y[best[0]]
    greyed = _trace(fig, "not above chance")
    assert len(greyed.x) == values.size - 1  # every cell but the significant one
    # the grey cells are grey, not coloured by a scale stretched over noise (random features at chance
    # painted deep blue and red): only the significant cell keeps a colour, and sets the scale's reach
    coloured = np.asarray(heatmap.z, dtype=float)
    grey = np.asarray(_trace(fig, "grey cells").z, dtype=float)
    assert np.isfinite(coloured).sum() == 1 and np.isfinite(coloured[best])
    assert np.isnan(grey[best]) and np.isfinite(grey).sum() == values.size - 1
    assert heatmap.zmax == coloured[best] == values[best] - 0.2
    none_significant = plots.layer_heatmap(
        _matrix(values, chance=np.full(values.shape, 0.2), p_corrected=np.full(values.shape, 0.3))
    )
    assert _trace(none_significant, "best pair") is None  # never a star for what the test does not support
    untested = plots.layer_heatmap(_matrix(values))
    assert _trace(untested, "best pair") is None


def test_layer_heatmap_colours_by_distance_from_chance_and_centres_it():
    """Random features at chance used to fill the whole colour scale (min to max), one row bright."""
    noise = 0.02 + 0.001 * np.random.default_rng(1).random((3, 3))
    fig = plots.layer_heatmap(_matrix(noise, chance=np.full((3, 3), 0.02)))
    heatmap = fig.data[0]
    assert heatmap.zmid == 0.0 and heatmap.zmin == -heatmap.zmax
    assert np.allclose(np.asarray(heatmap.z), noise - 0.02)  # colour: the (tiny) excess over chance
    assert np.allclose(np.asarray(heatmap.text), noise)  # numbers: the scores themselves


def test_layer_heatmap_cells_carry_their_indices_reasons_and_show_the_selected_pair():
    values = np.arange(6, dtype=float).reshape(2, 3)
    values[0, 0] = np.nan
    fig = plots.layer_heatmap(_matrix(values, problems=((0, 0, "needs equal widths <b>"),)), selected_index=(0, 1))
    cells = fig.data[1]
    assert list(cells.customdata[5][:2]) == [1, 2] and cells.x[5] == "2: b2" and cells.y[5] == "1: a1"
    assert "needs equal widths &lt;b&gt;" in cells.customdata[0][2]  # reasons shown escaped, as text
    assert _trace(fig, "degenerate").x[0] == "0: b0"
    selected = _trace(fig, "selected pair")
    assert selected.x[0] == "1: b1" and selected.y[0] == "0: a0"


def test_model_matrix_follows_the_order():
    values = np.array([[1.0, 0.1, 0.9], [0.1, 1.0, 0.2], [0.9, 0.2, 1.0]])
    fig = plots.model_matrix(values, ["a", "b", "c"], metric="m", order=[0, 2, 1])
    assert list(fig.data[0].x) == ["a", "c", "b"]
    assert np.asarray(fig.data[0].z)[0, 1] == 0.9
    assert all(_axis_titles(fig))
    # the colour scale spans the model-vs-other-model scores, not the diagonal's 1.0
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.1, 0.9)


def test_model_matrix_cells_are_click_targets_naming_their_pair():
    """Heatmap cells are not selectable in Streamlit: each cell has a marker whose customdata names its
    two models (indices into the names) and layer pair; a model against itself says so."""
    values = np.array([[1.0, 0.1, 0.9], [0.1, 1.0, 0.2], [0.9, 0.2, 1.0]])
    layers = np.arange(18).reshape(3, 3, 2)
    fig = plots.model_matrix(values, ["a", "b", "c"], metric="m", order=[0, 2, 1], layers=layers)
    (targets,) = [trace for trace in fig.data if trace.name == "cells"]
    names = ["a", "b", "c"]
    for x, y, data in zip(targets.x, targets.y, targets.customdata):
        i, j = data[0], data[1]
        assert (names[i], names[j]) == (y, x)
        assert (data[2], data[3]) == tuple(layers[i, j]) and data[6] == values[i, j]
        assert ("itself" in data[7]) == (i == j) and ("open the pair" in data[7]) == (i != j)
    assert len(targets.x) == 9 and targets.marker.color == "rgba(0,0,0,0)"


def test_sweep_draws_a_chance_band_and_titles():
    fig = plots.sweep(
        [1, 2, 4],
        [0.5, 0.6, 0.7],
        chance=[0.1, 0.1, 0.2],
        chance_std=[0.01, 0.02, 0.01],
        x_title="k (count)",
        metric="mutual_knn",
        title="t",
        log_x=True,
        series={"best": [0.6, 0.7, 0.8]},
    )
    names = [trace.name for trace in fig.data]
    assert "chance band (±2 sd)" in names and "chance level" in names and "best" in names
    band_low = fig.data[1]
    assert band_low.fill == "tonexty" and band_low.showlegend
    # a closed-form chance (no sd): the legend named a band nothing drew
    closed = plots.sweep(
        [1, 2, 4], [0.5, 0.6, 0.7], chance=[0.1, 0.1, 0.2], x_title="k", metric="mutual_knn", title="t"
    )
    assert closed.data[1].name == "chance band (±2 sd)" and closed.data[1].showlegend is False
    assert np.allclose(band_low.y, [0.08, 0.06, 0.18])
    # a metric in [0, 1] (linear CKA at small n): the band stops at 0 instead of dipping below it
    clipped = plots.sweep(
        [10, 20], [0.5, 0.4], chance=[0.05, 0.02], chance_std=[0.04, 0.01], x_title="n", metric="m", title="t",
        value_range=(0.0, 1.0),
    )  # fmt: skip
    assert np.allclose(clipped.data[1].y, [0.0, 0.0]) and np.allclose(clipped.data[0].y, [0.13, 0.04])
    assert fig.layout.xaxis.type == "log"
    assert _axis_titles(fig) == ("k (count)", "mutual_knn (score)")


def test_metric_scores_has_error_bars_only_when_intervals_exist():
    rows = [
        {"metric": "a", "score": 0.5, "chance": 0.1, "low": 0.4, "high": 0.6},
        {"metric": "b", "score": 0.3, "chance": None, "low": None, "high": None},
    ]
    fig = plots.metric_scores(rows)
    assert fig.data[0].error_y.visible
    assert np.allclose(fig.data[0].error_y.array, [0.1, 0.0])
    assert all(_axis_titles(fig))
    no_ci = plots.metric_scores([{"metric": "a", "score": 0.5, "chance": 0.1}])
    assert not no_ci.data[0].error_y.visible


def test_figure_html_is_standalone():
    html = plots.figure_html(plots.metric_scores([{"metric": "a", "score": 0.5, "chance": 0.1}]))
    assert "<html>" in html[:200] and "Plotly.newPlot" in html
    assert '<script src="http' not in html  # plotly.js inlined: works offline


def test_point_colours_are_the_scatters_colours():
    from alignscope.dashboard.plots_projection import label_colours, point_colours

    assert point_colours(3, ["b", "a", "b"]) == label_colours(["b", "a", "b"])[0]
    assert point_colours(2) == ["#4E79A7", "#4E79A7"]
    viridis = plotly.colors.get_colorscale(plots.SEQUENTIAL)
    ends = [tuple(float(v) for v in plotly.colors.hex_to_rgb(colour)) for _, colour in (viridis[0], viridis[-1])]
    low, high, missing, clipped = point_colours(4, ["x"] * 4, [0.0, 1.0, float("nan"), 7.0])
    assert [plotly.colors.unlabel_rgb(low), plotly.colors.unlabel_rgb(high)] == ends
    assert missing == "#BBBBBB" and clipped == high  # on the scale's range [0, 1], as the scatter's cmin/cmax
    own = point_colours(2, None, [5.0, 9.0], color_range=None)  # no range: the values' own
    assert [plotly.colors.unlabel_rgb(c) for c in own] == ends
    # what the scatter draws: each label's step of its colour scale, numbers on the same scale and range
    from alignscope.dashboard.plots_projection import projection_scatter

    coords, labels = np.zeros((4, 2)), ["3", "1", "3", "10"]
    marker = projection_scatter(coords, sample_ids=list("abcd"), title="t", labels=labels).data[0].marker
    assert [marker.colorscale[2 * int(code)][1] for code in marker.color] == point_colours(4, labels)
    marker = projection_scatter(coords, sample_ids=list("abcd"), title="t", color_values=[0, 1, 0, 1]).data[0].marker
    viridis_colours = [colour for _, colour in plotly.colors.get_colorscale(plots.SEQUENTIAL)]
    assert (marker.cmin, marker.cmax) == (0.0, 1.0) and [c for _, c in marker.colorscale] == viridis_colours


def test_model_matrix_p_at_its_floor_reads_at_most():
    values = np.array([[1.0, 0.5], [0.5, 1.0]])
    p = np.array([[np.nan, 1 / 21], [0.2, np.nan]])
    fig = plots.model_matrix(values, ["a", "b"], metric="m", statistics=(p, p, p), p_floor=1 / 21)
    (targets,) = [trace for trace in fig.data if trace.name == "cells"]
    texts = {(data[0], data[1]): data[5] for data in targets.customdata}
    assert "p ≤ 0.0476 (permutation)" in texts[0, 1]  # no shuffle scored as well: the floor, not a value
    assert "p = 0.2000 (permutation)" in texts[1, 0] and texts[0, 0] == ""


def test_model_matrix_hover_reads_a_searched_cell_against_its_search_and_says_nothing_of_the_diagonal():
    values = np.array([[1.0, 0.5], [0.5, 1.0]])
    chance, searched = np.full((2, 2), 0.02), np.array([[0.9, 0.0249], [0.0249, 0.9]])
    layers = np.array([[[3, 3], [2, 4]], [[4, 2], [3, 3]]])
    fig = plots.model_matrix(values, ["a", "b"], metric="m", chance=chance, search_chance=searched, layers=layers)
    (targets,) = [trace for trace in fig.data if trace.name == "cells"]
    hover = {(data[0], data[1]): data[4] + data[7] for data in targets.customdata}
    assert hover[0, 1] == (
        "<br>chance of the best layer pair = 0.0249 (one fixed pair: 0.0200)<br>layers 2 × 4"
        "<br>click: open the pair in Compare"
    )
    assert hover[0, 0] == "<br>a model with itself"  # its best layer pair is itself, at no chance worth reading


def test_chance_words_say_a_fixed_pair_s_chance_where_no_search_chance_is_known():
    assert plots.chance_words(0.2081, None, 3) == "chance = 0.208"
    assert plots.chance_words(0.2081, float("nan"), 3) == "chance = 0.208"
    assert plots.chance_words(float("nan"), 0.273, 3) == "chance of the best layer pair = 0.273 (one fixed pair: —)"
    assert plots.chance_words(float("nan"), None, 3) == ""
