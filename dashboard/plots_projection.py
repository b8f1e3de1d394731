"""Figure builders of the Projections and Neighbours pages: data in, plotly Figure out, no Streamlit.

Scatter plots hold one ``Scattergl`` trace whose point j is sample j (sample ``drawn[j]`` in a reduced
map), so every per-sample property (colour, hover) is an array over samples (``marker.color``,
``customdata``); the Projections page's frame (linked_maps) highlights a selection through the trace's
``selectedpoints``.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from alignscope.core.analysis.results import LabelRollup
from alignscope.dashboard import map_reduction
from alignscope.dashboard.plots import SEQUENTIAL, _layout, level_text

# Tableau 10, then Alphabet for datasets with more labels (colours repeat beyond 36 labels).
LABEL_COLOURS = (
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#BAB0AC",
    "#AA0DFE",
    "#3283FE",
    "#85660D",
    "#782AB6",
    "#565656",
    "#1C8356",
    "#16FF32",
    "#F7E1A0",
    "#E2E2E2",
    "#1CBE4F",
    "#C4451C",
    "#DEA0FD",
    "#FE00FA",
    "#325A9B",
    "#FEAF16",
    "#F8A19F",
    "#90AD1C",
    "#F6222E",
    "#1CFFCE",
    "#2ED9FF",
    "#B10DA1",
    "#C075A6",
    "#FC1CBF",
    "#B00068",
    "#FBE426",
    "#FA0087",
)
HIGHLIGHT = "#FF4B4B"
MAX_LABEL_ANNOTATIONS = 30
# Above this many points a map's hover shows id, label and overlap but not the sample's text (the
# texts of 100,000 samples are megabytes the browser would parse on every rerun).
MAX_HOVER_TEXTS = 20_000


def label_colours(labels: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """One colour per sample and the label -> colour map (labels in sorted order, natural for digits)."""
    ordered = sorted(set(labels), key=lambda text: (len(text), text) if text.isdigit() else (10**9, text))
    mapping = {label: LABEL_COLOURS[i % len(LABEL_COLOURS)] for i, label in enumerate(ordered)}
    return [mapping[label] for label in labels], mapping


def plotly_text(text: object) -> str:
    """User text for plotly's hover labels and annotations, which read a little HTML: ``&``, ``<`` and ``>``
    escaped (plotly knows no ``&quot;``: quotes stay as they are)."""
    return html.escape(str(text), quote=False)


def label_codes(labels: Sequence[str], mapping: dict[str, str]) -> np.ndarray:
    """Each label's position in ``mapping`` (label -> colour, from :func:`label_colours`): its step on a
    map's colour scale. int32 [n]."""
    code = {label: i for i, label in enumerate(mapping)}
    return np.array([code[label] for label in labels], dtype=np.int32)


def colour_scale_values(
    n_samples: int, labels: Sequence[str] | None = None, color_values: Sequence[float] | None = None
) -> np.ndarray:
    """What :func:`projection_scatter` puts on its colour scale for each of the ``n_samples`` samples, given
    the same ``labels`` / ``color_values``: the numbers, else each label's code, else NaN (one colour).
    float64 [n]."""
    if color_values is not None:
        return np.asarray(color_values, dtype=float)
    if labels is not None:
        return label_codes(list(labels), label_colours(list(labels))[1]).astype(float)
    return np.full(n_samples, np.nan)


def point_colours(
    n_samples: int,
    labels: Sequence[str] | None = None,
    color_values: Sequence[float] | None = None,
    color_range: tuple[float, float] | None = (0.0, 1.0),
) -> list[str]:
    """Each sample's colour as :func:`projection_scatter` draws it with the same arguments: numbers on its
    sequential scale over ``color_range`` (None: their own range; a missing number grey), else the label's
    colour, else one colour. [n] CSS colours."""
    if color_values is not None:
        values = np.asarray(color_values, dtype=float)
        finite = values[np.isfinite(values)]
        low, high = color_range if color_range is not None else (finite.min(), finite.max()) if finite.size else (0, 1)
        fractions = np.clip((values - low) / ((high - low) or 1.0), 0.0, 1.0)
        known = np.isfinite(fractions)
        sampled = iter(plotly.colors.sample_colorscale(SEQUENTIAL, fractions[known].tolist()))
        return [next(sampled) if is_known else "#BBBBBB" for is_known in known]
    if labels is not None:
        return label_colours(list(labels))[0]
    return ["#4E79A7"] * n_samples


def top_categories(values: Sequence[str], keep: int) -> list[str]:
    """``values`` with all but the ``keep - 1`` most frequent ones (ties: in sorted order) replaced by
    ``"other (<m> values)"``, so a text column with more values than there are colours still colours
    its main categories; at most ``keep`` values result."""
    counts = Counter(values)
    if len(counts) <= keep:
        return list(values)
    kept = {value for value, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: keep - 1]}
    other = f"other ({len(counts) - len(kept)} values)"
    return [value if value in kept else other for value in values]


def projection_scatter(
    coords: np.ndarray,
    *,
    sample_ids: Sequence[str],
    title: str,
    axis_titles: tuple[str, str] = ("component 1", "component 2"),
    labels: Sequence[str] | None = None,
    label_title: str = "label",
    color_values: Sequence[float] | None = None,
    color_title: str = "k-NN overlap",
    color_range: tuple[float, float] | None = (0.0, 1.0),
    color_in_hover: bool = False,
    overlap: Sequence[float] | None = None,
    snippets: Sequence[str] | None = None,
    drawn: np.ndarray | None = None,
    height: int = 520,
) -> go.Figure:
    """A 2-D map of the samples: one ``Scattergl`` trace, point i = sample i (or ``drawn[i]``).

    Args:
        coords: [n, 2] coordinates (NaN rows are left out of the picture by plotly).
        sample_ids: n ids, shown on hover and carried in ``customdata[:, 0]``.
        labels: n label strings; without ``color_values`` the points are coloured by label and each
            label's name is written at the median of its points.
        label_title: what ``labels`` are (a metadata column's name), in the hover.
        color_values: n numbers to colour by instead (e.g. per-sample k-NN overlap), with a colour bar.
        color_in_hover: also show each point's ``color_values`` number (NaN for a missing one) on hover,
            under ``color_title``.
        overlap: n per-sample overlaps, shown on hover when given.
        snippets: n short texts shown on hover (text datasets).
        drawn: ascending sample indices the trace holds when it cannot hold all n (see
            ``map_reduction.drawn_samples``); a second trace then shows the density of all n points beneath.
            Label colours and names are those of all n samples.

    Returns:
        The figure; ``dragmode`` is box select, so a drag selects.
    """
    coords = np.asarray(coords, dtype=float)
    n_samples = coords.shape[0]
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must be [n, 2], got shape {coords.shape}")
    if len(sample_ids) != n_samples:
        raise ValueError(f"{len(sample_ids)} sample ids for {n_samples} points")
    label_list = list(labels) if labels is not None else [""] * n_samples
    mapping = label_colours(label_list)[1] if labels is not None else {}
    annotations = _label_annotations(coords, label_list, mapping) if labels is not None and color_values is None else []
    density = None
    if drawn is not None and len(drawn) < n_samples:
        take = np.asarray(drawn, dtype=np.int64)
        density = map_reduction.density_image(coords)
        coords, sample_ids = coords[take], [sample_ids[i] for i in take]
        label_list = [label_list[i] for i in take]
        color_values = None if color_values is None else np.asarray(color_values, dtype=float)[take]
        overlap = None if overlap is None else np.asarray(overlap, dtype=float)[take]
        snippets = None if snippets is None else [snippets[i] for i in take]
        n_samples = len(take)
    if snippets is not None and n_samples > MAX_HOVER_TEXTS:
        snippets = None  # the texts stay searchable on the page; the browser is spared n of them
    # Plotly renders a little HTML in hover labels (links, styles): user text goes in escaped. An object
    # array [n, 4], not a list of lists: plotly validates and serialises it without a Python loop per point.
    customdata = np.empty((n_samples, 4), dtype=object)
    customdata[:, 0] = [plotly_text(sample_id) for sample_id in sample_ids]
    customdata[:, 1] = [plotly_text(label) for label in label_list]
    customdata[:, 2] = np.asarray(overlap, dtype=float) if overlap is not None else None
    customdata[:, 3] = [plotly_text(text) for text in snippets] if snippets is not None else ""
    hover = "<b>%{customdata[0]}</b>"
    if labels is not None:
        # escaped, and '%' too: a name like "%{customdata[0]}" must not pull in another field
        hover += f"<br>{plotly_text(label_title).replace('%', '&#37;')}: %{{customdata[1]}}"
    if color_values is not None and color_in_hover:
        hover += f"<br>{plotly_text(color_title).replace('%', '&#37;')}: %{{marker.color:.4g}}"
    if overlap is not None:
        hover += "<br>k-NN overlap: %{customdata[2]:.2f}"
    if snippets is not None:
        hover += "<br>%{customdata[3]}"
    hover += "<extra></extra>"

    marker: dict = {"size": 7, "line": {"width": 0}}
    if color_values is not None:
        marker.update(
            color=np.asarray(color_values, dtype=float),
            colorscale=SEQUENTIAL,
            showscale=True,
            colorbar={"title": {"text": plotly_text(color_title), "side": "right"}, "thickness": 12},
        )
        if color_range is not None:
            marker.update(cmin=color_range[0], cmax=color_range[1])
    elif labels is not None:
        # each point's colour as the index of its label on a stepwise colour scale: plotly checks a
        # numeric array at once, where n colour strings are validated one by one (seconds at 100,000)
        steps = len(mapping)
        marker.update(
            color=label_codes(label_list, mapping),
            colorscale=[
                [edge, colour] for i, colour in enumerate(mapping.values()) for edge in (i / steps, (i + 1) / steps)
            ],
            cmin=-0.5,
            cmax=steps - 0.5,
            showscale=False,
        )
    else:
        marker["color"] = "#4E79A7"

    trace = go.Scattergl(
        x=coords[:, 0],
        y=coords[:, 1],
        mode="markers",
        marker=marker,
        customdata=customdata,
        hovertemplate=hover,
        name="samples",
        showlegend=False,
        selected={"marker": {"opacity": 1.0, "size": 10}},
        unselected={"marker": {"opacity": 0.12}},
    )
    fig = go.Figure(trace)
    if density is not None:
        fig.add_trace(_density_trace(density))
    _layout(fig, title, height=height)
    fig.update_layout(
        dragmode="select",
        annotations=annotations,
        # Zoom and pan survive reruns (e.g. after a selection) as long as the view is the same.
        uirevision=title,
        hoverlabel={"align": "left"},
        # room for tick labels and axis titles, fixed: plotly's automargin draws a WebGL map twice
        margin={"l": 64, "r": 10, "t": 60, "b": 52},
    )
    fig.update_xaxes(title_text=axis_titles[0], zeroline=False, showgrid=True)
    fig.update_yaxes(title_text=axis_titles[1], zeroline=False, showgrid=True)
    return fig


def _label_annotations(coords: np.ndarray, label_list: list[str], mapping: dict[str, str]) -> list[dict]:
    """Each label's name at the median of its points, in its colour from ``mapping`` (label -> colour); none
    above ``MAX_LABEL_ANNOTATIONS`` labels."""
    if len(mapping) > MAX_LABEL_ANNOTATIONS:
        return []
    label_array = np.asarray(label_list)
    annotations = []
    for label, colour in mapping.items():
        points = coords[label_array == label]
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) == 0:
            continue
        x, y = np.median(points, axis=0)
        annotations.append(
            {
                "x": float(x),
                "y": float(y),
                "text": f"<b>{plotly_text(label)}</b>",
                "showarrow": False,
                "font": {"size": 13, "color": colour},
                "bgcolor": "rgba(255,255,255,0.7)",
            }
        )
    return annotations


def _density_trace(density: map_reduction.DensityImage) -> go.Heatmap:
    """All points' density as a grey image beneath a reduced map (empty cells transparent, log counts)."""
    counts = density.counts.astype(float)
    shade = np.where(counts > 0, np.log1p(counts), np.nan)
    return go.Heatmap(
        x=density.x_centres,
        y=density.y_centres,
        z=shade,
        customdata=density.counts,
        colorscale=[[0.0, "#ECECEC"], [1.0, "#6B6B6B"]],
        showscale=False,
        hoverongaps=False,  # no "0 samples here" over empty cells
        hovertemplate="%{customdata} samples here<extra>density of all samples</extra>",
        name="density",
        showlegend=False,
    )


def overlap_histogram(
    overlap: Sequence[float],
    *,
    k: int,
    chance: float,
    selected_bin: int | None = None,
    title: str = "Per-sample neighbour overlap",
    height: int = 380,
) -> go.Figure:
    """Histogram of per-sample overlap |N_A ∩ N_B| / k: one bar per possible value j / k, j = 0..k.

    The bars' ``customdata`` is j, so a clicked bar maps back to its samples. Vertical lines: the mean
    (= the global mutual k-NN score) and the chance level k / (n − 1). ``selected_bin`` (a j) is drawn
    in the highlight colour.
    """
    values = np.asarray(overlap, dtype=float)
    shared = np.rint(values * k).astype(int)
    counts = np.bincount(shared, minlength=k + 1)[: k + 1]
    centres = np.arange(k + 1) / k
    colours = ["#4E79A7"] * (k + 1)
    if selected_bin is not None and 0 <= selected_bin <= k:
        colours[selected_bin] = HIGHLIGHT
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=counts,
            customdata=np.arange(k + 1),
            marker={"color": colours},
            width=0.8 / k,
            hovertemplate="%{customdata} of " + str(k) + " neighbours shared<br>%{y} samples<extra></extra>",
            name="samples",
            showlegend=False,
        )
    )
    mean = float(values.mean()) if len(values) else float("nan")
    top = max(1, int(counts.max())) * 1.05
    # The two reference lines are traces with legend entries: labels never overlap bars or get clipped.
    for x, label, line in (
        (mean, f"mean = mutual k-NN = {mean:.3f}", {"color": "#000000", "width": 2}),
        (chance, f"chance k/(n−1) = {level_text(chance)}", {"color": "#D55E00", "width": 2, "dash": "dash"}),
    ):
        fig.add_trace(go.Scatter(x=[x, x], y=[0, top], mode="lines", line=line, name=label, hoverinfo="name"))
    _layout(fig, title, height=height)
    fig.update_layout(bargap=0.1, clickmode="event+select")
    ticks = centres if k <= 10 else np.linspace(0.0, 1.0, 6)
    fig.update_xaxes(
        title_text=f"shared neighbours / k (k = {k})",
        range=[-0.6 / k, 1 + 0.6 / k],
        tickmode="array",
        tickvals=ticks,
        ticktext=[f"{t:.2g}" for t in ticks],
    )
    fig.update_yaxes(title_text="samples")
    return fig


def label_rollup(rows: Sequence[LabelRollup], *, chance: float, height: int = 360) -> go.Figure:
    """Mean per-sample overlap per label (bars, ± standard error), with the chance level; ``rows`` in
    display order."""
    labels = [plotly_text(row.label) for row in rows]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=[row.mean for row in rows],
            error_y={"type": "data", "array": [row.std_error for row in rows], "visible": True},
            customdata=[row.count for row in rows],
            marker={"color": "#4E79A7"},
            hovertemplate="label %{x}<br>mean overlap %{y:.3f}<br>%{customdata} samples<extra></extra>",
            showlegend=False,
        )
    )
    # the chance line as a legend entry: its label can never hide behind a bar or leave the plot
    fig.add_trace(
        go.Scatter(
            x=[labels[0], labels[-1]] if labels else [],
            y=[chance, chance],
            mode="lines",
            line={"color": "#D55E00", "dash": "dash", "width": 2},
            name=f"chance = {level_text(chance)}",
            hoverinfo="name",
        )
    )
    _layout(fig, "Mean neighbour overlap by label", height=height)
    fig.update_xaxes(title_text="label", type="category")
    fig.update_yaxes(title_text="mean |N_A ∩ N_B| / k", rangemode="tozero")
    return fig


def thumbnail(image, size: int = 72, border: str | None = None, border_width: int = 4):
    """A square preview of a PIL image (small ones enlarged without blurring), optionally framed."""
    from PIL import Image, ImageOps

    image = image.convert("RGB")
    resample = Image.NEAREST if max(image.size) < size else Image.LANCZOS
    scale = size / max(image.size)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    if border:
        canvas = ImageOps.expand(canvas, border=border_width, fill=border)
    return canvas
