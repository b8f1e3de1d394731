"""Convergent learning as a page section (Many models): for a family of nets of one architecture, the
unit-matching curves of one layer beside the within-network baseline, and the page metric's layer ×
layer matrix as mean ± sd over the seed pairs. The layer is in the URL (``ul``)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from alignscope.core.analysis.convergence import FamilyMatrixRequest, UnitMatchingRequest
from alignscope.core.convergent import FamilyLayerMatrices, FamilyMatchingCurves
from alignscope.dashboard import plots_convergence, ui
from alignscope.dashboard.selection import UNIT_ACTIVATIONS, UNIT_ROWS, Selection
from alignscope.dashboard.url_state import bound


def _fractions(curves: FamilyMatchingCurves) -> pd.DataFrame:
    def cell(mean: float, sd: float) -> str:
        return f"{mean:.2f}" + ("" if sd != sd else f" ± {sd:.2f}")  # sd != sd: NaN for a single pair

    return pd.DataFrame(
        {
            "units with a match in another net": [
                cell(curves.fraction_above_mean[t], curves.fraction_above_std[t]) for t in curves.fraction_above_mean
            ],
            "units with a match in their own net (baseline)": [
                cell(curves.within_fraction_above_mean[t], curves.within_fraction_above_std[t])
                for t in curves.within_fraction_above_mean
            ],
        },
        index=[f"|corr| > {t:g}" for t in curves.fraction_above_mean],
    )


def convergent_learning(sel: Selection, layer_names: Sequence[str]) -> dict[str, object]:
    """The section; ``layer_names`` are the family's (one architecture). Returns its results for export."""
    st.subheader("Convergent learning: do the nets learn the same units?")
    ui.fix_missing_layers([("unit_layer", "each net of the set", sel.unit_layer, len(layer_names))])
    with st.sidebar:
        ui.layer_picker(
            "Layer for unit matching",
            sel,
            "unit_layer",
            layer_names,
            help="Li et al. 2016 match the units of one layer across nets by |correlation| over the samples.",
        )
        bound(
            st.radio,
            "Units correlated over",
            sel,
            "unit_rows",
            options=list(UNIT_ROWS),
            format_func={"images": "images (pooled)", "positions": "images × positions"}.get,
            horizontal=True,
            help="Li et al. treat each spatial position of a conv map as a sample (at most 64 seeded positions "
            "per image); pooled: the cached features, averaged over positions.",
        )
        bound(
            st.radio,
            "Activation",
            sel,
            "unit_activation",
            options=list(UNIT_ACTIVATIONS),
            format_func={"output": "layer output", "relu": "after ReLU"}.get,
            horizontal=True,
            help="The hooked module's output (pre-activation of a conv / linear layer), or the ReLU of it.",
        )
    layer = sel.unit_layer % len(layer_names)
    models = tuple(sel.models)
    params = sel.metric_params()
    matching_request = UnitMatchingRequest(
        models,
        sel.dataset,
        sel.n,
        sel.seed,
        layer,
        positions=sel.unit_rows == "positions",
        activation=sel.unit_activation,
    )
    family_request = FamilyMatrixRequest(models, sel.dataset, sel.n, sel.seed, sel.metric, params)
    matching_out, family_out = ui.fetch([matching_request, family_request], key="many-convergent")
    curves: FamilyMatchingCurves | None = matching_out.result if matching_out.ready else None
    family: FamilyLayerMatrices | None = family_out.result if family_out.ready else None
    if curves is None:
        ui.status_note(matching_out, "unit matching")
    else:
        st.plotly_chart(plots_convergence.matching_curves(curves, layer_names[layer]), key="many-matching")
        st.dataframe(_fractions(curves), width="stretch")
        st.caption(
            "Each unit's best |Pearson correlation| over the samples, sorted: with a unit of another net "
            "(one-to-one: the Hungarian matching; semi: its best partner, repeats allowed) and, as Li et al.'s "
            "baseline, with another unit of its own net. Where the cross-net curve reaches the baseline, the "
            f"unit is learned reliably across seeds. Mean ± sd over {curves.one_to_one.n_curves} seed pair(s); "
            f"correlations over {curves.n_rows} {'images × positions' if sel.unit_rows == 'positions' else 'images'}."
        )
    if family is None:
        ui.status_note(family_out, f"{sel.metric} over the seed pairs")
    else:
        st.plotly_chart(plots_convergence.family_matrix(family, layer_names), key="many-family-matrix")
    ui.gate([matching_out, family_out], key="many-convergent-gate", what="convergent learning")
    return {"unit_matching": curves, "family_layer_matrix": family}
