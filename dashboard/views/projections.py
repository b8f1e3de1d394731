"""Projections: the same samples in model A's and model B's space, side by side (PCA at once; UMAP and
aligned UMAP computed with progress and cached). Colour by label or by per-sample alignment; a box or
lasso selection in one map highlights the same samples in the other and goes into the link."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.core.errors import AlignscopeError
from alignscope.dashboard import _cached, plots_projection, ui
from alignscope.dashboard.state import ALIGNMENT_STRENGTHS, COLOR_BY, PROJECTIONS, bound, read_selection

PROJECTION_NAMES = {"pca": "PCA", "umap": "UMAP", "aligned_umap": "Aligned UMAP"}
COLOR_NAMES = {"label": "Label", "alignment": "Per-sample alignment (k-NN overlap)"}
MAX_GALLERY = 60

sel, warnings = read_selection()
st.title("Projections")
ui.show_warnings(warnings)

with st.sidebar:
    st.header("Projections")
    ui.pair_widgets(sel, seed_help="Subset and UMAP seed.")
    bound(st.radio, "Projection", sel, "projection", options=list(PROJECTIONS),
          format_func=PROJECTION_NAMES.get,
          help="PCA is exact and instant. UMAP keeps neighbourhoods; aligned UMAP fits both maps together so "
          "that the same sample sits at about the same place in both.")  # fmt: skip
    bound(st.radio, "Colour by", sel, "color_by", options=list(COLOR_BY), format_func=COLOR_NAMES.get)
    ui.k_widget(sel, help="For the per-sample alignment: the fraction of each sample's k nearest neighbours "
                "(in the original spaces) that A and B share.")
pair = ui.load_pair(sel, key="projections")
n, feats_a, feats_b = pair.n, pair.feats_a, pair.feats_b
names_a, names_b, layer_a, layer_b = pair.names_a, pair.names_b, pair.layer_a, pair.layer_b
with st.sidebar:
    with st.expander("UMAP settings", expanded=sel.projection != "pca"):
        n_neighbors = bound(st.slider, "Neighbours (n_neighbors)", sel, "umap_neighbors", min_value=2,
                            max_value=100, help="Larger: more global structure; smaller: more local detail.")
        min_dist = bound(st.slider, "Minimum distance (min_dist)", sel, "umap_min_dist", min_value=0.0,
                         max_value=1.0, step=0.05)
        alignment = bound(st.select_slider, "Alignment strength (aligned UMAP)", sel, "alignment",
                          options=ALIGNMENT_STRENGTHS,
                          to_widget=lambda v: min(ALIGNMENT_STRENGTHS, key=lambda a: abs(a - v)),
                          help="umap's alignment_regularisation: how strongly a sample is held at the "
                          "same place in both maps.")  # fmt: skip

k = min(sel.k, n - 1)
keys = pair.keys
try:
    pca_a = _cached.pca_projection(sel.model_a, sel.dataset, n, sel.seed, layer_a, keys[0])
    pca_b = _cached.pca_projection(sel.model_b, sel.dataset, n, sel.seed, layer_b, keys[1])
    overlap = _cached.neighbour_overlap(sel.model_a, sel.model_b, sel.dataset, n, sel.seed, k, layer_a, layer_b,
                                        *keys)["overlap"]  # fmt: skip
except AlignscopeError as error:
    _cached.show_error(error)
    ui.share_box(sel)
    st.stop()

data = _cached.subset_dataset(sel.dataset, n, sel.seed)
sample_ids = list(data.sample_ids)
position = {sample_id: i for i, sample_id in enumerate(sample_ids)}
selected = [s for s in _cached.selected_samples(sel.selected) if s in position]
selected_indices = [position[s] for s in selected]
snippets = None
if data.texts is not None:
    snippets = [text if len(text) <= 80 else text[:79] + "…" for text in data.texts]

st.caption(
    f"**{sel.model_a}** layer {layer_a} `{names_a[layer_a]}` (left) and **{sel.model_b}** layer {layer_b} "
    f"`{names_b[layer_b]}` (right) on **{sel.dataset}**, n = {n} (seed {sel.seed}). Each point is one sample, "
    "at the same index in both maps. Drag a box (or pick the lasso in the toolbar) in either map to select "
    "samples; they light up in both. Maps are for looking; the per-sample alignment is computed in the "
    "original spaces."
)


def _figure(coords: np.ndarray, side: str, model: str, layer: int, names: list[str], axes: tuple[str, str]):
    by_alignment = sel.color_by == "alignment"
    return plots_projection.projection_scatter(
        coords,
        sample_ids=sample_ids,
        title=f"{side}: {model} · layer {layer} {names[layer]}",
        axis_titles=axes,
        labels=data.labels,
        color_values=overlap if by_alignment else None,
        color_title=f"k-NN overlap (k={k})",
        overlap=overlap,
        snippets=snippets,
        selected_indices=selected_indices,
    )


def _pca_axes(explained: list[float]) -> tuple[str, str]:
    return (f"PC 1 ({explained[0]:.1%} of variance)", f"PC 2 ({explained[1]:.1%} of variance)")


def _compute_with_progress(label: str, compute: Callable, show_preview: Callable[[], None]):
    """Run ``compute(progress)`` (a cached call) in a worker thread and show its progress here.

    Cache hits return at once. Otherwise PCA is shown while it runs, under ``st.status`` with a progress bar
    fed by umap's epochs. The cached function never touches Streamlit, so nothing is replayed later; a
    rerun meanwhile waits on the same cache entry instead of starting a second fit.
    """
    tracker = {"done": 0, "total": 0}
    outcome: dict = {}

    def progress(done: int, total: int) -> None:
        tracker["done"], tracker["total"] = done, total

    def work() -> None:
        try:
            outcome["value"] = compute(progress)
        except Exception as error:  # re-raised in the script thread
            outcome["error"] = error

    worker = threading.Thread(target=work, name="alignscope-umap", daemon=True)
    started = time.perf_counter()
    worker.start()
    worker.join(0.3)
    if worker.is_alive():
        show_preview()
        with st.status(f"Computing {label}…", expanded=True) as status:
            st.write("The PCA maps are shown meanwhile. The first UMAP in a fresh server compiles umap's code "
                     "(about a minute); later ones take seconds, and results are cached.")  # fmt: skip
            bar = st.progress(0.0, text="preparing…")
            while worker.is_alive():
                worker.join(0.25)
                elapsed = time.perf_counter() - started
                if tracker["total"] > 0:
                    fraction = min(1.0, tracker["done"] / tracker["total"])
                    bar.progress(fraction, text=f"{tracker['done']} / {tracker['total']} epochs · {elapsed:.0f} s")
                else:
                    bar.progress(0.0, text=f"building neighbour graphs, compiling · {elapsed:.0f} s")
            state = "error" if "error" in outcome else "complete"
            status.update(label=f"{label} {'failed' if state == 'error' else 'ready'} in "
                          f"{time.perf_counter() - started:.1f} s", state=state, expanded=False)  # fmt: skip
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _on_select(chart_key: str) -> None:
    """Box / lasso in one map -> the selected sample ids (point index = sample index)."""
    state = st.session_state.get(chart_key) or {}
    indices = state.get("selection", {}).get("point_indices", []) if state else []
    _cached.select_samples([sample_ids[i] for i in sorted({int(i) for i in indices}) if 0 <= i < len(sample_ids)])


column_a, column_b = st.columns(2)
slot_a, slot_b = column_a.empty(), column_b.empty()


def _show_pca_preview() -> None:
    slot_a.plotly_chart(_figure(pca_a["coords"], "A", sel.model_a, layer_a, names_a, _pca_axes(pca_a["explained"])),
                        key="proj-preview-a")  # fmt: skip
    slot_b.plotly_chart(_figure(pca_b["coords"], "B", sel.model_b, layer_b, names_b, _pca_axes(pca_b["explained"])),
                        key="proj-preview-b")  # fmt: skip


try:
    if sel.projection == "pca":
        coords_a, coords_b = pca_a["coords"], pca_b["coords"]
        axes_a, axes_b = _pca_axes(pca_a["explained"]), _pca_axes(pca_b["explained"])
    elif sel.projection == "umap":
        args = (sel.dataset, n, sel.seed)

        def _both_umaps(progress):
            first = _cached.umap_projection(sel.model_a, *args, layer_a, keys[0], n_neighbors, min_dist,
                                            _progress=lambda d, t: progress(d, 2 * t))  # fmt: skip
            second = _cached.umap_projection(sel.model_b, *args, layer_b, keys[1], n_neighbors, min_dist,
                                             _progress=lambda d, t: progress(t + d, 2 * t))  # fmt: skip
            return first, second

        coords_a, coords_b = _compute_with_progress("UMAP of A and B", _both_umaps, _show_pca_preview)
        axes_a = axes_b = ("UMAP 1", "UMAP 2")
    else:
        coords_a, coords_b = _compute_with_progress(
            "aligned UMAP",
            lambda progress: _cached.aligned_umap_projection(
                sel.model_a, sel.model_b, sel.dataset, n, sel.seed, layer_a, layer_b, *keys, float(alignment),
                n_neighbors, min_dist, _progress=progress),
            _show_pca_preview,
        )  # fmt: skip
        axes_a = axes_b = ("aligned UMAP 1", "aligned UMAP 2")
except AlignscopeError as error:
    _cached.show_error(error)
    ui.share_box(sel)
    st.stop()

for slot, key, coords, side, model, layer, names, axes in (
    (slot_a, "proj-a", coords_a, "A", sel.model_a, layer_a, names_a, axes_a),
    (slot_b, "proj-b", coords_b, "B", sel.model_b, layer_b, names_b, axes_b),
):
    slot.plotly_chart(_figure(coords, side, model, layer, names, axes), key=key,
                      on_select=functools.partial(_on_select, key), selection_mode=("box", "lasso"))  # fmt: skip
missing = int(np.isnan(coords_a).any(axis=1).sum() + np.isnan(coords_b).any(axis=1).sum())
if missing:
    st.caption(f"{missing} points that umap left disconnected from its neighbour graph are not drawn.")

# -- the selected samples --------------------------------------------------------------------------
if selected:
    st.subheader(f"{len(selected)} selected samples")
    summary = st.columns([1, 1, 1])
    summary[0].metric("Mean k-NN overlap of the selection", f"{overlap[selected_indices].mean():.3f}",
                      delta=f"{overlap[selected_indices].mean() - overlap.mean():+.3f} vs all samples")  # fmt: skip
    summary[1].metric("Mean k-NN overlap of all samples", f"{overlap.mean():.3f}")
    summary[2].button("Clear selection", on_click=_cached.select_samples, args=([],), icon=":material/close:")
    if len(selected) > len(sel.selected):
        st.caption(f"The link keeps the first {len(sel.selected)} of the {len(selected)} selected samples.")
    shown = selected_indices[:MAX_GALLERY]
    if data.images is not None:
        st.image(
            [plots_projection.thumbnail(data.images[i], 64) for i in shown],
            caption=[f"{data.labels[i] if data.labels is not None else sample_ids[i]} · {overlap[i]:.1f}"
                     for i in shown],
            width=72,
        )  # fmt: skip
        if len(selected) > MAX_GALLERY:
            st.caption(f"Showing the first {MAX_GALLERY} images.")
    frame = pd.DataFrame({"sample": [sample_ids[i] for i in selected_indices],
                          "label": [data.labels[i] for i in selected_indices] if data.labels is not None else "",
                          "k-NN overlap": overlap[selected_indices]})  # fmt: skip
    if data.texts is not None:
        frame["text"] = [data.texts[i] for i in selected_indices]
    st.dataframe(frame, hide_index=True, width="stretch", key="proj-selected-table",
                 column_config={"k-NN overlap": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                                format="%.2f")})  # fmt: skip
else:
    st.caption("No samples selected. Drag a box in either map; the same samples light up in the other.")

st.subheader("Share")
ui.share_box(sel)
