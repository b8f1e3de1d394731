"""Figures of convergent learning (Li et al. 2016): sorted unit-matching curves beside the within-network
baseline, and a metric's layer × layer matrix averaged over the seed pairs of a family."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from alignscope.core.convergent import CurveBand, FamilyLayerMatrices, FamilyMatchingCurves
from alignscope.dashboard.plots import LINE_COLOURS, SEQUENTIAL, _layout

CURVES = (
    ("one_to_one", "one-to-one (bipartite) match in another net"),
    ("semi", "best match in another net (semi-matching)"),
    ("within", "best other unit of its own net (baseline)"),
)


def _band(fig: go.Figure, band: CurveBand, name: str, colour: str, dash: str) -> None:
    """The mean curve and, with two or more curves, a shaded ± sd band (drawn first, no legend entry)."""
    x = band.grid
    if band.n_curves > 1 and np.isfinite(band.std).all():
        upper, lower = np.clip(band.mean + band.std, 0, 1), np.clip(band.mean - band.std, 0, 1)
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=np.concatenate([upper, lower[::-1]]),
                fill="toself",
                fillcolor=colour,
                opacity=0.18,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    spread = np.nan_to_num(band.std, nan=0.0)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=band.mean,
            customdata=spread,
            mode="lines",
            name=f"{name} ({band.n_curves} curve{'s' * (band.n_curves != 1)})",
            line={"color": colour, "width": 2.5, "dash": dash},
            hovertemplate="rank %{x:.2f}: |corr| %{y:.3f} ± %{customdata:.3f}<extra></extra>",
        )
    )


def matching_curves(curves: FamilyMatchingCurves, layer_name: str) -> go.Figure:
    """|corr| of each unit's match, sorted descending, against its rank as a fraction (0 = best unit)."""
    fig = go.Figure()
    for (field, name), colour, dash in zip(CURVES, LINE_COLOURS, ("solid", "solid", "dot")):
        _band(fig, getattr(curves, field), name, colour, dash)
    fig.update_xaxes(title_text="unit rank (fraction of units, best matched first)", range=[0, 1])
    fig.update_yaxes(title_text="|correlation| with the matched unit", range=[0, 1.02])
    title = f"Unit matching at layer {curves.layer_index} ({html.escape(layer_name)}), {curves.n_nets} nets: mean ± sd"
    _layout(fig, title, height=480)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0.0})
    return fig


def family_matrix(family: FamilyLayerMatrices, names: Sequence[str]) -> go.Figure:
    """Mean over seed pairs per (layer i of one net, layer j of another); the sd in each cell's hover."""
    labels = [html.escape(f"{i}: {name}") for i, name in enumerate(names)]
    spread = np.nan_to_num(family.std, nan=0.0)
    fig = go.Figure(
        go.Heatmap(
            z=family.mean,
            x=labels,
            y=labels,
            customdata=spread,
            colorscale=SEQUENTIAL,
            colorbar={"title": {"text": f"{family.metric}<br>(mean)"}},
            texttemplate="%{z:.2f}" if len(labels) <= 12 else None,
            hovertemplate=f"layer %{{y}} vs %{{x}}<br>{family.metric} = %{{z:.3f}} ± %{{customdata:.3f}}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="layer of the other net", type="category")
    fig.update_yaxes(title_text="layer of one net", autorange="reversed", type="category")
    return _layout(fig, f"{family.metric} layer × layer over {len(family.pairs)} seed pairs (mean; hover: ± sd)")
