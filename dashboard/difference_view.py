"""The paired difference of two models' alignment to a third, as a page section (Compare, Trends):
pickers bound to the URL (``a``, ``b``, ``vs``), the request through the engine, the verdict in words."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from alignscope.core.analysis.differences import Difference, DifferenceRequest
from alignscope.core.errors import AlignscopeError
from alignscope.core.numbers import signed
from alignscope.dashboard import ui
from alignscope.dashboard.selection import Selection
from alignscope.dashboard.url_state import update_selection

NOBODY = "—"


def _label(dataset: str):
    label = ui.picker_label(dataset)
    return lambda name: name if name == NOBODY else label(name)


def paired_difference(
    sel: Selection,
    models: Sequence[str],
    references: Sequence[str],
    *,
    default_a: str,
    default_b: str,
    depth: float | None,
    key: str,
    fixed_pair: bool = False,
    optional: bool = False,
) -> Selection:
    """Pick A and B among ``models`` (fixed to the Selection's pair when ``fixed_pair``) and the third
    model among ``references``; show score(A, X) − score(B, X) at ``depth`` (None: each pair's best layer
    pair) with its paired interval and p. Returns the Selection as the pickers left it: the three once the
    user picks one, never just the defaults shown for a Selection whose A or B is not among ``models``
    (they would overwrite the other pages' A and B). ``optional``: nothing is computed until a third model
    is picked.

    Each picker's key names the value it starts from: a keyed widget keeps its value when its ``index``
    changes, so a picker still holding an old default would read as the user's pick."""
    st.subheader("Is one model really more aligned than the other?")
    models = list(models)
    shown_a = sel.model_a if sel.model_a in models else default_a
    shown_b = sel.model_b if sel.model_b in models and sel.model_b != shown_a else default_b
    a, b = shown_a, shown_b
    columns = st.columns(3)
    if fixed_pair:
        columns[0].markdown(ui.plain(f"A: {a}"))
        columns[1].markdown(ui.plain(f"B: {b}"))
    else:
        a = columns[0].selectbox("A", models, index=models.index(a), key=f"{key}-a-{shown_a}")
        b = columns[1].selectbox("B", models, index=models.index(b), key=f"{key}-b-{shown_b}")
    choices = [r for r in references if r not in (a, b)]
    if a == b or not choices:
        st.info("Pick two different models and a third to score both against.", icon=":material/info:")
        return sel
    if optional:
        choices = [NOBODY, *choices]
    if sel.versus in (a, b):  # a link's third model that is one of the two (another page's is just not shown)
        st.warning(ui.plain(f"The third model {sel.versus!r} is A or B; pick another."), icon=":material/warning:")
    shown_versus = sel.versus if sel.versus in choices else choices[0]
    versus = columns[2].selectbox(
        "against",
        choices,
        index=choices.index(shown_versus),
        key=f"{key}-x-{shown_versus}",
        format_func=_label(sel.dataset),
    )
    if versus == NOBODY:
        if sel.versus is not None:
            update_selection(versus=None)
        st.caption("Pick a third model to test whether A or B is more aligned to it.")
        return sel
    if (a, b, versus) != (shown_a, shown_b, shown_versus):  # the user picked: the link holds the three
        sel = update_selection(model_a=a, model_b=b, versus=versus)
    layers = "best" if depth is None else f"depth:{depth}"
    params = sel.metric_params()
    resamples = max(sel.bootstrap, 200)
    try:
        request = DifferenceRequest(a, b, versus, sel.dataset, sel.n, sel.seed, sel.metric, params, layers, resamples)
    except AlignscopeError as error:
        ui.show_error(error)
        return sel
    if not ui.features_ready((versus,), sel.dataset, sel.n, sel.seed, key=f"{key}-features"):
        return sel
    (outcome,) = ui.fetch([request], key=key)
    if outcome.ready:
        show_difference(outcome.result)
    else:
        ui.status_note(outcome, "the paired difference")
        ui.gate([outcome], key=f"{key}-gate", what="the paired difference")
    return sel


def show_difference(result: Difference) -> None:
    """The verdict, the two scores, the difference with its interval and p, and the layers behind them."""
    test = result.test
    winner = result.model_a if (test.difference > 0) == test.higher_is_better else result.model_b
    verdict = (
        "No detectable difference"
        if test.ci_low <= 0 <= test.ci_high
        else f"{winner} is more aligned to {result.reference}"
    )
    columns = st.columns(3)
    columns[0].metric(ui.plain(f"A: {result.model_a}"), f"{test.score_a:.4f}")
    columns[1].metric(ui.plain(f"B: {result.model_b}"), f"{test.score_b:.4f}")
    columns[2].metric("A − B", signed(test.difference, 4), help="paired: the same samples, the same resampled rows")
    st.markdown(
        ui.plain(
            f"{verdict}: {test.confidence:.0%} paired interval [{signed(test.ci_low, 4)}, {signed(test.ci_high, 4)}], "
            f"{test.p_text} ({test.p_basis})."
        )
    )
    st.caption(
        ui.plain(
            f"{test.metric} against {result.reference}, layers ({result.layers}): A {' × '.join(result.layer_names_a)}, "
            f"B {' × '.join(result.layer_names_b)}. {result.selection_note}"
        )
    )
