"""RSA: a model layer's representational dissimilarity matrix, ordered by label, and — against a stored
recording (brain data) — every layer's score with its bootstrap interval and the noise ceiling, in
rsatoolbox's conventions. Recordings are uploaded here."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.core.analysis.features import modality_problem, plan_features
from alignscope.core.analysis.rsa import MAX_RDM_VIEW, RdmRequest, RdmView, RsaProfile, RsaRequest
from alignscope.core.errors import AlignscopeError
from alignscope.core.numbers import fixed
from alignscope.core.recordings import add_recording, list_recordings, parse_sample_ids
from alignscope.dashboard import _cached, plots_rsa, ui
from alignscope.dashboard.selection import DATA_RDMS, MODEL_RDMS, RDM_COMPARISONS, Selection
from alignscope.dashboard.url_state import bound, share_url, update_selection

NONE = "—"


def _sidebar(sel: Selection, layer_names: tuple[str, ...], recordings: list[str]) -> None:
    with st.sidebar:
        st.header("RDM")
        ui.layer_picker("Layer", sel, "layer_a", layer_names)
        bound(
            st.selectbox, "Model RDM", sel, "model_rdm", options=list(MODEL_RDMS), help="dissimilarity of two stimuli"
        )
        st.header("Against a recording")
        bound(
            st.selectbox,
            "Recording",
            sel,
            "recording",
            options=[NONE, *recordings],
            to_widget=lambda v: v if v in recordings else NONE,
            from_widget=lambda v: "" if v == NONE else v,
            help="Responses to this dataset's stimuli, uploaded below (subjects and repeats allowed).",
        )
        if sel.recording:
            bound(
                st.selectbox,
                "Data RDM",
                sel,
                "data_rdm",
                options=list(DATA_RDMS),
                help="crossnobis: cross-validated Mahalanobis over repeats (unbiased; needs repeats).",
            )
            bound(st.selectbox, "Compare RDMs by", sel, "rdm_comparison", options=list(RDM_COMPARISONS))
            ui.bootstrap_widget(
                sel, help="Each layer's interval: resampling stimuli (and subjects where there are several); 0 = none."
            )


def _model_rdm(sel: Selection) -> RdmView | None:
    if sel.n > MAX_RDM_VIEW:
        st.info(f"The RDM view draws at most {MAX_RDM_VIEW} stimuli; lower n to see it.", icon=":material/info:")
        return None
    request = RdmRequest(sel.model_a, sel.dataset, sel.n, sel.seed, sel.layer_a, sel.model_rdm)
    view: RdmView | None = ui.fetch_one(request, key="rsa-rdm", what="the RDM")
    if view is None:
        return None
    fig, stride = plots_rsa.rdm_heatmap(view.values, view.labels, f"{sel.model_a} · {view.layer_name}", view.method)
    st.plotly_chart(fig, key="rsa-model-rdm")
    drawn = "" if stride == 1 else f" Drawn with every {stride}th stimulus (the RDM holds all {len(view.order)})."
    st.caption(
        ui.plain(
            f"{view.method} dissimilarity between the {len(view.order)} stimuli of {sel.dataset} (seed {sel.seed}), "
            f"rows and columns grouped by label: blocks on the diagonal mean the layer separates the classes.{drawn}"
        )
    )
    return view


def _profile(sel: Selection) -> RsaProfile | None:
    request = RsaRequest(
        sel.model_a,
        sel.recording,
        sel.dataset,
        10**9,
        sel.seed,
        sel.model_rdm,
        sel.data_rdm,
        sel.rdm_comparison,
        sel.bootstrap,
    )
    profile: RsaProfile | None = ui.fetch_one(request, key="rsa-profile", what="RSA against the recording")
    if profile is None:
        return None
    st.plotly_chart(plots_rsa.layer_profile(profile), key="rsa-layers")
    first = profile.scores[0]
    frame = pd.DataFrame(
        {
            profile.method: [s.value for s in profile.scores],
            "ci_low": [s.ci_low for s in profile.scores],
            "ci_high": [s.ci_high for s in profile.scores],
            "ceiling_low": [s.noise_ceiling_low for s in profile.scores],
            "ceiling_high": [s.noise_ceiling_high for s in profile.scores],
        },
        index=[f"{i}: {name}" for i, name in enumerate(profile.layer_names)],
    )
    st.dataframe(frame.style.format(functools.partial(fixed, digits=3), na_rep="—"), width="stretch")
    repeats = f" × {first.n_repeats} repeats" if first.n_repeats else ""
    if profile.overlap_note():
        st.warning(
            ui.plain(profile.overlap_note()[0].upper() + profile.overlap_note()[1:] + "."), icon=":material/info:"
        )
    st.caption(
        ui.plain(
            f"{profile.n_shared} stimuli shared by the model and the recording (of {profile.n_recording} recorded), "
            f"{first.n_subjects} subject(s){repeats}. Score: mean over subjects of {profile.method}(model RDM, "
            f"subject RDM); "
            + (
                f"interval: bootstrap over {first.resampled} ({first.n_boot} resamples)"
                if first.n_boot
                else "no interval (boot=0)"
            )
            + f". {first.note}. {profile.best_words()[0].upper()}{profile.best_words()[1:]}"
        )
    )
    if profile.data_rdm_view.size:
        fig, _ = plots_rsa.rdm_heatmap(
            profile.data_rdm_view, profile.labels, f"{profile.recording} (mean over units)", profile.data_rdm
        )
        st.plotly_chart(fig, key="rsa-data-rdm")
    return profile


def _upload(sel: Selection) -> None:
    with st.expander("Upload a recording", icon=":material/upload:"):
        st.markdown(
            "A `.npy` or `.safetensors` array with stimuli on the second-to-last axis: `[stimuli, channels]`, "
            "`[subjects, stimuli, channels]` (or repeats of one subject), or `[subjects, repeats, stimuli, channels]`. "
            "Optional: the sample id of each stimulus (a CSV with a `sample_id` column, or one id per line), when "
            "the recording covers only some of the dataset's samples or another order."
        )
        with st.form("upload-recording"):
            name = st.text_input("Recording name", placeholder="v1-monkey")
            array = st.file_uploader("Responses", type=["npy", "safetensors"], key="recording-file")
            ids = st.file_uploader("Sample ids (optional)", type=["csv", "txt"], key="recording-ids")
            over = st.radio("A 3-D array's first axis is", ["subjects", "repeats"], horizontal=True)
            submitted = st.form_submit_button("Add recording", icon=":material/upload:")
        if not submitted:
            return
        if array is None or not name:
            ui.show_error("Give a name and choose a file.")
            return
        try:
            sample_ids = parse_sample_ids(ids.name, ids.getvalue()) if ids is not None else None
            recording = add_recording(  # "subjects", the radio's default, is not a claim about a 2-D array
                name,
                array.name,
                array.getvalue(),
                dataset=sel.dataset,
                sample_ids=sample_ids,
                over=None if over == "subjects" else over,
            )
        except AlignscopeError as error:
            ui.show_error(error)
            return
        st.success(ui.plain(f"Stored {recording.name}: {recording.describe()}."), icon=":material/check_circle:")
        update_selection(recording=recording.name)


def render(sel: Selection) -> None:
    st.title("Representational similarity (RSA)")
    with st.sidebar:
        st.header("Model")
        from alignscope.core.datasets import list_datasets

        names = [spec.name for spec in list_datasets()]
        bound(st.selectbox, "Dataset", sel, "dataset", options=names, format_func=ui.dataset_label)
        options = ui.models_for(sel.dataset, keep=(sel.model_a,))
        bound(st.selectbox, "Model", sel, "model_a", options=options, format_func=ui.picker_label(sel.dataset))
        size = _cached.dataset_size(sel.dataset) or sel.n
        bound(st.number_input, "Samples (n) in the RDM view", sel, "n", min_value=3, max_value=max(3, size), step=50)
        bound(st.number_input, "Seed", sel, "seed", min_value=0, step=1)
    problem = modality_problem(sel.model_a, sel.dataset)
    if problem:
        ui.show_error(problem)
        st.stop()
    if not ui.features_ready([sel.model_a], sel.dataset, 10**9, sel.seed, key="rsa"):
        ui.share_box(sel)
        st.stop()
    layer_names = plan_features(sel.model_a, sel.dataset, sel.n, sel.seed).layer_names
    recordings = list_recordings(dataset=sel.dataset)
    _sidebar(sel, layer_names, recordings)
    st.subheader("Model RDM")
    _model_rdm(sel)
    profile = None
    st.subheader("Model vs recording")
    if sel.recording and sel.recording in recordings:
        profile = _profile(sel)
    elif sel.recording:
        st.warning(ui.plain(f"No recording named {sel.recording} for {sel.dataset}."), icon=":material/warning:")
    else:
        st.caption("Choose a recording in the sidebar (or upload one below) to score every layer against it.")
    _upload(sel)
    st.subheader("Share and export")
    ui.share_box(sel)
    ui.json_download(
        "Result card (JSON)",
        {
            "alignscope_result": 2,
            "page": "rsa",
            "config": sel.to_query(),
            "rsa": None if profile is None else dataclasses.replace(profile, data_rdm_view=np.zeros((0, 0))),
            "packages": _cached.package_versions(),
            "link": share_url(sel),
        },
        "alignscope-rsa.json",
        key="rsa-card",
    )


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("rsa")
