"""Results: the table of a batch run (``alignscope run PLAN.toml``), filtered and sorted, and any of its
columns plotted against a model property."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from alignscope.core.analysis.plans import list_runs, read_run
from alignscope.core.errors import AlignscopeError
from alignscope.core.properties import model_properties
from alignscope.core.settings import get_settings
from alignscope.dashboard import ui
from alignscope.dashboard.plots import LINE_COLOURS, _layout
from alignscope.dashboard.selection import Selection
from alignscope.dashboard.url_state import bound, update_selection

NUMERIC = ("score", "chance", "p", "p_corrected", "ci_low", "ci_high")
ALL = "all"


def _empty() -> None:
    st.info(
        "No batch runs yet. Write a plan (models × metrics × layers × params) and run it:\n\n"
        "`alignscope run PLAN.toml`\n\nIts table lands in the cache's runs folder and shows here.",
        icon=":material/info:",
    )


def _filters(table: pd.DataFrame) -> pd.DataFrame:
    columns = st.columns(3)
    metrics = [ALL, *sorted(table["metric"].unique())]
    metric = columns[0].selectbox("Metric", metrics, key="results-metric")
    models = sorted(set(table["model_a"]) | set(table["model_b"]))
    model = columns[1].selectbox("Model (A or B)", [ALL, *models], key="results-model")
    datasets = [ALL, *sorted(table["dataset"].unique())]
    dataset = columns[2].selectbox("Dataset", datasets, key="results-dataset")
    shown = table
    if metric != ALL:
        shown = shown[shown["metric"] == metric]
    if model != ALL:
        shown = shown[(shown["model_a"] == model) | (shown["model_b"] == model)]
    if dataset != ALL:
        shown = shown[shown["dataset"] == dataset]
    return shown


def _property_plot(sel: Selection, shown: pd.DataFrame) -> go.Figure | None:
    """y = a numeric column per row, x = a property of the row's model A (one trace per metric)."""
    models = sorted(set(shown["model_a"]))
    properties = sorted({name for m in models for name in model_properties(m)})
    if not properties:
        st.caption("None of these models has a property to plot against (set one with `alignscope models --set`).")
        return None
    left, right = st.columns(2)
    with left:
        bound(
            st.selectbox,
            "Column (y)",
            sel,
            "column",
            options=list(NUMERIC) + ([] if sel.column in NUMERIC else [sel.column]),
        )
    with right:
        bound(
            st.selectbox,
            "Property of model A (x)",
            sel,
            "prop",
            options=properties + ([] if sel.prop in properties else [sel.prop]),
        )
    if sel.column not in shown.columns or sel.prop not in properties:
        missing = [
            f"column {sel.column!r} is not in this table" if sel.column not in shown.columns else "",
            f"no model of this table has the property {sel.prop!r}" if sel.prop not in properties else "",
        ]
        said = "; ".join(m for m in missing if m)
        st.caption(ui.plain(f"{said[:1].upper()}{said[1:]}: pick a column and a property."))
        return None
    values = {m: getattr(model_properties(m).get(sel.prop), "value", np.nan) for m in models}
    fig = go.Figure()
    for index, (metric, rows) in enumerate(shown.groupby("metric")):
        x = rows["model_a"].map(values).astype(float)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows[sel.column],
                mode="markers",
                name=str(metric),
                marker={"size": 9, "color": LINE_COLOURS[index % len(LINE_COLOURS)]},
                hovertext=[
                    f"{a} vs {b}<br>layers {la} × {lb}"
                    for a, b, la, lb in zip(
                        rows["model_a"], rows["model_b"], rows["layer_a_name"], rows["layer_b_name"]
                    )
                ],
                hoverinfo="text+x+y",
            )
        )
    fig.update_xaxes(title=sel.prop)
    fig.update_yaxes(title=sel.column)
    return _layout(fig, f"{sel.column} against {sel.prop} of model A")


def render(sel: Selection) -> None:
    st.title("Results")
    st.caption("Tables of batch runs (`alignscope run PLAN.toml`): every cell one engine job, cached.")
    root = get_settings().runs_dir
    runs = list_runs(root)
    if not runs:
        _empty()
        st.stop()
    if sel.run not in runs:
        if sel.run:  # a link to a run this cache does not hold (removed, or another machine's)
            st.warning(
                ui.plain(f"There is no run {sel.run!r} here; showing {runs[0]!r}, the newest."),
                icon=":material/warning:",
            )
        sel = update_selection(run=runs[0])
    with st.sidebar:
        st.header("Run")
        bound(st.selectbox, "Run", sel, "run", options=runs)
    try:
        run = read_run(root / sel.run)
    except AlignscopeError as error:
        ui.show_error(error)
        st.stop()
    card = run.card
    st.markdown(
        ui.plain(
            f"{card.get('name', sel.run)}: {card.get('cells', len(run.table))} cells "
            f"({card.get('cached', 0)} already stored, {card.get('computed', 0)} computed) in "
            f"{card.get('seconds', 0):.1f} s, {card.get('created', '')}"
        )
    )
    shown = _filters(run.table)
    st.dataframe(shown, width="stretch", hide_index=True)
    st.caption(f"{len(shown)} of {len(run.table)} rows; click a column header to sort.")
    if run.differences is not None and len(run.differences):
        st.subheader("Paired differences")
        st.dataframe(run.differences, width="stretch", hide_index=True)
    st.subheader("Against a model property")
    fig = _property_plot(sel, shown)
    if fig is not None:
        st.plotly_chart(fig, key="results-plot")
    st.subheader("Share and export")
    ui.share_box(sel)
    ui.csv_download("Shown rows (CSV)", shown.set_index("model_a"), f"alignscope-{sel.run}.csv", key="results-csv")
    with st.expander("The plan behind this run"):
        st.json(card.get("plan", {}))


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("results")
