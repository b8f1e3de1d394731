"""Pieces every page shares: warnings for a fixed link, the compute gate, the share box, downloads.

Thin Streamlit glue only: numbers come from :mod:`dashboard._cached`, figures from
:mod:`dashboard.plots`, state from :mod:`dashboard.state`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import streamlit as st

from core.errors import AlignscopeError
from dashboard import _cached
from dashboard.state import Selection, share_url

ERROR_ICON = ":material/error:"


def show_warnings(warnings: Sequence[str]) -> None:
    """One warning box listing every parameter that was fixed (a tampered or outdated link)."""
    if warnings:
        items = "\n".join(f"- {w}" for w in warnings)
        st.warning(f"Some settings in the link were invalid and were replaced by safe values:\n\n{items}",
                   icon=":material/warning:")  # fmt: skip


def model_label(name: str) -> str:
    from core.models import get_model_spec

    try:
        spec = get_model_spec(name)
    except AlignscopeError:
        return name
    return f"{name} ({spec.modality})"


def dataset_label(name: str) -> str:
    from core.datasets import get_dataset_spec

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


def share_box(selection: Selection) -> None:
    """The full link to this view, in a code block (which has a copy button)."""
    st.caption("Link to this exact view (copy with the button on the right):")
    st.code(share_url(selection), language=None, wrap_lines=True)


def json_download(label: str, payload: dict, file_name: str, key: str) -> None:
    st.download_button(label, json.dumps(payload, indent=1, default=str), file_name=file_name,
                       mime="application/json", key=key, icon=":material/download:")  # fmt: skip


def html_download(fig, file_name: str, key: str) -> None:
    from dashboard.plots import figure_html

    st.download_button("Figure (HTML)", figure_html(fig), file_name=file_name, mime="text/html", key=key,
                       icon=":material/download:")  # fmt: skip


def csv_download(label: str, frame, file_name: str, key: str) -> None:
    st.download_button(label, frame.to_csv(index=True).encode(), file_name=file_name, mime="text/csv", key=key,
                       icon=":material/download:")  # fmt: skip
