"""Compare two models on one dataset: headline scores of several metrics (with chance level,
permutation p-value and bootstrap interval) and the layer × layer heatmap; a clicked cell picks the
layer pair for every page. Scores appear at once; p-values and intervals fill in as their jobs finish."""

from __future__ import annotations

import math
import re
import textwrap

import pandas as pd
import streamlit as st

from alignscope.core.analysis.requests import MatrixRequest, PairRequest
from alignscope.core.analysis.results import LayerMatrix, PairScore
from alignscope.core.datasets import get_dataset_spec
from alignscope.core.metrics.registry import get_metric, list_metrics
from alignscope.core.models import describe, get_model_spec
from alignscope.core.numbers import signed
from alignscope.core.stats import at_floor
from alignscope.dashboard import _cached, guide, plots, ui
from alignscope.dashboard.compatibility_view import compatibility_section
from alignscope.dashboard.difference_view import paired_difference
from alignscope.dashboard.selection import MAX_PERMUTATIONS, Selection
from alignscope.dashboard.url_state import bound, opened_without_a_link, share_url, update_selection


def _sidebar(sel: Selection) -> None:
    metric_names = [spec.name for spec in list_metrics()]
    with st.sidebar:
        st.header("Comparison")
        ui.pair_widgets(sel)
        bound(
            st.multiselect,
            "Headline metrics",
            sel,
            "metrics",
            options=metric_names,
            to_widget=list,
            from_widget=tuple,
            max_selections=8,
            help="Shown side by side: metrics disagree.",
        )
        bound(st.selectbox, "Heatmap metric", sel, "metric", options=metric_names)
        ui.k_widget(sel, help="Used by the k-NN metrics only.")
        ui.shape_widgets(sel)
        bound(
            st.number_input,
            "Permutations (p-value)",
            sel,
            "permutations",
            min_value=0,
            max_value=MAX_PERMUTATIONS,
            step=100,
            help="0 turns the permutation test off.",
        )
        ui.bootstrap_widget(sel)


def pair_request(sel: Selection, metric: str, layers: str, *, with_stats: bool) -> PairRequest:
    """The request behind one headline score (the same the CLI and the API build for these settings)."""
    return PairRequest(
        sel.model_a,
        sel.model_b,
        sel.dataset,
        sel.n,
        sel.seed,
        metric,
        sel.metric_params(metric),
        layers,
        sel.permutations if with_stats else 0,
        sel.bootstrap if with_stats else 0,
    )


def _p_text(score: PairScore | None) -> str:
    if score is None or score.p_value is None:
        return "—"
    if score.at_floor:
        return f"≤ 1/{score.n_permutations + 1}"
    return f"{score.p_value:.4f}"


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


# metric cards side by side; more wrap to the next row (eight in one row cut "… vs chance" short)
HEADLINES_PER_ROW = 4


def _is_searched_best(matrix_out, layers: tuple[int, int]) -> bool:
    """Whether ``layers`` is the heatmap's best pair (picked by a search, not fixed in advance)."""
    matrix = matrix_out.result if matrix_out.ready else None
    return bool(matrix is not None and tuple(matrix.best_index) == layers and int(matrix.searchable.sum()) > 1)


def _searched_chance(sel: Selection, matrix_out, metric: str, layers: tuple[int, int]) -> float | None:
    """The chance of the best of the heatmap's search, when ``metric`` is the heatmap's and ``layers`` its
    best pair (picked as the best, it is read against that level, not one fixed pair's)."""
    if metric != sel.metric or not _is_searched_best(matrix_out, layers):
        return None
    matrix: LayerMatrix = matrix_out.result
    return matrix.best_chance


def _headlines(sel: Selection, quick: list, full: list, matrix_out) -> list[PairScore | None]:
    """One metric card per headline metric; returns the best available score per metric."""
    shown: list[PairScore | None] = []
    per_row = min(HEADLINES_PER_ROW, max(1, len(sel.metrics)))
    columns = [column for _ in range(0, len(sel.metrics), per_row) for column in st.columns(per_row)]
    for column, metric, fast, slow in zip(columns, sel.metrics, quick, full or [None] * len(quick)):
        score = (slow.result if slow is not None and slow.ready else None) or (fast.result if fast.ready else None)
        shown.append(score)
        spec = get_metric(metric)
        if score is None:
            with column:
                st.markdown(f"**{metric}**")
                ui.status_note(fast, metric)
            continue
        arrow = "↑" if spec.higher_is_better else "↓"
        layers = (score.layer_a, score.layer_b)
        searched = _searched_chance(sel, matrix_out, metric, layers)
        level, against = (score.chance, "vs chance") if searched is None else (searched, "vs chance of the best")
        if searched is not None:
            caveat = (
                f" This is the heatmap's best layer pair: it is compared with where the best of the search "
                f"lands on average with no alignment ({searched:.3f}), not with one fixed pair's chance "
                f"({score.chance:.3f})."
            )
        elif metric != sel.metric and _is_searched_best(matrix_out, layers):
            caveat = (
                f" This layer pair was picked as the best of the {sel.metric} heatmap, not fixed in advance: "
                "this metric's chance is one fixed pair's, so where it tracks the heatmap's metric its margin "
                "over chance reads high."
            )
        else:
            caveat = ""
        column.metric(
            f"{metric} ({arrow} better)",
            f"{score.value:.3f}",
            delta=None if level is None else f"{signed(score.value - level)} {against}",
            delta_color=ui.delta_color(0.0 if level is None else score.value - level, spec.higher_is_better),
            help=f"{spec.summary.rstrip('.')}. {_range_text(*spec.value_range)} {spec.reference.rstrip('.')}.{caveat}",
        )
    others = [m for m in sel.metrics if m != sel.metric]
    first = next((s for s in shown if s is not None), None)
    if others and first is not None and _is_searched_best(matrix_out, (first.layer_a, first.layer_b)):
        own = (
            f"so {sel.metric}'s card reads it against the chance of the best of that search. The other metrics' "
            if sel.metric in sel.metrics and matrix_out.result.best_chance is not None
            else "but the "
        )
        st.caption(
            f"This layer pair is the {sel.metric} heatmap's best, picked by a search, {own}cards "
            f"({', '.join(others)}) read it against one fixed pair's chance: where they track the heatmap's "
            "metric, their margin over chance reads high. Switch the heatmap to another metric to read that "
            "metric's own search."
        )
    return shown


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


def _p_floor_text(p: float, permutations: int) -> str:
    return f"≤ 1/{permutations + 1}" if at_floor(p, 1.0 / (permutations + 1)) else f"{p:.3g}"


def _heatmap(sel: Selection, outcome, layer_a: int, layer_b: int):
    st.subheader("Layer × layer")
    if not outcome.ready:
        ui.status_note(outcome, f"the {sel.metric} heatmap")
        return None, None
    matrix: LayerMatrix = outcome.result
    spec = get_metric(sel.metric)
    fig = plots.layer_heatmap(matrix, selected_index=(layer_a, layer_b))
    st.plotly_chart(
        fig,
        key="compare-heatmap",
        on_select=_pick_cell,
        selection_mode="points",
        config={"toImageButtonOptions": {"format": "png", "filename": "alignscope-layers", "scale": 2}},
    )
    best_i, best_j = matrix.best_index
    searched = int(matrix.searchable.sum())
    best = (
        f"A {ui.plain(ui.layer_words(best_i, matrix.names_a[best_i]))} × "
        f"B {ui.plain(ui.layer_words(best_j, matrix.names_b[best_j]))} = "
        f"{matrix.best_value:.3f} ({'max' if spec.higher_is_better else 'min'} of {sel.metric})"
    )
    if matrix.p_corrected is None:
        verdict = (
            f"Best-scoring pair: {best}. Permutations are off, so no pair is tested against chance "
            "(no gold frame); set permutations above 0 to test the search."
        )
    elif searched == 1:  # one layer each (an uploaded matrix, a final embedding): nothing was searched
        p = _p_floor_text(float(matrix.p_corrected[best_i, best_j]), matrix.n_permutations)
        above = "above chance" if matrix.best_significant else "not above chance"
        verdict = f"The only layer pair: {best}, {above} (permutation test, p {p}; nothing was searched)."
    elif matrix.best_significant:
        p = _p_floor_text(float(matrix.p_corrected[best_i, best_j]), matrix.n_permutations)
        verdict = (
            f"Best pair (gold frame): {best}, above chance after correcting for the {searched} pairs searched "
            f"(studentised max-statistic permutation test, p {p})."
        )
    else:
        verdict = (
            f"The best-scoring pair, {best}, is not above chance after correcting for the {searched} pairs "
            f"searched (p = {float(matrix.p_corrected[best_i, best_j]):.3g})."
        )
        surviving = matrix.surviving_index
        verdict += (
            " No pair is."
            if surviving is None
            else f" A layer {surviving[0]} × B layer {surviving[1]} is, with a worse score on a narrower null "
            f"(p {_p_floor_text(float(matrix.p_corrected[surviving]), matrix.n_permutations)}; the cells not grey)."
        )
    if matrix.best_chance is not None:
        fixed = (
            "" if matrix.chance is None else f"; one pair fixed in advance: {float(matrix.chance[best_i, best_j]):.3f}"
        )
        verdict += (
            f" With no alignment the best of {searched} pairs averages {matrix.best_chance:.3f} (the mean best of "
            f"shuffled correspondences{fixed})."
        )
    st.caption(
        verdict + " Colour: how far each score is from its chance level (white = chance); grey cells are "
        "not above chance after the correction. PNG: camera icon in the toolbar."
    )
    for i, j, reason in matrix.problems[:3]:
        st.caption(f"Layer pair {i} × {j}: {ui.plain(reason)}")
    if len(matrix.problems) > 3:
        st.caption(f"… and {len(matrix.problems) - 3} more flagged pairs (hover the crossed cells).")
    if (best_i, best_j) != (layer_a, layer_b):
        st.button(
            "Use the best pair",
            on_click=update_selection,
            kwargs={"layer_a": best_i, "layer_b": best_j},
            icon=":material/star:",
            key="compare-best",
        )
    return matrix, fig


def _statistics(sel: Selection, scores: list[PairScore | None], full: list) -> pd.DataFrame | None:
    rows = []
    for metric, score, outcome in zip(sel.metrics, scores, full or [None] * len(scores)):
        if score is None:
            continue
        stats = outcome.result if outcome is not None and outcome.ready else None
        waiting = "computing…" if outcome is not None and outcome.state in ("queued", "running") else "—"
        rows.append(
            {
                "metric": metric,
                "score": _number(score.value),
                "chance level": _number(score.chance),
                "p-value": _p_text(stats) if stats else (waiting if sel.permutations else "—"),
                "95% CI": (
                    f"[{stats.ci_low:.4f}, {stats.ci_high:.4f}]"
                    if stats is not None and stats.ci_low is not None
                    else (waiting if sel.bootstrap else "—")
                ),
            }
        )
    if not rows:
        return None
    recalls = {s.metric: s.recall for s in scores if s is not None and s.recall is not None}
    if recalls:
        for row in rows:
            row["recall@k (approx)"] = _number(recalls.get(row["metric"]), 3)
    table = pd.DataFrame(rows).set_index("metric")
    st.dataframe(table, width="stretch")
    notes = [
        "Chance level: the metric's closed form where it has one (k-NN overlaps: k/(n−1)), else the mean "
        "over 20 shuffled sample correspondences, for this layer pair as fixed in advance (the heatmap's caption "
        "gives the chance of its best pair)."
    ]
    if sel.permutations:
        notes.append(
            f"p-value: one-sided permutation test of this layer pair as fixed in advance, {sel.permutations} "
            f"shuffles, +1 corrected; “≤ 1/{sel.permutations + 1}” means no shuffle scored as well. If you chose "
            "the pair because it scored best, read the corrected p under the heatmap instead."
        )
    else:
        notes.append("Permutations are off (0): no p-values.")
    if sel.bootstrap:
        notes.append(f"Interval: 95% bootstrap over samples ({sel.bootstrap} resamples), re-centred on the estimate.")
    else:
        notes.append("Bootstrap is off (0): no intervals.")
    if recalls:
        notes.append("Neighbours: approximate (IVF-Flat); recall@k is measured against exact search on seeded queries.")
    notes.append("Metrics measure different things and need not agree.")
    st.caption(" ".join(notes))
    return table


def _snippet(sel: Selection, layers: str) -> str:
    return textwrap.dedent(f"""\
        from alignscope.core.analysis import PairRequest, metric_params, run

        for metric in {tuple(sel.metrics)!r}:
            score = run(PairRequest({sel.model_a!r}, {sel.model_b!r}, {sel.dataset!r}, n={sel.n}, seed={sel.seed},
                                    metric=metric, params=metric_params(metric, k={sel.k}, similarity={sel.similarity!r}, neighbors={sel.neighbors!r}, alpha={sel.shape_alpha!r}, n_folds={sel.shape_folds}),
                                    layers={layers!r}, permutations={sel.permutations}, bootstrap={sel.bootstrap}))
            print(metric, score.value, score.chance, score.p_value, score.ci_low, score.ci_high)
        """)


def render(sel: Selection) -> None:
    st.title("Compare two models")
    guide.render_guide(sel, fresh=opened_without_a_link())
    _sidebar(sel)
    pair = ui.load_pair(sel, key="compare", layer_widgets=False)  # the heatmap picks the layers here
    layer_a, layer_b = pair.layer_a, pair.layer_b
    layers = f"{layer_a},{layer_b}"
    st.caption(
        f"**{ui.plain(sel.model_a)}** {ui.plain(ui.layer_words(layer_a, pair.names_a[layer_a]))} vs "
        f"**{ui.plain(sel.model_b)}** {ui.plain(ui.layer_words(layer_b, pair.names_b[layer_b]))} on "
        f"**{ui.plain(sel.dataset)}**, n = {pair.n} (seed {sel.seed}). Click a "
        "heatmap cell to "
        "choose another layer pair."
    )
    quick = [pair_request(sel, metric, layers, with_stats=False) for metric in sel.metrics]
    full = [pair_request(sel, metric, layers, with_stats=True) for metric in sel.metrics]
    if not (sel.permutations or sel.bootstrap):
        full = []
    matrix_request = MatrixRequest(
        sel.model_a,
        sel.model_b,
        sel.dataset,
        sel.n,
        sel.seed,
        sel.metric,
        sel.metric_params(),
        sel.permutations,
    )
    outcomes = ui.fetch([*quick, matrix_request, *full], key="compare")
    quick_out, matrix_out, full_out = outcomes[: len(quick)], outcomes[len(quick)], outcomes[len(quick) + 1 :]

    st.subheader("Headline scores")
    scores = _headlines(sel, quick_out, full_out, matrix_out)
    table = _statistics(sel, scores, full_out)
    rows = [
        {
            "metric": m,
            "score": s.value,
            "chance": s.chance,
            "low": f.result.ci_low if f is not None and f.ready else None,
            "high": f.result.ci_high if f is not None and f.ready else None,
        }
        for m, s, f in zip(sel.metrics, scores, full_out or [None] * len(scores))
        if s is not None
    ]
    if rows:
        st.plotly_chart(plots.metric_scores(rows, with_intervals=bool(sel.bootstrap)), key="compare-scores")
    matrix, fig = _heatmap(sel, matrix_out, layer_a, layer_b)
    waiting = {  # what the Compute button is for, named by what waits for it
        "the headline scores": any(o.state == "needs_click" for o in quick_out),
        "the layer heatmap": matrix_out.state == "needs_click",
        "p-values and intervals": any(o.state == "needs_click" for o in full_out),
    }
    parts = [part for part, gated in waiting.items() if gated]
    what = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + (parts[-1] if parts else "")
    ui.gate(outcomes, key="compare-gate", what=what or "the rest of this view")
    sel = paired_difference(
        sel,
        [sel.model_a, sel.model_b],
        ui.models_for(sel.dataset),
        default_a=sel.model_a,
        default_b=sel.model_b,
        depth=None,  # each pair's best layer pair: Compare has no depth setting of its own
        key="compare-diff",
        fixed_pair=True,
        optional=True,
    )
    compatibility = compatibility_section(sel, layer_a, layer_b)

    st.subheader("Share and export")
    ui.share_box(sel)
    card = {
        "alignscope_result": 2,
        "config": {**sel.to_query(), "n_effective": pair.n, "layers": layers},
        "models": {m: describe(get_model_spec(m)) for m in (sel.model_a, sel.model_b)},
        "dataset": {"name": sel.dataset, "revision": get_dataset_spec(sel.dataset).revision},
        "scores": [o.result for o in (full_out or quick_out) if o.ready],
        "heatmap": matrix,
        "compatibility": compatibility,
        "cache_keys": {sel.model_a: pair.view_a.cache_key, sel.model_b: pair.view_b.cache_key},
        "packages": _cached.package_versions(),
        "link": share_url(sel),
    }
    columns = st.columns(4)
    with columns[0]:
        ui.json_download("Result card (JSON)", card, "alignscope-result.json", key="dl-card")
    if matrix is not None:
        frame = pd.DataFrame(
            matrix.values, index=[f"A:{x}" for x in matrix.names_a], columns=[f"B:{x}" for x in matrix.names_b]
        )
        with columns[1]:
            ui.csv_download("Heatmap (CSV)", frame, "alignscope-layers.csv", key="dl-csv")
        with columns[2]:
            ui.html_download(fig, "alignscope-layers.html", key="dl-html")
    if table is not None:
        with columns[3]:
            ui.csv_download("Scores (CSV)", table, "alignscope-scores.csv", key="dl-scores")
    with st.expander("Reproduce these numbers in Python"):
        st.code(_snippet(sel, layers), language="python")


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("compare")


def _range_text(low: float, high: float) -> str:
    """A metric's range for people: "Range [0, 1].", "Range [0, ∞).", "Unbounded."."""
    if not math.isfinite(low) and not math.isfinite(high):
        return "Unbounded."
    left = f"[{low:g}" if math.isfinite(low) else "(−∞"
    right = f"{high:g}]" if math.isfinite(high) else "∞)"
    return f"Range {left}, {right}."
