"""Figure builders: data in, plotly Figure out, no Streamlit calls.

Palettes are colour-blind safe (viridis / cividis, Okabe-Ito for lines) and every figure has axis
titles with units; backgrounds are transparent so the figures read in light and dark themes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from alignscope.core.analysis.results import SIGNIFICANCE, LayerMatrix
from alignscope.core.stats import at_floor

SEQUENTIAL = "Viridis"
# Okabe-Ito: distinguishable with every common colour-vision deficiency.
LINE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_MARKER = "#FF4B4B"


def level_text(value: float) -> str:
    """A score or chance level for a label: 3 decimals, or 2 significant digits below 0.001 (the chance
    k/(n−1) of 10 neighbours among 100,000 samples is 1.0e-04, not 0.000)."""
    return f"{value:.3f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.1e}"


def chance_words(fixed: float, searched: float | None, digits: int) -> str:
    """A hover's chance line: "chance of the best layer pair = S (one fixed pair: F)" where the score is
    the best of a layer search with that search's chance ``searched``, else "chance = F"; "" when neither
    is known (NaN / None)."""
    fixed_text = f"{fixed:.{digits}f}" if np.isfinite(fixed) else "—"
    if searched is not None and np.isfinite(searched):
        return f"chance of the best layer pair = {searched:.{digits}f} (one fixed pair: {fixed_text})"
    return f"chance = {fixed_text}" if np.isfinite(fixed) else ""


def _layout(fig: go.Figure, title: str, height: int = 480) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    return fig


DIVERGING = "RdBu"  # around the chance level: blue above, red below, white at chance


def _add_click_targets(
    fig: go.Figure, *, x: list, y: list, customdata: list, hovertemplate: str, size: int = 30
) -> None:
    """An invisible marker of ``size`` px on every heatmap cell (``x``, ``y``: each cell's column and row;
    ``customdata``: each cell's, flat). Heatmap cells are not selectable in Streamlit; markers are, so a
    click on a cell selects its marker, whose customdata names the cell. Plotly hovers a marker within
    ``size / 2`` px of its centre and ties every marker that reach covers, so markers must not reach into
    each other's cells."""
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            customdata=customdata,
            mode="markers",
            name="cells",
            showlegend=False,
            marker={"symbol": "square", "size": size, "color": "rgba(0,0,0,0)"},
            hovertemplate=hovertemplate,
            selected={"marker": {"opacity": 1}},
            unselected={"marker": {"opacity": 1}},
        )
    )


def layer_heatmap(matrix: LayerMatrix, *, selected_index: tuple[int, int] | None = None) -> go.Figure:
    """Layer × layer scores: rows = layers of A (input at the top), columns = layers of B.

    Colour is the score's distance from its chance level (diverging, white = chance), so noise never looks
    like a finding; the numbers printed are the scores. Cells not above chance after the correction for
    searching every pair are greyed, degenerate or unscorable cells crossed (hover says why). The best pair
    is framed in gold only when it survives that correction. Cells carry ``customdata`` = (i, j, …) so a click
    maps back to the layer pair.
    """
    values = np.asarray(matrix.values, dtype=float)
    rows, cols = values.shape
    labels_a = [f"{i}: {name}" for i, name in enumerate(matrix.names_a)]
    labels_b = [f"{j}: {name}" for j, name in enumerate(matrix.names_b)]
    chance = None if matrix.chance is None else np.asarray(matrix.chance, dtype=float)
    sign = 1.0 if matrix.higher_is_better else -1.0
    excess = values if chance is None else sign * (values - chance)
    p_corr = matrix.p_corrected
    # cells not above chance after the search correction are grey, not coloured: a diverging scale
    # stretched over noise-sized differences would paint them deep blue or red
    at_chance = matrix.not_above_chance
    coloured = np.where(at_chance, np.nan, excess)
    finite = coloured[np.isfinite(coloured)]
    reach = float(np.abs(finite).max()) if finite.size else 1.0
    texts = "%{text:.2f}" if rows * cols <= 100 else None
    fig = go.Figure(
        go.Heatmap(
            z=coloured,
            x=labels_b,
            y=labels_a,
            text=values,
            colorscale=DIVERGING if chance is not None else SEQUENTIAL,
            zmid=0.0 if chance is not None else None,
            zmin=-reach if chance is not None else None,
            zmax=reach if chance is not None else None,
            colorbar={
                "title": {"text": f"{matrix.metric}<br>{'better than chance by' if chance is not None else 'score'}"}
            },
            hoverinfo="skip",
            texttemplate=texts,
        )
    )
    reasons = {(i, j): reason for i, j, reason in matrix.problems}
    cell = []
    for i in range(rows):
        for j in range(cols):
            lines = [f"{matrix.metric} = {values[i, j]:.4f}"]
            if chance is not None:
                lines.append(f"chance = {chance[i, j]:.4f}")
            if matrix.p_values is not None and p_corr is not None:
                lines.append(f"p = {matrix.p_values[i, j]:.4g}; corrected for {rows * cols} pairs: {p_corr[i, j]:.4g}")
            if (i, j) in reasons:
                lines.append(html.escape(reasons[(i, j)]))
            cell.append([i, j, "<br>".join(lines)])
    _add_click_targets(
        fig,
        x=[labels_b[j] for i in range(rows) for j in range(cols)],
        y=[labels_a[i] for i in range(rows) for j in range(cols)],
        customdata=cell,
        hovertemplate="A: %{y}<br>B: %{x}<br>%{customdata[2]}<br>click to select<extra></extra>",
    )
    fig.add_trace(  # the grey cells (disjoint from the coloured ones), scores still printed
        go.Heatmap(
            z=np.where(at_chance, 1.0, np.nan),
            x=labels_b,
            y=labels_a,
            text=values,
            colorscale=[[0.0, "#C8C8C8"], [1.0, "#C8C8C8"]],
            showscale=False,
            hoverinfo="skip",
            texttemplate=texts,
            name="grey cells (not above chance)",
        )
    )
    _mark(
        fig,
        [(int(i), int(j)) for i, j in np.argwhere(at_chance)],
        labels_a,
        labels_b,
        f"not above chance (corrected p > {SIGNIFICANCE:g})",
        {"symbol": "square", "size": 26, "color": "rgba(150,150,150,0.75)"},
    )
    flagged = [(i, j) for i, j, _ in matrix.problems]
    _mark(
        fig,
        flagged,
        labels_a,
        labels_b,
        "degenerate or undefined (hover)",
        {"symbol": "x-thin", "size": 16, "line": {"width": 2, "color": "#444"}},
    )
    best_i, best_j = matrix.best_index
    if matrix.best_significant:
        fig.add_trace(
            go.Scatter(
                x=[labels_b[best_j]],
                y=[labels_a[best_i]],
                mode="markers",
                name=f"best pair ({values[best_i, best_j]:.3f}, corrected p {p_corr[best_i, best_j]:.2g})",  # type: ignore[index]
                # a frame around the cell: its printed score stays readable inside (an outlined star crossed it)
                marker={"symbol": "square-open", "size": 30, "color": "#f5a623", "line": {"width": 3}},
                hoverinfo="skip",
            )
        )
    if selected_index is not None and not (matrix.best_significant and tuple(selected_index) == matrix.best_index):
        sel_i, sel_j = selected_index
        fig.add_trace(
            go.Scatter(
                x=[labels_b[sel_j]],
                y=[labels_a[sel_i]],
                mode="markers",
                name="selected pair",
                marker={"symbol": "square-open", "size": 26, "color": _MARKER, "line": {"width": 3}},
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title_text=f"layer of B = {matrix.model_b} (input → output)", tickangle=-30, type="category")
    fig.update_yaxes(title_text=f"layer of A = {matrix.model_a}", autorange="reversed", type="category")
    return _layout(fig, f"{matrix.metric} for every layer pair", height=max(380, 34 * rows + 200))


def _mark(
    fig: go.Figure, cells: list[tuple[int, int]], labels_a: list[str], labels_b: list[str], name: str, marker: dict
) -> None:
    if cells:
        fig.add_trace(
            go.Scatter(
                x=[labels_b[j] for _, j in cells],
                y=[labels_a[i] for i, _ in cells],
                mode="markers",
                name=name,
                marker=marker,
                hoverinfo="skip",
            )
        )


def metric_scores(rows: Sequence[dict], *, with_intervals: bool = True) -> go.Figure:
    """Headline scores side by side: one panel point per metric with its interval and chance level.

    ``rows``: ``{"metric", "score", "chance", "low", "high"}`` (low / high / chance may be None).
    Metrics have different ranges, so each is drawn on the shared [score] axis with its own chance tick.
    """
    fig = go.Figure()
    names = [row["metric"] for row in rows]
    scores = [row["score"] for row in rows]
    err_plus = [None if row.get("high") is None else row["high"] - row["score"] for row in rows]
    err_minus = [None if row.get("low") is None else row["score"] - row["low"] for row in rows]
    has_ci = any(e is not None for e in err_plus)
    fig.add_trace(
        go.Bar(
            x=names,
            y=scores,
            name="score",
            marker_color=LINE_COLOURS[0],
            error_y={
                "type": "data",
                "array": [e or 0 for e in err_plus],
                "arrayminus": [e or 0 for e in err_minus],
                "visible": has_ci,
                "color": "#888",
            },
            hovertemplate="%{x}: %{y:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[row.get("chance") for row in rows],
            mode="markers",
            name="chance level",
            marker={"symbol": "line-ew", "size": 40, "line": {"width": 3, "color": LINE_COLOURS[1]}},
            hovertemplate="chance %{y:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="metric")
    fig.update_yaxes(title_text="score (metric units; see range per metric)")
    title = "Headline scores vs. chance" + (" (bars: 95% bootstrap interval)" if with_intervals and has_ci else "")
    return _layout(fig, title, height=380)


def model_matrix(
    values: np.ndarray,
    names: Sequence[str],
    *,
    metric: str,
    order: Sequence[int] | None = None,
    value_range: tuple[float, float] | None = None,
    chance: np.ndarray | None = None,
    layers: np.ndarray | None = None,
    statistics: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    search_chance: np.ndarray | None = None,
    p_label: str = "permutation",
    p_floor: float | None = None,
) -> go.Figure:
    """Model × model scores, rows and columns in ``order`` (e.g. hierarchical clustering); the hover adds
    each cell's chance level and layer pair (``chance`` [m, m], ``layers`` [m, m, 2]; with
    ``search_chance`` [m, m], the chance of a searched best pair, the level the cell is read against) and,
    with ``statistics`` = (p, ci_low, ci_high) [m, m] each, its p (``p_label`` says which; at ``p_floor``,
    1/(P+1), it reads "≤": no shuffle scored as well) and bootstrap interval (NaN: not computed yet). Every cell carries ``customdata`` = (row model index, column model
    index, layer i, layer j, chance text, statistics text, score, action) for a click.

    The colour scale spans ``value_range`` (the Many models page passes a bounded metric's own range),
    else the off-diagonal values: a model against itself would otherwise set the scale alone.
    """
    values = np.asarray(values, dtype=float)
    order = list(order) if order is not None else list(range(len(names)))
    ordered = values[np.ix_(order, order)]
    labels = [names[i] for i in order]
    off_diagonal = values[~np.eye(len(values), dtype=bool)] if len(values) > 1 else values.ravel()
    finite = off_diagonal[np.isfinite(off_diagonal)]
    if value_range is not None:
        low, high = value_range
    elif finite.size and finite.min() < finite.max():
        low, high = float(finite.min()), float(finite.max())
    else:
        low, high = np.nanmin(values), np.nanmax(values)
    count = len(names)
    chance_of = np.full((count, count), np.nan) if chance is None else np.asarray(chance, dtype=float)
    layers_of = np.zeros((count, count, 2), dtype=int) if layers is None else np.asarray(layers, dtype=int)
    p_of, low_of, high_of = (
        (np.full((count, count), np.nan),) * 3
        if statistics is None
        else (np.asarray(a, dtype=float) for a in statistics)
    )

    def stats_text(i: int, j: int) -> str:
        if statistics is None or i == j:
            return ""
        p_text = "= …" if np.isnan(p_of[i, j]) else f"{'≤' if at_floor(p_of[i, j], p_floor) else '='} {p_of[i, j]:.4f}"
        ci = "…" if np.isnan(low_of[i, j]) else f"[{low_of[i, j]:.4f}, {high_of[i, j]:.4f}]"
        return f"<br>p {p_text} ({p_label})<br>95% interval {ci}"

    def chance_text(i: int, j: int) -> str:
        if i == j:  # a model with itself: no chance level or layer pair worth reading
            return ""
        words = chance_words(chance_of[i, j], None if search_chance is None else search_chance[i, j], 4)
        return f"<br>{words}" if words else ""

    def cell(i: int, j: int) -> list:
        layer_i, layer_j = int(layers_of[i, j, 0]), int(layers_of[i, j, 1])
        action = (
            "<br>a model with itself"
            if i == j
            else f"<br>layers {layer_i} × {layer_j}<br>click: open the pair in Compare"
        )
        return [i, j, layer_i, layer_j, chance_text(i, j), stats_text(i, j), float(values[i, j]), action]

    customdata = [[cell(i, j) for j in order] for i in order]
    hover = (
        f"%{{y}} vs %{{x}}<br>{metric} = %{{customdata[6]:.4f}}%{{customdata[4]}}%{{customdata[5]}}"
        "%{customdata[7]}<extra></extra>"
    )
    fig = go.Figure(
        go.Heatmap(
            z=ordered,
            x=labels,
            y=labels,
            customdata=customdata,
            colorscale=SEQUENTIAL,
            zmin=low if np.isfinite(low) else None,
            zmax=high if np.isfinite(high) else None,
            colorbar={"title": {"text": f"{metric}<br>(score)"}},
            texttemplate="%{z:.2f}" if len(labels) <= 12 else None,
            hovertemplate=hover.replace("%{customdata[7]}", ""),  # the click targets say what a click does
        )
    )
    height = max(380, 40 * count + 200)
    cell = (height - 135) / max(count, 1)  # px: a cell's height (the figure's margins and axes take ~135)
    _add_click_targets(  # a disc over most of each cell's height (cells are at least as wide as high)
        fig,
        x=[labels[column] for row in range(count) for column in range(count)],
        y=[labels[row] for row in range(count) for column in range(count)],
        customdata=[data for row in customdata for data in row],
        hovertemplate=hover,
        size=int(0.95 * cell),  # centred, its reach stays inside its own cell
    )
    # the categories' own range: large markers would otherwise pad it and shift them off the cells
    fig.update_xaxes(title_text="model", type="category", range=[-0.5, count - 0.5])
    fig.update_yaxes(
        title_text="model (ordered by hierarchical clustering)", type="category", range=[count - 0.5, -0.5]
    )
    return _layout(fig, f"{metric} between every pair of models", height=height)


def sweep(
    x: Sequence[float],
    values: Sequence[float],
    *,
    chance: Sequence[float] | None = None,
    chance_std: Sequence[float] | None = None,
    x_title: str,
    metric: str,
    title: str,
    log_x: bool = False,
    series: dict[str, Sequence[float]] | None = None,
    series_chance: dict[str, Sequence[float]] | None = None,
    value_range: tuple[float, float] = (-np.inf, np.inf),
) -> go.Figure:
    """A score curve with a chance band (mean ± 2 sd of shuffled correspondences, or the analytic line),
    the band clipped to ``value_range``, the values the metric can take (linear CKA's never dips below 0).

    ``series`` adds more named curves over the same x (e.g. the best B layer per A layer);
    ``series_chance`` a series' own chance curve by its name, dashed in its colour ("chance of the NAME").
    """
    x = list(x)
    fig = go.Figure()
    if chance is not None:
        chance_arr = np.asarray(chance, dtype=float)
        spread = 2 * np.asarray(chance_std, dtype=float) if chance_std is not None else np.zeros_like(chance_arr)
        spread = np.nan_to_num(spread)
        low, high = value_range
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.minimum(chance_arr + spread, high),
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.maximum(chance_arr - spread, low),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(230,159,0,0.25)",
                name="chance band (±2 sd)",
                showlegend=bool(np.any(spread > 0)),  # a closed-form chance has no spread: no band to name
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x, y=chance_arr, mode="lines", name="chance level", line={"color": LINE_COLOURS[1], "dash": "dash"}
            )
        )
    fig.add_trace(
        go.Scatter(x=x, y=list(values), mode="lines+markers", name=metric, line={"color": LINE_COLOURS[0], "width": 3})
    )
    own_chance = series_chance or {}
    for index, (name, extra) in enumerate((series or {}).items()):
        # open markers, drawn over the score line: visible where the two curves coincide
        fig.add_trace(
            go.Scatter(
                x=x,
                y=list(extra),
                mode="lines+markers",
                name=name,
                line={"color": LINE_COLOURS[2 + index % 6], "dash": "dot"},
                marker={"symbol": "diamond-open", "size": 11, "line": {"width": 2}},
            )
        )
        if name in own_chance:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=list(own_chance[name]),
                    mode="lines",
                    name=f"chance of the {name}",
                    line={"color": LINE_COLOURS[2 + index % 6], "dash": "dash", "width": 1.5},
                )
            )
    if log_x:  # label the swept values themselves, not plotly's 2-3-5 minor ticks
        fig.update_xaxes(type="log", tickmode="array", tickvals=x, ticktext=[f"{v:g}" for v in x])
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=f"{metric} (score)")
    return _layout(fig, title, height=420)


def figure_html(fig: go.Figure) -> str:
    """A standalone HTML page (plotly.js inlined) that works offline."""
    return fig.to_html(include_plotlyjs=True, full_html=True)
