"""Data & models: browse the registries, upload datasets and precomputed representations, add hub
models, and manage the feature cache and the result store."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from alignscope.core.analysis.features import LOADED_VIEWS
from alignscope.core.cache import FeatureCache
from alignscope.core.cache_health import check_cache
from alignscope.core.datasets import list_datasets
from alignscope.core.errors import AlignscopeError
from alignscope.core.models import MODELS, install_status, list_models, load_model
from alignscope.core.settings import get_settings
from alignscope.core.uploads import (
    add_hub_model,
    add_image_dataset,
    add_representation,
    add_text_dataset,
    forget,
)
from alignscope.dashboard import _cached, ui
from alignscope.dashboard.properties_view import render_properties
from alignscope.dashboard.selection import Selection
from alignscope.dashboard.url_state import update_selection


def _replacing(kind: str, name: str) -> bool:
    """Whether ``name`` already names an uploaded or added entry of ``kind`` (datasets / models)."""
    from alignscope.core.datasets import DATASETS

    registry = DATASETS if kind == "datasets" else MODELS
    return bool(name) and name in registry and not registry.is_builtin(name)


def _registries(read_only: bool) -> None:
    st.subheader("Models")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": s.name,
                    "family": s.family,
                    "kind": s.kind,
                    "modality": s.modality,
                    "installed": install_status(s),
                    "description": s.description,
                }
                for s in list_models()
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.subheader("Datasets")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": s.name,
                    "modality": s.modality,
                    "source": s.source,
                    "samples": _cached.dataset_size(s.name),
                    "description": s.description,
                }
                for s in list_datasets()
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "A model encodes datasets of its modality; `any` (precomputed representations) matches the dataset "
        "it was uploaded for."
    )
    added = [("models", s.name) for s in list_models() if not MODELS.is_builtin(s.name)] + [
        ("datasets", s.name) for s in list_datasets() if s.source.startswith(("upload:", "hub:"))
    ]
    if added and not read_only:
        with st.expander("Remove an uploaded or added entry"):
            kind_name = st.selectbox(
                "Entry", added, format_func=lambda item: f"{item[1]} ({item[0][:-1]})", key="remove-entry"
            )
            if st.button("Remove", icon=":material/delete:", key="remove-entry-button"):
                try:
                    forget(*kind_name)
                    st.toast(f"Removed {kind_name[1]}; its cached features stay (Cache tab).", icon=":material/delete:")
                    st.rerun()
                except AlignscopeError as error:
                    ui.show_error(error)


def _upload_dataset() -> None:
    st.subheader("Upload a dataset")
    st.markdown(
        "Texts: CSV / Parquet (a `text` column, optional `label`) or TXT (one sample per line). "
        "Images: a zip of images, optionally with `captions.csv` (`image,caption[,label]`)."
    )
    with st.form("upload-dataset", clear_on_submit=False):
        name = st.text_input("Dataset name", placeholder="my-texts", help="letters, digits, '.', '_' or '-'")
        file = st.file_uploader("File", type=["csv", "parquet", "txt", "zip"], key="dataset-file")
        replace = st.checkbox("Replace the dataset of this name if there is one", key="dataset-replace")
        submitted = st.form_submit_button("Add dataset", icon=":material/upload:")
    if not submitted:
        return
    if file is None or not name:
        ui.show_error("Give a name and choose a file.")
        return
    if _replacing("datasets", name) and not replace:
        st.warning(
            ui.plain(
                f"A dataset named {name} exists already. Tick 'Replace' to overwrite it, or choose "
                "another name; nothing was written."
            ),
            icon=":material/warning:",
        )
        return
    try:
        with st.spinner("Validating and storing the file…"):
            data = file.getvalue()
            if file.name.lower().endswith(".zip"):
                spec = add_image_dataset(name, file.name, data)
            else:
                spec = add_text_dataset(name, file.name, data)
        st.success(
            ui.plain(f"Added dataset {spec.name} ({spec.modality}): {spec.description}"), icon=":material/check_circle:"
        )
    except AlignscopeError as error:
        ui.show_error(error)


def _upload_representation(sel: Selection) -> None:
    st.subheader("Upload a precomputed representation")
    st.markdown(
        "One `[samples, features]` matrix (`.npy`, `.csv` or `.safetensors` with one tensor), e.g. brain "
        "recordings or embeddings from elsewhere. Row *i* must be sample *i* of the chosen dataset (all of "
        "it, in dataset order). It becomes a one-layer model you can compare like any other."
    )
    dataset_names = [s.name for s in list_datasets()]
    with st.form("upload-representation"):
        rep_name = st.text_input("Representation name", placeholder="v1-recordings")
        rep_dataset = st.selectbox(
            "Rows are samples of",
            dataset_names,
            index=dataset_names.index(sel.dataset) if sel.dataset in dataset_names else 0,
        )
        rep_file = st.file_uploader("Matrix", type=["npy", "csv", "safetensors"], key="representation-file")
        rep_replace = st.checkbox("Replace the representation of this name if there is one", key="rep-replace")
        rep_submitted = st.form_submit_button("Add representation", icon=":material/upload:")
    if rep_submitted:
        if rep_file is None or not rep_name:
            ui.show_error("Give a name and choose a file.")
        elif _replacing("models", rep_name) and not rep_replace:
            st.warning(
                ui.plain(
                    f"A model named {rep_name} exists already. Tick 'Replace' to overwrite it, or "
                    "choose another name; nothing was written."
                ),
                icon=":material/warning:",
            )
        else:
            try:
                with st.spinner("Validating the matrix…"):
                    spec = add_representation(rep_name, rep_file.name, rep_file.getvalue(), dataset=rep_dataset)
                st.success(
                    ui.plain(f"Added representation {spec.name} for dataset {rep_dataset}."),
                    icon=":material/check_circle:",
                )
                st.session_state["last-representation"] = (spec.name, rep_dataset)
            except AlignscopeError as error:
                ui.show_error(error)
    if "last-representation" in st.session_state:
        rep, rep_ds = st.session_state["last-representation"]
        if st.button(f"Compare {rep} as model B on {rep_ds}", icon=":material/compare_arrows:"):
            update_selection(model_b=rep, dataset=rep_ds)
            ui.switch_to_compare()


MODALITY_CHOICES = {"auto": "auto (from the hub)", "text": "text", "image": "image"}


def _hub_model() -> None:
    st.subheader("Add a Hugging Face model by id")
    st.markdown(
        "Any `transformers` text or vision model by hub id like `org/name` (local folders: "
        "`alignscope models --add PATH`). It is downloaded on first use; without network that first "
        "use fails with a clear message."
    )
    with st.form("hub-model"):
        hub_id = st.text_input("Hub id", placeholder="sentence-transformers/all-MiniLM-L6-v2", key="hub-id")
        modality = st.radio(
            "Modality",
            list(MODALITY_CHOICES),
            format_func=MODALITY_CHOICES.get,
            horizontal=True,
            help="Auto: from the hub's pipeline tag, else the model's files (a tokenizer, an image processor); "
            "where they do not say (offline, a CLIP-like model with both), pick text or image.",
        )
        revision = st.text_input("Revision (optional)", placeholder="main")
        hub_submitted = st.form_submit_button("Add model", icon=":material/add:")
    if hub_submitted:
        try:
            with st.spinner("Checking the id on the Hugging Face hub…"):
                added = add_hub_model(
                    hub_id.strip(),
                    modality=None if modality == "auto" else modality,
                    revision=revision.strip() or None,
                    allow_local=get_settings().dashboard_local_paths,
                )
            spec = added.spec
            if added.hub_warning:
                st.warning(ui.plain(added.hub_warning), icon=":material/cloud_off:")
            if added.modality_warning:
                st.warning(
                    ui.plain(added.modality_warning[0].upper() + added.modality_warning[1:] + "."),
                    icon=":material/warning:",
                )
            note = f" It {added.modality_note}." if added.modality_note else ""
            st.success(
                ui.plain(f"Added model {spec.name} ({spec.kind}, {spec.source}).{note} Try loading it below."),
                icon=":material/check_circle:",
            )
            st.session_state["last-hub-model"] = spec.name
        except AlignscopeError as error:
            ui.show_error(error)
    if "last-hub-model" in st.session_state:
        hub_name = st.session_state["last-hub-model"]
        if st.button(f"Try loading {hub_name}", icon=":material/download:"):
            try:
                with st.spinner("Loading (downloads on first use)…"):
                    loaded = load_model(hub_name, device="cpu")
                st.success(f"{hub_name} loaded: {len(loaded.layer_names)} layers.", icon=":material/check_circle:")
            except AlignscopeError as error:
                ui.show_error(error)


def _delete_entries(cache: FeatureCache, entries: list) -> None:
    labels = {e.key: f"{e.key[:8]}… {e.model} / {e.dataset}" for e in entries}
    to_remove = st.multiselect("Entries to delete", list(labels), format_func=labels.get)
    if st.button("Delete selected", disabled=not to_remove, icon=":material/delete:"):
        removed = [key for prefix in to_remove for key in cache.remove(prefix)]
        LOADED_VIEWS.clear()
        st.toast(f"Removed {len(removed)} cache entries.", icon=":material/delete:")
        st.rerun()


def _cache_tab(read_only: bool) -> None:
    cache = FeatureCache()
    entries = cache.entries()
    st.subheader("Feature cache")
    st.caption(f"{len(entries)} entries, {sum(e.bytes for e in entries) / 2**20:.1f} MiB")
    if entries:
        table = pd.DataFrame(
            [
                {
                    "key": e.key,
                    "model": e.model,
                    "dataset": e.dataset,
                    "samples": e.n_samples,
                    "layers": e.n_layers,
                    "MiB": round(e.bytes / 2**20, 3),
                    "created": e.created,
                }
                for e in entries
            ]
        )
        st.dataframe(table, hide_index=True, width="stretch")
        left, right = st.columns(2)
        with left:
            if st.button("Verify checksums", icon=":material/verified:"):
                with st.spinner("Hashing every stored file…"):
                    health = check_cache(cache)
                bad = {
                    name: status
                    for part in (
                        health.features,
                        {f"results/{k}": v for k, v in health.results.items()},
                        health.uploads,
                    )
                    for name, status in part.items()
                    if status != "ok"
                } | {f"results/{name}": "no entry accounts for it" for name in health.result_leftovers}
                if bad:
                    ui.show_error("\n".join(f"{k}: {v}" for k, v in bad.items()))
                else:
                    nets = sum(name.startswith("models/") for name in health.features)
                    n_entries, n_results = len(health.features) - nets, len(health.results)
                    n_uploads = len(health.uploads)
                    parts = [f"{n_entries} feature entr{'y' if n_entries == 1 else 'ies'}"]
                    parts += [f"the weights of {nets} trained digits net{'s' * (nets != 1)}"] * bool(nets)
                    parts += [f"{n_results} computed result{'s' * (n_results != 1)}"] * bool(n_results)
                    parts += [f"{n_uploads} upload{'s' * (n_uploads != 1)} (datasets, models, recordings)"] * bool(
                        n_uploads
                    )
                    listed = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
                    st.success(f"All {listed} are intact.", icon=":material/check_circle:")
        with right:
            if read_only:
                st.caption("Read-only server: entries cannot be deleted here.")
            else:
                _delete_entries(cache, entries)
    store = _cached.engine().store
    results = store.entries() if store is not None else []
    st.subheader("Result store")
    st.caption(
        f"{len(results)} computed results (scores, matrices, maps), {sum(r.bytes for r in results) / 2**20:.1f} MiB; "
        "shared by every browser session and the CLI."
    )
    if results:
        st.dataframe(
            pd.DataFrame(
                [{"kind": r.kind, "what": r.label, "seconds": r.seconds, "created": r.created} for r in results]
            ),
            hide_index=True,
            width="stretch",
        )


READ_ONLY = (
    "This server is read-only (`alignscope dashboard --read-only`): uploads, adding models and deleting "
    "cache entries are switched off. Everything already here can be explored."
)


def render(sel: Selection) -> None:
    st.title("Data & models")
    read_only = get_settings().read_only
    tab_browse, tab_properties, tab_upload, tab_hub, tab_cache = st.tabs(
        ["Registries", "Properties", "Upload", "Hub model", "Cache"]
    )
    with tab_browse:
        _registries(read_only)
    with tab_properties:
        render_properties(sel, read_only)
    with tab_upload:
        if read_only:
            st.info(READ_ONLY, icon=":material/lock:")
        else:
            _upload_dataset()
            _upload_representation(sel)
    with tab_hub:
        if read_only:
            st.info(READ_ONLY, icon=":material/lock:")
        else:
            _hub_model()
    with tab_cache:
        _cache_tab(read_only)


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("data_models")
