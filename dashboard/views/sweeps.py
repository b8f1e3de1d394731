"""Sweeps: one metric for the selected model pair as k, n, the Matryoshka prefix length or the layer
depth varies, against its chance band."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.datasets import list_datasets
from core.errors import AlignscopeError
from core.metrics.registry import list_metrics
from core.models import list_models
from dashboard import _cached, plots, ui
from dashboard.state import SWEEPS, bound, read_selection, share_url

SWEEP_LABELS = {"k": "vs. k (neighbours)", "n": "vs. n (samples)", "prefix": "vs. prefix length (Matryoshka)",
                "depth": "vs. layer depth"}  # fmt: skip

sel, warnings = read_selection()
st.title("Sweeps")
ui.show_warnings(warnings)

model_names = [spec.name for spec in list_models()]
dataset_names = [spec.name for spec in list_datasets()]
size = _cached.dataset_size(sel.dataset) or sel.n

with st.sidebar:
    st.header("Sweep")
    bound(st.radio, "Vary", sel, "sweep", options=list(SWEEPS), format_func=SWEEP_LABELS.get)
    bound(st.selectbox, "Model A", sel, "model_a", options=model_names, format_func=ui.model_label)
    bound(st.selectbox, "Model B", sel, "model_b", options=model_names, format_func=ui.model_label)
    bound(st.selectbox, "Dataset", sel, "dataset", options=dataset_names, format_func=ui.dataset_label)
    bound(st.number_input, "Samples (n)", sel, "n", min_value=3, max_value=max(3, size), step=50)
    bound(st.number_input, "Seed", sel, "seed", min_value=0, step=1)
    bound(st.selectbox, "Metric", sel, "metric", options=[s.name for s in list_metrics()])
    bound(st.number_input, "k (neighbours, when not swept)", sel, "k", min_value=1,
          max_value=max(1, min(1000, sel.n - 1)))  # fmt: skip

problems = [p for p in (_cached.modality_problem(m, sel.dataset) for m in (sel.model_a, sel.model_b)) if p]
if problems:
    for problem in dict.fromkeys(problems):
        st.error(problem, icon=ui.ERROR_ICON)
    ui.share_box(sel)
    st.stop()
if not ui.features_ready([sel.model_a, sel.model_b], sel.dataset, sel.n, sel.seed, key="sweeps"):
    ui.share_box(sel)
    st.stop()

plan_a = _cached.feature_plan(sel.model_a, sel.dataset, sel.n, sel.seed)
plan_b = _cached.feature_plan(sel.model_b, sel.dataset, sel.n, sel.seed)
n = plan_a.n
try:
    names_a = _cached.features_for(sel.model_a, sel.dataset, n, sel.seed)["layer_names"]
    names_b = _cached.features_for(sel.model_b, sel.dataset, n, sel.seed)["layer_names"]
    layer_a = _cached.resolve_layer(sel.layer_a, len(names_a))
    layer_b = _cached.resolve_layer(sel.layer_b, len(names_b))
    with st.spinner(f"Sweeping {sel.metric} {SWEEP_LABELS[sel.sweep]} with chance levels…"):
        result = _cached.sweep(sel.sweep, sel.model_a, sel.model_b, sel.dataset, n, sel.seed, sel.metric, sel.k,
                               layer_a, layer_b, plan_a.full_key, plan_b.full_key)  # fmt: skip
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
