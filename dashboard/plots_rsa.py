"""Figures of representational similarity: an RDM heatmap with its label blocks marked, and a model's
layer profile against a recording with the noise ceiling band."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from alignscope.core.analysis.rsa import RsaProfile
from alignscope.dashboard.plots import LINE_COLOURS, SEQUENTIAL, _layout

MAX_DRAWN = 600  # an RDM heatmap draws at most this many rows (every k-th, in label order)


def _blocks(labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, stop, label) of each run of equal labels."""
    runs, start = [], 0
    for index in range(1, len(labels) + 1):
        if index == len(labels) or labels[index] != labels[start]:
            runs.append((start, index, labels[start]))
            start = index
    return runs


def rdm_heatmap(values: np.ndarray, labels: Sequence[str] | None, title: str, method: str) -> tuple[go.Figure, int]:
    """The RDM [n, n] (rows already in label order) and the stride it was drawn with (1 = every row)."""
    n = values.shape[0]
    stride = max(1, int(np.ceil(n / MAX_DRAWN)))
    drawn = values[::stride, ::stride]
    fig = go.Figure(
        go.Heatmap(
            z=drawn,
            colorscale=SEQUENTIAL,
            colorbar={"title": {"text": f"{html.escape(method)}<br>dissimilarity"}},
            hovertemplate="row %{y}, column %{x}: %{z:.3f}<extra></extra>",
        )
    )
    if labels is not None and len(labels) == n:
        runs = _blocks(list(labels))
        if len(runs) <= 40:
            ticks = [((start + stop - 1) / 2 / stride, html.escape(str(label))) for start, stop, label in runs]
            for axis in (fig.update_xaxes, fig.update_yaxes):
                axis(tickvals=[t for t, _ in ticks], ticktext=[text for _, text in ticks])
            for start, _, _ in runs[1:]:
                edge = (start - 0.5) / stride
                fig.add_hline(y=edge, line={"color": "white", "width": 0.6})
                fig.add_vline(x=edge, line={"color": "white", "width": 0.6})
    fig.update_yaxes(autorange="reversed", title_text="stimulus (ordered by label)")
    fig.update_xaxes(title_text="stimulus (ordered by label)")
    _layout(fig, html.escape(title), height=520)
    return fig, stride


def layer_profile(profile: RsaProfile) -> go.Figure:
    """Score per layer with its bootstrap interval, the noise ceiling as a grey band behind it."""
    x = [f"{i}: {html.escape(name)}" for i, name in enumerate(profile.layer_names)]
    values = np.array([s.value for s in profile.scores])
    low = np.array([s.ci_low for s in profile.scores])
    high = np.array([s.ci_high for s in profile.scores])
    ceiling = profile.scores[0]
    fig = go.Figure()
    if np.isfinite(ceiling.noise_ceiling_low) and np.isfinite(ceiling.noise_ceiling_high):
        fig.add_hrect(
            y0=ceiling.noise_ceiling_low,
            y1=ceiling.noise_ceiling_high,
            fillcolor="grey",
            opacity=0.22,
            line_width=0,
            annotation_text="noise ceiling",
            annotation_position="top left",
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=values,
            mode="lines+markers",
            name=f"{html.escape(profile.model)} vs {html.escape(profile.recording)}",
            line={"color": LINE_COLOURS[0], "width": 2.5},
            error_y={"type": "data", "symmetric": False, "array": high - values, "arrayminus": values - low},
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="layer", type="category")
    fig.update_yaxes(title_text=f"{profile.method} of model RDM and data RDM (mean over subjects)")
    bars = f"bars: {ceiling.confidence:.0%} bootstrap interval" if ceiling.n_boot else "no interval: bootstrap off"
    return _layout(fig, f"RSA per layer ({bars})", height=440)
