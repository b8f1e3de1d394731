"""A frozen :class:`Selection` <-> URL query parameters, validated both ways. No Streamlit here.

The Selection is the single source of truth for what every page shows; the URL is just another
serialisation of it. One table, :data:`FIELDS`, drives parsing, the URL keys and the list below.
:meth:`Selection.to_query` writes every field (so a link keeps its meaning even if a default changes
later) and :meth:`Selection.from_query` reads any mapping of strings back, replacing every invalid or
tampered value by a safe default and saying so in a human-readable warning. Parsing never raises.

Selected samples round-trip whatever their number: a short list is written as ids, a long one as index
ranges or a compressed bitset over the dataset's sample order, and one too long for any URL is kept on
the server and named by its hash (see :class:`LinkContext`).

{table}
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from alignscope.core.analysis.rsa import MODEL_RDM_METHODS
from alignscope.core.defaults import DEFAULT_SELECTION
from alignscope.core.memo import Lru
from alignscope.core.metrics.rdm import COMPARE_METHODS, RDM_METHODS
from alignscope.core.unit_activations import ACTIVATIONS

PROJECTIONS = ("pca", "umap", "aligned_umap")
COLOR_BY = ("label", "alignment")
METADATA_PREFIX = "meta:"  # color=meta:<column>: one of the dataset's metadata columns
SWEEPS = ("k", "n", "prefix", "depth")
SIMILARITIES = ("cosine", "ip", "euclidean")
NEIGHBORS = ("exact", "approx")
UNIT_ROWS = ("images", "positions")
UNIT_ACTIVATIONS = ACTIVATIONS
MODEL_RDMS = MODEL_RDM_METHODS
DATA_RDMS = RDM_METHODS
RDM_COMPARISONS = COMPARE_METHODS
COMPATIBILITY_MEASURES = ("off", "mean_average_precision", "recall@1", "recall@5", "recall@10")
X_SCALES = ("linear", "log")
LADDER = tuple(f"digits-ladder-{i}" for i in range(1, 8))  # the default trend: the ladder preset
ALIGNMENT_STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
MAX_SAMPLES = 200_000
MAX_K = 1000
MAX_MODELS = 12
MAX_METRICS = 8
MAX_PERMUTATIONS = 5000
MAX_BOOTSTRAP = 2000
MAX_SEED = 2**31 - 1
MAX_LAYER = 999
MAX_SELECTION_CHARS = 6000  # longer selections are kept on the server (every browser keeps 8 KB URLs)
_PROPERTY = re.compile(r"^[A-Za-z][A-Za-z0-9_.:\-\[\]]{0,79}$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_SAMPLE_ID = re.compile(r"^[^\x00-\x1f\x7f,]{1,200}$")
_INT = re.compile(r"^[+-]?\d{1,12}$")
_WHOLE = re.compile(r"^[+-]?\d+$")


def _whole(raw: str) -> int | None:
    """The whole number ``raw`` spells, or None; one of more than 13 digits is ±10**13, beyond every bound
    here (so a huge number is out of range, not "not a whole number")."""
    if not _WHOLE.match(raw):
        return None
    if len(raw.lstrip("+-").lstrip("0")) > 13:
        return -(10**13) if raw.startswith("-") else 10**13
    return int(raw)


_STASH_KEY = re.compile(r"^[0-9a-f]{32}$")
# Streamlit's own query parameters: never ours, never warned about.
_RESERVED = frozenset({"embed", "embed_options"})


def counted(count: int, noun: str) -> str:
    """``"1 sample"``, ``"3 samples"``, ``"1,797 samples"``: a count with its noun in the right number."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


class LinkContext(Protocol):
    """What parsing a link may look up: registries, dataset sizes and sample orders, stashed selections."""

    def models(self) -> list[str]: ...

    def datasets(self) -> list[str]: ...

    def metrics(self) -> list[str]: ...

    def dataset_size(self, name: str) -> int | None: ...

    def sample_ids(self, name: str) -> Sequence[str] | None: ...

    def stash(self, indices: Sequence[int]) -> str: ...

    def unstash(self, key: str) -> list[int] | None: ...


@dataclass(frozen=True)
class Field:
    """One Selection field: its URL key, how it is parsed, and what it means (for the table above)."""

    name: str
    key: str
    kind: str
    meaning: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


FIELDS: tuple[Field, ...] = (
    Field("model_a", "a", "model", "model A on the single-pair pages"),
    Field("model_b", "b", "model", "model B on the single-pair pages"),
    Field("models", "models", "models", "comma-separated, the Many-models set", 2, MAX_MODELS),
    Field("dataset", "data", "dataset", "registered dataset name"),
    Field("n", "n", "n", "samples (a seeded nested subset), 3..dataset size", 3, MAX_SAMPLES),
    Field("seed", "seed", "int", "subset / permutation / bootstrap / UMAP seed", 0, MAX_SEED),
    Field("metric", "metric", "metric", "the metric of heatmaps, matrices and sweeps"),
    Field("metrics", "metrics", "metrics", "comma-separated, the headline metrics side by side", 1, MAX_METRICS),
    Field("k", "k", "k", "neighbours for k-NN metrics, 1..min(n-1, 1000)", 1, MAX_K),
    Field("similarity", "sim", "choice", "similarity of the k-NN metrics", choices=SIMILARITIES),
    Field("neighbors", "nbr", "choice", "k-NN search: exact, or approx (IVF-Flat, recall reported)", choices=NEIGHBORS),
    Field("layer_a", "la", "int", "layer index of A, -1 = last", -MAX_LAYER, MAX_LAYER),
    Field("layer_b", "lb", "int", "layer index of B, -1 = last", -MAX_LAYER, MAX_LAYER),
    Field("relative_depth", "depth", "depth", "'best' (best layer pair) or a relative depth in [0, 1]"),
    Field("permutations", "perm", "int", "permutation-test shuffles (0 = off)", 0, MAX_PERMUTATIONS),
    Field("bootstrap", "boot", "boot", "bootstrap resamples (0 = off, else >= 2)", 0, MAX_BOOTSTRAP),
    Field("sweep", "sweep", "choice", "what a sweep varies", choices=SWEEPS),
    Field("projection", "proj", "choice", "the 2-D map", choices=PROJECTIONS),
    Field("umap_neighbors", "nn", "int", "UMAP n_neighbors", 2, 100),
    Field("umap_min_dist", "md", "float", "UMAP min_dist", 0.0, 1.0),
    Field("alignment", "align", "alignment", "aligned UMAP alignment_regularisation"),
    Field(
        "color_by", "color", "color", "colour of the map's points: label, alignment or meta:<column>", choices=COLOR_BY
    ),
    Field("selected", "sel", "samples", "selected samples: ids, r:ranges, b:bitset or s:stashed"),
    Field("inspected", "inspect", "sample", "the sample inspected on the Neighbours page"),
    Field("versus", "vs", "model_or_none", "the third model of a paired difference (A vs B, both against it)"),
    Field("trend_models", "tm", "models", "comma-separated, the models of a trend (one point each)", 2, 24),
    Field("reference", "ref", "models", "comma-separated, a trend's reference set (empty: the others)", 0, 24),
    Field("prop", "prop", "name", "the model property on a trend's x axis (or a Results plot's)"),
    Field("x_scale", "xs", "choice", "a trend's x axis", choices=X_SCALES),
    Field("trend_depth", "tdepth", "depth", "a trend's layers: 'best' (best layer pair) or a relative depth in [0, 1]"),
    Field("run", "run", "run", "the batch run shown on the Results page"),
    Field("column", "col", "name", "the Results table column plotted against the property"),
    Field("unit_layer", "ul", "int", "the layer of unit matching on Many models, -1 = last", -MAX_LAYER, MAX_LAYER),
    Field("unit_rows", "ur", "choice", "unit matching over images, or images x spatial positions", choices=UNIT_ROWS),
    Field(
        "unit_activation",
        "ua",
        "choice",
        "unit matching on the hooked output, or after a ReLU",
        choices=UNIT_ACTIVATIONS,
    ),
    Field(
        "compatibility",
        "compat",
        "choice",
        "Compare: can B replace A without re-indexing (BCT), by this measure; off",
        choices=COMPATIBILITY_MEASURES,
    ),
    Field("recording", "rec", "run", "RSA: the stored recording the model is scored against (empty: none)"),
    Field("model_rdm", "rdm", "choice", "RSA: the model's RDM distance", choices=MODEL_RDMS),
    Field(
        "data_rdm", "drdm", "choice", "RSA: the recording's RDM distance (crossnobis needs repeats)", choices=DATA_RDMS
    ),
    Field("rdm_comparison", "rsam", "choice", "RSA: how two RDMs are compared", choices=RDM_COMPARISONS),
    Field("shape_alpha", "alpha", "float", "shape distance: 0 = CCA (whitened) .. 1 = Procrustes", 0.0, 1.0),
    Field("shape_folds", "folds", "int", "shape distance: 0 = fit in-sample, >= 2 = cross-validated folds", 0, 20),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
QUERY_KEYS: dict[str, str] = {f.name: f.key for f in FIELDS}


def _table() -> str:
    rows = [(f.key, f.name, f.meaning) for f in FIELDS]
    widths = [max(len(r[i]) for r in rows + [("key", "field", "meaning")]) for i in range(3)]
    rule = " ".join("=" * w for w in widths)
    header = " ".join(t.ljust(w) for t, w in zip(("key", "field", "meaning"), widths))
    body = "\n".join(" ".join(t.ljust(w) for t, w in zip(r, widths)) for r in rows)
    return "\n".join((rule, header, rule, body, rule))


if __doc__:
    __doc__ = __doc__.replace("{table}", _table())


@dataclass(frozen=True)
class Selection:
    """Everything a page needs to reproduce its view. Defaults: the embedded digits comparison."""

    model_a: str = DEFAULT_SELECTION.model_a
    model_b: str = DEFAULT_SELECTION.model_b
    models: tuple[str, ...] = DEFAULT_SELECTION.models
    dataset: str = DEFAULT_SELECTION.dataset
    n: int = 500
    seed: int = 0
    metric: str = "mutual_knn"
    metrics: tuple[str, ...] = DEFAULT_SELECTION.metrics
    k: int = 10
    similarity: str = "cosine"
    neighbors: str = "exact"
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
    inspected: str | None = None
    versus: str | None = None
    trend_models: tuple[str, ...] = LADDER
    reference: tuple[str, ...] = ()
    prop: str = "test_accuracy"
    x_scale: str = "linear"
    trend_depth: float | None = None  # None = best layer pair; the Trends page's own (presets set it)
    run: str = ""
    column: str = "score"
    unit_layer: int = 0
    unit_rows: str = "images"
    unit_activation: str = "output"
    compatibility: str = "off"
    recording: str = ""
    model_rdm: str = "correlation"
    data_rdm: str = "correlation"
    rdm_comparison: str = "spearman"
    shape_alpha: float = 1.0
    shape_folds: int = 0

    def metric_params(self, metric: str | None = None) -> tuple[tuple[str, Any], ...]:
        """The view's parameters for ``metric`` (default: the page metric): k, similarity, neighbour
        search, shape α and folds, each taken by the metrics that have it (clamped to their bounds)."""
        from alignscope.core.analysis.requests import metric_params

        return metric_params(
            metric or self.metric,
            k=self.k,
            similarity=self.similarity,
            neighbors=self.neighbors,
            alpha=self.shape_alpha,
            n_folds=self.shape_folds,
        )

    def to_query(self, context: LinkContext | None = None) -> dict[str, str]:
        """Every field as a string, keyed by its short URL name (selections encoded compactly)."""
        out = {}
        for f in FIELDS:
            value = getattr(self, f.name)
            if f.kind == "samples":
                text = encode_samples(value, self.dataset, context)
            elif isinstance(value, tuple):
                text = ",".join(value)
            elif value is None:
                text = "best" if f.kind == "depth" else ""
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            out[f.key] = text
        return out

    @classmethod
    def from_query(
        cls,
        params: Mapping[str, Any],
        *,
        context: LinkContext | None = None,
        dataset_size: Callable[[str], int | None] | None = None,
    ) -> tuple[Selection, list[str]]:
        """Parse query parameters; every bad value becomes its default, with a warning that says why.

        Args:
            params: ``{key: str | list[str]}`` (a list counts by its last entry, as Streamlit does).
            context: registries, dataset sizes and sample orders (default: the registries only).
            dataset_size: ``name -> number of samples`` overriding the context's (tests).

        Returns:
            (selection, warnings). Never raises.
        """
        try:
            return _Parser(params, context or RegistryContext(), dataset_size).parse()
        except Exception as error:  # noqa: BLE001 - a bug here must not take the app down with it
            return cls(), [f"The link could not be read ({type(error).__name__}); showing the default view."]

    def replace(
        self,
        *,
        context: LinkContext | None = None,
        dataset_size: Callable[[str], int | None] | None = None,
        **changes: Any,
    ) -> tuple[Selection, list[str]]:
        """A validated copy with ``changes`` (field names) applied; dependent fields are clamped."""
        unknown = [name for name in changes if name not in FIELD_BY_NAME]
        if unknown:
            return self, [f"unknown field {unknown[0]!r}"]
        query = self.to_query(context)
        changed = dataclasses.replace(self, **changes).to_query(context)
        query.update({FIELD_BY_NAME[name].key: changed[FIELD_BY_NAME[name].key] for name in changes})
        return Selection.from_query(query, context=context, dataset_size=dataset_size)

    def effective_n(self, dataset_size: int | None) -> int:
        return self.n if dataset_size is None else min(self.n, dataset_size)


# --------------------------------------------------------------------------------------------------
# Registries as the default context
# --------------------------------------------------------------------------------------------------


class RegistryContext:
    """Names from the core registries; no dataset sizes or sample orders (pure parsing, tests)."""

    def models(self) -> list[str]:
        from alignscope.core.models import list_models

        return [spec.name for spec in list_models()]

    def datasets(self) -> list[str]:
        from alignscope.core.datasets import list_datasets

        return [spec.name for spec in list_datasets()]

    def metrics(self) -> list[str]:
        from alignscope.core.metrics.registry import list_metrics

        return [spec.name for spec in list_metrics()]

    def dataset_size(self, name: str) -> int | None:
        return None

    def sample_ids(self, name: str) -> Sequence[str] | None:
        return None

    def stash(self, indices: Sequence[int]) -> str:
        raise LookupError("no server-side store for long selections")

    def unstash(self, key: str) -> list[int] | None:
        return None


# --------------------------------------------------------------------------------------------------
# Selected samples: ids, index ranges, a compressed bitset, or a stash key
# --------------------------------------------------------------------------------------------------


_POSITIONS: Lru[tuple[tuple[str, ...], dict[str, int]]] = Lru(capacity=8)


def sample_positions(order: Sequence[str]) -> Mapping[str, int]:
    """``{sample id: its index in order}``. Built once per tuple (a dataset's ``sample_ids``): at 100,000
    samples the dict takes ~15 ms, and one page run with a selection reads and writes the link several
    times. Keyed by the tuple's identity; the memo holds the tuple, so that identity is not reused while
    it is kept. Read-only."""
    if not isinstance(order, tuple):
        return {sample_id: i for i, sample_id in enumerate(order)}
    _, positions = _POSITIONS.get(id(order), lambda: (order, {s: i for i, s in enumerate(order)}))
    return positions


def _ranges(indices: np.ndarray) -> str:
    """Sorted unique indices as ``a-b`` runs and single numbers, comma-separated."""
    if len(indices) == 0:
        return ""
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = indices[np.concatenate(([0], breaks + 1))]
    stops = indices[np.concatenate((breaks, [len(indices) - 1]))]
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts.tolist(), stops.tolist(), strict=True))


def _bitset(indices: np.ndarray, size: int) -> str:
    """Bit ``i`` (little-endian within each byte) set for each index, zlib-compressed, base64url."""
    bits = np.zeros(size, dtype=bool)
    bits[indices] = True
    packed = np.packbits(bits, bitorder="little").tobytes()
    return base64.urlsafe_b64encode(zlib.compress(packed, 6)).decode().rstrip("=")


def encode_samples(ids: Sequence[str], dataset: str, context: LinkContext | None) -> str:
    """The shortest faithful text for a selection (see the module docstring)."""
    if not ids:
        return ""
    explicit = ",".join(ids)
    if ids[0][:2] in ("r:", "b:", "s:", "i:"):
        explicit = "i:" + explicit
    order = context.sample_ids(dataset) if context is not None else None
    if order is None:
        return explicit
    position = sample_positions(order)
    try:
        indices = np.unique(np.fromiter((position[sample_id] for sample_id in ids), dtype=np.int64, count=len(ids)))
    except KeyError:
        return explicit
    candidates = [explicit, "r:" + _ranges(indices), "b:" + _bitset(indices, len(order))]
    best = min(candidates, key=len)
    if len(best) <= MAX_SELECTION_CHARS:
        return best
    try:
        return "s:" + context.stash(indices.tolist())  # type: ignore[union-attr]
    except LookupError:
        return best


def _decode_indices(raw: str, size: int, context: LinkContext) -> list[int] | None:
    kind, payload = raw[:2], raw[2:]
    if kind == "r:":
        indices = []
        for part in payload.split(","):
            first, _, last = part.partition("-")
            if not (_INT.match(first) and (not last or _INT.match(last))):
                return None
            low, high = int(first), int(last or first)
            if not 0 <= low <= high < size or high - low > size:
                return None
            indices.extend(range(low, high + 1))
        return indices
    if kind == "b:":
        try:
            blob = zlib.decompressobj().decompress(
                base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)), (size + 7) // 8 + 1
            )
        except (ValueError, zlib.error):
            return None
        if len(blob) != (size + 7) // 8:
            return None
        bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=size, bitorder="little")
        return np.flatnonzero(bits).tolist()
    if kind == "s:" and _STASH_KEY.match(payload):
        stored = context.unstash(payload)
        if stored is None or any(not (isinstance(i, int) and 0 <= i < size) for i in stored):
            return None
        return stored
    return None


def decode_samples(raw: str, dataset: str, context: LinkContext) -> tuple[tuple[str, ...], list[str]]:
    """(ids, warnings) for the ``sel`` value of a link."""
    warnings: list[str] = []
    if raw[:2] in ("r:", "b:", "s:"):
        order = context.sample_ids(dataset)
        indices = None if order is None else _decode_indices(raw, len(order), context)
        if order is None or indices is None:
            return (), [f"sel: the selection could not be read for dataset {dataset!r}; nothing is selected"]
        return tuple(order[i] for i in sorted(set(indices))), warnings
    items = [item for item in raw.removeprefix("i:").split(",") if item]
    good = list(dict.fromkeys(item for item in items if _SAMPLE_ID.match(item)))
    if len(good) < len(items):
        warnings.append(f"sel: ignored {len(items) - len(good)} malformed or repeated sample ids")
    order = context.sample_ids(dataset)
    if order is not None:
        known = sample_positions(order)
        kept = [item for item in good if item in known]
        if len(kept) < len(good):
            warnings.append(f"sel: ignored {len(good) - len(kept)} ids that are not samples of {dataset!r}")
        good = kept
    return tuple(good), warnings


# --------------------------------------------------------------------------------------------------
# Parsing (pure)
# --------------------------------------------------------------------------------------------------


def _show(raw: Any, limit: int = 40) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last(raw: Any) -> Any:
    if isinstance(raw, (list, tuple)):
        return raw[-1] if raw else ""
    return raw


class _Parser:
    """One pass over :data:`FIELDS`; dependent fields (n on the dataset, k on n) after their sources."""

    def __init__(
        self, params: Mapping[str, Any], context: LinkContext, dataset_size: Callable[[str], int | None] | None
    ) -> None:
        self.context = context
        self.size_of = dataset_size or context.dataset_size
        self.default = Selection()
        self.values: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.raw = self._collect(params)
        self.unknown_dataset: str | None = None
        self.unknown_models: dict[str, str] = {}  # field name -> why its link value was refused

    def _collect(self, params: Mapping[str, Any]) -> dict[str, str]:
        known_keys = set(QUERY_KEYS.values())
        raw_by_key: dict[str, str] = {}
        for key in list(params.keys())[:200]:
            if not isinstance(key, str):
                self.warnings.append(f"ignored parameter {_show(key)}: not a text key")
                continue
            if key in _RESERVED:
                continue
            if key not in known_keys:
                self.warnings.append(f"ignored unknown parameter {_show(key)}")
                continue
            raw = _last(params[key])
            if not isinstance(raw, str):
                raw = "" if raw is None else str(raw)
            raw_by_key[key] = raw[:20_000]
        return raw_by_key

    def fix(self, field: Field, reason: str) -> None:
        """Warn that ``field``'s link value was replaced (by the value parsed so far, else the default)."""
        shown = self.values.get(field.name, getattr(self.default, field.name))
        if isinstance(shown, tuple):
            shown = ",".join(shown)
        elif shown is None:
            shown = "best" if field.kind == "depth" else "(none)"
        self.warnings.append(f"{field.key}={_show(self.raw.get(field.key, ''))}: {reason}; using {field.key}={shown}")

    def parse(self) -> tuple[Selection, list[str]]:
        names = {"model": self.context.models(), "dataset": self.context.datasets(), "metric": self.context.metrics()}
        for field in FIELDS:
            if field.key not in self.raw or field.kind in ("n", "k", "samples", "sample"):
                continue
            self._parse_field(field, self.raw[field.key].strip(), names)
        if self.unknown_dataset is not None:
            self._replace_dataset(self.unknown_dataset, names["dataset"])
        for name, reason in self.unknown_models.items():
            self._replace_model(name, reason, names["model"])
        self._parse_n()
        self._parse_k()
        if "depth" in self.raw and "tdepth" not in self.raw and "relative_depth" in self.values:
            # a link from before Trends had its own depth: its trend was drawn at the shared one
            self.values["trend_depth"] = self.values["relative_depth"]
        dataset = self.values.get("dataset", self.default.dataset)
        if "sel" in self.raw:
            self.values["selected"], notes = decode_samples(self.raw["sel"], dataset, self.context)
            self.warnings.extend(notes)
        if self.raw.get("inspect", "").strip():
            inspected = self.raw["inspect"].strip()
            order = self.context.sample_ids(dataset)
            if _SAMPLE_ID.match(inspected) and (order is None or inspected in set(order)):
                self.values["inspected"] = inspected
            else:
                self.fix(FIELD_BY_NAME["inspected"], f"not a sample of {dataset!r}")
        return dataclasses.replace(self.default, **self.values), self.warnings

    def _replace_dataset(self, reason: str, datasets: list[str]) -> None:
        """An unknown dataset (removed since the link was made): the default where models A and B can
        encode it, else the first registered dataset they both can (text models get a text dataset)."""
        from alignscope.core.datasets import get_dataset_spec
        from alignscope.core.errors import AlignscopeError
        from alignscope.core.models import get_model_spec

        pair = [self.values.get(name, getattr(self.default, name)) for name in ("model_a", "model_b")]
        try:
            modalities = {get_model_spec(model).modality for model in pair}
            fitting = [d for d in datasets if all(get_dataset_spec(d).supports(m) for m in modalities)]
        except AlignscopeError:
            fitting = []
        if fitting and self.default.dataset not in fitting:
            self.values["dataset"] = fitting[0]
        self.fix(FIELD_BY_NAME["dataset"], reason)

    def _replace_model(self, name: str, reason: str, models: list[str]) -> None:
        """An unknown model A or B (removed since the link was made): the default where it can encode the
        link's dataset, else the first registered model that can, other than the pair's other model."""
        from alignscope.core.datasets import get_dataset_spec
        from alignscope.core.errors import AlignscopeError
        from alignscope.core.models import get_model_spec

        default = getattr(self.default, name)
        other = self.values.get("model_b" if name == "model_a" else "model_a")
        try:
            dataset = get_dataset_spec(self.values.get("dataset", self.default.dataset))
            fitting = [m for m in models if dataset.supports(get_model_spec(m).modality)]
        except AlignscopeError:
            fitting = []
        if fitting and default not in fitting:
            self.values[name] = next((m for m in fitting if m != other), fitting[0])
        self.fix(FIELD_BY_NAME[name], reason)

    def _parse_field(self, field: Field, raw: str, names: dict[str, list[str]]) -> None:
        kind = field.kind
        if kind in ("model", "dataset", "metric", "choice"):
            self._parse_option(field, raw, list(field.choices) if kind == "choice" else names[kind])
        elif kind == "color":
            self._parse_colour(field, raw)
        elif kind in ("model_or_none", "name", "run"):
            self._parse_optional_name(field, raw, names["model"])
        elif kind in ("models", "metrics"):
            self._parse_list(field, raw, names["model" if kind == "models" else "metric"])
        elif kind in ("int", "boot"):
            self._parse_int(field, raw)
        elif kind == "float":
            value = _float(raw)
            if math.isfinite(value) and field.low <= value <= field.high:  # type: ignore[operator]
                self.values[field.name] = value
            else:
                self.fix(field, f"must be a number in [{field.low}, {field.high}]")
        elif kind == "alignment":
            value = _float(raw)
            match = next((a for a in ALIGNMENT_STRENGTHS if math.isfinite(value) and math.isclose(value, a)), None)
            if match is None:
                self.fix(field, f"alignment strength must be one of {', '.join(map(str, ALIGNMENT_STRENGTHS))}")
            else:
                self.values[field.name] = match
        elif kind == "depth":
            if raw.lower() in ("best", ""):
                self.values[field.name] = None
            else:
                value = _float(raw)
                if math.isfinite(value) and 0.0 <= value <= 1.0:
                    self.values[field.name] = value
                else:
                    self.fix(field, "depth must be 'best' or a number in [0, 1]")

    def _parse_option(self, field: Field, raw: str, options: list[str]) -> None:
        """One of ``options`` (a registered name, or a choice)."""
        if raw in options:
            self.values[field.name] = raw
            return
        listing = ", ".join(options[:12]) + (", …" if len(options) > 12 else "")
        reason = f"unknown {'value' if field.kind == 'choice' else field.kind} (choose from {listing})"
        if field.kind == "dataset":  # replaced once the models are known (a removed text dataset: a text one)
            self.unknown_dataset = reason
        elif field.kind == "model":  # replaced once the dataset is known (by a model that can read it)
            self.unknown_models[field.name] = reason
        else:
            self.fix(field, reason)

    def _parse_colour(self, field: Field, raw: str) -> None:
        """label, alignment, or meta:<column> (the page checks the column against the dataset's)."""
        column = raw.removeprefix(METADATA_PREFIX)
        if raw in COLOR_BY or (raw.startswith(METADATA_PREFIX) and 0 < len(column) <= 64 and column.isprintable()):
            self.values[field.name] = raw
        else:
            self.fix(field, f"choose {', '.join(COLOR_BY)} or {METADATA_PREFIX}<column>")

    def _parse_optional_name(self, field: Field, raw: str, models: list[str]) -> None:
        """A model or nothing (``vs``), a property or column name, a run folder's name (or nothing)."""
        if field.kind == "model_or_none":
            if raw == "" or raw in models:
                self.values[field.name] = raw or None
            else:
                self.fix(field, "unknown model")
        elif raw == "" and field.kind == "run":
            self.values[field.name] = ""
        elif (_RUN_NAME if field.kind == "run" else _PROPERTY).match(raw):
            self.values[field.name] = raw
        else:
            self.fix(field, "letters, digits and _ . - [ ] only, starting with a letter or digit")

    def _parse_int(self, field: Field, raw: str) -> None:
        value = _whole(raw)
        if value is None:
            self.fix(field, "must be a whole number")
            return
        if not field.low <= value <= field.high:  # type: ignore[operator]
            self.fix(field, f"must lie in [{field.low}, {field.high}]")
            return
        if field.kind == "boot" and value == 1:  # one resample has no spread
            value = 2
            self.warnings.append("boot=1: a bootstrap needs at least 2 resamples (0 turns it off); using 2")
        if field.name == "shape_folds" and value == 1:  # one fold leaves nothing to test on
            value = 0
            self.warnings.append("folds=1: cross-validation needs at least 2 folds (0 fits in-sample); using 0")
        self.values[field.name] = value

    def _parse_list(self, field: Field, raw: str, options: list[str]) -> None:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        unknown = [item for item in items if item not in options]
        kept = list(dict.fromkeys(item for item in items if item in options))
        what = field.kind[:-1]
        if unknown:
            self.warnings.append(
                f"{field.key}: ignored unknown {what} {', '.join(_show(u, 30) for u in unknown[:5])}"
                + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            )
        low = 1 if field.low is None else int(field.low)
        high = int(field.high or 1)
        if len(kept) > high:
            self.warnings.append(f"{field.key}: at most {high} {what}s; kept the first {high}")
            kept = kept[:high]
        if len(kept) < low:
            self.fix(field, f"needs at least {counted(low, 'known ' + what)}")
            return
        self.values[field.name] = tuple(kept)

    def _parse_n(self) -> None:
        dataset = self.values.get("dataset", self.default.dataset)
        try:
            size = self.size_of(dataset)
        except Exception:  # noqa: BLE001 - a failing size lookup must not break parsing
            size = None
        n_high = MAX_SAMPLES if size is None else max(3, min(MAX_SAMPLES, int(size)))
        field = FIELD_BY_NAME["n"]
        if "n" in self.raw:
            raw = self.raw["n"].strip()
            n = _whole(raw)
            if n is None:
                self.fix(field, "n must be a whole number of samples")
            elif n < 3 or n > MAX_SAMPLES:
                self.fix(field, f"n must lie in [3, {MAX_SAMPLES}]")
            elif n > n_high:
                self.values["n"] = n_high
                self.warnings.append(f"n={raw}: dataset {dataset!r} has {n_high} samples; using n={n_high}")
            else:
                self.values["n"] = n
        if "n" not in self.values and self.default.n > n_high:
            self.values["n"] = n_high

    def _parse_k(self) -> None:
        n = self.values.get("n", self.default.n)
        k_high = max(1, min(MAX_K, n - 1))
        field = FIELD_BY_NAME["k"]
        if "k" in self.raw:
            raw = self.raw["k"].strip()
            k = _whole(raw)
            if k is None or k < 1:
                self.fix(field, "k must be a whole number of neighbours >= 1")
            elif k > k_high:
                self.values["k"] = min(self.default.k, k_high)
                self.warnings.append(
                    f"k={_show(raw)}: k must lie in [1, {k_high}] for n={n}; using k={self.values['k']}"
                )
            else:
                self.values["k"] = k
        if "k" not in self.values and self.default.k > k_high:
            self.values["k"] = k_high
            self.warnings.append(
                f"k: the default k={self.default.k} needs n > {self.default.k}; using k={k_high} for n={n}"
            )


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan
