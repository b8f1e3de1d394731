"""Figure builders without Streamlit: axis titles, the best-pair marker, ordering, chance band."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from alignscope.dashboard import plots


def _axis_titles(fig: go.Figure) -> tuple[str, str]:
    return fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def test_layer_heatmap_marks_the_best_pair_at_the_argmax():
    values = np.random.default_rng(0).random((4, 6))
    best = np.unravel_index(np.argmax(values), values.shape)
    fig = plots.layer_heatmap(
        values,
        [f"a{i}" for i in range(4)],
        [f"b{j}" for j in range(6)],
        metric="m",
        model_a="A",
        model_b="B",
        best_index=(int(best[0]), int(best[1])),
    )
    x_title, y_title = _axis_titles(fig)
    assert "B" in x_title and "A" in y_title
    heatmap, cells, star = fig.data[0], fig.data[1], fig.data[2]
    assert len(cells.x) == values.size
    assert star.marker.symbol == "star"
    assert star.x[0] == heatmap.x[best[1]] and star.y[0] == heatmap.y[best[0]]
    assert len(fig.data) == 3  # no separate "selected" marker when nothing else is selected
    assert heatmap.colorscale is not None and fig.layout.title.text


def test_layer_heatmap_cells_carry_their_indices_and_show_the_selected_pair():
    values = np.arange(6, dtype=float).reshape(2, 3)
    fig = plots.layer_heatmap(
        values,
        ["x", "y"],
        ["p", "q", "r"],
        metric="m",
        model_a="A",
        model_b="B",
        best_index=(1, 2),
        selected_index=(0, 1),
    )
    customdata = np.asarray(fig.data[0].customdata)
    assert customdata[1, 2].tolist() == [1, 2]
    cells = fig.data[1]
    assert list(cells.customdata[5][:2]) == [1, 2] and cells.x[5] == "2: r" and cells.y[5] == "1: y"
    assert fig.data[3].name == "selected pair"
    assert fig.data[3].x[0] == "1: q" and fig.data[3].y[0] == "0: x"


def test_model_matrix_follows_the_order():
    values = np.array([[1.0, 0.1, 0.9], [0.1, 1.0, 0.2], [0.9, 0.2, 1.0]])
    fig = plots.model_matrix(values, ["a", "b", "c"], metric="m", order=[0, 2, 1])
    assert list(fig.data[0].x) == ["a", "c", "b"]
    assert np.asarray(fig.data[0].z)[0, 1] == 0.9
    assert all(_axis_titles(fig))
    # the colour scale spans the model-vs-other-model scores, not the diagonal's 1.0
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.1, 0.9)


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
    assert band_low.fill == "tonexty"
    assert np.allclose(band_low.y, [0.08, 0.06, 0.18])
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
