"""Sweeps: one metric for the selected model pair as k, n, the Matryoshka prefix length or the layer
depth varies, against its chance band."""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from alignscope.core.analysis.requests import SweepRequest
from alignscope.core.analysis.results import Sweep
from alignscope.core.metrics.registry import get_metric, list_metrics
from alignscope.core.numbers import fixed
from alignscope.dashboard import _cached, plots, ui
from alignscope.dashboard.selection import SWEEPS, Selection
from alignscope.dashboard.url_state import bound, share_url

SWEEP_LABELS = {
    "k": "vs. k (neighbours)",
    "n": "vs. n (samples)",
    "prefix": "vs. prefix length (Matryoshka)",
    "depth": "vs. layer depth",
}


def render(sel: Selection) -> None:
    st.title("Sweeps")
    with st.sidebar:
        st.header("Sweep")
        bound(st.radio, "Vary", sel, "sweep", options=list(SWEEPS), format_func=SWEEP_LABELS.get)
        ui.pair_widgets(sel)
        bound(st.selectbox, "Metric", sel, "metric", options=[s.name for s in list_metrics()])
        ui.k_widget(sel, label="k (neighbours, when not swept)")
        ui.shape_widgets(sel)
    pair = ui.load_pair(sel, key="sweeps", layer_widgets=False)  # the layer pair is the Compare page's
    if sel.sweep == "k" and "k" not in get_metric(sel.metric).param_names:
        k_metrics = ", ".join(s.name for s in list_metrics() if "k" in s.param_names)
        ui.show_error(f"{sel.metric} has no k; a k sweep needs a k-NN metric ({k_metrics})")
        ui.share_box(sel)
        st.stop()
    request = SweepRequest(
        sel.sweep,
        sel.model_a,
        sel.model_b,
        sel.dataset,
        sel.n,
        sel.seed,
        sel.metric,
        sel.metric_params(),
        pair.layer_a,
        pair.layer_b,
    )
    (outcome,) = ui.fetch([request], key="sweeps")
    frame = fig = None
    if outcome.ready:
        result: Sweep = outcome.result
        series, series_chance = dict(result.series), dict(result.series_chance)
        where = "" if sel.sweep == "depth" else f", layers {pair.names_a[pair.layer_a]} × {pair.names_b[pair.layer_b]}"
        fig = plots.sweep(
            result.x,
            result.values,
            chance=result.chance,
            chance_std=result.chance_std,
            x_title=result.x_title,
            metric=sel.metric,
            log_x=sel.sweep in ("k", "n", "prefix"),
            title=f"{sel.metric} {SWEEP_LABELS[sel.sweep]}: {sel.model_a} vs {sel.model_b}{where}",
            series=series,
            series_chance=series_chance,
            value_range=get_metric(sel.metric).value_range,
        )
        st.plotly_chart(fig, key="sweep-figure")
        band = (
            "Band: the closed-form chance level (no spread)"
            if (result.chance_std == 0).all()
            else "Band: chance level ± 2 sd over 20 shuffled sample correspondences"
        )
        # a depth sweep's note says which layers it pairs; the others use Compare's pair
        layers = "" if sel.sweep == "depth" else " The layer pair is the one chosen on the Compare page."
        st.caption(ui.plain(f"{sel.dataset}, n = {result.n_samples} (seed {sel.seed}). {band}. {result.note}{layers}"))
        frame = pd.DataFrame(
            {
                "x": result.x,
                sel.metric: result.values,
                "chance": result.chance,
                "chance_sd": result.chance_std,
                "chance_analytic": result.chance_analytic,
                **series,
                **{f"chance of the {name}": values for name, values in series_chance.items()},
            }
        ).set_index("x")
        with st.expander("Values"):
            st.dataframe(frame.style.format(functools.partial(fixed, digits=4), na_rep="—"), width="stretch")
    else:
        ui.status_note(outcome, f"the {sel.sweep} sweep")
    ui.gate([outcome], key="sweeps-gate", what="the sweep")

    st.subheader("Share and export")
    ui.share_box(sel)
    if frame is not None:
        columns = st.columns(3)
        with columns[0]:
            ui.csv_download("Sweep (CSV)", frame, f"alignscope-sweep-{sel.sweep}.csv", key="sweep-csv")
        with columns[1]:
            ui.html_download(fig, f"alignscope-sweep-{sel.sweep}.html", key="sweep-html")
        with columns[2]:
            ui.json_download(
                "Result card (JSON)",
                {
                    "alignscope_result": 2,
                    "page": "sweeps",
                    "config": sel.to_query(),
                    "sweep": outcome.result,
                    "packages": _cached.package_versions(),
                    "link": share_url(sel),
                },
                f"alignscope-sweep-{sel.sweep}.json",
                key="sweep-card",
            )


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("sweeps")
