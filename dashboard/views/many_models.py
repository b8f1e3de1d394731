"""Many models: a model × model matrix of one metric (best layer pair or one relative depth), ordered
by hierarchical clustering, and the GRAM n-way volume of the whole set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.core.datasets import list_datasets
from alignscope.core.errors import AlignscopeError
from alignscope.core.metrics.registry import get_metric, list_metrics
from alignscope.core.models import list_models
from alignscope.dashboard import _cached, plots, ui
from alignscope.dashboard.state import MAX_MODELS, bound, read_selection, share_url

BEST, DEPTH = "best layer pair", "fixed relative depth"

sel, warnings = read_selection()
st.title("Many models")
ui.show_warnings(warnings)

model_names = [spec.name for spec in list_models()]
dataset_names = [spec.name for spec in list_datasets()]
size = _cached.dataset_size(sel.dataset) or sel.n

with st.sidebar:
    st.header("Model set")
    bound(st.multiselect, "Models", sel, "models", options=model_names, format_func=ui.model_label, to_widget=list,
          from_widget=tuple, max_selections=MAX_MODELS, help="Two or more models of the dataset's modality.")  # fmt: skip
    bound(st.selectbox, "Dataset", sel, "dataset", options=dataset_names, format_func=ui.dataset_label)
    bound(st.number_input, "Samples (n)", sel, "n", min_value=3, max_value=max(3, size), step=50)
    bound(st.number_input, "Seed", sel, "seed", min_value=0, step=1)
    bound(st.selectbox, "Metric", sel, "metric", options=[s.name for s in list_metrics()])
    bound(st.number_input, "k (neighbours)", sel, "k", min_value=1, max_value=max(1, min(1000, sel.n - 1)))
    bound(st.radio, "Layers", sel, "relative_depth", options=[BEST, DEPTH], key_suffix=".mode",
          to_widget=lambda depth: BEST if depth is None else DEPTH,
          from_widget=lambda mode: None if mode == BEST else 1.0,
          help="Best: each pair's best-scoring layer pair. Depth: the layer at the same relative depth in each.")  # fmt: skip
    if sel.relative_depth is not None:
        bound(st.slider, "Relative depth (0 = first layer, 1 = last)", sel, "relative_depth", min_value=0.0,
              max_value=1.0, step=0.05)  # fmt: skip

if len(sel.models) < 2:
    st.info("Choose at least two models (three or more to see clustering).", icon=":material/info:")
    st.stop()
problems = [p for p in (_cached.modality_problem(m, sel.dataset) for m in sel.models) if p]
if problems:
    for problem in problems:
        st.error(problem, icon=ui.ERROR_ICON)
    ui.share_box(sel)
    st.stop()
if not ui.features_ready(sel.models, sel.dataset, sel.n, sel.seed, key="many"):
    ui.share_box(sel)
    st.stop()

plans = [_cached.feature_plan(m, sel.dataset, sel.n, sel.seed) for m in sel.models]
n = plans[0].n
keys = tuple(plan.full_key for plan in plans)
spec = get_metric(sel.metric)
try:
    with st.spinner(f"{sel.metric} for {len(sel.models) ** 2} model pairs…"):
        result = _cached.model_matrix(sel.models, sel.dataset, n, sel.seed, sel.metric, sel.k, sel.relative_depth, keys)
except AlignscopeError as error:
    _cached.show_error(error)
    ui.share_box(sel)
    st.stop()

order = _cached.cluster_order(result["values"], result["higher_is_better"])
# a bounded metric is coloured over its whole range, so small differences look small (numbers are printed)
bounded = all(np.isfinite(spec.value_range))
fig = plots.model_matrix(result["values"], list(sel.models), metric=sel.metric, order=order,
                         value_range=spec.value_range if bounded else None)  # fmt: skip
st.plotly_chart(fig, key="many-matrix")
where = "each pair's best layer pair" if sel.relative_depth is None else f"relative depth {sel.relative_depth:.2f}"
st.caption(f"{sel.metric} ({'higher' if spec.higher_is_better else 'lower'} is more aligned) at {where}, on "
           f"{sel.dataset}, n = {n} (seed {sel.seed}). Rows and columns are ordered by average-linkage clustering.")  # fmt: skip

frame = pd.DataFrame(result["values"], index=list(sel.models), columns=list(sel.models))
layer_frame = pd.DataFrame([[f"{c[0]}×{c[1]}" if c else "" for c in row] for row in result["layers"]],
                           index=list(sel.models), columns=list(sel.models))  # fmt: skip
with st.expander("Scores and the layer pair behind each cell"):
    st.dataframe(frame.style.format("{:.4f}"), width="stretch")
    st.dataframe(layer_frame, width="stretch")

st.subheader("GRAM volume of the whole set")
depth = 1.0 if sel.relative_depth is None else sel.relative_depth
try:
    with st.spinner("GRAM volume…"):
        gram = _cached.gram(sel.models, sel.dataset, n, sel.seed, depth, keys)
except AlignscopeError as error:
    _cached.show_error(error)
    gram = None
if gram is not None and gram.get("problem"):
    st.info(gram["problem"], icon=":material/info:")
elif gram is not None:
    left, right = st.columns(2)
    left.metric("GRAM volume (↓ more aligned)", f"{gram['volume']:.3f}",
                delta=f"{gram['volume'] - gram['chance']:+.3f} vs chance", delta_color="inverse")  # fmt: skip
    right.metric("Chance (rows shuffled)", f"{gram['chance']:.3f}", help=f"sd {gram['chance_std']:.3f} over 10 shuffles")
    st.caption(
        f"Mean volume of the parallelotope spanned by each sample's L2-normalised embeddings from all "
        f"{len(sel.models)} models (layers {gram['layers']} at relative depth {depth:.2f}, width {gram['widths'][0]}): "
        "0 = identical directions, 1 = mutually orthogonal. It compares raw coordinates, so it is meaningful for "
        "models that share an embedding space; independently trained nets can score near chance even when "
        "their neighbourhoods agree."
    )

st.subheader("Share and export")
ui.share_box(sel)
columns = st.columns(3)
with columns[0]:
    ui.csv_download("Matrix (CSV)", frame, "alignscope-models.csv", key="many-csv")
with columns[1]:
    ui.html_download(fig, "alignscope-models.html", key="many-html")
with columns[2]:
    ui.json_download(
        "Result card (JSON)",
        {"alignscope_result": 1, "page": "many-models", "config": {**sel.to_query(), "n_effective": n},
         "models": list(sel.models), "metric": sel.metric, "values": result["values"].tolist(),
         "layers": result["layers"], "cluster_order": [sel.models[i] for i in order],
         "gram": gram,
         "cache_keys": {m: _cached.features_for(m, sel.dataset, n, sel.seed)["cache_key"] for m in sel.models}, "packages": _cached.package_versions(),
         "link": share_url(sel)},  # fmt: skip
        "alignscope-models.json", key="many-card",
    )
