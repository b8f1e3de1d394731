"""Many models: a model × model matrix of one metric (best layer pair or one relative depth), ordered
by hierarchical clustering, and the GRAM n-way volume of the whole set."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.core.analysis.features import modality_problem, plan_features
from alignscope.core.analysis.identification import identification_request
from alignscope.core.analysis.requests import GramRequest, ModelMatrixRequest, PairRequest
from alignscope.core.analysis.results import GramVolume, ModelMatrix
from alignscope.core.convergent import LayerIdentification
from alignscope.core.defaults import DEFAULT_SELECTION
from alignscope.core.metrics.registry import get_metric
from alignscope.core.models import get_model_spec, install_status
from alignscope.core.numbers import fixed, signed
from alignscope.dashboard import plots, ui
from alignscope.dashboard.convergence_view import convergent_learning
from alignscope.dashboard.selection import MAX_MODELS, Selection
from alignscope.dashboard.url_state import note_for_next_run, update_selection


def _follow_the_dataset(sel: Selection) -> None:
    """A set with models that cannot encode the dataset (a stale set from another dataset) keeps the pair
    and its models that can, topped up to the default set's size with other installed models that can,
    with a note — never an error for the whole page."""
    stale = [m for m in sel.models if modality_problem(m, sel.dataset) is not None]
    if not stale:
        return
    fitting = [
        m for m in dict.fromkeys((sel.model_a, sel.model_b, *sel.models)) if modality_problem(m, sel.dataset) is None
    ]
    others = [m for m in ui.models_for(sel.dataset) if m not in fitting and install_status(get_model_spec(m)) == "yes"]
    chosen = tuple((fitting + others)[: min(MAX_MODELS, max(len(fitting), len(DEFAULT_SELECTION.models)))])
    if len(chosen) < 2:
        return  # nothing better to offer: the page explains the mismatch
    note_for_next_run([f"{', '.join(stale)} cannot encode {sel.dataset}; showing {', '.join(chosen)} instead"])
    update_selection(models=chosen)
    st.rerun()


def _sidebar(sel: Selection) -> None:
    model_names = ui.models_for(sel.dataset, keep=sel.models)
    with st.sidebar:
        st.header("Model set")
        ui.models_picker(
            sel,
            "models",
            "Models",
            options=model_names,
            max_selections=MAX_MODELS,
            help="Two or more models of the dataset's modality.",
        )
        ui.scoring_widgets(sel)


def _clicked_cell() -> None:
    """on_select of the matrix: remember the clicked cell (the page opens it, see :func:`_open_clicked`)."""
    points = st.session_state.get("many-matrix", {}).get("selection", {}).get("points", [])
    if points:
        st.session_state["many-open"] = tuple(int(v) for v in points[0]["customdata"][:4])


def _open_clicked(sel: Selection) -> None:
    """A clicked off-diagonal cell opens its two models, at that cell's layer pair, in Compare."""
    cell = st.session_state.pop("many-open", None)
    if cell is None or cell[0] == cell[1] or max(cell[:2]) >= len(sel.models):
        return
    i, j, layer_i, layer_j = cell
    update_selection(model_a=sel.models[i], model_b=sel.models[j], layer_a=layer_i, layer_b=layer_j)
    ui.switch_to_compare()


def _gram(sel: Selection, outcome) -> GramVolume | None:
    st.subheader("GRAM volume of the whole set")
    if not outcome.ready:
        ui.status_note(outcome, "the GRAM volume")
        return None
    gram: GramVolume = outcome.result
    if gram.problem:
        st.info(ui.plain(gram.problem), icon=":material/info:")
        return gram
    depth = 1.0 if sel.relative_depth is None else sel.relative_depth
    left, right = st.columns(2)
    left.metric(
        "GRAM volume (↓ more aligned)",
        f"{gram.volume:.3f}",
        delta=f"{signed(gram.volume - gram.chance)} vs chance",
        delta_color=ui.delta_color(gram.volume - gram.chance, higher_is_better=False),
    )
    right.metric("Chance (rows shuffled)", f"{gram.chance:.3f}", help=f"sd {gram.chance_std:.3f} over 20 shuffles")
    st.caption(
        f"Mean volume of the parallelotope spanned by each sample's L2-normalised embeddings from all "
        f"{len(sel.models)} models (layers {list(gram.layers)} at relative depth {depth:.2f}, width {gram.widths[0]}): "
        "0 = identical directions, 1 = mutually orthogonal. It compares raw coordinates, so it is meaningful for "
        "models that share an embedding space; independently trained nets can score near chance even when "
        "their neighbourhoods agree."
    )
    return gram


def _cell_requests(sel: Selection, result: ModelMatrix) -> dict[tuple[int, int], PairRequest]:
    """One PairRequest per scored cell with the page's permutations and bootstrap (a symmetric metric: the
    upper triangle only; the lower one mirrors it): at each pair's best layer pair the whole search
    (``layers="all"``: its p corrected for the layer pairs searched, its interval at the best pair), at a
    fixed depth the cell's own layer pair (the request Compare makes for that pair and layers)."""
    symmetric = get_metric(sel.metric).symmetric_for(dict(result.params))
    cells = {}
    for i, model_i in enumerate(sel.models):
        for j, model_j in enumerate(sel.models):
            if i == j or (symmetric and j < i):
                continue
            layer_i, layer_j = (int(v) for v in result.layers[i, j])
            layers = "all" if result.relative_depth is None else f"{layer_i},{layer_j}"
            cells[i, j] = PairRequest(
                model_i,
                model_j,
                sel.dataset,
                sel.n,
                sel.seed,
                sel.metric,
                sel.metric_params(),
                layers,
                sel.permutations,
                sel.bootstrap,
            )
    return cells


def _cell_statistics(sel: Selection, result: ModelMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """[m, m] p-values and interval bounds of every cell (NaN where not computed yet), or None when the
    page asks for no permutations and no bootstrap. Over the budget: a button, as everywhere."""
    if not (sel.permutations or sel.bootstrap):
        return None
    cells = _cell_requests(sel, result)
    outcomes = dict(zip(cells, ui.fetch(list(cells.values()), key="many-cells")))
    count = len(sel.models)
    p, low, high = (np.full((count, count), np.nan) for _ in range(3))
    for (i, j), outcome in outcomes.items():
        if not outcome.ready:
            continue
        score = outcome.result
        chosen = score.p_maxstat if score.pairs_searched > 1 else score.p_value  # a search's: corrected
        for a, b in ((i, j), (j, i)) if (j, i) not in cells else ((i, j),):
            p[a, b] = np.nan if chosen is None else chosen
            low[a, b] = np.nan if score.ci_low is None else score.ci_low
            high[a, b] = np.nan if score.ci_high is None else score.ci_high
    waiting = [o for o in outcomes.values() if not o.ready]
    if waiting:
        st.caption(f"Per-cell p-values and intervals: {len(outcomes) - len(waiting)} of {len(outcomes)} pairs ready.")
    ui.gate(list(outcomes.values()), key="many-cells-gate", what="per-cell p-values and intervals")
    return p, low, high


def _family_layers(sel: Selection) -> tuple[str, ...] | None:
    """The set's layer names when its nets share one architecture (the same layer count), else None."""
    names = [plan_features(m, sel.dataset, sel.n, sel.seed).layer_names for m in sel.models]
    return names[0] if len({len(n) for n in names}) == 1 else None


def _identification(sel: Selection) -> LayerIdentification | None:
    """Kornblith et al.'s sanity check on the set (its nets share one architecture)."""
    st.subheader("Layer identification")
    metrics = tuple(dict.fromkeys((sel.metric, *sel.metrics)))
    request = identification_request(
        tuple(sel.models), sel.dataset, sel.n, metrics, seed=sel.seed, k=sel.k, similarity=sel.similarity
    )
    result: LayerIdentification | None = ui.fetch_one(request, key="many-identify", what="layer identification")
    if result is None:
        return None
    frame = pd.DataFrame(
        {label: [result.accuracy[label], *result.per_layer[label]] for label in result.accuracy},
        index=["all layers", *(f"layer {i}" for i in range(result.n_layers))],
    ).T
    st.dataframe(frame.style.format(functools.partial(fixed, digits=2)), width="stretch")
    st.caption(
        f"How often each metric's best layer of another net is the same layer (Kornblith et al. 2019, Table 2): "
        f"{result.n_ordered_pairs} ordered pairs × {result.n_layers} layers; chance {result.chance:.2f}."
    )
    return result


def render(sel: Selection) -> None:
    st.title("Many models")
    _follow_the_dataset(sel)
    _open_clicked(sel)
    _sidebar(sel)
    if len(sel.models) < 2:
        st.info("Choose at least two models (three or more to see clustering).", icon=":material/info:")
        st.stop()
    problems = [p for p in (modality_problem(m, sel.dataset) for m in sel.models) if p]
    if problems:
        for problem in problems:
            ui.show_error(problem)
        ui.share_box(sel)
        st.stop()
    if not ui.features_ready(sel.models, sel.dataset, sel.n, sel.seed, key="many"):
        ui.share_box(sel)
        st.stop()
    params = sel.metric_params()
    matrix_request = ModelMatrixRequest(
        tuple(sel.models), sel.dataset, sel.n, sel.seed, sel.metric, params, sel.relative_depth
    )
    depth = 1.0 if sel.relative_depth is None else sel.relative_depth
    gram_request = GramRequest(tuple(sel.models), sel.dataset, sel.n, sel.seed, depth)
    matrix_out, gram_out = ui.fetch([matrix_request, gram_request], key="many")
    spec = get_metric(sel.metric)
    result: ModelMatrix | None = matrix_out.result if matrix_out.ready else None
    fig = frame = None
    if result is None:
        ui.status_note(matrix_out, f"{sel.metric} for {len(sel.models) ** 2} model pairs")
    else:
        bounded = all(np.isfinite(spec.value_range))
        statistics = _cell_statistics(sel, result)
        fig = plots.model_matrix(
            result.values,
            list(sel.models),
            metric=sel.metric,
            order=list(result.order),
            value_range=spec.value_range if bounded else None,
            chance=result.chance,
            layers=result.layers,
            statistics=statistics,
            search_chance=result.search_chance,
            p_label="permutation"
            if result.relative_depth is not None
            else "permutation, corrected for the layer search",
            p_floor=1.0 / (sel.permutations + 1) if sel.permutations else None,
        )
        st.plotly_chart(fig, key="many-matrix", on_select=_clicked_cell, selection_mode="points")
        where = (
            "each pair's best layer pair" if sel.relative_depth is None else f"relative depth {sel.relative_depth:.2f}"
        )
        st.caption(
            ui.plain(
                f"{sel.metric} ({'higher' if spec.higher_is_better else 'lower'} is more aligned) at {where}, on "
                f"{sel.dataset}, n = {result.n_samples} (seed {sel.seed}). Rows and columns are ordered by "
                "average-linkage clustering. Click a cell to open the pair in Compare."
                + (
                    " Each cell is the best of its pair's layer pairs: the hover gives where that best lands on "
                    "average with no alignment (shuffled correspondences) and a p corrected for the search."
                    if result.search_chance is not None
                    else " Each cell is the best of its pair's layer pairs, so even with no alignment it would sit "
                    "above the one-pair chance level in its hover; the hover's p is corrected for the search."
                    if sel.relative_depth is None
                    else ""
                )
            )
        )
        frame = pd.DataFrame(result.values, index=list(sel.models), columns=list(sel.models))
        layer_frame = pd.DataFrame(
            [[f"{int(c[0])}×{int(c[1])}" for c in row] for row in result.layers],
            index=list(sel.models),
            columns=list(sel.models),
        )
        with st.expander("Scores and the layer pair behind each cell"):
            st.caption("Scores: the row's model as A against the column's as B.")
            st.dataframe(frame.style.format(functools.partial(fixed, digits=4)), width="stretch")
            st.caption("The layer pair behind each score (A's layer × B's layer).")
            st.dataframe(layer_frame, width="stretch")
            if result.search_chance is not None:
                st.caption("Where each best layer pair lands on average with no alignment (shuffled correspondences).")
                search_frame = pd.DataFrame(result.search_chance, index=list(sel.models), columns=list(sel.models))
                st.dataframe(search_frame.style.format(functools.partial(fixed, digits=4)), width="stretch")
    gram = _gram(sel, gram_out)
    ui.gate([matrix_out, gram_out], key="many-gate", what="the model matrix")
    layer_names = _family_layers(sel)
    identification, convergent = None, {}
    if layer_names is None:
        st.caption(
            "Layer identification and convergent learning need nets of one architecture (the same number of "
            "layers), e.g. the digits CNNs from three seeds."
        )
    else:
        identification = _identification(sel)
        convergent = convergent_learning(sel, layer_names)

    ui.export_row(
        sel,
        page="many-models",
        table=("Matrix (CSV)", frame) if frame is not None else None,
        fig=fig,
        results={"matrix": result, "gram": gram, "layer_identification": identification, **convergent},
        stem="alignscope-models",
    )


if __name__ == "__main__":  # run by st.navigation as one page of dashboard/app.py
    from alignscope.dashboard.pages import run_page

    run_page("many_models")
