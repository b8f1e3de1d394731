"""The Trends figure: one point per model (x = a property, y = mean alignment to the references) with
its bootstrap interval, the chance level as a band, and a hover that names the model and its layers.
Data in, plotly Figure out, no Streamlit calls."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from alignscope.core.analysis.trends import Trend
from alignscope.dashboard.plots import LINE_COLOURS, _layout, chance_words

_CHANCE = "rgba(120,120,120,0.25)"


def pair_descriptions(trend: Trend, layer_names: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Per model, one line per reference: "vs REF: layer i NAME × layer j NAME = score"."""
    lines: dict[str, list[str]] = {model: [] for model in trend.models}
    column = {reference: c for c, reference in enumerate(trend.references)}
    row = {model: r for r, model in enumerate(trend.models)}
    for model, reference, i, j in trend.pairs:
        names_a, names_b = layer_names.get(model, ()), layer_names.get(reference, ())
        name_i = names_a[i] if i < len(names_a) else str(i)
        name_j = names_b[j] if j < len(names_b) else str(j)
        score = trend.pair_scores[row[model], column[reference]]
        lines[model].append(f"vs {reference}: {i} {name_i} × {j} {name_j} = {score:.3f}")
    return lines


def left_out_reason(trend: Trend, position: int, log_x: bool = False) -> str:
    """Why model ``position`` has no point: no value of the property, one a log axis cannot show, or no
    score (its only reference is itself, or no pair with a reference could be scored)."""
    model = trend.models[position]
    if not np.isfinite(trend.x[position]):
        return f"no {trend.property}"
    if log_x and trend.x[position] <= 0:
        return f"{trend.property} <= 0 on a log axis"
    if set(trend.references) <= {model}:
        return "its only reference is itself"
    return "no pair with a reference could be scored"


def trend_figure(
    trend: Trend, layer_names: Mapping[str, Sequence[str]], *, log_x: bool = False, title: str | None = None
) -> go.Figure:
    """x = ``trend.property`` per model, y = mean alignment with its interval; models without a point are
    left out, named in the title with why (:func:`left_out_reason`). The dotted line is each point's level with no
    alignment (``trend.null_level()``: the chance of a search's best for best-layer points), the grey band spans it."""
    usable = np.isfinite(trend.x) & np.isfinite(trend.y)
    if log_x:
        usable &= trend.x > 0
    index = np.flatnonzero(usable)
    order = index[np.argsort(trend.x[index], kind="stable")]
    x, y = trend.x[order], trend.y[order]
    has_ci = np.isfinite(trend.ci_low[order]).all() and np.isfinite(trend.ci_high[order]).all()
    pairs = pair_descriptions(trend, layer_names)
    hover = []
    for position in order:
        model = trend.models[position]
        interval = (
            f"95% CI [{trend.ci_low[position]:.3f}, {trend.ci_high[position]:.3f}]<br>"
            if np.isfinite(trend.ci_low[position])
            else ""
        )
        searched = None if trend.search_chance is None else trend.search_chance[position]
        chance = chance_words(trend.chance[position], searched, 3)
        chance = f"{chance}<br>" if chance else ""
        hover.append(
            f"<b>{html.escape(model)}</b><br>{html.escape(trend.property)} = {trend.x[position]:.4g}<br>"
            f"{html.escape(trend.metric)} = {trend.y[position]:.3f}<br>{interval}{chance}"
            + "<br>".join(html.escape(line) for line in pairs[model][:8])
        )
    fig = go.Figure()
    chance = trend.null_level()[order]
    known = 0 if trend.search_chance is None else int(np.isfinite(trend.search_chance[order]).sum())
    if np.isfinite(chance).any():
        low, high = float(np.nanmin(chance)), float(np.nanmax(chance))
        if high - low < 1e-3:
            low, high = low - 5e-4, high + 5e-4
        fig.add_hrect(y0=low, y1=high, fillcolor=_CHANCE, line_width=0, layer="below")
        fig.add_trace(
            go.Scatter(
                x=x,
                y=chance,
                mode="lines",
                line={"color": "rgba(90,90,90,0.8)", "dash": "dot"},
                name=(
                    "chance of the best layer pair"
                    if known == len(order)
                    else "chance level (of the best layer pair where known)"
                    if known
                    else "chance level"
                ),
            )
        )
    error_y = None
    if has_ci:
        error_y = {
            "type": "data",
            "symmetric": False,
            "array": trend.ci_high[order] - y,
            "arrayminus": y - trend.ci_low[order],
            "thickness": 1.5,
        }
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+lines+text",
            text=[trend.models[p] for p in order],
            textposition="top center",
            textfont={"size": 11},
            marker={"size": 10, "color": LINE_COLOURS[0]},
            line={"color": LINE_COLOURS[0], "width": 1},
            error_y=error_y,
            hovertext=hover,
            hoverinfo="text",
            name="mean alignment (95% CI)" if has_ci else "mean alignment",
        )
    )
    heading = title or f"{trend.metric} vs {trend.property}"
    left_out = [
        f"{trend.models[p]} ({left_out_reason(trend, p, log_x)})" for p in range(len(trend.models)) if not usable[p]
    ]
    if left_out:
        heading += f" (left out: {'; '.join(left_out)})"
    direction = "↑ more aligned" if trend.higher_is_better else "↓ more aligned"
    fig.update_xaxes(title=trend.property + (" (log scale)" if log_x else ""), type="log" if log_x else "linear")
    fig.update_yaxes(title=f"mean {trend.metric} to the references ({direction})")
    return _layout(fig, html.escape(heading), height=520)
