"""Model-version compatibility as a Compare section (BCT / BT²): A is the deployed (old) model, B the
candidate (new); can B's queries search the gallery A embedded? Opt-in: the measure is in the URL
(``compat``), ``off`` computes nothing."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from alignscope.core.analysis.compatibility import Compatibility, CompatibilityRequest
from alignscope.dashboard import ui
from alignscope.dashboard.plots import LINE_COLOURS, _layout
from alignscope.dashboard.selection import COMPATIBILITY_MEASURES, Selection
from alignscope.dashboard.url_state import bound

SETTINGS = (
    ("old_old_result", "A's queries → A's gallery (today)", "dot"),
    ("new_old_result", "B's queries → A's gallery (update without re-indexing)", "solid"),
    ("new_new_result", "B's queries → B's gallery (re-indexed)", "dash"),
)


def cmc_figure(result: Compatibility, max_rank: int = 20) -> go.Figure:
    """CMC curves of the three settings: the fraction of queries whose first same-class item is at rank ≤ r."""
    fig = go.Figure()
    report = result.report
    for (field, name, dash), colour in zip(SETTINGS, LINE_COLOURS):
        retrieval = getattr(report, field)
        if retrieval is None:
            continue
        ranks = list(range(1, min(max_rank, retrieval.cmc.size) + 1))
        fig.add_trace(
            go.Scatter(
                x=ranks,
                y=retrieval.cmc[: len(ranks)],
                mode="lines+markers",
                name=name,
                line={"color": colour, "dash": dash, "width": 2.5},
                hovertemplate="rank ≤ %{x}: %{y:.3f}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="rank r", dtick=1 if max_rank <= 20 else None)
    fig.update_yaxes(title_text="queries with a same-class item in the top r (CMC)")
    _layout(fig, "Cumulative match characteristic", height=420)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0})
    return fig


def compatibility_section(sel: Selection, layer_a: int, layer_b: int) -> Compatibility | None:
    """The section under the paired difference; returns the result for the export card (None when off)."""
    st.subheader("Can B replace A without re-indexing? (model-version compatibility)")
    bound(
        st.selectbox,
        "Compatibility measure",
        sel,
        "compatibility",
        options=list(COMPATIBILITY_MEASURES),
        help="Backward-compatible training (Shen et al. 2020; BT², Jaeckle et al. 2023): B is compatible with A "
        "when B's queries search the gallery A embedded better than A's own queries do. Classes are the relevance.",
    )
    if sel.compatibility == "off":
        st.caption("Pick a measure to test it: A is the deployed model, B the candidate.")
        return None
    request = CompatibilityRequest(
        sel.model_a, sel.model_b, sel.dataset, sel.n, sel.seed, layer_a, layer_b, sel.compatibility
    )
    result: Compatibility | None = ui.fetch_one(request, key="compare-compat", what="compatibility")
    if result is None:
        return None
    report = result.report
    words = result.verdict()
    (st.success if report.confident else st.warning if report.passed else st.error)(ui.plain(words))
    rows = result.setting_rows()
    st.dataframe(pd.DataFrame(rows).set_index("queries → gallery"), width="stretch")
    st.plotly_chart(cmc_figure(result), key="compare-cmc")
    pairwise = report.pairwise
    mapped = (
        f" B's embeddings reach A's space through a ridge map fitted on {result.n_fit} other samples."
        if result.n_fit
        else ""
    )
    st.caption(
        ui.plain(
            f"{report.n_queries} queries and a gallery of {report.n_gallery} from {sel.dataset} (disjoint, seed "
            f"{sel.seed}); a hit is an item of the query's class. Intervals: {report.confidence:.0%} bootstrap over "
            f"queries ({report.n_boot} resamples, paired across settings).{mapped} Pairwise (BCT): "
            f"{pairwise.positive_satisfied:.1%} of same-class pairs are no farther with B's queries, "
            f"{pairwise.negative_satisfied:.1%} of different-class pairs no nearer."
        )
    )
    return result
