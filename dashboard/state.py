"""A frozen :class:`Selection` <-> URL query parameters, validated both ways.

The Selection is the single source of truth for what every page shows. The URL is just another
serialisation of it: :meth:`Selection.to_query` writes every field (so a link keeps its meaning even if
a default changes later) and :meth:`Selection.from_query` reads any mapping of strings back, replacing
every invalid or tampered value by a safe default and saying so in a human-readable warning. Parsing
never raises.

Parameter names (short, so links stay readable):

====== ============== =========================================================
key    field          meaning
====== ============== =========================================================
a, b   model_a/b      the pair on the Compare / Sweeps / Neighbours pages
models models         comma-separated, the Many-models set (2..12)
data   dataset        registered dataset name
n      n              samples (a seeded nested subset); 3..dataset size
seed   seed           subset / permutation / bootstrap seed
metric metric         the metric of heatmaps, matrices and sweeps
metrics metrics       comma-separated, the headline metrics shown side by side
k      k              neighbours for k-NN metrics, 1..min(n-1, 1000)
la, lb layer_a/b      layer index, -1 = last
depth  relative_depth ``best`` (best layer pair) or a relative depth in [0, 1]
perm   permutations   permutation-test shuffles (0 = off)
boot   bootstrap      bootstrap resamples (0 = off)
sweep  sweep          k | n | prefix | depth
proj   projection     pca | umap | aligned_umap
nn     umap_neighbors UMAP n_neighbors, 2..100
md     umap_min_dist  UMAP min_dist, 0..1
align  alignment      aligned UMAP alignment_regularisation, one of ALIGNMENT_STRENGTHS
color  color_by       label | alignment
sel    selected       comma-separated sample ids (at most 500)
====== ============== =========================================================

The second half of the module binds a Selection to Streamlit (query params, session state, widget
callbacks). Pages read with :func:`read_selection`, create widgets with :func:`bound` and write with
:func:`update_selection`; nothing else touches ``st.query_params``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MODELS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
DEFAULT_METRICS = ("mutual_knn", "cknna", "linear_cka")
PROJECTIONS = ("pca", "umap", "aligned_umap")
COLOR_BY = ("label", "alignment")
SWEEPS = ("k", "n", "prefix", "depth")
MAX_SAMPLES = 200_000
MAX_K = 1000
MAX_MODELS = 12
MAX_METRICS = 8
MAX_SELECTED = 500  # ~5 KB of ids: every browser and proxy keeps URLs of that length
ALIGNMENT_STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
MAX_PERMUTATIONS = 5000
MAX_BOOTSTRAP = 2000
MAX_SEED = 2**31 - 1
MAX_LAYER = 999
_SAMPLE_ID = re.compile(r"^[^\x00-\x1f\x7f,]{1,200}$")
_INT = re.compile(r"^[+-]?\d{1,12}$")
# Streamlit's own query parameters: never ours, never warned about.
_RESERVED = frozenset({"embed", "embed_options"})

# field name -> URL key
QUERY_KEYS: dict[str, str] = {
    "model_a": "a",
    "model_b": "b",
    "models": "models",
    "dataset": "data",
    "n": "n",
    "seed": "seed",
    "metric": "metric",
    "metrics": "metrics",
    "k": "k",
    "layer_a": "la",
    "layer_b": "lb",
    "relative_depth": "depth",
    "permutations": "perm",
    "bootstrap": "boot",
    "sweep": "sweep",
    "projection": "proj",
    "umap_neighbors": "nn",
    "umap_min_dist": "md",
    "alignment": "align",
    "color_by": "color",
    "selected": "sel",
}


@dataclass(frozen=True)
class Selection:
    """Everything a page needs to reproduce its view. Defaults: the embedded digits comparison."""

    model_a: str = "digits-cnn-s0"
    model_b: str = "digits-cnn-s1"
    models: tuple[str, ...] = DEFAULT_MODELS
    dataset: str = "digits"
    n: int = 500
    seed: int = 0
    metric: str = "mutual_knn"
    metrics: tuple[str, ...] = DEFAULT_METRICS
    k: int = 10
    layer_a: int = -1
    layer_b: int = -1
    relative_depth: float | None = None  # None = best layer pair
    permutations: int = 200
    bootstrap: int = 100
    sweep: str = "k"
    projection: str = "pca"
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    alignment: float = 0.01
    color_by: str = "label"
    selected: tuple[str, ...] = ()

    # -- URL ------------------------------------------------------------------------------------------

    def to_query(self) -> dict[str, str]:
        """Every field as a string, keyed by its short URL name."""
        out = {}
        for field, key in QUERY_KEYS.items():
            value = getattr(self, field)
            if isinstance(value, tuple):
                text = ",".join(value)
            elif value is None:
                text = "best"
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            out[key] = text
        return out

    @classmethod
    def from_query(
        cls,
        params: Mapping[str, Any],
        *,
        dataset_size: Callable[[str], int | None] | None = None,
    ) -> tuple[Selection, list[str]]:
        """Parse query parameters; every bad value becomes its default, with a warning that says why.

        Args:
            params: ``{key: str | list[str]}`` (a list counts by its last entry, as Streamlit does).
            dataset_size: optional ``name -> number of samples`` to bound ``n``; without it only the
                global limit of 200,000 applies.

        Returns:
            (selection, warnings). Never raises.
        """
        try:
            return _parse(params, dataset_size)
        except Exception as error:  # a bug here must not take the app down with it
            return cls(), [f"The link could not be read ({type(error).__name__}); showing the default view."]

    def replace(
        self, *, dataset_size: Callable[[str], int | None] | None = None, **changes: Any
    ) -> tuple[Selection, list[str]]:
        """A validated copy with ``changes`` (field names) applied; dependent fields are clamped."""
        query = self.to_query()
        for field, value in changes.items():
            if field not in QUERY_KEYS:
                return self, [f"unknown field {field!r}"]
            query[QUERY_KEYS[field]] = dataclasses.replace(self, **{field: value}).to_query()[QUERY_KEYS[field]]
        return Selection.from_query(query, dataset_size=dataset_size)

    def effective_n(self, dataset_size: int | None) -> int:
        return self.n if dataset_size is None else min(self.n, dataset_size)


# --------------------------------------------------------------------------------------------------
# Parsing (pure)
# --------------------------------------------------------------------------------------------------


def _registered_models() -> list[str]:
    from alignscope.core.models import list_models

    return [spec.name for spec in list_models()]


def _registered_datasets() -> list[str]:
    from alignscope.core.datasets import list_datasets

    return [spec.name for spec in list_datasets()]


def _registered_metrics() -> list[str]:
    from alignscope.core.metrics.registry import list_metrics

    return [spec.name for spec in list_metrics()]


def _show(raw: Any, limit: int = 40) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last(raw: Any) -> Any:
    if isinstance(raw, (list, tuple)):
        return raw[-1] if raw else ""
    return raw


def _parse(params: Mapping[str, Any], dataset_size: Callable[[str], int | None] | None) -> tuple[Selection, list[str]]:
    default = Selection()
    warnings: list[str] = []
    values: dict[str, Any] = {}
    known_keys = set(QUERY_KEYS.values())
    raw_by_key: dict[str, str] = {}
    for key in list(params.keys())[:200]:
        if not isinstance(key, str):
            warnings.append(f"ignored parameter {_show(key)}: not a text key")
            continue
        if key in _RESERVED:
            continue
        if key not in known_keys:
            warnings.append(f"ignored unknown parameter {_show(key)}")
            continue
        raw = _last(params[key])
        if not isinstance(raw, str):
            raw = "" if raw is None else str(raw)
        raw_by_key[key] = raw[:20_000]

    models = _registered_models()
    datasets = _registered_datasets()
    metrics = _registered_metrics()

    def fix(field: str, reason: str) -> None:
        key = QUERY_KEYS[field]
        shown = getattr(default, field)
        shown = ",".join(shown) if isinstance(shown, tuple) else ("best" if shown is None else shown)
        warnings.append(f"{key}={_show(raw_by_key.get(key, ''))}: {reason}; using {key}={shown}")

    def choice(field: str, options: list[str] | tuple[str, ...], what: str) -> None:
        key = QUERY_KEYS[field]
        if key not in raw_by_key:
            return
        raw = raw_by_key[key].strip()
        if raw in options:
            values[field] = raw
        else:
            listing = ", ".join(options[:12]) + (", …" if len(options) > 12 else "")
            fix(field, f"unknown {what} (choose from {listing})")

    def integer(field: str, low: int, high: int, what: str) -> None:
        key = QUERY_KEYS[field]
        if key not in raw_by_key:
            return
        raw = raw_by_key[key].strip()
        if not _INT.match(raw):
            fix(field, f"{what} must be a whole number")
            return
        value = int(raw)
        if not low <= value <= high:
            fix(field, f"{what} must lie in [{low}, {high}]")
            return
        values[field] = value

    def name_list(field: str, options: list[str], what: str, low: int, high: int) -> None:
        key = QUERY_KEYS[field]
        if key not in raw_by_key:
            return
        items = [item.strip() for item in raw_by_key[key].split(",") if item.strip()]
        unknown = [item for item in items if item not in options]
        kept = list(dict.fromkeys(item for item in items if item in options))
        if unknown:
            warnings.append(
                f"{key}: ignored unknown {what} {', '.join(_show(u, 30) for u in unknown[:5])}"
                + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            )
        if len(kept) > high:
            warnings.append(f"{key}: at most {high} {what}s; kept the first {high}")
            kept = kept[:high]
        if len(kept) < low:
            fix(field, f"needs at least {low} known {what}s")
            return
        values[field] = tuple(kept)

    choice("model_a", models, "model")
    choice("model_b", models, "model")
    name_list("models", models, "model", 2, MAX_MODELS)
    choice("dataset", datasets, "dataset")
    integer("seed", 0, MAX_SEED, "seed")
    choice("metric", metrics, "metric")
    name_list("metrics", metrics, "metric", 1, MAX_METRICS)
    integer("layer_a", -MAX_LAYER, MAX_LAYER, "layer")
    integer("layer_b", -MAX_LAYER, MAX_LAYER, "layer")
    integer("permutations", 0, MAX_PERMUTATIONS, "permutations")
    integer("bootstrap", 0, MAX_BOOTSTRAP, "bootstrap resamples")
    if values.get("bootstrap") == 1:  # one resample has no spread
        values["bootstrap"] = 2
        warnings.append("boot=1: a bootstrap needs at least 2 resamples (0 turns it off); using 2")
    choice("sweep", SWEEPS, "sweep")
    choice("projection", PROJECTIONS, "projection")
    integer("umap_neighbors", 2, 100, "UMAP n_neighbors")

    def number(field: str, allowed: Callable[[float], bool], what: str) -> None:
        key = QUERY_KEYS[field]
        if key not in raw_by_key:
            return
        try:
            value = float(raw_by_key[key].strip())
        except ValueError:
            value = math.nan
        if math.isfinite(value) and allowed(value):
            values[field] = value
        else:
            fix(field, f"{what} is out of range")

    number("umap_min_dist", lambda v: 0.0 <= v <= 1.0, "UMAP min_dist (0..1)")
    number("alignment", lambda v: any(math.isclose(v, a) for a in ALIGNMENT_STRENGTHS),
           f"alignment strength (one of {', '.join(map(str, ALIGNMENT_STRENGTHS))})")
    choice("color_by", COLOR_BY, "colouring")

    # n depends on the dataset; k depends on n.
    dataset = values.get("dataset", default.dataset)
    size = None
    if dataset_size is not None:
        try:
            size = dataset_size(dataset)
        except Exception:
            size = None
    n_high = MAX_SAMPLES if size is None else max(3, min(MAX_SAMPLES, int(size)))
    if "n" in raw_by_key:
        raw = raw_by_key["n"].strip()
        if not _INT.match(raw):
            fix("n", "n must be a whole number of samples")
        elif int(raw) < 3 or int(raw) > MAX_SAMPLES:
            fix("n", f"n must lie in [3, {MAX_SAMPLES}]")
        elif int(raw) > n_high:
            values["n"] = n_high
            warnings.append(f"n={raw}: dataset {dataset!r} has {n_high} samples; using n={n_high}")
        else:
            values["n"] = int(raw)
    if "n" not in values and default.n > n_high:
        values["n"] = n_high
    n = values.get("n", default.n)
    k_high = max(1, min(MAX_K, n - 1))
    if "k" in raw_by_key:
        raw = raw_by_key["k"].strip()
        if not _INT.match(raw) or int(raw) < 1:
            fix("k", "k must be a whole number of neighbours >= 1")
        elif int(raw) > k_high:
            values["k"] = min(default.k, k_high)
            warnings.append(f"k={_show(raw)}: k must lie in [1, {k_high}] for n={n}; using k={values['k']}")
        else:
            values["k"] = int(raw)
    if "k" not in values and default.k > k_high:
        values["k"] = k_high
        warnings.append(f"k: the default k={default.k} needs n > {default.k}; using k={k_high} for n={n}")

    if "depth" in raw_by_key:
        raw = raw_by_key["depth"].strip().lower()
        if raw in ("best", ""):
            values["relative_depth"] = None
        else:
            try:
                depth = float(raw)
            except ValueError:
                depth = math.nan
            if math.isfinite(depth) and 0.0 <= depth <= 1.0:
                values["relative_depth"] = depth
            else:
                fix("relative_depth", "depth must be 'best' or a number in [0, 1]")

    if "sel" in raw_by_key:
        items = [item for item in raw_by_key["sel"].split(",") if item]
        good = list(dict.fromkeys(item for item in items if _SAMPLE_ID.match(item)))
        if len(good) < len(items):
            warnings.append(f"sel: ignored {len(items) - len(good)} malformed or repeated sample ids")
        if len(good) > MAX_SELECTED:
            warnings.append(f"sel: at most {MAX_SELECTED} selected samples; kept the first {MAX_SELECTED}")
            good = good[:MAX_SELECTED]
        values["selected"] = tuple(good)

    return dataclasses.replace(default, **values), warnings


# --------------------------------------------------------------------------------------------------
# Streamlit binding
# --------------------------------------------------------------------------------------------------

_LAST_QUERY = "_alignscope_last_query"
_PENDING_NOTES = "_alignscope_notes"
_RUN_NOTES = "_alignscope_run_notes"
_WIDGET_PREFIX = "sel."


def _dataset_size(name: str) -> int | None:
    from alignscope.dashboard._cached import dataset_size

    return dataset_size(name)


def _query_from_url() -> dict[str, list[str]]:
    import streamlit as st

    return {key: st.query_params.get_all(key) for key in st.query_params.keys()}


def last_query() -> dict[str, str]:
    """The query string of this session's current Selection (as last written to the URL)."""
    import streamlit as st

    return dict(st.session_state.get(_LAST_QUERY, {}))


def write_selection(selection: Selection) -> None:
    """Put ``selection`` in the URL (only when it differs) and remember it for page switches."""
    import streamlit as st

    query = selection.to_query()
    st.session_state[_LAST_QUERY] = query
    current = {key: values[-1] for key, values in _query_from_url().items() if values}
    if current != query:
        st.query_params.from_dict(query)


def read_selection() -> tuple[Selection, list[str]]:
    """The page's Selection from the URL, plus warnings for anything that had to be fixed.

    A page switch drops the query string; the last Selection of this session is restored then, so
    state survives switching pages. The URL is rewritten in canonical form (fixed values included).
    """
    import streamlit as st

    params = _query_from_url()
    if not params and _LAST_QUERY in st.session_state:
        params = dict(st.session_state[_LAST_QUERY])
    selection, warnings = Selection.from_query(params, dataset_size=_dataset_size)
    write_selection(selection)
    notes = list(st.session_state.pop(_PENDING_NOTES, [])) + warnings
    st.session_state[_RUN_NOTES] = notes  # kept across an st.rerun by note_for_next_run
    return selection, notes


def note_for_next_run(notes: list[str], *, keep_this_runs: bool = False) -> None:
    """Warnings to show on the next run. ``keep_this_runs``: also repeat this run's link fixes, for a
    page that calls ``st.rerun`` before its warnings could be seen."""
    import streamlit as st

    this_run = st.session_state.pop(_RUN_NOTES, [])
    carried = [*(this_run if keep_this_runs else []), *st.session_state.get(_PENDING_NOTES, [])]
    st.session_state[_PENDING_NOTES] = list(dict.fromkeys([*carried, *notes]))


def update_selection(**changes: Any) -> Selection:
    """Apply ``changes`` (field names) to the current Selection, validated, and write it to the URL.

    Safe in widget callbacks. Clamping notes (e.g. n larger than a new dataset) are shown on the next run.
    """
    import streamlit as st

    params = _query_from_url() or dict(st.session_state.get(_LAST_QUERY, {}))
    current, _ = Selection.from_query(params, dataset_size=_dataset_size)
    updated, notes = current.replace(dataset_size=_dataset_size, **changes)
    if notes:
        note_for_next_run(notes)
    write_selection(updated)
    return updated


def _identity(value: Any) -> Any:
    return value


def bound(
    widget: Callable[..., Any],
    label: str,
    selection: Selection,
    field: str,
    *,
    to_widget: Callable[[Any], Any] = _identity,
    from_widget: Callable[[Any], Any] = _identity,
    key_suffix: str = "",
    **kwargs: Any,
) -> Any:
    """Create ``widget`` showing ``selection.<field>``; a change by the user updates the URL.

    The widget's session state is overwritten from the Selection on every run, so the URL stays the
    single source of truth (a clicked heatmap cell or an opened link moves the widgets too). Do not pass
    ``value=`` / ``index=`` / ``default=``.

    Example: ``bound(st.selectbox, "Model A", sel, "model_a", options=names)``.
    """
    import streamlit as st

    key = _WIDGET_PREFIX + field + key_suffix
    st.session_state[key] = to_widget(getattr(selection, field))
    return widget(label, key=key, on_change=_commit_suffixed, args=(field, key, from_widget), **kwargs)


def _commit_suffixed(field: str, key: str, convert: Callable[[Any], Any]) -> None:
    import streamlit as st

    update_selection(**{field: convert(st.session_state[key])})


PAGE_PATH_KEY = "_alignscope_page_path"  # set by app.py: the url path of the page being shown


def share_url(selection: Selection, page_path: str | None = None) -> str:
    """The full link to ``selection`` on the page being shown: the browser's origin (and any path
    prefix in front of the app) plus the page's own url path, never the path the browser asked for."""
    from urllib.parse import urlencode, urlsplit

    import streamlit as st

    if page_path is None:
        page_path = st.session_state.get(PAGE_PATH_KEY)
    try:
        address = urlsplit(str(st.context.url or ""))
    except Exception:
        address = urlsplit("")
    if address.scheme and address.netloc:
        path = address.path
        if page_path is not None:  # replace the last path segment (the page) by the real page's path
            path = path.rsplit("/", 1)[0] + "/" + page_path
        base = f"{address.scheme}://{address.netloc}{path}"
    else:
        base = "http://localhost:8501/" + (page_path or "")
    return f"{base}?{urlencode(selection.to_query(), safe=',')}"
