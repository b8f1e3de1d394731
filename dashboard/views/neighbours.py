"""Neighbours: which samples two models agree on. Per-sample overlap |N_A ∩ N_B| / k of the k nearest
neighbours in each model's own (high-dimensional) space, its histogram (mean = mutual k-NN), the most and
least aligned samples, one sample's neighbours side by side, and a roll-up by label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.core.errors import AlignscopeError
from alignscope.dashboard import _cached, plots_projection, ui
from alignscope.dashboard.state import read_selection

sel, warnings = read_selection()
st.title("Neighbours")
ui.show_warnings(warnings)

with st.sidebar:
    st.header("Neighbours")
    ui.pair_widgets(sel)
    ui.k_widget(sel, help="Neighbours per sample, by cosine similarity in each model's own space; the sample "
                "itself is never its own neighbour.")
pair = ui.load_pair(sel, key="neighbours")
n, feats_a, feats_b = pair.n, pair.feats_a, pair.feats_b
names_a, names_b, layer_a, layer_b = pair.names_a, pair.names_b, pair.layer_a, pair.layer_b

k = min(sel.k, n - 1)
try:
    result = _cached.neighbour_overlap(sel.model_a, sel.model_b, sel.dataset, n, sel.seed, k, layer_a, layer_b,
                                       *pair.keys)  # fmt: skip
except AlignscopeError as error:
    _cached.show_error(error)
    ui.share_box(sel)
    st.stop()

data = _cached.subset_dataset(sel.dataset, n, sel.seed)
sample_ids = list(data.sample_ids)
position = {sample_id: i for i, sample_id in enumerate(sample_ids)}
labels = data.labels
overlap = result["overlap"]
shared_counts = np.rint(overlap * k).astype(int)
selected = [s for s in _cached.selected_samples(sel.selected) if s in position]

st.caption(
    f"**{sel.model_a}** layer {layer_a} `{names_a[layer_a]}` vs **{sel.model_b}** layer {layer_b} "
    f"`{names_b[layer_b]}` on **{sel.dataset}**, n = {n} (seed {sel.seed}), k = {k}. For every sample: the "
    "fraction of its k nearest neighbours (cosine, in each model's own feature space, not in 2-D) that "
    "both models share."
)
columns = st.columns(4)
columns[0].metric("Mutual k-NN (mean overlap)", f"{result['score']:.3f}",
                  delta=f"{result['score'] - result['chance']:+.3f} vs chance",
                  help="Mean of the per-sample overlaps below: the global mutual k-NN score.")  # fmt: skip
columns[1].metric("Chance level k/(n−1)", f"{result['chance']:.3f}",
                  help="Expected overlap if B's neighbours were a random k of the other n−1 samples.")  # fmt: skip
columns[2].metric("Samples sharing no neighbour", f"{int((shared_counts == 0).sum())}")
columns[3].metric("Samples sharing all k", f"{int((shared_counts == k).sum())}")

# -- histogram: a clicked bar selects its samples --------------------------------------------------
selected_bin = None
if selected:
    bins = {int(shared_counts[position[s]]) for s in selected}
    if len(bins) == 1 and len(selected) == int((shared_counts == next(iter(bins))).sum()):
        selected_bin = next(iter(bins))


def _pick_bin() -> None:
    state = st.session_state.get("nb-histogram") or {}
    points = [p for p in state.get("selection", {}).get("points", []) if p.get("curve_number", 0) == 0]
    if not points:  # nothing, or only the mean / chance lines
        return
    point = points[0]
    shared = point.get("customdata")
    if shared is None:
        shared = round(float(point.get("x", 0.0)) * k)
    shared = int(shared[0] if isinstance(shared, list) else shared)
    _cached.select_samples([sample_ids[i] for i in np.flatnonzero(shared_counts == shared)])


st.plotly_chart(
    plots_projection.overlap_histogram(overlap, k=k, chance=result["chance"], selected_bin=selected_bin),
    key="nb-histogram", on_select=_pick_bin, selection_mode="points",
)  # fmt: skip
st.caption("Click a bar to select its samples (they are highlighted on the Projections page too).")

# -- table of samples, most and least aligned ------------------------------------------------------
st.subheader("Most and least aligned samples")
table = pd.DataFrame(
    {
        "sample": sample_ids,
        "label": list(labels) if labels is not None else [""] * n,
        "overlap": overlap,
        "shared": shared_counts,
    }
)
if data.texts is not None:
    table["text"] = [text if len(text) <= 120 else text[:119] + "…" for text in data.texts]
table = table.sort_values(["overlap", "sample"], kind="stable").reset_index(drop=True)
if selected:
    top = st.columns([3, 1])
    only_selected = top[0].toggle(f"Only the {len(selected)} selected samples", value=True, key="nb-only-selected")
    top[1].button("Clear selection", on_click=_cached.select_samples, args=([],), icon=":material/close:")
    if only_selected:
        chosen = set(selected)
        table = table[table["sample"].isin(chosen)].reset_index(drop=True)
st.caption("Sorted from least to most aligned; click a column header to sort, a row to inspect that sample.")


def _pick_row() -> None:
    rows = (st.session_state.get("nb-table") or {}).get("selection", {}).get("rows", [])
    if rows and 0 <= rows[0] < len(table):
        st.session_state["nb-inspect"] = table["sample"].iloc[rows[0]]


st.dataframe(
    table,
    key="nb-table",
    on_select=_pick_row,
    selection_mode="single-row",
    hide_index=True,
    height=min(320, 40 + 35 * max(len(table), 1)),
    width="stretch",
    column_config={
        "overlap": st.column_config.ProgressColumn("overlap", min_value=0.0, max_value=1.0, format="%.2f"),
        "shared": st.column_config.NumberColumn(f"shared of {k}"),
    },
)

# -- one sample's neighbours in A and in B --------------------------------------------------------
st.subheader("A sample's neighbours in A and in B")
options = list(table["sample"]) or sample_ids
if st.session_state.get("nb-inspect") not in options:
    st.session_state["nb-inspect"] = options[0]


def _describe(sample_id: str) -> str:
    i = position[sample_id]
    label = f", label {labels[i]}" if labels is not None else ""
    return f"{sample_id} ({shared_counts[i]}/{k} shared{label})"


inspected = st.selectbox("Inspect sample", options, key="nb-inspect", format_func=_describe)
query = position[inspected]
idx_a, idx_b = result["idx_a"][query], result["idx_b"][query]
shared = set(idx_a.tolist()) & set(idx_b.tolist())
has_images = data.images is not None
has_texts = data.texts is not None


def _show_sample(i: int, caption: str, border: str | None = None, size: int = 72) -> None:
    if has_images:
        st.image(plots_projection.thumbnail(data.images[i], size, border=border), caption=caption)
    if has_texts:
        st.markdown(f"{'**★** ' if border else ''}{data.texts[i]}")


left, right = st.columns([1, 4])
with left:
    st.markdown("**The sample**")
    _show_sample(query, _describe(inspected), size=120)
with right:
    st.markdown(f"{len(shared)} of {k} neighbours are shared (framed in red, ★): these are where A and B agree.")
    col_a, col_b = st.columns(2)
    for column, model, layer, names, indices in ((col_a, sel.model_a, layer_a, names_a, idx_a),
                                                 (col_b, sel.model_b, layer_b, names_b, idx_b)):  # fmt: skip
        with column:
            st.markdown(f"**In {model}** (layer {layer} `{names[layer]}`)")
            if has_images:
                thumbs = [plots_projection.thumbnail(data.images[int(j)], 64,
                                                     border=plots_projection.HIGHLIGHT if int(j) in shared else "white")
                          for j in indices]  # fmt: skip
                captions = [
                    f"{'★ ' if int(j) in shared else ''}{labels[int(j)] if labels is not None else sample_ids[int(j)]}"
                    for j in indices
                ]
                st.image(thumbs, caption=captions, width=72)
            if has_texts:
                lines = [
                    f"{rank}. {'**★** ' if int(j) in shared else ''}{data.texts[int(j)]}"
                    + (f" *({labels[int(j)]})*" if labels is not None else "")
                    for rank, j in enumerate(indices, start=1)
                ]
                st.markdown("\n".join(lines))
            if not (has_images or has_texts):
                st.dataframe(pd.DataFrame({"neighbour": [sample_ids[int(j)] for j in indices],
                                           "shared": [int(j) in shared for j in indices]}),
                             hide_index=True)  # fmt: skip

# -- roll-up by label ------------------------------------------------------------------------------
if result["rollup"]:
    st.subheader("By label")
    st.plotly_chart(plots_projection.label_rollup(result["rollup"], chance=result["chance"]), key="nb-rollup")
    st.dataframe(pd.DataFrame(result["rollup"]).set_index("label").style.format(
        {"mean overlap": "{:.3f}", "std error": "{:.3f}"}), width="stretch")  # fmt: skip

st.subheader("Share")
ui.share_box(sel)
