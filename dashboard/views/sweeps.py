"""Sweeps: one metric for the selected model pair as k, n, the Matryoshka prefix length or the layer
depth varies, against its chance band."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from alignscope.core.errors import AlignscopeError
from alignscope.core.metrics.registry import list_metrics
from alignscope.dashboard import _cached, plots, ui
from alignscope.dashboard.state import SWEEPS, bound, read_selection, share_url

SWEEP_LABELS = {"k": "vs. k (neighbours)", "n": "vs. n (samples)", "prefix": "vs. prefix length (Matryoshka)",
                "depth": "vs. layer depth"}  # fmt: skip

sel, warnings = read_selection()
st.title("Sweeps")
ui.show_warnings(warnings)

with st.sidebar:
    st.header("Sweep")
    bound(st.radio, "Vary", sel, "sweep", options=list(SWEEPS), format_func=SWEEP_LABELS.get)
    ui.pair_widgets(sel)
    bound(st.selectbox, "Metric", sel, "metric", options=[s.name for s in list_metrics()])
    ui.k_widget(sel, label="k (neighbours, when not swept)")

pair = ui.load_pair(sel, key="sweeps", layer_widgets=False)  # the layer pair is the Compare page's
n, names_a, names_b, layer_a, layer_b = pair.n, pair.names_a, pair.names_b, pair.layer_a, pair.layer_b
try:
    with st.spinner(f"Sweeping {sel.metric} {SWEEP_LABELS[sel.sweep]} with chance levels…"):
        result = _cached.sweep(sel.sweep, sel.model_a, sel.model_b, sel.dataset, n, sel.seed, sel.metric, sel.k,
                               layer_a, layer_b, *pair.keys)  # fmt: skip
except AlignscopeError as error:
    _cached.show_error(error)
    ui.share_box(sel)
    st.stop()

where = "" if sel.sweep == "depth" else f", layers {names_a[layer_a]} × {names_b[layer_b]}"
fig = plots.sweep(
    result["x"], result["values"], chance=result["chance"], chance_std=result["chance_std"],
    x_title=result["x_title"], metric=sel.metric, log_x=sel.sweep in ("k", "n", "prefix"),
    title=f"{sel.metric} {SWEEP_LABELS[sel.sweep]}: {sel.model_a} vs {sel.model_b}{where}",
    series=result["series"],
)
st.plotly_chart(fig, key="sweep-figure")
st.caption(
    f"{sel.dataset}, n = {n} (seed {sel.seed}). Band: chance level ± 2 sd over 10 shuffled sample "
    f"correspondences. {result['note']} The layer pair is the one chosen on the Compare page."
)
frame = pd.DataFrame({"x": result["x"], sel.metric: result["values"], "chance": result["chance"],
                      "chance_sd": result["chance_std"], "chance_analytic": result["chance_analytic"],
                      **result["series"]}).set_index("x")  # fmt: skip
with st.expander("Values"):
    st.dataframe(frame.style.format("{:.4f}", na_rep="–"), width="stretch")

st.subheader("Share and export")
ui.share_box(sel)
columns = st.columns(3)
with columns[0]:
    ui.csv_download("Sweep (CSV)", frame, f"alignscope-sweep-{sel.sweep}.csv", key="sweep-csv")
with columns[1]:
    ui.html_download(fig, f"alignscope-sweep-{sel.sweep}.html", key="sweep-html")
with columns[2]:
    ui.json_download(
        "Result card (JSON)",
        {"alignscope_result": 1, "page": "sweeps", "config": {**sel.to_query(), "n_effective": n},
         "layers": [names_a[layer_a], names_b[layer_b]], **{k: v for k, v in result.items() if k != "x_title"},
         "packages": _cached.package_versions(), "link": share_url(sel)},  # fmt: skip
        f"alignscope-sweep-{sel.sweep}.json", key="sweep-card",
    )
