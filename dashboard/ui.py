"""Pieces every page shares: warnings for a fixed link, the compute gate, the share box, downloads.

Thin Streamlit glue only: numbers come from :mod:`dashboard._cached`, figures from
:mod:`dashboard.plots`, state from :mod:`dashboard.state`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import streamlit as st

from alignscope.core.errors import AlignscopeError
from alignscope.dashboard import _cached
from alignscope.dashboard.state import Selection, share_url

ERROR_ICON = ":material/error:"


def show_warnings(warnings: Sequence[str]) -> None:
    """One warning box listing every parameter that was fixed (a tampered or outdated link)."""
    if warnings:
        items = "\n".join(f"- {w}" for w in warnings)
        st.warning(f"Some settings in the link were invalid and were replaced by safe values:\n\n{items}",
                   icon=":material/warning:")  # fmt: skip


def model_label(name: str) -> str:
    from alignscope.core.models import get_model_spec

    try:
        spec = get_model_spec(name)
    except AlignscopeError:
        return name
    return f"{name} ({spec.modality})"


def dataset_label(name: str) -> str:
    from alignscope.core.datasets import get_dataset_spec

    try:
        spec = get_dataset_spec(name)
    except AlignscopeError:
        return name
    return f"{name} ({spec.modality})"


def _format_seconds(seconds: float) -> str:
    return f"~{seconds:.0f} s" if seconds < 90 else f"~{seconds / 60:.1f} min"


def features_ready(models: Sequence[str], dataset: str, n: int, seed: int, *, key: str) -> bool:
    """True when every model's features are cached; otherwise show the plan and a Compute button.

    A link never starts extraction by itself: the button is the only way in. After the click the
    work runs under ``st.status`` with a progress bar per model, then the page reruns from the cache.
    """
    try:
        plans = [_cached.feature_plan(model, dataset, n, seed) for model in dict.fromkeys(models)]
    except AlignscopeError as error:
        _cached.show_error(error)
        return False
    missing = [plan for plan in plans if not plan.cached]
    # An uploaded representation is a file read, not a model run: store it without asking.
    for plan in [plan for plan in missing if _cached.is_file_read(plan.model)]:
        try:
            with st.spinner(f"Reading {plan.model}…"):
                _cached.extract(plan)
        except AlignscopeError as error:
            _cached.show_error(error)
            return False
        missing.remove(plan)
    if not missing:
        return True
    total = sum(plan.estimate_seconds for plan in missing)
    rows = [
        {"model": plan.model, "dataset": plan.dataset, "samples to encode": plan.extract_n,
         "estimated time": _format_seconds(plan.estimate_seconds)}
        for plan in missing
    ]  # fmt: skip
    with st.container(border=True):
        st.markdown(
            f"**This view needs features that are not cached yet.** Computing them encodes the samples "
            f"below with each model ({_format_seconds(total)} in all on this machine); afterwards every "
            "view of these models on this dataset opens at once."
        )
        st.dataframe(rows, hide_index=True, width="stretch")
        if not st.button("Compute features", type="primary", key=f"compute-{key}", icon=":material/play_arrow:"):
            return False
    started = time.perf_counter()
    with st.status("Extracting features…", expanded=True) as status:
        try:
            for plan in missing:
                st.write(f"{plan.model} on {plan.dataset}: {plan.extract_n} samples")
                bar = st.progress(0.0, text="loading the model…")

                def progress(done: int, total_samples: int, bar=bar) -> None:
                    bar.progress(min(1.0, done / max(total_samples, 1)), text=f"{done} / {total_samples} samples")

                _cached.extract(plan, progress=progress)
                bar.progress(1.0, text="done")
        except AlignscopeError as error:
            status.update(label="Extraction failed", state="error")
            _cached.show_error(error)
            return False
        status.update(label=f"Features ready in {time.perf_counter() - started:.1f} s", state="complete")
    st.rerun()
    return True


def switch_to_compare() -> None:
    """Open the Compare page with the current Selection (its file, as registered in app.py)."""
    from pathlib import Path

    from alignscope.dashboard.state import last_query

    st.switch_page(str(Path(__file__).resolve().parent / "views" / "compare.py"), query_params=last_query())


def share_box(selection: Selection) -> None:
    """The full link to this view, in a code block (which has a copy button)."""
    st.caption("Link to this exact view (copy with the button on the right):")
    st.code(share_url(selection), language=None, wrap_lines=True)


def json_download(label: str, payload: dict, file_name: str, key: str) -> None:
    st.download_button(label, json.dumps(payload, indent=1, default=str), file_name=file_name,
                       mime="application/json", key=key, icon=":material/download:")  # fmt: skip


def html_download(fig, file_name: str, key: str) -> None:
    from alignscope.dashboard.plots import figure_html

    st.download_button("Figure (HTML)", figure_html(fig), file_name=file_name, mime="text/html", key=key,
                       icon=":material/download:")  # fmt: skip


def csv_download(label: str, frame, file_name: str, key: str) -> None:
    st.download_button(label, frame.to_csv(index=True).encode(), file_name=file_name, mime="text/csv", key=key,
                       icon=":material/download:")  # fmt: skip


# --------------------------------------------------------------------------------------------------
# The pair every single-pair page starts from
# --------------------------------------------------------------------------------------------------


def pair_widgets(sel: Selection, *, seed_help: str | None = None) -> None:
    """Model A, model B, dataset, n and seed in the sidebar (call inside ``with st.sidebar``)."""
    from alignscope.core.datasets import list_datasets
    from alignscope.core.models import list_models
    from alignscope.dashboard.state import bound

    model_names = [spec.name for spec in list_models()]
    dataset_names = [spec.name for spec in list_datasets()]
    size = _cached.dataset_size(sel.dataset) or sel.n
    bound(st.selectbox, "Model A", sel, "model_a", options=model_names, format_func=model_label)
    bound(st.selectbox, "Model B", sel, "model_b", options=model_names, format_func=model_label)
    bound(st.selectbox, "Dataset", sel, "dataset", options=dataset_names, format_func=dataset_label)
    bound(st.number_input, "Samples (n)", sel, "n", min_value=3, max_value=max(3, size), step=50,
          help="A seeded subset of the dataset; smaller subsets are nested in larger ones.")  # fmt: skip
    bound(st.number_input, "Seed", sel, "seed", min_value=0, step=1, help=seed_help)


def k_widget(sel: Selection, label: str = "k (neighbours)", help: str | None = None) -> None:
    from alignscope.dashboard.state import bound

    bound(st.number_input, label, sel, "k", min_value=1, max_value=max(1, min(1000, sel.n - 1)), help=help)


class LoadedPair:
    """Features of the selected pair, from the cache: ``feats_a`` / ``feats_b`` as returned by
    :func:`dashboard._cached.features_for`, the layer indices in use and the two cache keys."""

    def __init__(self, n, feats_a, feats_b, layer_a, layer_b, keys):
        self.n, self.feats_a, self.feats_b = n, feats_a, feats_b
        self.layer_a, self.layer_b, self.keys = layer_a, layer_b, keys

    @property
    def names_a(self) -> list[str]:
        return self.feats_a["layer_names"]

    @property
    def names_b(self) -> list[str]:
        return self.feats_b["layer_names"]


def _fix_missing_layers(sel: Selection, count_a: int, count_b: int) -> None:
    """A link naming a layer the model does not have: say so, put the last layer in the URL, run again."""
    from alignscope.dashboard.state import note_for_next_run, update_selection

    fixes, notes = {}, []
    for field, model, index, count in (("layer_a", sel.model_a, sel.layer_a, count_a),
                                       ("layer_b", sel.model_b, sel.layer_b, count_b)):  # fmt: skip
        if count and not -count <= index < count:  # (a model without layers is reported elsewhere)
            fixes[field] = -1
            notes.append(f"{model} has {count} layers (0..{count - 1}); layer {index} does not exist, "
                         "showing the last one")  # fmt: skip
    if fixes:
        note_for_next_run(notes, keep_this_runs=True)
        update_selection(**fixes)
        st.rerun()


def load_pair(sel: Selection, *, key: str, layer_widgets: bool = True) -> LoadedPair:
    """Everything before a single-pair page can draw, stopping the page with a message when it cannot:
    a model that cannot encode the dataset, features not cached yet (ask before computing), a load
    error. Adds the layer pickers to the sidebar and warns about layers that do not exist."""
    from alignscope.dashboard.state import bound

    problems = [p for p in (_cached.modality_problem(m, sel.dataset) for m in (sel.model_a, sel.model_b)) if p]
    if problems:
        for problem in dict.fromkeys(problems):
            st.error(problem, icon=ERROR_ICON)
        share_box(sel)
        st.stop()
    if not features_ready([sel.model_a, sel.model_b], sel.dataset, sel.n, sel.seed, key=key):
        share_box(sel)
        st.stop()
    plan_a = _cached.feature_plan(sel.model_a, sel.dataset, sel.n, sel.seed)
    plan_b = _cached.feature_plan(sel.model_b, sel.dataset, sel.n, sel.seed)
    n = plan_a.n
    try:
        feats_a = _cached.features_for(sel.model_a, sel.dataset, n, sel.seed)
        feats_b = _cached.features_for(sel.model_b, sel.dataset, n, sel.seed)
    except AlignscopeError as error:
        _cached.show_error(error)
        share_box(sel)
        st.stop()
    names_a, names_b = feats_a["layer_names"], feats_b["layer_names"]
    _fix_missing_layers(sel, len(names_a), len(names_b))
    if layer_widgets:
        with st.sidebar:
            bound(st.selectbox, "Layer of A", sel, "layer_a", options=list(range(len(names_a))),
                  to_widget=lambda v: _cached.resolve_layer(v, len(names_a)),
                  format_func=lambda i: f"{i}: {names_a[i]}")  # fmt: skip
            bound(st.selectbox, "Layer of B", sel, "layer_b", options=list(range(len(names_b))),
                  to_widget=lambda v: _cached.resolve_layer(v, len(names_b)),
                  format_func=lambda i: f"{i}: {names_b[i]}")  # fmt: skip
    return LoadedPair(
        n, feats_a, feats_b, _cached.resolve_layer(sel.layer_a, len(names_a)),
        _cached.resolve_layer(sel.layer_b, len(names_b)), (plan_a.full_key, plan_b.full_key),
    )
