"""Trends: alignment across a family of models against a model property (the Platonic Representation
Hypothesis figure), with Spearman's ρ and its permutation p, and a paired test of two of the models."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from alignscope.core.analysis.features import modality_problem, plan_features
from alignscope.core.analysis.requests import parse_layer_choice
from alignscope.core.analysis.trends import PRESETS, Trend, TrendPreset, TrendRequest
from alignscope.core.errors import AlignscopeError
from alignscope.core.numbers import signed
from alignscope.core.properties import families, model_properties, resolve_models
from alignscope.dashboard import ui
from alignscope.dashboard.difference_view import paired_difference
from alignscope.dashboard.plots_trends import trend_figure
from alignscope.dashboard.selection import X_SCALES, Selection
from alignscope.dashboard.url_state import bound, opened_without_a_link, update_selection

DEFAULT_SHOWN = "_alignscope_trends_default_shown"


def _depth(layers: str) -> float | None:
    choice = parse_layer_choice(layers)
    return None if choice == "best" else 1.0 if choice == "last" else float(choice)


def _preset_changes(preset: TrendPreset) -> dict:
    return dict(
        trend_models=resolve_models(list(preset.models)),
        reference=resolve_models(list(preset.reference)) if preset.reference else (),
        dataset=preset.dataset,
        n=preset.n,
        metric=preset.metric,
        k=preset.k,
        prop=preset.property,
        trend_depth=_depth(preset.layers),
        x_scale="log" if preset.log_x else "linear",
    )


def _current_preset(sel: Selection) -> TrendPreset | None:
    for preset in PRESETS.values():
        changes = _preset_changes(preset)
        if all(getattr(sel, name) == value for name, value in changes.items()):
            return preset
    return None


def _presets(sel: Selection) -> None:
    current = _current_preset(sel)
    columns = st.columns(len(PRESETS))
    for column, preset in zip(columns, PRESETS.values()):
        with column, st.container(border=True):
            st.markdown(f"**{ui.plain(preset.title)}**")
            st.caption(ui.plain(preset.question))
            if preset is current:
                st.caption("Shown below.")
            elif st.button("Show this preset", key=f"preset-{preset.name}", icon=":material/trending_up:"):
                update_selection(**_preset_changes(preset))
                st.rerun()


def _property_names(models: tuple[str, ...], keep: str) -> list[str]:
    names: dict[str, None] = {}
    for model in models:
        for name in model_properties(model):
            names[name] = None
    return sorted(names) + ([keep] if keep not in names else [])


def _sidebar(sel: Selection) -> None:
    model_names = ui.models_for(sel.dataset, keep=(*sel.trend_models, *sel.reference))
    with st.sidebar:
        st.header("Trend")
        ui.models_picker(sel, "trend_models", "Models (one point each)", options=model_names, max_selections=24)
        groups = families()
        if groups:
            family = st.selectbox("Add a family", ["—", *groups], key="trend-family")
            if family != "—" and st.button(f"Add the {len(groups[family])} models of {family}", key="trend-add"):
                update_selection(trend_models=tuple(dict.fromkeys((*sel.trend_models, *groups[family])))[:24])
                st.rerun()
        ui.models_picker(
            sel,
            "reference",
            "Reference models (empty: each against the others)",
            options=model_names,
            max_selections=24,
            help="y of each point = its mean alignment to these models; empty = to the other models of the trend.",
        )
        bound(
            st.selectbox,
            "Property (x)",
            sel,
            "prop",
            options=_property_names(sel.trend_models, sel.prop),
            help="Published numbers come with the model; `params` is counted on load; probe accuracies are "
            "measured here (Data & models); set your own with `alignscope models --set`.",
        )
        bound(st.radio, "x axis", sel, "x_scale", options=list(X_SCALES), horizontal=True)
        st.header("Scoring")
        ui.scoring_widgets(sel, depth_field="trend_depth")  # its own: a preset leaves other pages' alone
        ui.bootstrap_widget(
            sel, help="Each point's interval: resampling samples, the same rows for every pair; 0 turns it off."
        )


def _request(sel: Selection) -> TrendRequest:
    params = sel.metric_params()
    return TrendRequest(
        tuple(sel.trend_models),
        tuple(sel.reference),
        sel.dataset,
        sel.n,
        sel.seed,
        sel.metric,
        params,
        sel.trend_depth,
        sel.prop,
        (),
        sel.bootstrap,
    )


def _layer_names(models, sel: Selection) -> dict[str, tuple[str, ...]]:
    return {m: plan_features(m, sel.dataset, sel.n, sel.seed).layer_names for m in models}


def points_frame(trend: Trend) -> pd.DataFrame:
    """One row per model: property, mean alignment, its interval, chance (and the chance of the best layer
    pair where each point is a search's best), the layer pairs."""
    layers: dict[str, list[str]] = {m: [] for m in trend.models}
    for model, reference, i, j in trend.pairs:
        layers[model].append(f"{reference}:{i}×{j}")
    return pd.DataFrame(
        {
            trend.property: trend.x,
            f"mean {trend.metric}": trend.y,
            "ci_low": trend.ci_low,
            "ci_high": trend.ci_high,
            "chance": trend.chance,
            **({} if trend.search_chance is None else {"chance of best": trend.search_chance}),
            "layers (reference:layer×layer)": [" ".join(layers[m]) for m in trend.models],
        },
        index=pd.Index(trend.models, name="model"),
    )


def _summary(trend: Trend, sel: Selection) -> None:
    against = ", ".join(trend.references) if sel.reference else "the other models of the trend"
    where = "each pair's best layer pair" if sel.trend_depth is None else f"relative depth {sel.trend_depth:.2f}"
    if trend.rho is None:
        rank = trend.why_no_rho()
    else:
        rank = (
            f"Spearman ρ = {signed(trend.rho, 2)} across the models with {trend.property}, two-sided permutation p = "
            f"{trend.p_value:.3g} ({trend.n_orderings} orderings"
            f"{', all of them' if trend.n_orderings == math.factorial(int(sum(~pd.isna(trend.x)))) else ''})."
        )
    st.markdown(ui.plain(rank))
    st.caption(
        ui.plain(
            f"y: mean {trend.metric} of each model to {against} at {where}, on {trend.dataset}, n = "
            f"{trend.n_samples} (seed {sel.seed}); "
            + (
                f"bars: 95% bootstrap intervals over samples ({trend.n_bootstrap} resamples, the same rows for every "
                "pair); "
                if trend.n_bootstrap
                else "no intervals (bootstrap resamples: 0); "
            )
            + (
                "dotted line: where each point sits on average with no alignment — it is the best of every layer "
                "pair, so its chance is the best pair's of shuffled correspondences, above one fixed pair's chance "
                "(both in the table; a grey band spans the line where the levels differ)."
                if trend.search_chance is not None
                else "dotted line: the chance level of the same pairs (a grey band spans it where their levels differ)."
                + (
                    f" That level is for one layer pair fixed in advance, and each point is the best of every layer "
                    f"pair, which sits above it with no alignment at all ({trend.metric} is not shuffled for the "
                    "search's own level); pick a depth for points the chance level fits."
                    if sel.trend_depth is None
                    else ""
                )
            )
            + (
                f" The search's level alone has Spearman ρ = {signed(trend.search_rho, 2)} with {trend.property} (models "
                "with more layers search more pairs): part of a trend can be the search's."
                if trend.search_rho is not None
                else ""
            )
        )
    )


def _difference(sel: Selection, trend: Trend) -> Selection:
    """A paired test of two of the trend's models against a third (default: the strongest vs the weakest
    by the property, against the first reference)."""
    models = list(trend.models)
    ranked = sorted(range(len(models)), key=lambda i: (math.isnan(trend.x[i]), trend.x[i]))
    return paired_difference(
        sel,
        models,
        list(trend.references),
        default_a=models[ranked[-1]],
        default_b=models[ranked[0]],
        depth=sel.trend_depth,
        key="trend-diff",
    )


def _open_the_default_preset(sel: Selection) -> None:
    """Opened without a link's settings, the page shows the ladder preset (the embedded default)."""
    if opened_without_a_link() and _current_preset(sel) is None and not st.session_state.get(DEFAULT_SHOWN):
        st.session_state[DEFAULT_SHOWN] = True
        update_selection(**_preset_changes(PRESETS["ladder"]))
        st.rerun()


def render(sel: Selection) -> None:
    _open_the_default_preset(sel)
    st.title("Trends")
    st.caption("How alignment changes across a family of models, against a property of the models.")
    _presets(sel)
    _sidebar(sel)
    models = tuple(dict.fromkeys((*sel.trend_models, *sel.reference)))
    problems = [p for p in (modality_problem(m, sel.dataset) for m in models) if p]
    for problem in problems:
        ui.show_error(problem)
    if problems or len(sel.trend_models) + len(sel.reference) < 2:
        if not problems:
            st.info("Choose at least two models (or one and a reference).", icon=":material/info:")
        ui.share_box(sel)
        st.stop()
    if not ui.features_ready(models, sel.dataset, sel.n, sel.seed, key="trend"):
        ui.share_box(sel)
        st.stop()
    try:
        request = _request(sel)
    except AlignscopeError as error:
        ui.show_error(error)
        st.stop()
    trend: Trend | None = ui.fetch_one(request, key="trend", what=f"the trend over {len(sel.trend_models)} models")
    fig = frame = None
    if trend is not None:
        preset = _current_preset(sel)
        fig = trend_figure(
            trend, _layer_names(models, sel), log_x=sel.x_scale == "log", title=preset.title if preset else None
        )
        st.plotly_chart(fig, key="trend-figure", config={"toImageButtonOptions": {"filename": "alignscope-trend"}})
        _summary(trend, sel)
        frame = points_frame(trend)
        with st.expander("Points, intervals and the layers behind each"):
            st.dataframe(frame, width="stretch")
        sel = _difference(sel, trend)
    ui.export_row(
        sel,
        page="trends",
        table=("Points (CSV)", frame) if frame is not None else None,
        fig=fig,
        results={"trend": trend},
        stem="alignscope-trend",
    )
    if fig is not None:
        st.caption("PNG: the camera button in the figure's toolbar.")


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("trends")
