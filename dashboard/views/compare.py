"""Compare two models on one dataset: headline scores of several metrics (with chance level,
permutation p-value and bootstrap interval) and the layer × layer heatmap; a clicked cell picks the
layer pair for every page."""

from __future__ import annotations

import re
import textwrap

import pandas as pd
import streamlit as st

from alignscope.core.datasets import get_dataset_spec
from alignscope.core.errors import AlignscopeError
from alignscope.core.metrics.registry import get_metric, list_metrics
from alignscope.core.models import describe, get_model_spec
from alignscope.dashboard import _cached, plots, ui
from alignscope.dashboard.state import (
    MAX_BOOTSTRAP,
    MAX_PERMUTATIONS,
    Selection,
    bound,
    read_selection,
    share_url,
    update_selection,
)

sel, warnings = read_selection()
st.title("Compare two models")
ui.show_warnings(warnings)

metric_names = [spec.name for spec in list_metrics()]

with st.sidebar:
    st.header("Comparison")
    ui.pair_widgets(sel)
    bound(st.multiselect, "Headline metrics", sel, "metrics", options=metric_names, to_widget=list,
          from_widget=tuple, max_selections=8, help="Shown side by side: metrics disagree.")  # fmt: skip
    bound(st.selectbox, "Heatmap metric", sel, "metric", options=metric_names)
    ui.k_widget(sel, help="Used by the k-NN metrics only.")
    bound(st.number_input, "Permutations (p-value)", sel, "permutations", min_value=0, max_value=MAX_PERMUTATIONS,
          step=100, help="0 turns the permutation test off.")  # fmt: skip
    bound(st.number_input, "Bootstrap resamples", sel, "bootstrap", min_value=0, max_value=MAX_BOOTSTRAP, step=50,
          help="0 turns the interval off; k-NN metrics cost ~0.1 s per resample at n=500.")  # fmt: skip

# The heatmap is the layer picker here: a clicked cell sets both layers.
pair = ui.load_pair(sel, key="compare", layer_widgets=False)
n, feats_a, feats_b, layer_a, layer_b = pair.n, pair.feats_a, pair.feats_b, pair.layer_a, pair.layer_b
name_a, name_b = feats_a["layer_names"][layer_a], feats_b["layer_names"][layer_b]
keys = (pair.keys[0], pair.keys[1])
common = (sel.model_a, sel.model_b, sel.dataset, n, sel.seed)

st.caption(
    f"**{sel.model_a}** layer {layer_a} `{name_a}` vs **{sel.model_b}** layer {layer_b} `{name_b}` on "
    f"**{sel.dataset}**, n = {n} (seed {sel.seed}). Click a heatmap cell to choose another layer pair."
)

# -- headline scores: fast numbers first, slow statistics fill in below ---------------------------
st.subheader("Headline scores")
rows: list[dict] = []
columns = st.columns(max(1, len(sel.metrics)))
for column, metric in zip(columns, sel.metrics):
    spec = get_metric(metric)
    try:
        result = _cached.score_and_chance(*common, metric, sel.k, layer_a, layer_b, *keys)
    except AlignscopeError as error:
        column.error(f"{metric}: {error}", icon=ui.ERROR_ICON)
        continue
    arrow = "↑" if spec.higher_is_better else "↓"
    column.metric(
        f"{metric} ({arrow} better)",
        f"{result['score']:.3f}",
        delta=None if result["chance"] is None else f"{result['score'] - result['chance']:+.3f} vs chance",
        delta_color="normal" if spec.higher_is_better else "inverse",
        help=f"{spec.summary} Range {spec.value_range}. {spec.reference}",
    )
    rows.append({"metric": metric, "score": result["score"], "chance": result["chance"],
                 "chance_analytic": result["chance_analytic"], "params": _cached.metric_params(metric, sel.k),
                 "p_value": None, "low": None, "high": None, "higher_is_better": spec.higher_is_better})  # fmt: skip
stats_slot = st.empty()

# -- heatmap ---------------------------------------------------------------------------------------
st.subheader("Layer × layer")
try:
    with st.spinner(f"{sel.metric} over every layer pair…"):
        matrix = _cached.layer_scores(*common, sel.metric, sel.k, *keys)
except AlignscopeError as error:
    _cached.show_error(error)
    matrix = None


def _pick_cell() -> None:
    """Heatmap click -> layer pair in the URL."""
    state = st.session_state.get("compare-heatmap")
    points = (state or {}).get("selection", {}).get("points", []) if state else []
    if not points:
        return
    point = points[0]
    try:
        i, j = (int(v) for v in point.get("customdata", [])[:2])
    except (TypeError, ValueError):
        match_a, match_b = re.match(r"(\d+):", str(point.get("y"))), re.match(r"(\d+):", str(point.get("x")))
        if not (match_a and match_b):
            return
        i, j = int(match_a.group(1)), int(match_b.group(1))
    update_selection(layer_a=i, layer_b=j)


if matrix is not None:
    metric_spec = get_metric(sel.metric)
    fig = plots.layer_heatmap(
        matrix["values"], matrix["names_a"], matrix["names_b"], metric=sel.metric, model_a=sel.model_a,
        model_b=sel.model_b, best_index=matrix["best_index"], selected_index=(layer_a, layer_b),
    )
    st.plotly_chart(fig, key="compare-heatmap", on_select=_pick_cell, selection_mode="points",
                    config={"toImageButtonOptions": {"format": "png", "filename": "alignscope-layers", "scale": 2}})
    best_i, best_j = matrix["best_index"]
    st.caption(
        f"Best pair: A layer {best_i} `{matrix['names_a'][best_i]}` × B layer {best_j} `{matrix['names_b'][best_j]}` "
        f"= {matrix['best_value']:.3f} ({'max' if metric_spec.higher_is_better else 'min'} of {sel.metric}). "
        "PNG: camera icon in the figure's toolbar."
    )
    if (best_i, best_j) != (layer_a, layer_b):
        st.button("Use the best pair", on_click=update_selection, kwargs={"layer_a": best_i, "layer_b": best_j},
                  icon=":material/star:")  # fmt: skip

# -- statistics (the slow part), with feedback ----------------------------------------------------
with stats_slot.container():
    if rows and (sel.permutations or sel.bootstrap):
        with st.status("Permutation tests and bootstrap intervals…", expanded=False) as status:
            for row in rows:
                args = (*common, row["metric"], sel.k, layer_a, layer_b)
                try:
                    if sel.permutations:
                        status.update(label=f"{row['metric']}: {sel.permutations} permutations…")
                        row["p_value"] = _cached.p_value(*args, sel.permutations, *keys)
                    if sel.bootstrap:
                        status.update(label=f"{row['metric']}: {sel.bootstrap} bootstrap resamples…")
                        row["low"], row["high"] = _cached.interval(*args, sel.bootstrap, *keys)
                except AlignscopeError as error:
                    st.error(f"{row['metric']}: {error}", icon=ui.ERROR_ICON)
            status.update(label="Statistics ready", state="complete")
    if rows:
        searched = len(pair.names_a) * len(pair.names_b)
        table = pd.DataFrame(
            [{"metric": r["metric"], "score": r["score"], "chance level": r["chance"], "p-value": r["p_value"],
              f"p if best of {searched} pairs": None if r["p_value"] is None else min(1.0, r["p_value"] * searched),
              "95% CI low": r["low"], "95% CI high": r["high"]} for r in rows]  # fmt: skip
        ).set_index("metric").astype(float)  # None -> NaN, shown as "–"
        if searched == 1:
            table = table.drop(columns=f"p if best of {searched} pairs")
        st.dataframe(table.style.format("{:.4f}", na_rep="–"), width="stretch")
        notes = ["Chance level: mean score over 20 shuffled sample correspondences."]
        if sel.permutations:
            notes.append(f"p-value: one-sided permutation test ({sel.permutations} shuffles, +1 corrected, so the "
                         f"smallest possible p is 1/{sel.permutations + 1} = {1 / (sel.permutations + 1):.4f}). "
                         f"If you chose this layer pair because it scored best, use the Bonferroni-corrected "
                         f"column (p × {len(pair.names_a) * len(pair.names_b)} pairs searched).")
        if sel.bootstrap:
            notes.append(f"Interval: bootstrap over samples ({sel.bootstrap} resamples), re-centred on the "
                         "estimate: resampling copies inflate most metrics, so the percentiles are read after "
                         "removing that bias.")
        if not (sel.permutations and sel.bootstrap):
            notes.append("Set permutations / bootstrap resamples above 0 in the sidebar for p-values / intervals.")
        notes.append("Metrics measure different things and need not agree.")
        st.caption(" ".join(notes))
        st.plotly_chart(plots.metric_scores(rows), key="compare-scores")

# -- share and export ------------------------------------------------------------------------------
st.subheader("Share and export")
ui.share_box(sel)


def _snippet(selection: Selection, n_samples: int, la: int, lb: int) -> str:
    metrics = ", ".join(repr(m) for m in selection.metrics)
    return textwrap.dedent(f"""\
        from alignscope.core.cache import FeatureCache
        from alignscope.core.datasets import load_dataset
        from alignscope.core.metrics.registry import compute, get_metric
        from alignscope.core.stats import bootstrap_ci, permutation_test

        full = load_dataset({selection.dataset!r})
        subset = full.subset({n_samples}, seed={selection.seed})
        cache = FeatureCache()
        feats = {{}}
        for model in ({selection.model_a!r}, {selection.model_b!r}):
            features, _ = cache.get_or_extract(model, full)  # the whole dataset, as the dashboard caches it
            position = {{sid: i for i, sid in enumerate(features.sample_ids)}}
            feats[model] = features.take([position[sid] for sid in subset.sample_ids])
        a = feats[{selection.model_a!r}].values[{la}]
        b = feats[{selection.model_b!r}].values[{lb}]
        for metric in ({metrics},):
            params = {{"k": {selection.k}}} if "k" in get_metric(metric).param_names else {{}}
            score = compute(metric, a, b, **params)
            p = permutation_test(metric, a, b, n_permutations={max(selection.permutations, 1)}, seed={selection.seed}, **params).p_value
            ci = bootstrap_ci(metric, a, b, n_boot={max(selection.bootstrap, 2)}, seed={selection.seed}, **params)
            print(f"{{metric}}: {{score:.4f}}  p={{p:.4f}}  95% CI [{{ci.low:.4f}}, {{ci.high:.4f}}]")
        """)


card = {
    "alignscope_result": 1,
    "config": {**sel.to_query(), "n_effective": n, "layer_a_index": layer_a, "layer_b_index": layer_b,
               "layer_a_name": name_a, "layer_b_name": name_b},  # fmt: skip
    "models": {m: describe(get_model_spec(m)) for m in (sel.model_a, sel.model_b)},
    "dataset": {"name": sel.dataset, "revision": get_dataset_spec(sel.dataset).revision},
    "scores": [{k: v for k, v in r.items()} for r in rows],
    "heatmap": None if matrix is None else {
        "metric": sel.metric, "values": matrix["values"].tolist(), "best_index": list(matrix["best_index"]),
        "layers_a": matrix["names_a"], "layers_b": matrix["names_b"],
    },
    "cache_keys": {sel.model_a: feats_a["cache_key"], sel.model_b: feats_b["cache_key"]},
    "packages": _cached.package_versions(),
    "link": share_url(sel),
}
columns = st.columns(4)
with columns[0]:
    ui.json_download("Result card (JSON)", card, "alignscope-result.json", key="dl-card")
if matrix is not None:
    frame = pd.DataFrame(matrix["values"], index=[f"A:{x}" for x in matrix["names_a"]],
                         columns=[f"B:{x}" for x in matrix["names_b"]])  # fmt: skip
    with columns[1]:
        ui.csv_download("Heatmap (CSV)", frame, "alignscope-layers.csv", key="dl-csv")
    with columns[2]:
        ui.html_download(fig, "alignscope-layers.html", key="dl-html")
if rows:
    with columns[3]:
        ui.csv_download("Scores (CSV)", table, "alignscope-scores.csv", key="dl-scores")
with st.expander("Reproduce these numbers in Python"):
    st.code(_snippet(sel, n, layer_a, layer_b), language="python")
