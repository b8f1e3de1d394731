"""Neighbours: which samples two models agree on. Per-sample overlap |N_A ∩ N_B| / k of the k nearest
neighbours in each model's own (high-dimensional) space, its histogram (mean = mutual k-NN), the most and
least aligned samples, one sample's neighbours side by side (in the link), and a roll-up by label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.core.analysis.features import view_dataset
from alignscope.core.analysis.requests import NeighbourRequest
from alignscope.core.analysis.results import Neighbours
from alignscope.core.numbers import signed
from alignscope.dashboard import plots, plots_projection, ui
from alignscope.dashboard.selection import Selection, counted, sample_positions
from alignscope.dashboard.url_state import update_selection


def matching_samples(query: str, sample_ids: list[str], texts: tuple[str, ...] | None) -> list[int]:
    """Indices of samples whose id or text contains ``query`` (case-insensitive); all when it is empty."""
    needle = query.strip().casefold()
    if not needle:
        return list(range(len(sample_ids)))
    return [
        i
        for i, sample_id in enumerate(sample_ids)
        if needle in sample_id.casefold() or (texts is not None and needle in texts[i].casefold())
    ]


def _pick_bin(sample_ids: list[str], shared_counts: np.ndarray, k: int) -> None:
    state = st.session_state.get("nb-histogram") or {}
    points = [p for p in state.get("selection", {}).get("points", []) if p.get("curve_number", 0) == 0]
    if not points:  # nothing, or only the mean / chance lines
        return
    point = points[0]
    shared = point.get("customdata")
    if shared is None:
        shared = round(float(point.get("x", 0.0)) * k)
    shared = int(shared[0] if isinstance(shared, list) else shared)
    update_selection(selected=tuple(sample_ids[i] for i in np.flatnonzero(shared_counts == shared)))


def render(sel: Selection) -> None:
    st.title("Neighbours")
    with st.sidebar:
        st.header("Neighbours")
        ui.pair_widgets(sel)
        ui.k_widget(
            sel,
            help="Neighbours per sample, by cosine similarity in each model's own space; the sample "
            "itself is never its own neighbour.",
        )
    pair = ui.load_pair(sel, key="neighbours")
    n, layer_a, layer_b = pair.n, pair.layer_a, pair.layer_b
    k = min(sel.k, n - 1)
    (outcome,) = ui.fetch(
        [NeighbourRequest(sel.model_a, sel.model_b, sel.dataset, sel.n, sel.seed, layer_a, layer_b, k)],
        key="neighbours",
    )
    if not outcome.ready:
        ui.status_note(outcome, "the neighbour lists")
        ui.gate([outcome], key="neighbours-gate", what="the neighbour lists")
        ui.share_box(sel)
        st.stop()
    result: Neighbours = outcome.result
    data = view_dataset(sel.dataset, sel.n, sel.seed)
    sample_ids = list(data.sample_ids)
    position = sample_positions(data.sample_ids)
    overlap = result.overlap
    shared_counts = np.rint(overlap * k).astype(int)
    selected = [s for s in sel.selected if s in position]

    st.caption(
        f"**{ui.plain(sel.model_a)}** {ui.plain(ui.layer_words(layer_a, pair.names_a[layer_a]))} vs "
        f"**{ui.plain(sel.model_b)}** {ui.plain(ui.layer_words(layer_b, pair.names_b[layer_b]))} on "
        f"**{ui.plain(sel.dataset)}**, n = {n} (seed {sel.seed}), k = {k}. For "
        "every sample: the fraction of its k nearest neighbours (cosine, in each model's own feature space, not in "
        "2-D) that both models share."
    )
    columns = st.columns(4)
    columns[0].metric(
        "Mutual k-NN (mean overlap)",
        f"{result.score:.3f}",
        delta=f"{signed(result.score - result.chance)} vs chance",
        delta_color=ui.delta_color(result.score - result.chance),
        help="Mean of the per-sample overlaps below: the global mutual k-NN score.",
    )
    columns[1].metric(
        "Chance level k/(n−1)",
        plots.level_text(result.chance),
        help="Expected overlap if B's neighbours were a random k of the other n−1 samples.",
    )
    columns[2].metric("Samples sharing no neighbour", f"{int((shared_counts == 0).sum())}")
    columns[3].metric("Samples sharing all k", f"{int((shared_counts == k).sum())}")

    selected_bin = None
    if selected:
        bins = {int(shared_counts[position[s]]) for s in selected}
        if len(bins) == 1 and len(selected) == int((shared_counts == next(iter(bins))).sum()):
            selected_bin = next(iter(bins))
    st.plotly_chart(
        plots_projection.overlap_histogram(overlap, k=k, chance=result.chance, selected_bin=selected_bin),
        key="nb-histogram",
        on_select=lambda: _pick_bin(sample_ids, shared_counts, k),
        selection_mode="points",
    )
    st.caption("Click a bar to select its samples (they are highlighted on the Projections page too).")
    _table(sel, data, sample_ids, selected, overlap, shared_counts, k)
    _inspect(sel, data, sample_ids, position, result, pair, shared_counts, k)
    if result.rollup:
        st.subheader("By label")
        st.plotly_chart(plots_projection.label_rollup(result.rollup, chance=result.chance), key="nb-rollup")
        st.dataframe(
            pd.DataFrame(
                [
                    {"label": r.label, "mean overlap": r.mean, "std error": r.std_error, "samples": r.count}
                    for r in result.rollup
                ]
            )
            .set_index("label")
            .style.format({"mean overlap": "{:.3f}", "std error": "{:.3f}"}),
            width="stretch",
        )
    st.subheader("Share")
    ui.share_box(sel)


def _table(sel, data, sample_ids, selected, overlap, shared_counts, k) -> None:
    st.subheader("Most and least aligned samples")
    query = st.text_input("Find samples by id or text", key="nb-search", placeholder="e.g. digit-0042 or a word")
    rows = matching_samples(query, sample_ids, data.texts)
    if selected:
        top = st.columns([3, 1])
        if top[0].toggle(f"Only the {counted(len(selected), 'selected sample')}", value=True, key="nb-only-selected"):
            chosen = set(selected)
            rows = [i for i in rows if sample_ids[i] in chosen]
        top[1].button("Clear selection", on_click=update_selection, kwargs={"selected": ()}, icon=":material/close:")
    rows.sort(key=lambda i: (overlap[i], ui.natural_key(sample_ids[i])))  # ties: row-2 before row-10
    shown = ui.table_page(rows, key="nb-page")
    table = pd.DataFrame(
        {
            "sample": [sample_ids[i] for i in shown],
            "label": [data.labels[i] for i in shown] if data.labels is not None else [""] * len(shown),
            "overlap": overlap[shown],
            "shared": shared_counts[shown],
        }
    )
    if data.texts is not None:
        table["text"] = [data.texts[i] if len(data.texts[i]) <= 120 else data.texts[i][:119] + "…" for i in shown]
    st.caption(
        f"{counted(len(rows), 'sample')}, sorted from least to most aligned; click a row to inspect that sample."
    )

    def pick_row() -> None:
        picked = (st.session_state.get("nb-table") or {}).get("selection", {}).get("rows", [])
        if picked and 0 <= picked[0] < len(table):
            update_selection(inspected=str(table["sample"].iloc[picked[0]]))

    st.dataframe(
        table,
        key="nb-table",
        on_select=pick_row,
        selection_mode="single-row",
        hide_index=True,
        height=min(320, 40 + 35 * max(len(table), 1)),
        width="stretch",
        column_config={
            "overlap": st.column_config.ProgressColumn("overlap", min_value=0.0, max_value=1.0, format="%.2f"),
            "shared": st.column_config.NumberColumn(f"shared of {k}"),
        },
    )


def _inspect(sel, data, sample_ids, position, result, pair, shared_counts, k) -> None:
    st.subheader("A sample's neighbours in A and in B")
    labels = data.labels
    inspected = sel.inspected if sel.inspected in position else sample_ids[int(np.argmin(result.overlap))]
    if sel.inspected and sel.inspected not in position:  # a sample of the dataset outside this view's subset
        st.warning(
            ui.plain(
                f"{sel.inspected} is not among the {len(sample_ids)} samples of this view (seed {sel.seed}): "
                f"showing the least aligned one, {inspected}, instead. Raise n, or change the seed, to include it."
            ),
            icon=":material/warning:",
        )

    def describe(sample_id: str) -> str:
        i = position[sample_id]
        label = f", label {labels[i]}" if labels is not None else ""
        return f"{sample_id} ({shared_counts[i]}/{k} shared{label})"

    query = position[inspected]
    idx_a, idx_b = result.idx_a[query], result.idx_b[query]
    shared = set(idx_a.tolist()) & set(idx_b.tolist())
    left, right = st.columns([1, 4])
    with left:
        st.markdown("**The sample**")
        _show_sample(data, query, describe(inspected), size=120)
    with right:
        st.markdown(
            f"{len(shared)} of {k} neighbours are shared (framed in red, ★): where A and B agree. Open a "
            "neighbour with its button."
        )
        col_a, col_b = st.columns(2)
        for column, side, model, layer, names, indices in (
            (col_a, "a", sel.model_a, pair.layer_a, pair.names_a, idx_a),
            (col_b, "b", sel.model_b, pair.layer_b, pair.names_b, idx_b),
        ):
            with column:
                st.markdown(f"**In {ui.plain(model)}** ({ui.plain(ui.layer_words(layer, names[layer]))})")
                for rank, j in enumerate(indices, start=1):
                    j = int(j)
                    star = "★ " if j in shared else ""
                    label = f" ({labels[j]})" if labels is not None else ""
                    if data.images is not None:
                        border = plots_projection.HIGHLIGHT if j in shared else "white"
                        st.image(plots_projection.thumbnail(data.images[j], 48, border=border))
                    text = data.texts[j] if data.texts is not None else sample_ids[j]
                    st.button(
                        ui.plain(f"{rank}. {star}{text}{label}"),
                        key=f"nb-open-{side}-{rank}",
                        type="tertiary",
                        on_click=update_selection,
                        kwargs={"inspected": sample_ids[j]},
                    )


def _show_sample(data, index: int, caption: str, size: int = 72) -> None:
    if data.images is not None:
        st.image(plots_projection.thumbnail(data.images[index], size), caption=ui.plain(caption))
    else:
        st.text(caption)
    if data.texts is not None:
        st.text(data.texts[index])


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("neighbours")
