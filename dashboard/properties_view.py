"""The Data & models page's Properties tab: every model's properties with their sources, setting one,
importing a CSV, and measuring a linear-probe accuracy with the engine."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from alignscope.core.analysis.probes import ProbeRequest
from alignscope.core.datasets import list_datasets
from alignscope.core.errors import AlignscopeError
from alignscope.core.models import list_models
from alignscope.core.properties import import_properties_csv, model_properties, set_user_property
from alignscope.dashboard import ui
from alignscope.dashboard.selection import Selection


def properties_frame() -> pd.DataFrame:
    """One row per (model, property): value, unit, where the number comes from."""
    rows = [
        {"model": spec.name, "property": p.name, "value": p.value, "unit": p.unit, "source": p.source}
        for spec in list_models()
        for p in model_properties(spec.name).values()
    ]
    return pd.DataFrame(rows, columns=["model", "property", "value", "unit", "source"])


def _set_one() -> None:
    with st.form("set-property", border=True):
        st.markdown("**Set a property**")
        columns = st.columns(4)
        model = columns[0].selectbox("Model", [s.name for s in list_models()])
        name = columns[1].text_input("Property", placeholder="imagenet_top1", max_chars=80)
        value = columns[2].number_input("Value", value=0.0, format="%.6g")
        unit = columns[3].text_input("Unit", placeholder="%", max_chars=40)
        if st.form_submit_button("Set", icon=":material/edit:"):
            try:
                set_user_property(model, name.strip(), value, unit=unit.strip())
            except AlignscopeError as error:
                ui.show_error(error)
            else:
                st.success(ui.plain(f"{model}: {name.strip()} = {value:g} {unit.strip()}"), icon=":material/check:")


def _import_csv() -> None:
    upload = st.file_uploader(
        "Import properties from a CSV (columns model, name, value; optional unit, source)",
        type=["csv"],
        key="properties-csv",
    )
    if upload is not None and st.button("Import", key="properties-import", icon=":material/upload:"):
        try:
            count = import_properties_csv(upload.getvalue())
        except AlignscopeError as error:
            ui.show_error(error)
        else:
            st.success(f"Set {count} properties.", icon=":material/check:")


def _probe(sel: Selection) -> None:
    st.markdown("**Measure task performance here: a linear probe**")
    st.caption(
        "A 5-fold cross-validated logistic regression on the dataset's labels, for every layer; the best layer's "
        "accuracy is kept as the property probe_accuracy[<dataset>]."
    )
    labelled = [s.name for s in list_datasets() if s.modality in ("image", "text")]
    columns = st.columns(3)
    model = columns[0].selectbox("Model", ui.models_for(sel.dataset), key="probe-model")
    dataset = columns[1].selectbox(
        "Dataset", labelled, index=labelled.index(sel.dataset) if sel.dataset in labelled else 0, key="probe-dataset"
    )
    n = int(columns[2].number_input("Samples", min_value=20, max_value=200_000, value=min(sel.n, 1000), key="probe-n"))
    if not st.toggle("Run the probe", key="probe-on"):
        return
    if not ui.features_ready((model,), dataset, n, sel.seed, key="probe-features"):
        return
    (outcome,) = ui.fetch([ProbeRequest(model, dataset, n, sel.seed)], key="probe")
    if not outcome.ready:
        ui.status_note(outcome, "the probe")
        ui.gate([outcome], key="probe-gate", what="the probe")
        return
    result = outcome.result
    result.keep()  # read back from the store too: the property is the probe shown
    frame = pd.DataFrame(
        {
            "layer": list(result.layer_names),
            "accuracy": [layer.accuracy for layer in result.layers],
            "sd over folds": [layer.accuracy_std_over_folds for layer in result.layers],
            "chance (majority class)": [layer.chance for layer in result.layers],
        }
    )
    st.dataframe(frame, hide_index=True)
    best = result.best_layer
    accuracy = result.layers[best].accuracy
    st.markdown(ui.plain(f"Best layer {best} {result.layer_names[best]}: accuracy {accuracy:.3f}, kept as a property."))


def render_properties(sel: Selection, read_only: bool) -> None:
    st.subheader("Model properties")
    st.caption(
        "Published numbers ship with built-in models (with their source); params is counted when a model loads; "
        "yours override both. Trends and Results plot against any of them."
    )
    st.dataframe(properties_frame(), hide_index=True, width="stretch")
    if read_only:
        return
    _set_one()
    _import_csv()
    _probe(sel)
