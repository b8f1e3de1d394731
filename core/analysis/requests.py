"""Frozen requests: everything that determines one result, and nothing else.

A request names models and a dataset by their registered names, the seeded subset (``n``, ``seed``),
the layers (0-based; ``-1`` = last, resolved by the engine before the request is keyed) and the
metric with its parameters. Two equal requests on the same features always give the same result, so a
request (plus the feature cache keys it reads) is the result's address in the store.

``params`` is a sorted tuple of ``(name, value)`` pairs, made by :func:`metric_params` so that every
caller passes a metric the same parameters, clamped to the metric's bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import get_metric

Params = tuple[tuple[str, Any], ...]
SWEEP_KINDS = ("k", "n", "prefix", "depth")
PROJECTION_METHODS = ("pca", "umap")


def metric_params(metric: str, **available: Any) -> Params:
    """Every parameter of ``metric``, resolved: its defaults overlaid with those of ``available`` that it
    takes (others are ignored), numbers clamped to the metric's bounds (a page-wide k = 1 becomes
    CKNNA's minimum, 2), as a sorted tuple — so every caller passes a metric the same parameters.

    Example:
        >>> metric_params("cknna", k=1, permutations=5)
        (('k', 2), ('neighbors', 'exact'), ('similarity', 'cosine'))
        >>> metric_params("linear_cka", k=10)
        ()
    """
    spec = get_metric(metric)
    params: dict[str, Any] = {}
    for param in spec.params:
        value = available.get(param.name)
        if value is None:
            continue
        if param.kind in ("int", "float", "int_or_none") and not isinstance(value, bool):
            value = max(value, param.low) if param.low is not None else value
            value = min(value, param.high) if param.high is not None else value
            value = int(value) if param.kind != "float" else float(value)
        params[param.name] = value
    return tuple(sorted(spec.resolve_params(params).items()))


def command_params(metric: str, shared: Mapping[str, Any], items: Mapping[str, Any]) -> Params:
    """:func:`metric_params` for a command: its shared flags' values (``--k``, ``--similarity``, …) with its
    own ``--param`` items for the metric on top (``--param k=5`` sets k when ``--k`` is not given; both, with
    different values, is an InputError).

    Example:
        >>> command_params("mutual_knn", {"k": None, "similarity": "cosine"}, {"k": 5})
        (('k', 5), ('neighbors', 'exact'), ('similarity', 'cosine'))
        >>> command_params("mutual_knn", {"k": 10}, {"k": 5})
        Traceback (most recent call last):
        alignscope.core.errors.InputError: k is given twice with different values: --k 10 and --param k=5; give one
    """
    for name, value in items.items():
        if shared.get(name) is not None and shared[name] != value:
            raise InputError(
                f"{name} is given twice with different values: --{name} {shared[name]} and --param {name}={value}; "
                "give one"
            )
    return metric_params(metric, **{**shared, **items})


def check_flags_apply(flags: Mapping[str, Any], metrics: Sequence[str]) -> None:
    """A shared flag given (not None) that none of ``metrics`` takes is an InputError, as an unknown
    ``--param`` is: ``--k 5`` with linear CKA alone was ignored without a word.

    Example:
        >>> check_flags_apply({"k": 5, "similarity": None}, ["mutual_knn", "linear_cka"])
        >>> check_flags_apply({"k": 5}, ["linear_cka"])
        Traceback (most recent call last):
        alignscope.core.errors.InputError: --k does not apply: linear_cka takes no k; leave it out
    """
    takes = {param.name for metric in metrics for param in get_metric(metric).params}
    for name, value in flags.items():
        if value is not None and name not in takes:
            whom = (
                f"{metrics[0]} takes no {name}" if len(metrics) == 1 else f"none of {', '.join(metrics)} takes {name}"
            )
            raise InputError(f"--{name} does not apply: {whom}; leave it out")


def parse_param_items(items: list[str] | None, metrics: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--param NAME=VALUE`` items -> {metric: {name: typed value}} for the metrics that take each name.

    A name that none of ``metrics`` takes, or a value of the wrong type, is an InputError naming it.

    Example:
        >>> parse_param_items(["alpha=0.5", "n_folds=3"], ["shape_distance", "linear_cka"])
        {'shape_distance': {'alpha': 0.5, 'n_folds': 3}, 'linear_cka': {}}
    """
    specs = {metric: get_metric(metric) for metric in metrics}
    out: dict[str, dict[str, Any]] = {metric: {} for metric in metrics}
    for item in items or ():
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--param takes NAME=VALUE, not {item!r}")
        takers = [(m, p) for m, spec in specs.items() for p in spec.params if p.name == name]
        if not takers:
            raise InputError(f"--param {name}: none of {', '.join(metrics)} takes a parameter {name!r}")
        for metric, param in takers:
            out[metric][name] = param.validate(_typed(text.strip(), param.kind), metric)
    return out


def _typed(text: str, kind: str) -> Any:
    if kind == "bool":
        return {"true": True, "1": True, "false": False, "0": False}.get(text.lower(), text)
    if kind in ("int", "int_or_none"):
        if kind == "int_or_none" and text.lower() in ("none", ""):
            return None
        try:
            return int(text)
        except ValueError:
            return text
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            return text
    return text


def parse_layers(layers: str) -> tuple[int, int] | None:
    """``"all"`` -> None (search every pair); ``"last"`` -> (-1, -1); ``"i,j"`` -> (i, j).

    Example:
        >>> parse_layers("2,-1"), parse_layers("all")
        ((2, -1), None)
    """
    if layers == "all":
        return None
    if layers == "last":
        return -1, -1
    try:
        first, second = (int(part) for part in layers.split(","))
    except ValueError as exc:
        raise InputError(f"layers must be 'all', 'last' or 'i,j' (two layer indices), not {layers!r}") from exc
    return first, second


def parse_layer_choice(text: str) -> str | float:
    """How a batch or a comparison picks each pair's layers: ``"best"`` (or ``"all"``, as ``score`` says it),
    ``"last"`` or ``"depth:x"`` -> x.

    Example:
        >>> parse_layer_choice("best"), parse_layer_choice("all"), parse_layer_choice("depth:0.5")
        ('best', 'best', 0.5)
    """
    if text in ("best", "last"):
        return text
    if text == "all":
        return "best"
    if text.startswith("depth:"):
        try:
            depth = float(text.removeprefix("depth:"))
        except ValueError:
            depth = -1.0
        if 0.0 <= depth <= 1.0:
            return depth
    raise InputError(f"layers must be 'best' (or 'all'), 'last' or 'depth:<0..1>' (e.g. depth:0.5), not {text!r}")


class Request:
    """Base of every request: its ``kind`` and the models whose features it reads."""

    kind: ClassVar[str] = ""
    # Raised when a fix changes what a kind computes, so results stored before it are not served (part of
    # the store key from 2 on; every kind at 1 keeps the keys it always had).
    result_version: ClassVar[int] = 1
    # every request has these (its dataclass fields)
    dataset: str
    n: int
    seed: int

    def feature_models(self) -> tuple[str, ...]:
        raise NotImplementedError

    def with_cached_features(self) -> Request:
        """The request completed from what exists once its features are cached (a trend looks up the
        property values that training measures); most requests are complete as made."""
        return self

    def describe(self) -> str:
        """One line for people: what the request computes ("" = the engine's generic description)."""
        return ""

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        version = {"result_version": self.result_version} if self.result_version > 1 else {}
        return {"kind": self.kind, **version, **fields}

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class PairRequest(Request):
    """One metric for two models: a fixed layer pair (``layers="i,j"`` / ``"last"``) or the best pair of
    the whole layer matrix (``"all"``), with ``permutations`` shuffles and ``bootstrap`` resamples."""

    kind: ClassVar[str] = "pair"
    result_version: ClassVar[int] = (
        5  # 2: a searched pair's search_chance; 3: pairs_searched counts valid cells; 4: p where some cells can't be scored;
        # 5: shuffles that tie the observed score up to rounding count
    )
    model_a: str
    model_b: str
    dataset: str
    n: int
    seed: int = 0
    metric: str = "mutual_knn"
    params: Params = ()
    layers: str = "last"
    permutations: int = 0
    bootstrap: int = 0

    def feature_models(self) -> tuple[str, ...]:
        return (self.model_a, self.model_b)

    def matrix_request(self) -> MatrixRequest:
        """The layer matrix a best-pair search (``layers="all"``) reads its pair, p and chances from."""
        return MatrixRequest(
            self.model_a, self.model_b, self.dataset, self.n, self.seed, self.metric, self.params, self.permutations
        )


@dataclass(frozen=True)
class MatrixRequest(Request):
    """One metric over every layer pair of two models; with ``permutations``, every cell's permutation p
    and its p corrected for the search over all pairs (max-statistic), from the same shuffles."""

    kind: ClassVar[str] = "layer-matrix"
    result_version: ClassVar[int] = (
        5  # 2: the best cell's chance level (best_chance); 3: each row's best's; 4: shuffled where some cells can't be scored;
        # 5: ties up to rounding count
    )
    model_a: str
    model_b: str
    dataset: str
    n: int
    seed: int = 0
    metric: str = "mutual_knn"
    params: Params = ()
    permutations: int = 0

    def feature_models(self) -> tuple[str, ...]:
        return (self.model_a, self.model_b)


@dataclass(frozen=True)
class SweepRequest(Request):
    """A score against k, n, the Matryoshka prefix length or layer depth (``sweep``)."""

    kind: ClassVar[str] = "sweep"
    result_version: ClassVar[int] = (
        3  # 2: the chance curve of the depth sweep's best layer of B; 3: also with unscoreable cells
    )
    sweep: str
    model_a: str
    model_b: str
    dataset: str
    n: int
    seed: int = 0
    metric: str = "mutual_knn"
    params: Params = ()
    layer_a: int = -1
    layer_b: int = -1

    def __post_init__(self) -> None:
        if self.sweep not in SWEEP_KINDS:
            raise InputError(f"unknown sweep {self.sweep!r}; choose {', '.join(SWEEP_KINDS)}")

    def feature_models(self) -> tuple[str, ...]:
        return (self.model_a, self.model_b)

    def matrix_request(self) -> MatrixRequest:
        """The layer matrix a depth sweep's best layer of B comes from (Many models' cell of this pair)."""
        return MatrixRequest(self.model_a, self.model_b, self.dataset, self.n, self.seed, self.metric, self.params)


@dataclass(frozen=True)
class ModelMatrixRequest(Request):
    """One metric between every pair of ``models``: each pair's best layer pair (``relative_depth``
    None) or the layers at one relative depth (0 = first, 1 = last)."""

    kind: ClassVar[str] = "model-matrix"
    result_version: ClassVar[int] = (
        5  # 2: search_chance; 3: None where no cell has one; 4: also with unscoreable cells; 5: ties
    )
    models: tuple[str, ...]
    dataset: str
    n: int
    seed: int = 0
    metric: str = "mutual_knn"
    params: Params = ()
    relative_depth: float | None = None

    def feature_models(self) -> tuple[str, ...]:
        return self.models

    def matrix_request(self, model_a: str, model_b: str) -> MatrixRequest:
        """The layer matrix (no permutations) a best-layer cell is the best of."""
        return MatrixRequest(model_a, model_b, self.dataset, self.n, self.seed, self.metric, self.params)


@dataclass(frozen=True)
class GramRequest(Request):
    """The GRAM volume of ``models`` at one relative depth, with its shuffled chance level."""

    kind: ClassVar[str] = "gram"
    models: tuple[str, ...]
    dataset: str
    n: int
    seed: int = 0
    relative_depth: float = 1.0

    def feature_models(self) -> tuple[str, ...]:
        return self.models


@dataclass(frozen=True)
class ProjectionRequest(Request):
    """A 2-D map of one model's layer: exact PCA, or UMAP (cosine, seeded)."""

    kind: ClassVar[str] = "projection"
    model: str
    dataset: str
    n: int
    seed: int = 0
    layer: int = -1
    method: str = "pca"
    n_neighbors: int = 15
    min_dist: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in PROJECTION_METHODS:
            raise InputError(f"unknown projection {self.method!r}; choose {', '.join(PROJECTION_METHODS)}")

    def feature_models(self) -> tuple[str, ...]:
        return (self.model,)


@dataclass(frozen=True)
class AlignedProjectionRequest(Request):
    """Aligned UMAP of two models' layers (the same samples held at about the same place)."""

    kind: ClassVar[str] = "aligned-projection"
    model_a: str
    model_b: str
    dataset: str
    n: int
    seed: int = 0
    layer_a: int = -1
    layer_b: int = -1
    alignment: float = 0.01
    n_neighbors: int = 15
    min_dist: float = 0.1

    def feature_models(self) -> tuple[str, ...]:
        return (self.model_a, self.model_b)


@dataclass(frozen=True)
class NeighbourRequest(Request):
    """Per-sample k-NN overlap of two models' layers (cosine, self excluded)."""

    kind: ClassVar[str] = "neighbours"
    model_a: str
    model_b: str
    dataset: str
    n: int
    seed: int = 0
    layer_a: int = -1
    layer_b: int = -1
    k: int = 10

    def feature_models(self) -> tuple[str, ...]:
        return (self.model_a, self.model_b)


@dataclass(frozen=True)
class ExtractRequest(Request):
    """Features of one model on a dataset's seeded subset, into the feature cache."""

    kind: ClassVar[str] = "extract"
    model: str
    dataset: str
    n: int
    seed: int = 0

    def feature_models(self) -> tuple[str, ...]:
        return ()
