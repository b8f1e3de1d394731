"""Pieces every page shares: warnings for a fixed link, the work gate, job progress, the share box,
downloads, and the pair every single-pair page starts from.

Thin Streamlit glue only: numbers come from the engine (:mod:`alignscope.dashboard._cached`), figures
from :mod:`alignscope.dashboard.plots`, state from :mod:`alignscope.dashboard.url_state`.

Work on a page: :func:`fetch` asks the engine for every request the page needs, in priority order. What
is in the store is there at once; what is not is started in the background while the page's running
total of estimates stays within the budget (``ALIGNSCOPE_AUTO_BUDGET_S``); the rest waits for a click on
the gate's Compute button, which shows the estimate. A running job shows its progress and ETA, keeps
running across page switches, and the page fills in when it finishes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from alignscope.core.analysis.engine import Outcome
from alignscope.core.analysis.features import FeaturePlan, ViewFeatures, load_view, modality_problem, plan_features
from alignscope.core.analysis.requests import Request
from alignscope.core.errors import AlignscopeError, FeaturesGone
from alignscope.core.settings import get_settings
from alignscope.dashboard import _cached
from alignscope.dashboard.selection import Selection
from alignscope.dashboard.url_state import bound, note_for_next_run, share_url, update_selection

ERROR_ICON = ":material/error:"
PAGE_ROWS = 200  # rows of a sample table sent to the browser at once
_CLICKED = "_alignscope_clicked"
_SPENT = "_alignscope_spent"
# Characters that start Markdown / Streamlit syntax anywhere (links, images, emphasis, code, HTML, LaTeX,
# :colour[...] and :icon: directives), and those that only do at the start of a line (lists, headings).
_MARKDOWN_ANYWHERE = re.compile(r"([\\`*_{}\[\]<>~$:&|])")
_MARKDOWN_LINE_START = re.compile(r"^(\s*)(\d*)([-+#>.)])", re.MULTILINE)
# Where Streamlit links bare text even with every Markdown character escaped (checked in Chromium: st.caption
# and st.image captions link "https://…", "www.…" and "me@host.org"): a WORD JOINER (U+2060, invisible)
# after the scheme's colon, after "www" and after the "@" breaks each pattern, and the text reads the same.
_AUTOLINK = re.compile(r"(?i)(\bhttps?:|\bwww(?=\.)|@(?=[\w-]+\.[\w-]))")
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    r"""``text`` escaped so Markdown shows it literally: no links (bare URLs and addresses included), images,
    LaTeX, colours or HTML.

    Example:
        >>> plain("![x](http://host/p.png) - $a$ :red[b]").replace(WORD_JOINER, "|")
        '!\\[x\\](http\\:|//host/p.png) - \\$a\\$ \\:red\\[b\\]'
    """
    unlinked = _AUTOLINK.sub(lambda match: match.group(0) + WORD_JOINER, str(text))
    escaped = _MARKDOWN_ANYWHERE.sub(r"\\\1", unlinked)
    escaped = _MARKDOWN_LINE_START.sub(lambda m: m.group(1) + m.group(2) + "\\" + m.group(3), escaped)
    return escaped.replace("\n", "  \n")


def layer_words(index: int, name: str) -> str:
    """A layer for people: its index and its name, or the index alone where the name only repeats it.
    Plain text (``plain`` it for Markdown: a layer's name may be the user's).

    Example:
        >>> layer_words(2, "conv2"), layer_words(6, "layer_6"), layer_words(0, "embeddings")
        ('layer 2 (conv2)', 'layer 6', 'layer 0 (embeddings)')
    """
    redundant = re.sub(r"[\s_.-]", "", name).lower() in (f"layer{index}", str(index))
    return f"layer {index}" if redundant else f"layer {index} ({name})"


def natural_key(text: str) -> tuple:
    """Sort key reading runs of digits as numbers ("row-2" before "row-10").

    Example:
        >>> sorted(["row-10", "row-2", "digit-0042", "row-1"], key=natural_key)
        ['digit-0042', 'row-1', 'row-2', 'row-10']
    """
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def show_warnings(warnings: Sequence[str]) -> None:
    """One warning box listing every setting that was fixed: a tampered or outdated link, or a setting that
    another one made impossible (n beyond a newly picked dataset's size, k beyond n - 1)."""
    if warnings:
        items = "\n".join(f"- {plain(w)}" for w in warnings)
        st.warning(
            f"Some settings could not be used as they were and were replaced by safe values:\n\n{items}",
            icon=":material/warning:",
        )


def show_error(error: Exception | str) -> None:
    st.error(plain(error), icon=ERROR_ICON)


def model_label(name: str) -> str:
    from alignscope.core.models import get_model_spec, install_status

    try:
        spec = get_model_spec(name)
    except AlignscopeError:
        return name
    status = install_status(spec)
    return f"{name} ({spec.modality})" + ("" if status == "yes" else f" — {status}")


def dataset_label(name: str) -> str:
    from alignscope.core.datasets import get_dataset_spec

    try:
        spec = get_dataset_spec(name)
    except AlignscopeError:
        return name
    return f"{name} ({spec.modality})"


def format_seconds(seconds: float) -> str:
    from alignscope.core.numbers import duration

    return duration(seconds)


# --------------------------------------------------------------------------------------------------
# Work: fetch, the gate, progress
# --------------------------------------------------------------------------------------------------


def _clicked() -> set[str]:
    return st.session_state.setdefault(_CLICKED, set())


def _spent(key: str) -> dict[tuple, float]:
    """CPU-seconds started without a click, per (page, view): reruns of one view share one budget, so a
    link can never start more by being rerun (as happens each time one of its jobs finishes)."""
    return st.session_state.setdefault(_SPENT, {})


# Estimates are within 2.4x of the CPU time measured (bench/results/cost.json: the lowest estimate /
# measured ratio is 0.42, on 2 busy cores): work starts by itself only when even that much stays in budget.
AUTO_START_MARGIN = 2.5


def fetch(requests: Sequence[Request], *, key: str) -> list[Outcome]:
    """Outcomes of ``requests`` (priority order), starting work within the budget (see module docstring)."""
    from alignscope.dashboard.url_state import last_query

    budget = get_settings().auto_budget_seconds
    view = (key, tuple(sorted(last_query().items())))
    spent = _spent(key)
    outcomes = []
    clicked = _clicked()
    for request in requests:
        outcome = _cached.outcome(request)
        if outcome.state == "needs_click":
            free = outcome.key in clicked
            cost = outcome.estimate_seconds * AUTO_START_MARGIN
            if free or spent.get(view, 0.0) + cost <= budget:
                if not free:
                    spent[view] = spent.get(view, 0.0) + cost
                outcome = _cached.outcome(request, start=True)
        outcomes.append(outcome)
    waiting = [o for o in outcomes if o.state in ("queued", "running") and o.job is not None]
    # Cheap jobs finish before the page is drawn (no flash of "computing…"); the wait is at most 0.4 s,
    # so a run that starts jobs stays under ~1 s of script time (bench/results/dashboard.json).
    if waiting:
        deadline = time.monotonic() + 0.4
        for o in waiting:
            left = deadline - time.monotonic()
            if left <= 0 or not o.job.wait(left):  # type: ignore[union-attr]
                break
        outcomes = [_cached.outcome(r) if o.state in ("queued", "running") else o for r, o in zip(requests, outcomes)]
    return outcomes


def fetch_one(request: Request, *, key: str, what: str) -> Any | None:
    """One request's result, or None after saying where it stands (computing, or its Compute button)."""
    (outcome,) = fetch([request], key=key)
    if outcome.ready:
        return outcome.result
    if outcome.state not in ("failed", "cancelled"):  # the gate says a failure, once
        status_note(outcome, what)
    gate([outcome], key=f"{key}-gate", what=what)
    return None


def background_work() -> None:
    """The embedded default's extraction in the background (``--prefetch-default``), and a line in the
    sidebar for every job that runs, whichever page started it."""
    if get_settings().prefetch_default:
        _cached.start_prefetch()  # once per server and cache dir
    if _running_jobs():
        with st.sidebar:
            _sidebar_jobs()


def _running_jobs() -> list:
    runner = _cached.engine().runner
    return [job for job in (runner.jobs() if runner is not None else []) if not job.done]


@st.fragment(run_every=1.0)
def _sidebar_jobs() -> None:
    """The jobs that run, refreshed every second; the page reruns when they have all finished (a job another
    page or tab started, or one that ended while this page was drawn, left its line at its last value)."""
    running = _running_jobs()
    if not running:
        st.rerun()
    st.caption(f"{len(running)} background job{'s' if len(running) > 1 else ''}:")
    for job in running[:4]:
        st.progress(min(1.0, job.fraction), text=plain(f"{job.label} · {job.fraction:.0%}"))


def gate(outcomes: Sequence[Outcome], *, key: str, what: str = "the rest of this view") -> None:
    """The work that waits for a click (estimate + Compute button), failures, and live progress."""
    gated = [o for o in outcomes if o.state == "needs_click"]
    failed = [o for o in outcomes if o.state in ("failed", "cancelled")]
    for o in failed:
        st.error(f"{plain(o.prepared.label)}: {plain(o.error or o.state)}", icon=ERROR_ICON)
    if any(o.retryable for o in failed) and st.button("Try again", key=f"retry-{key}", icon=":material/refresh:"):
        _clicked().update(o.key for o in failed if o.key)
        for o in failed:
            _cached.outcome(o.prepared.request, start=True)
        st.rerun()
    if gated:
        total = sum(o.estimate_seconds for o in gated)
        with st.container(border=True):
            st.markdown(
                f"**Computing {plain(what)} takes {format_seconds(total)} of CPU here**, more than a link or a setting "
                f"starts by itself in one view ({format_seconds(get_settings().auto_budget_seconds / AUTO_START_MARGIN)} in all). It runs in "
                "the background, keeps running if you switch pages, and is kept for every later visit."
            )
            st.caption(" · ".join(plain(f"{o.prepared.label} ({format_seconds(o.estimate_seconds)})") for o in gated))
            if st.button(
                f"Compute ({format_seconds(total)})", type="primary", key=f"compute-{key}", icon=":material/play_arrow:"
            ):
                _clicked().update(o.key for o in gated if o.key)
                for o in gated:
                    _cached.outcome(o.prepared.request, start=True)
                st.rerun()
    running = tuple(o.key for o in outcomes if o.state in ("queued", "running") and o.key)
    if running:
        _watch(running, key)


@st.fragment(run_every=1.0)
def _watch(job_keys: tuple[str, ...], key: str) -> None:
    """Progress of running jobs, refreshed every second; the page reruns when they have all finished."""
    runner = _cached.engine().runner
    jobs = [runner.get(k) for k in job_keys] if runner is not None else []
    live = [job for job in jobs if job is not None and not job.done]
    if not live:
        st.rerun()
    with st.container(border=True):
        for job in live:
            eta = job.progress.eta_seconds()
            text = f"{plain(job.label)} · {job.fraction:.0%}" + (f" · {format_seconds(eta)} left" if eta else "")
            columns = st.columns([6, 1])
            columns[0].progress(min(1.0, job.fraction), text=text)
            if columns[1].button("Cancel", key=f"cancel-{key}-{job.key}", icon=":material/close:"):
                job.cancel()


def status_note(outcome: Outcome, what: str) -> None:
    """One line where a result will appear: computing (with progress), waiting for a click, or failed."""
    if outcome.state in ("queued", "running"):
        fraction = outcome.job.fraction if outcome.job is not None else 0.0
        st.caption(f"Computing {plain(what)}… {fraction:.0%}")
    elif outcome.state == "needs_click":
        st.caption(f"{plain(what)} needs {format_seconds(outcome.estimate_seconds)}: press Compute below.")
    elif outcome.state in ("failed", "cancelled"):
        st.caption(f"{plain(what)}: {plain(outcome.error or outcome.state)}")


# --------------------------------------------------------------------------------------------------
# Features: what a view reads, and the gate in front of extraction
# --------------------------------------------------------------------------------------------------


def features_ready(models: Sequence[str], dataset: str, n: int, seed: int, *, key: str) -> bool:
    """True when every model's features are cached; otherwise the plan and a Compute button.

    A link never starts extraction by itself: the button is the only way in. The extraction runs as a
    background job with progress; an uploaded representation (a file read, not a model run) is stored
    without asking.
    """
    try:
        plans = [plan_features(model, dataset, n, seed) for model in dict.fromkeys(models)]
    except AlignscopeError as error:
        show_error(error)
        return False
    missing = [plan for plan in plans if not plan.cached]
    if not missing:
        return True
    engine = _cached.engine()
    reads = [plan for plan in missing if _is_file_read(plan.model)]
    if reads:
        job = engine.extract(tuple(reads), encoders=None)
        job.wait(0.4)  # a small file is read before the page is drawn; a large one shows its progress
        if job.state == "failed":
            show_error(job.error or "could not read the uploaded representation")
            return False
        if not job.done:  # the page script gives its slot back and reruns when the read has finished
            _watch((job.key,), key)
            return False
        st.rerun()
    from alignscope.core.models import get_model_spec, install_status

    unavailable = [plan for plan in missing if install_status(get_model_spec(plan.model)) == "no"]
    for plan in unavailable:
        show_error(f"{plan.model} is not installed here: {_why_not_installed(plan.model)}")
    if unavailable:
        return False
    job = _extraction_job(missing)
    if job is not None and not job.done:
        _watch((job.key,), key)
        return False
    if job is not None and job.state == "failed":
        show_error(job.error or "extraction failed")
    total = sum(plan.estimate_seconds for plan in missing)
    with st.container(border=True):
        st.markdown(
            f"**This view needs features that are not cached yet.** Computing them encodes the samples below "
            f"with each model ({format_seconds(total)} in all on this machine), in the background; afterwards "
            "every view of these models on this dataset opens at once."
        )
        st.dataframe(
            [
                {
                    "model": p.model,
                    "dataset": p.dataset,
                    "samples to encode": p.extract_n,
                    "estimated time": format_seconds(p.estimate_seconds),
                }
                for p in missing
            ],
            hide_index=True,
            width="stretch",
        )
        if st.button("Compute features", type="primary", key=f"compute-{key}", icon=":material/play_arrow:"):
            engine.extract(tuple(missing), encoders=_cached.encoder)
            st.rerun()
    return False


def _extraction_job(plans: Sequence[FeaturePlan]):
    import hashlib

    runner = _cached.engine().runner
    if runner is None:
        return None
    key = hashlib.sha256("|".join(sorted(p.full_key + p.subset_key for p in plans)).encode()).hexdigest()[:32]
    return runner.get(key)


def _is_file_read(model: str) -> bool:
    from alignscope.core.models import get_model_spec

    return get_model_spec(model).kind == "representation"


def _why_not_installed(model: str) -> str:
    from alignscope.core.errors import ModelLoadError
    from alignscope.core.models import get_model_spec
    from alignscope.core.sources import loadable_folder

    try:
        loadable_folder(get_model_spec(model))
    except ModelLoadError as error:
        return str(error)
    except AlignscopeError as error:
        return str(error)
    return "a package that carries its weights is missing"


@dataclass(frozen=True)
class LoadedPair:
    """Features of the selected pair and the layer indices in use (resolved, never -1)."""

    n: int
    view_a: ViewFeatures
    view_b: ViewFeatures
    layer_a: int
    layer_b: int

    @property
    def names_a(self) -> tuple[str, ...]:
        return self.view_a.layer_names

    @property
    def names_b(self) -> tuple[str, ...]:
        return self.view_b.layer_names


def fix_missing_layers(layers: Sequence[tuple[str, str, int, int]]) -> None:
    """A link naming a layer a model does not have: say so, put the last layer in the URL, run again.
    ``layers``: (Selection field, model, its layer index, the model's layer count) each."""
    fixes, notes = {}, []
    for field, model, index, count in layers:
        if count and not -count <= index < count:
            fixes[field] = -1
            notes.append(
                f"{model} has {count} layers (0..{count - 1}); layer {index} does not exist, showing the last one"
            )
    if fixes:
        note_for_next_run(notes, keep_this_runs=True)
        update_selection(**fixes)
        st.rerun()


def layer_picker(label: str, sel: Selection, field: str, layer_names: Sequence[str], help: str | None = None) -> None:
    """A selectbox of ``layer_names`` ("i: name") bound to the layer index ``field`` (-1 shows as the last)."""
    count = len(layer_names)
    bound(
        st.selectbox,
        label,
        sel,
        field,
        options=list(range(count)),
        to_widget=lambda v: v % count,
        format_func=lambda i: f"{i}: {layer_names[i]}",
        help=help,
    )


def load_pair(sel: Selection, *, key: str, layer_widgets: bool = True) -> LoadedPair:
    """Everything before a single-pair page can draw, stopping the page with a message when it cannot:
    a model that cannot encode the dataset, features not cached yet (ask before computing), a load
    error. Adds the layer pickers to the sidebar and fixes layers that do not exist."""
    problems = [p for p in (modality_problem(m, sel.dataset) for m in (sel.model_a, sel.model_b)) if p]
    if problems:
        for problem in dict.fromkeys(problems):
            show_error(problem)
        share_box(sel)
        st.stop()
    if not features_ready([sel.model_a, sel.model_b], sel.dataset, sel.n, sel.seed, key=key):
        share_box(sel)
        st.stop()
    try:
        plan_a = plan_features(sel.model_a, sel.dataset, sel.n, sel.seed)
        plan_b = plan_features(sel.model_b, sel.dataset, sel.n, sel.seed)
        view_a, view_b = load_view(plan_a), load_view(plan_b)
    except FeaturesGone as error:  # planned as cached, gone when read: planned again, they are missing
        st.warning(plain(error), icon=":material/warning:")
        if features_ready([sel.model_a, sel.model_b], sel.dataset, sel.n, sel.seed, key=key):
            show_error(error)  # still planned as cached (a writer between its two renames): not a loop
        share_box(sel)
        st.stop()
    except AlignscopeError as error:
        show_error(error)
        share_box(sel)
        st.stop()
    names_a, names_b = view_a.layer_names, view_b.layer_names
    fix_missing_layers(
        [("layer_a", sel.model_a, sel.layer_a, len(names_a)), ("layer_b", sel.model_b, sel.layer_b, len(names_b))]
    )
    layer_a, layer_b = sel.layer_a % len(names_a), sel.layer_b % len(names_b)
    if layer_widgets:
        with st.sidebar:
            layer_picker("Layer of A", sel, "layer_a", names_a)
            layer_picker("Layer of B", sel, "layer_b", names_b)
    return LoadedPair(plan_a.n, view_a, view_b, layer_a, layer_b)


# --------------------------------------------------------------------------------------------------
# Widgets every pair page has
# --------------------------------------------------------------------------------------------------


def models_for(dataset: str, *, keep: Sequence[str] = ()) -> list[str]:
    """The models that can encode ``dataset``, grouped by modality (image models, then text models, then
    uploaded representations of this dataset), plus ``keep`` (the current choice) at the end if it cannot."""
    from alignscope.core.models import list_models

    order = {"image": 0, "text": 1, "any": 2}
    fitting = [spec for spec in list_models() if modality_problem(spec.name, dataset) is None]
    names = [spec.name for spec in sorted(fitting, key=lambda spec: order.get(spec.modality, 3))]
    return names + [name for name in keep if name not in names]


def picker_label(dataset: str, *, name_first: bool = False) -> Callable[[str], str]:
    """Labels for model pickers: modality first (so groups read as groups), not-installed models marked,
    models that cannot encode the dataset said so. ``name_first``: the name, then the modality (a
    multiselect's chips cut long labels short, and "image · digits-ladde…" would look alike)."""

    def label(name: str) -> str:
        from alignscope.core.models import get_model_spec, install_status

        try:
            spec = get_model_spec(name)
        except AlignscopeError:
            return name
        status = install_status(spec)
        note = "" if status == "yes" else (" — not installed" if status == "no" else " — downloads on first use")
        if modality_problem(name, dataset) is not None:
            note += " — cannot encode this dataset"
        return f"{name} · {spec.modality}{note}" if name_first else f"{spec.modality} · {name}{note}"

    return label


def models_picker(
    sel: Selection, field: str, label: str, *, options: Sequence[str], max_selections: int, help: str | None = None
) -> None:
    """A multiselect of models bound to the tuple field ``field``, labelled as the model pickers are."""
    bound(
        st.multiselect,
        label,
        sel,
        field,
        options=list(options),
        format_func=picker_label(sel.dataset, name_first=True),
        to_widget=list,
        from_widget=tuple,
        max_selections=max_selections,
        help=help,
    )


def pair_widgets(sel: Selection, *, seed_help: str | None = None) -> None:
    """Dataset, model A, model B, n and seed in the sidebar (call inside ``with st.sidebar``); the model
    pickers list the models that can encode the chosen dataset."""
    from alignscope.core.datasets import list_datasets

    dataset_names = [spec.name for spec in list_datasets()]
    size = _cached.dataset_size(sel.dataset) or sel.n
    bound(st.selectbox, "Dataset", sel, "dataset", options=dataset_names, format_func=dataset_label)
    options = models_for(sel.dataset, keep=(sel.model_a, sel.model_b))
    bound(st.selectbox, "Model A", sel, "model_a", options=options, format_func=picker_label(sel.dataset))
    bound(st.selectbox, "Model B", sel, "model_b", options=options, format_func=picker_label(sel.dataset))
    bound(
        st.number_input,
        "Samples (n)",
        sel,
        "n",
        min_value=3,
        max_value=max(3, size),
        step=50,
        help="A seeded subset of the dataset; smaller subsets are nested in larger ones.",
    )
    bound(st.number_input, "Seed", sel, "seed", min_value=0, step=1, help=seed_help)


BEST_LAYERS, FIXED_DEPTH = "best layer pair", "fixed relative depth"


def scoring_widgets(sel: Selection, depth_field: str = "relative_depth") -> None:
    """Dataset, n, seed, metric, k (and similarity), and best layer pair vs a relative depth (the
    Selection's ``depth_field``) — the scoring settings of the pages over many models (call inside
    ``with st.sidebar``)."""
    from alignscope.core.datasets import list_datasets
    from alignscope.core.metrics.registry import list_metrics
    from alignscope.dashboard import _cached

    names = [spec.name for spec in list_datasets()]
    bound(st.selectbox, "Dataset", sel, "dataset", options=names, format_func=dataset_label)
    size = _cached.dataset_size(sel.dataset) or sel.n
    bound(st.number_input, "Samples (n)", sel, "n", min_value=3, max_value=max(3, size), step=50)
    bound(st.number_input, "Seed", sel, "seed", min_value=0, step=1)
    bound(st.selectbox, "Metric", sel, "metric", options=[spec.name for spec in list_metrics()])
    k_widget(sel)
    shape_widgets(sel)
    bound(
        st.radio,
        "Layers",
        sel,
        depth_field,
        options=[BEST_LAYERS, FIXED_DEPTH],
        key_suffix=".mode",
        to_widget=lambda depth: BEST_LAYERS if depth is None else FIXED_DEPTH,
        from_widget=lambda mode: None if mode == BEST_LAYERS else 1.0,
        help="Best: each pair's best-scoring layer pair. Depth: the layer at the same relative depth in each.",
    )
    if getattr(sel, depth_field) is not None:
        bound(
            st.slider,
            "Relative depth (0 = first layer, 1 = last)",
            sel,
            depth_field,
            min_value=0.0,
            max_value=1.0,
            step=0.05,
        )


def shape_widgets(sel: Selection) -> None:
    """Shape distance's α (CCA … Procrustes) and cross-validation folds, when a metric of the page is it."""
    if "shape_distance" not in (sel.metric, *sel.metrics):
        return
    bound(
        st.slider,
        "Shape distance α",
        sel,
        "shape_alpha",
        min_value=0.0,
        max_value=1.0,
        step=0.05,
        help="Williams et al. 2021: 0 = CCA (fully whitened), 1 = Procrustes (rotation only), between: partial "
        "whitening. Every α gives a true distance (the triangle inequality holds).",
    )
    bound(
        st.number_input,
        "Shape distance folds",
        sel,
        "shape_folds",
        min_value=0,
        max_value=20,
        help="0: the rotation is fitted and scored on all samples. >= 2: fitted on the other folds and scored on "
        "each held-out fold (cross-validated, so a flexible fit cannot score well by overfitting).",
    )


def bootstrap_widget(sel: Selection, help: str = "0 turns the interval off.") -> None:
    """The bootstrap resamples of a page's intervals (0 = off; at most MAX_BOOTSTRAP)."""
    from alignscope.dashboard.selection import MAX_BOOTSTRAP

    bound(
        st.number_input,
        "Bootstrap resamples",
        sel,
        "bootstrap",
        min_value=0,
        max_value=MAX_BOOTSTRAP,
        step=50,
        help=help,
    )


def k_widget(sel: Selection, label: str = "k (neighbours)", help: str | None = None) -> None:
    """k, and the neighbour similarity when a metric of the page takes one."""
    from alignscope.core.ann import APPROX_MIN_SAMPLES
    from alignscope.core.metrics.registry import get_metric
    from alignscope.dashboard.selection import NEIGHBORS, SIMILARITIES

    bound(st.number_input, label, sel, "k", min_value=1, max_value=max(1, min(1000, sel.n - 1)), help=help)
    if any("similarity" in {p.name for p in get_metric(m).params} for m in (sel.metric, *sel.metrics)):
        bound(
            st.selectbox,
            "Neighbour similarity",
            sel,
            "similarity",
            options=list(SIMILARITIES),
            help="How k-NN metrics rank neighbours: cosine (platonic-rep's convention), raw inner product "
            "(ip), or Euclidean distance.",
        )
        if sel.n >= APPROX_MIN_SAMPLES or sel.neighbors != "exact":
            bound(
                st.radio,
                "Neighbour search",
                sel,
                "neighbors",
                options=list(NEIGHBORS),
                horizontal=True,
                help="approx: an IVF-Flat index (faiss), many times faster at 10^4-10^5 samples; the recall@k it "
                "measured against exact search is shown beside the score.",
            )


# --------------------------------------------------------------------------------------------------
# Share and export
# --------------------------------------------------------------------------------------------------


def switch_to_compare() -> None:
    """Open the Compare page with the current Selection."""
    from alignscope.dashboard.url_state import last_query

    st.switch_page(st.session_state["_alignscope_pages"]["compare"], query_params=last_query())


def share_box(selection: Selection) -> None:
    """The full link to this view in a code block (which has a copy button), behind a popover button: a
    code block loads the browser's syntax highlighter, ~0.3 s of its main thread on every page open, so it
    loads when the link is asked for."""
    with st.popover("Link to this exact view", icon=":material/link:"):
        st.caption("Copy it with the button on the right:")
        st.code(share_url(selection), language=None, wrap_lines=True)


def export_row(
    sel: Selection, *, page: str, table: tuple[str, object] | None, fig, results: dict[str, object], stem: str
) -> None:
    """The share box, then a table as CSV (``(label, frame)``), the figure as HTML, and a JSON result
    card (``results`` with the link, the settings and the package versions) side by side."""
    from alignscope.dashboard import _cached

    st.subheader("Share and export")
    share_box(sel)
    columns = st.columns(3)
    if table is not None:
        with columns[0]:
            csv_download(table[0], table[1], f"{stem}.csv", key=f"{page}-csv")
    if fig is not None:
        with columns[1]:
            html_download(fig, f"{stem}.html", key=f"{page}-html")
    card = {"alignscope_result": 2, "page": page, "config": sel.to_query(), **results}
    card.update(packages=_cached.package_versions(), link=share_url(sel))
    with columns[2]:
        json_download("Result card (JSON)", card, f"{stem}.json", key=f"{page}-card")


def lazy_download(label: str, make: Callable[[], str | bytes], file_name: str, mime: str, key: str) -> None:
    """A download button whose file ``make()`` builds when it is clicked, on a thread of its own, not on
    every run of the page: a figure's HTML or a table's CSV held the GIL for up to a second per run,
    stalling every other session's page and the server's event loop. A click does not rerun the page
    (``on_click="ignore"``): nothing on it changes, and a rerun would replace the file being fetched."""
    st.download_button(
        label, make, file_name=file_name, mime=mime, key=key, icon=":material/download:", on_click="ignore"
    )


def json_download(label: str, payload: dict, file_name: str, key: str) -> None:
    from alignscope.core.analysis.report import jsonable

    lazy_download(
        label, lambda: json.dumps(jsonable(payload), indent=1, default=str), file_name, "application/json", key
    )


def html_download(fig, file_name: str, key: str) -> None:
    from alignscope.dashboard.plots import figure_html

    lazy_download("Figure (HTML)", lambda: figure_html(fig), file_name, "text/html", key)


def csv_download(label: str, frame, file_name: str, key: str) -> None:
    """A table (index included) as CSV; ``frame`` a DataFrame, or a function making one when clicked."""

    def make() -> bytes:
        table = frame() if callable(frame) else frame
        return table.to_csv(index=True, float_format="%.6g").encode()

    lazy_download(label, make, file_name, "text/csv", key)


def table_page(rows: Sequence[int], *, key: str) -> Sequence[int]:
    """The rows of a long table to send to the browser: a page of :data:`PAGE_ROWS`, picked with a number
    input (widget ``key``) when there is more than one; other rows (a new selection, a search) start on
    their first page. At 100,000 samples a whole selection's table was ~0.4 MB of Arrow on every rerun."""
    pages = max(1, (len(rows) + PAGE_ROWS - 1) // PAGE_ROWS)
    if pages == 1:
        return rows
    rows_key = key + ".rows"  # which rows the page number belongs to: other rows open on their first page
    fingerprint = hash(tuple(rows))
    if st.session_state.get(rows_key) != fingerprint:
        st.session_state[rows_key] = fingerprint
        st.session_state[key] = 1
    page = st.number_input(f"Page (of {pages}, {PAGE_ROWS} rows each)", 1, pages, key=key)
    return rows[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]


def delta_color(delta: float, higher_is_better: bool = True) -> str:
    """``st.metric``'s colour for a difference from chance: grey where it rounds to zero at the 3 decimals
    shown (a green "+0.000" read as "above chance"), else green when it is the better direction."""
    if round(delta, 3) == 0:
        return "off"
    return "normal" if higher_is_better else "inverse"
