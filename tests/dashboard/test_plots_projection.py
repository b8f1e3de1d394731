"""Figure builders of the Projections / Neighbours pages, without Streamlit."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from alignscope.dashboard import plots_projection


def _scatter(**kwargs) -> go.Figure:
    coords = np.random.default_rng(0).normal(size=(12, 2))
    defaults = {"sample_ids": [f"s{i}" for i in range(12)], "title": "A: model · layer 0"}
    return plots_projection.projection_scatter(coords, **{**defaults, **kwargs})


def test_scatter_has_one_webgl_trace_with_one_point_per_sample():
    labels = [str(i % 3) for i in range(12)]
    fig = _scatter(labels=labels, axis_titles=("PC 1", "PC 2"))
    assert len(fig.data) == 1
    trace = fig.data[0]
    assert isinstance(trace, go.Scattergl) and len(trace.x) == 12
    assert [row[0] for row in trace.customdata] == [f"s{i}" for i in range(12)]
    assert fig.layout.xaxis.title.text == "PC 1" and fig.layout.yaxis.title.text == "PC 2"
    assert fig.layout.dragmode == "select"


def test_label_colours_are_per_sample_and_consistent():
    labels = ["2", "10", "1", "2", "1", "10"] * 2
    trace = _scatter(labels=labels).data[0]
    # each point holds its label's step on a stepwise colour scale (cmin/cmax centre the steps)
    scale, codes = trace.marker.colorscale, list(trace.marker.color)
    assert (trace.marker.cmin, trace.marker.cmax) == (-0.5, len(scale) / 2 - 0.5) and not trace.marker.showscale
    assert all(scale[2 * c][1] == scale[2 * c + 1][1] for c in codes)
    colours = [scale[2 * c][1] for c in codes]
    assert len(colours) == 12
    assert len({c for c, label in zip(colours, labels) if label == "2"}) == 1
    assert len(set(colours)) == 3
    # Digit labels in numeric order get the first palette colours.
    _, mapping = plots_projection.label_colours(labels)
    assert list(mapping) == ["1", "2", "10"]
    fig = _scatter(labels=labels)
    assert {a.text for a in fig.layout.annotations} == {"<b>1</b>", "<b>2</b>", "<b>10</b>"}


def test_colour_by_alignment_puts_the_values_in_marker_color_with_a_colour_bar():
    values = np.linspace(0, 1, 12)
    trace = _scatter(labels=["x"] * 12, color_values=values, overlap=values).data[0]
    np.testing.assert_allclose(trace.marker.color, values)
    assert trace.marker.showscale and (trace.marker.cmin, trace.marker.cmax) == (0.0, 1.0)
    assert "k-NN overlap" in trace.hovertemplate


def test_colour_scale_values_are_the_traces_own_for_every_sample():
    """The linked maps frame colours selected samples a reduced map does not draw with these values: they
    must be what the trace puts on its colour scale, sample for sample (labels: each label's step)."""
    labels = ["b", "10", "a", "2", "a", "b"] * 2
    trace = _scatter(labels=labels).data[0]
    values = plots_projection.colour_scale_values(12, labels)
    np.testing.assert_array_equal(trace.marker.color, values)
    assert values[:4].tolist() == [3, 1, 2, 0]  # digits first, in numeric order, then text: 2, 10, a, b
    drawn = np.array([1, 4, 7, 11])
    reduced = _scatter(labels=labels, drawn=drawn).data[0]
    np.testing.assert_array_equal(reduced.marker.color, values[drawn])
    numbers = np.linspace(0, 1, 12)
    assert np.array_equal(plots_projection.colour_scale_values(12, labels, numbers), numbers)
    assert np.isnan(plots_projection.colour_scale_values(12)).all()  # one colour: the frame copies it
    assert _scatter().data[0].unselected.marker.opacity < 1  # what the frame's highlight dims


def test_text_snippets_go_on_hover():
    fig = _scatter(snippets=[f"sentence {i}" for i in range(12)])
    assert fig.data[0].customdata[3][3] == "sentence 3"
    assert "customdata[3]" in fig.data[0].hovertemplate


def test_texts_leave_the_hover_of_very_large_maps(monkeypatch):
    monkeypatch.setattr(plots_projection, "MAX_HOVER_TEXTS", 11)
    fig = _scatter(snippets=[f"sentence {i}" for i in range(12)])
    assert "customdata[3]" not in fig.data[0].hovertemplate and fig.data[0].customdata[3][3] == ""
    assert fig.data[0].customdata[3][0] == "s3"


def test_scatter_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        plots_projection.projection_scatter(np.zeros((3, 3)), sample_ids=["a", "b", "c"], title="t")
    with pytest.raises(ValueError, match="sample ids"):
        plots_projection.projection_scatter(np.zeros((3, 2)), sample_ids=["a"], title="t")


def test_overlap_histogram_counts_every_possible_value_and_marks_mean_and_chance():
    k = 4
    overlap = np.array([0, 0.25, 0.25, 0.5, 1.0, 1.0, 1.0])
    fig = plots_projection.overlap_histogram(overlap, k=k, chance=0.1, selected_bin=2)
    bars = fig.data[0]
    assert list(bars.y) == [1, 2, 1, 0, 3]
    assert list(bars.customdata) == [0, 1, 2, 3, 4]
    assert bars.marker.color[2] == plots_projection.HIGHLIGHT and bars.marker.color[0] != plots_projection.HIGHLIGHT
    mean_line, chance_line = fig.data[1], fig.data[2]
    assert list(mean_line.x) == pytest.approx([overlap.mean()] * 2) and list(chance_line.x) == [0.1, 0.1]
    assert f"{overlap.mean():.3f}" in mean_line.name and chance_line.name.startswith("chance")
    assert max(mean_line.y) >= 3  # spans the tallest bar
    assert list(fig.layout.xaxis.tickvals) == [0, 0.25, 0.5, 0.75, 1.0]  # one tick per possible value
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "samples"


def test_label_rollup_has_a_bar_per_label_and_the_chance_line():
    from alignscope.core.analysis.results import LabelRollup

    rows = [LabelRollup("0", 0.5, 0.1, 10), LabelRollup("1", 0.2, 0.05, 8)]
    fig = plots_projection.label_rollup(rows, chance=0.05)
    assert list(fig.data[0].x) == ["0", "1"] and list(fig.data[0].y) == [0.5, 0.2]
    assert list(fig.data[1].y) == [0.05, 0.05] and fig.data[1].name == "chance = 0.050"
    assert fig.layout.xaxis.title.text == "label"


def test_thumbnail_enlarges_small_images_and_frames_them():
    tiny = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    thumb = plots_projection.thumbnail(tiny, 64)
    assert thumb.size == (64, 64) and thumb.mode == "RGB"
    # Nearest-neighbour enlargement: each source pixel becomes an 8x8 block.
    assert thumb.getpixel((0, 0)) == thumb.getpixel((7, 7))
    framed = plots_projection.thumbnail(tiny, 64, border="#FF0000", border_width=3)
    assert framed.size == (70, 70) and framed.getpixel((0, 0)) == (255, 0, 0)


def test_user_text_reaches_hover_labels_escaped():
    """Uploaded texts used to be rendered: Plotly shows links and styled spans from hover text."""
    hostile = '<a href="http://host">click</a><span style="color:red">x</span>'
    fig = plots_projection.projection_scatter(
        np.zeros((2, 2)), sample_ids=["s<b>1", "s2"], title="t", labels=[hostile, "b"], snippets=[hostile, "ok"]
    )
    customdata = fig.data[0].customdata
    assert all("<a" not in str(cell) and "<span" not in str(cell) for row in customdata for cell in row)
    assert customdata[0][0] == "s&lt;b&gt;1" and "&lt;a href=" in customdata[0][3]
    assert all("<a" not in a.text for a in fig.layout.annotations)
    # plotly knows no &quot;: a quote stays a quote, or it would show as "&quot;"
    quoted = plots_projection.projection_scatter(np.zeros((1, 2)), sample_ids=['say "hi" & go'], title="t")
    assert quoted.data[0].customdata[0][0] == 'say "hi" &amp; go'


def test_small_chance_levels_keep_their_digits():
    from alignscope.dashboard.plots import level_text

    assert level_text(10 / 99_999) == "1.0e-04"  # k = 10 among 100,000 samples; "0.000" before
    assert level_text(0.208) == "0.208" and level_text(0.0) == "0.000"
    fig = plots_projection.overlap_histogram(np.array([0.0, 0.1]), k=10, chance=10 / 99_999)
    assert any("1.0e-04" in (trace.name or "") for trace in fig.data)
