"""Projections: the same samples in model A's and model B's space, side by side (PCA at once; UMAP and
aligned UMAP as background jobs, kept on disk). Colour by label or by per-sample alignment; a box or
lasso selection in one map highlights the same samples in the other and goes into the link."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.core.analysis.features import view_dataset
from alignscope.core.analysis.requests import AlignedProjectionRequest, NeighbourRequest, ProjectionRequest
from alignscope.core.analysis.results import Projection
from alignscope.core.datasets import Dataset
from alignscope.core.errors import AlignscopeError
from alignscope.core.memo import Lru
from alignscope.core.numbers import signed
from alignscope.core.settings import get_settings
from alignscope.dashboard import _cached, hover_maps, linked_maps, map_reduction, map_views, plots_projection, ui
from alignscope.dashboard.selection import (
    ALIGNMENT_STRENGTHS,
    COLOR_BY,
    METADATA_PREFIX,
    PROJECTIONS,
    Selection,
    counted,
    sample_positions,
)
from alignscope.dashboard.url_state import bound, update_selection

PROJECTION_NAMES = {"pca": "PCA", "umap": "UMAP", "aligned_umap": "Aligned UMAP"}
COLOR_NAMES = {"label": "Label", "alignment": "Per-sample alignment (k-NN overlap)"}
MAX_GALLERY = 60
MAPS_KEY = "proj-maps"


@dataclasses.dataclass(frozen=True)
class _MapsContent:
    """What the linked maps get that no selection changes, built once per view (linked_maps.figures_version)."""

    data: Dataset  # the dataset view shown: held, so its id in the version is not reused meanwhile
    view: str  # the file the frame draws (map_views.write_view)


_MAPS_CONTENT: Lru[_MapsContent] = Lru(capacity=4)


def _colour_options(sel: Selection) -> list[str]:
    """Label, alignment, and ``meta:<column>`` for each numeric metadata column of the dataset and each text
    column whose values are categories: at most as many as there are label colours, or repeated (at most
    half as many values as samples; the most frequent get colours, the rest one "other")."""
    try:
        metadata = view_dataset(sel.dataset, sel.n, sel.seed).metadata
    except AlignscopeError:
        metadata = ()
    # text columns whose values are mostly distinct (ids, captions) are no categories to colour by
    shown = [c for c in metadata if c.numeric or _are_categories(c.values)]
    return [*COLOR_BY, *(METADATA_PREFIX + column.name for column in shown)]


def _are_categories(values: tuple[str, ...]) -> bool:
    """Whether a text column's values can colour a map: few, or repeated (not mostly distinct)."""
    distinct = len(set(values))
    return distinct <= len(plots_projection.LABEL_COLOURS) or distinct <= len(values) // 2


MISSING_CATEGORY = "(no value)"


def _categories(values: tuple[str, ...]) -> list[str] | None:
    """A text column's values as colour categories (a missing or blank value is :data:`MISSING_CATEGORY`),
    or None when they are mostly distinct."""
    if not _are_categories(values):
        return None
    named = [value if value.strip() else MISSING_CATEGORY for value in values]
    return plots_projection.top_categories(named, len(plots_projection.LABEL_COLOURS))


def _colour_name(option: str) -> str:
    return COLOR_NAMES.get(option) or f"{option.removeprefix(METADATA_PREFIX)} (metadata)"


def _sidebar(sel: Selection) -> Selection:
    options = _colour_options(sel)
    if sel.color_by not in options:
        note = (
            f"This dataset has no metadata column {sel.color_by.removeprefix(METADATA_PREFIX)!r}; colouring by label."
        )
        st.warning(ui.plain(note), icon=":material/warning:")  # on every run while the link says so
        sel = dataclasses.replace(sel, color_by="label")
    with st.sidebar:
        st.header("Projections")
        ui.pair_widgets(sel, seed_help="Subset and UMAP seed.")
        bound(
            st.radio,
            "Projection",
            sel,
            "projection",
            options=list(PROJECTIONS),
            format_func=PROJECTION_NAMES.get,
            help="PCA is exact and instant. UMAP keeps neighbourhoods; aligned UMAP fits both maps together so "
            "that the same sample sits at about the same place in both.",
        )
        bound(
            st.radio,
            "Colour by",
            sel,
            "color_by",
            options=options,
            format_func=lambda option: ui.plain(_colour_name(option)),
            help="A label, each sample's k-NN overlap, or a column of the uploaded table (numbers on a colour "
            "scale, text as categories).",
        )
        ui.k_widget(
            sel,
            help="For the per-sample alignment: the fraction of each sample's k nearest neighbours "
            "(in the original spaces) that A and B share.",
        )
    return sel


def _umap_settings(sel: Selection) -> None:
    """UMAP's parameters, set before UMAP is picked (or after). Number boxes and a select box, not sliders:
    a slider's code (three more scripts for the browser to load and compile) made every first open of the
    page ~0.1-0.2 s slower for an expander that is closed while PCA is shown."""
    with st.sidebar, st.expander("UMAP settings", expanded=sel.projection != "pca"):
        bound(
            st.number_input,
            "Neighbours (n_neighbors)",
            sel,
            "umap_neighbors",
            min_value=2,
            max_value=100,
            step=1,
            help="Larger: more global structure; smaller: more local detail.",
        )
        bound(
            st.number_input,
            "Minimum distance (min_dist)",
            sel,
            "umap_min_dist",
            min_value=0.0,
            max_value=1.0,
            step=0.05,
            format="%g",  # a link's 0.123 shows as 0.123, not 0.12
            help="How tightly UMAP packs neighbouring samples together (0 to 1).",
        )
        bound(
            st.selectbox,
            "Alignment strength (aligned UMAP)",
            sel,
            "alignment",
            options=ALIGNMENT_STRENGTHS,
            to_widget=lambda v: min(ALIGNMENT_STRENGTHS, key=lambda a: abs(a - v)),
            help="umap's alignment_regularisation: how strongly a sample is held at the same place in both maps.",
        )


def _on_select(sample_ids: list[str], version: str) -> None:
    """Box / lasso in either map (the frame selects exactly over all samples, drawn or not) -> the
    selected sample ids, in the URL."""
    chosen = linked_maps.chosen_samples(st.session_state.get(MAPS_KEY), n_samples=len(sample_ids), version=version)
    if chosen is not None:
        update_selection(selected=tuple(sample_ids[i] for i in chosen))


def _pca_axes(projection: Projection) -> tuple[str, str]:
    explained = list(projection.explained) + [0.0, 0.0]
    return (f"PC 1 ({explained[0]:.1%} of variance)", f"PC 2 ({explained[1]:.1%} of variance)")


def _colour_while_computing(color_by: str, data, overlap: np.ndarray | None, k: int, state: str) -> dict:
    """:func:`_colour_arguments`, saying so when the per-sample overlap (``None``; its outcome's ``state``)
    is not there yet: the maps are drawn without it, by label where they would be coloured by it."""
    if overlap is not None:
        return _colour_arguments(color_by, data, overlap, k)
    then = {
        "needs_click": "; compute it below",
        "failed": "; it could not be computed (below)",
        "cancelled": "; it was cancelled (below)",
    }.get(state, " and take it up when it is ready")
    st.info(
        f"Each sample's k-NN overlap (k = {k}) is not computed yet: the maps are drawn without it"
        + (", coloured by label" if color_by == "alignment" else "")
        + then
        + ".",
        icon=":material/hourglass_top:",
    )
    return _colour_arguments("label" if color_by == "alignment" else color_by, data, None, k)


def _colour_arguments(color_by: str, data, overlap: np.ndarray | None, k: int) -> dict:
    """projection_scatter's colour arguments: labels, the per-sample overlap, or a metadata column (numbers
    on a colour scale over their own range, text as categories)."""
    if color_by == "alignment":
        return {"labels": data.labels, "color_values": overlap, "color_title": f"k-NN overlap (k={k})"}
    column = data.metadata_column(color_by.removeprefix(METADATA_PREFIX))
    if column is None:
        return {"labels": data.labels}
    if column.numeric:
        values = np.asarray(column.values, dtype=float)
        return {
            "labels": data.labels,
            "color_values": values,
            "color_title": column.name,
            "color_range": None,
            "color_in_hover": True,
        }
    return {"labels": _categories(column.values) or column.values, "label_title": column.name}


def render(sel: Selection) -> None:
    st.title("Projections")
    sel = _sidebar(sel)
    pair = ui.load_pair(sel, key="projections")
    _umap_settings(sel)
    n, layer_a, layer_b = pair.n, pair.layer_a, pair.layer_b
    k = min(sel.k, n - 1)
    common = (sel.dataset, sel.n, sel.seed)
    pca_a = ProjectionRequest(sel.model_a, *common, layer_a)
    pca_b = ProjectionRequest(sel.model_b, *common, layer_b)
    overlap_request = NeighbourRequest(sel.model_a, sel.model_b, *common, layer_a, layer_b, k)
    requests = [pca_a, pca_b, overlap_request]
    umap_options = dict(n_neighbors=sel.umap_neighbors, min_dist=sel.umap_min_dist)
    if sel.projection == "umap":
        requests += [
            ProjectionRequest(sel.model_a, *common, layer_a, "umap", **umap_options),
            ProjectionRequest(sel.model_b, *common, layer_b, "umap", **umap_options),
        ]
    elif sel.projection == "aligned_umap":
        requests.append(
            AlignedProjectionRequest(sel.model_a, sel.model_b, *common, layer_a, layer_b, sel.alignment, **umap_options)
        )
    outcomes = ui.fetch(requests, key="projections")
    if not all(o.ready for o in outcomes[:2]):
        ui.gate(outcomes[:2], key="projections-gate", what="the maps")  # the overlap is offered with them drawn
        ui.share_box(sel)
        st.stop()
    # the PCA maps are drawn at once; the per-sample overlap (minutes of exact k-NN at 100k) joins when ready
    overlap = outcomes[2].result.overlap if outcomes[2].ready else None
    data = view_dataset(sel.dataset, sel.n, sel.seed)
    sample_ids = list(data.sample_ids)
    position = sample_positions(data.sample_ids)
    selected = [s for s in sel.selected if s in position]
    selected_indices = [position[s] for s in selected]
    snippets = None if data.texts is None else [t if len(t) <= 80 else t[:79] + "…" for t in data.texts]
    budget = get_settings().map_points
    # the same samples in both maps, whatever is selected: a reduced map's layer is one seeded sample
    # (the frame draws selected samples outside it on top)
    drawn = map_reduction.drawn_samples(n, budget=budget)

    st.caption(
        f"**{ui.plain(sel.model_a)}** {ui.plain(ui.layer_words(layer_a, pair.names_a[layer_a]))} (left) and "
        f"**{ui.plain(sel.model_b)}** {ui.plain(ui.layer_words(layer_b, pair.names_b[layer_b]))} (right) on "
        f"**{ui.plain(sel.dataset)}**, n = {n} (seed {sel.seed}). "
        "Each point is one "
        "sample, at the same index in both maps. Drag a box (or pick the lasso in the toolbar) in either map to "
        "select samples; they light up in both. The per-sample alignment is computed in the original spaces."
    )

    colour = _colour_while_computing(sel.color_by, data, overlap, k, outcomes[2].state)
    maps = outcomes[3:]
    if sel.projection == "pca" or not all(o.ready for o in maps):
        coords_a, coords_b = outcomes[0].result.coords, outcomes[1].result.coords
        axes_a, axes_b = _pca_axes(outcomes[0].result), _pca_axes(outcomes[1].result)
        shown = outcomes[:3]
        if sel.projection != "pca":
            st.info(
                f"Showing PCA while {PROJECTION_NAMES[sel.projection]} is computed; the maps switch when it is "
                "ready. The first UMAP in a fresh server compiles umap's code (about a minute); results are "
                "kept on disk.",
                icon=":material/hourglass_top:",
            )
    elif sel.projection == "umap":
        coords_a, coords_b = maps[0].result.coords, maps[1].result.coords
        axes_a = axes_b = ("UMAP 1", "UMAP 2")
        shown = [outcomes[2], *maps]
    else:
        coords_a, coords_b = maps[0].result.coords_a, maps[0].result.coords_b
        axes_a = axes_b = ("aligned UMAP 1", "aligned UMAP 2")
        shown = [outcomes[2], *maps]
    gated = [o for o in outcomes if o.state == "needs_click"]
    only_overlap = all(o is outcomes[2] for o in gated)
    ui.gate(
        outcomes,
        key="projections-gate",
        what="each sample's k-NN overlap" if only_overlap else PROJECTION_NAMES[sel.projection],
    )
    titles = (  # plotly reads a little HTML in titles: a layer's name is the user's text
        plots_projection.plotly_text(f"A: {sel.model_a} · {ui.layer_words(layer_a, pair.names_a[layer_a])}"),
        plots_projection.plotly_text(f"B: {sel.model_b} · {ui.layer_words(layer_b, pair.names_b[layer_b])}"),
    )
    # names what the maps show: results, the dataset's loaded view (its labels, texts, metadata; the cached
    # content holds it, so its id is not reused meanwhile), colour, k, the point budget, titles
    version = linked_maps.figures_version(
        [o.key for o in shown],
        overlap is not None,
        id(data),
        data.ids_digest(),
        sel.color_by,
        k,
        budget,
        titles,
        axes_a,
        axes_b,
    )

    def content() -> _MapsContent:
        figure_a, figure_b = (
            plots_projection.projection_scatter(
                coords,
                sample_ids=sample_ids,
                title=title,
                axis_titles=axes,
                **colour,
                overlap=overlap,
                snippets=snippets,
                drawn=drawn,
            ).to_json()
            for coords, title, axes in ((coords_a, titles[0], axes_a), (coords_b, titles[1], axes_b))
        )
        view = map_views.MapsView(
            figure_jsons=(figure_a, figure_b),
            coords=(coords_a, coords_b),
            drawn=drawn,
            colour=plots_projection.colour_scale_values(n, colour.get("labels"), colour.get("color_values")),
            sample_ids=sample_ids,
        )
        return _MapsContent(data=data, view=map_views.write_view(folder, view))

    try:
        folder = linked_maps.frontend_dir(get_settings().cache_dir)
        maps_content = _MAPS_CONTENT.get(version, content)
        if not map_views.touch_view(folder, maps_content.view):  # dropped from disk by another session
            _MAPS_CONTENT.discard(version)
            maps_content = _MAPS_CONTENT.get(version, content)
    except OSError as error:  # NoSpaceError among them; the maps' files only, nothing else is written
        st.warning(
            ui.plain(
                f"The maps cannot be drawn: their files could not be written to the cache ({error.strerror or error})."
                " The table and search below still work."
            ),
            icon=":material/warning:",
        )
    else:
        linked_maps.linked_maps(
            maps_content.view,
            n_samples=n,
            selected=selected_indices,
            version=version,
            folder=folder,
            key=MAPS_KEY,
            on_change=functools.partial(_on_select, sample_ids, version),
        )
    if len(drawn) < n:
        st.caption(
            f"Each map draws {len(drawn):,} of the {n:,} samples (a fixed random layer; selected samples outside "
            f"it are drawn on top, up to {len(drawn):,} of them) over the grey density of all of them. A box or "
            f"lasso selects exactly among all {n:,} samples, drawn or not."
        )
    missing = int(np.isnan(coords_a).any(axis=1).sum() + np.isnan(coords_b).any(axis=1).sum())
    if missing:
        st.caption(f"{missing} points that umap left disconnected from its neighbour graph are not drawn.")
    if n <= hover_maps.MAX_POINTS:
        with st.expander(
            "Hover the maps for thumbnails and texts; lines link each selected sample's two positions",
            expanded=data.images is not None or bool(selected),
        ):
            colours = plots_projection.point_colours(  # as the maps above colour them
                n, colour.get("labels"), colour.get("color_values"), colour.get("color_range", (0.0, 1.0))
            )
            st.iframe(
                hover_maps.hover_maps_html(
                    coords_a,
                    coords_b,
                    sample_ids=sample_ids,
                    colours=colours,
                    titles=(
                        f"A: {sel.model_a} · {pair.names_a[layer_a]}",
                        f"B: {sel.model_b} · {pair.names_b[layer_b]}",
                    ),
                    labels=data.labels,
                    texts=data.texts,
                    selected_indices=selected_indices,
                    thumbnails=_cached.thumbnails(sel.dataset, sel.n, sel.seed) if data.images is not None else None,
                ),
                height=480,
            )
    _search(sample_ids, data.texts)
    _selection(sel, data, sample_ids, selected, selected_indices, overlap)
    st.subheader("Share")
    ui.share_box(sel)


def _search(sample_ids: list[str], texts) -> None:
    """Select the samples whose id or text contains a query (the maps highlight them)."""
    from alignscope.dashboard.views.neighbours import matching_samples

    left, right = st.columns([4, 1])
    query = left.text_input("Find samples by id or text", key="proj-search", placeholder="e.g. digit-0042 or a word")
    matches = matching_samples(query, sample_ids, texts) if query.strip() else []
    right.button(
        f"Select {len(matches)}",
        disabled=not matches,
        key="proj-search-select",
        on_click=update_selection,
        kwargs={"selected": tuple(sample_ids[i] for i in matches)},
        icon=":material/search:",
    )


def _selection(sel, data, sample_ids, selected, selected_indices, overlap) -> None:
    if not selected:
        st.caption("No samples selected. Drag a box in either map; the same samples light up in the other.")
        return
    st.subheader(counted(len(selected), "selected sample"))
    summary = st.columns([1, 1, 1])
    if overlap is None:
        summary[0].metric("Mean k-NN overlap of the selection", "…", help="computed with the per-sample overlap")
        summary[1].metric("Mean k-NN overlap of all samples", "…", help="computed with the per-sample overlap")
    else:
        summary[0].metric(
            "Mean k-NN overlap of the selection",
            f"{overlap[selected_indices].mean():.3f}",
            delta=f"{signed(overlap[selected_indices].mean() - overlap.mean())} vs all samples",
        )
        summary[1].metric("Mean k-NN overlap of all samples", f"{overlap.mean():.3f}")
    summary[2].button(
        "Clear selection", on_click=update_selection, kwargs={"selected": ()}, icon=":material/close:", key="proj-clear"
    )
    shown = selected_indices[:MAX_GALLERY]
    if data.images is not None:
        st.image(
            [plots_projection.thumbnail(data.images[i], 64) for i in shown],
            caption=[
                ui.plain(data.labels[i] if data.labels is not None else sample_ids[i])
                + (f" · {overlap[i]:.2f}" if overlap is not None else "")
                for i in shown
            ],
            width=72,
        )
        if len(selected) > MAX_GALLERY:
            st.caption(f"Showing the first {MAX_GALLERY} images.")
    ui.csv_download(
        "Export selection (CSV)",
        lambda: _selection_frame(data, sample_ids, selected_indices, overlap).set_index("sample"),
        "alignscope-selection.csv",
        key="proj-export",
    )
    st.dataframe(
        _selection_frame(data, sample_ids, ui.table_page(selected_indices, key="proj-selected-page"), overlap),
        hide_index=True,
        width="stretch",
        key="proj-selected-table",
        column_config={"k-NN overlap": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f")},
    )


def _selection_frame(
    data: Dataset, sample_ids: list[str], rows: Sequence[int], overlap: np.ndarray | None
) -> pd.DataFrame:
    """One row per sample of ``rows`` (indices into the view): id, label, k-NN overlap (NaN while it is
    computed), text, metadata."""
    frame = pd.DataFrame(
        {
            "sample": [sample_ids[i] for i in rows],
            "label": [data.labels[i] for i in rows] if data.labels is not None else "",
            "k-NN overlap": overlap[list(rows)] if overlap is not None else np.full(len(rows), np.nan),
        }
    )
    if data.texts is not None:
        frame["text"] = [data.texts[i] for i in rows]
    for column in data.metadata:
        frame[column.name if column.name not in frame.columns else f"{column.name} (metadata)"] = [
            column.values[i] for i in rows
        ]
    return frame


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("projections")
