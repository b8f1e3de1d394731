"""The metric registry: one frozen :class:`MetricSpec` per metric, found by name (timm-style).

Each family module (``knn.py``, ``kernel.py``, ...) registers its metrics when imported; this module
imports them all on first use, so ``list_metrics()`` is always complete. The dashboard and the CLI list
metrics from here and nothing else hard-codes a metric name.

A spec may also carry a split form used by :func:`core.metrics.layers.layer_matrix` and
:mod:`core.stats` to avoid redundant work: ``prepare(feats, **params) -> state`` runs once per layer
(neighbour lists, centred Gram matrices), ``compare(state_a, state_b, **params) -> float`` once per pair,
and ``permute(state, perm)`` reorders a state's samples without recomputing it (permutation nulls).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignscope.core.errors import InputError, UnknownMetricError

INVARIANCES = ("orthogonal", "isotropic_scale", "translation", "permutation", "invertible_linear", "unit_scale")

_FAMILY_MODULES = (
    "alignscope.core.metrics.knn",
    "alignscope.core.metrics.kernel",
    "alignscope.core.metrics.cca",
    "alignscope.core.metrics.geometry",
    "alignscope.core.metrics.rsa",
    "alignscope.core.metrics.relative",
    "alignscope.core.metrics.gram",
    "alignscope.core.metrics.matching",
    "alignscope.core.metrics.retrieval",
    "alignscope.core.metrics.shape",
)


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: its default and the values :func:`compute` accepts.

    ``kind`` is ``"int"``, ``"float"``, ``"str"``, ``"bool"`` or ``"int_or_none"``; ``low``/``high`` are
    inclusive bounds for numbers; ``choices`` lists the accepted strings. Bounds that depend on the data
    (``k < n``) are checked by the metric itself.
    """

    name: str
    default: Any
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def validate(self, value: Any, metric: str) -> Any:
        where = f"{metric}: parameter {self.name}"
        if self.kind == "str":
            if value not in self.choices:
                raise InputError(f"{where} must be one of {', '.join(map(repr, self.choices))}; got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise InputError(f"{where} must be True or False, got {value!r}")
            return bool(value)
        if value is None and self.kind == "int_or_none":
            return None
        if self.kind in ("int", "int_or_none"):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                if isinstance(value, (float, np.floating)) and float(value).is_integer():
                    value = int(value)
                else:
                    raise InputError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        else:
            try:
                value = float(value)
            except (TypeError, ValueError) as error:
                raise InputError(f"{where} must be a number, got {value!r}") from error
            if not np.isfinite(value):
                raise InputError(f"{where} must be finite, got {value!r}")
        if self.low is not None and value < self.low:
            raise InputError(f"{where} must be >= {self.low}, got {value}")
        if self.high is not None and value > self.high:
            raise InputError(f"{where} must be <= {self.high}, got {value}")
        return value


@dataclass(frozen=True)
class MetricSpec:
    """Everything the rest of Alignscope needs to know about one metric.

    Attributes:
        name: registry key, e.g. ``"mutual_knn"``.
        family: module family, e.g. ``"knn"``, ``"kernel"``.
        fn: ``fn(feats_a, feats_b, **params) -> float``.
        higher_is_better: whether a larger value means more aligned.
        symmetric: ``fn(a, b) == fn(b, a)`` at the default parameters; ``asymmetric_when`` lists the
            ``(param, value)`` settings that break it (semi unit matching). Ask :meth:`symmetric_for`.
        value_range: (low, high) of the values; ``-inf``/``inf`` where unbounded.
        invariances: transformations of one input that leave the value unchanged, from
            :data:`INVARIANCES`; ``"unit_scale"`` is per-feature rescaling.
        params: the tunable parameters and their bounds.
        reference: one line pointing at the paper / implementation the definition follows.
        summary: one line saying what the number measures.
        per_sample: optional ``per_sample(feats_a, feats_b, **params) -> Tensor [n]`` whose mean is ``fn``.
        prepare / compare / permute: optional split form (see module docstring).
        compare_all: optional ``compare_all(states_a, states_b, **params) -> ndarray [La, Lb]`` doing all
            pairs at once (one matrix product for Gram-form kernels); returns None to decline.
        chance: optional ``chance(n_samples, **params) -> float`` analytic chance level.
        chance_exact: whether ``chance`` is the exact expectation under shuffled correspondence (the
            engine then uses it as the chance level); an approximation is only reported beside the
            shuffled level.
        takes_sample_ids: the metric accepts ``sample_ids`` (a bootstrap resample's original indices) and
            keeps copies of one sample from counting as separate evidence: k-NN lists exclude the
            query's copies; train/test splits keep all copies on one side.
        requires_equal_dims: both inputs must have the same width (GRAM, unmapped retrieval).
        degenerate: optional ``degenerate(n_samples, d_a, d_b, params) -> reason | None``: inputs of these
            shapes give a value that says nothing about alignment (CCA with d_a + d_b >= n - 1: every
            canonical correlation is 1). Such layer pairs are flagged and never chosen as the best.
        randomized: the value depends on a ``seed`` parameter (held-out splits, random anchors).
    """

    name: str
    family: str
    fn: Callable[..., float]
    higher_is_better: bool
    symmetric: bool
    value_range: tuple[float, float]
    invariances: tuple[str, ...]
    params: tuple[ParamSpec, ...] = ()
    reference: str = ""
    summary: str = ""
    per_sample: Callable[..., Any] | None = None
    prepare: Callable[..., Any] | None = None
    compare: Callable[..., float] | None = None
    permute: Callable[[Any, Any], Any] | None = None
    compare_all: Callable[..., Any] | None = None
    chance: Callable[..., float | None] | None = None
    chance_exact: bool = True
    takes_sample_ids: bool = False
    requires_equal_dims: bool = False
    degenerate: Callable[[int, int, int, dict[str, Any]], str | None] | None = None
    randomized: bool = False
    asymmetric_when: tuple[tuple[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.invariances) - set(INVARIANCES)
        if unknown:
            raise ValueError(f"{self.name}: unknown invariances {sorted(unknown)}; known: {INVARIANCES}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.params)

    def defaults(self) -> dict[str, Any]:
        return {param.name: param.default for param in self.params}

    def symmetric_for(self, params: dict[str, Any]) -> bool:
        """Whether ``fn(a, b, **params) == fn(b, a, **params)`` (model matrices reuse (a, b) for (b, a))."""
        if not self.symmetric:
            return False
        resolved = self.resolve_params(params)
        return not any(resolved.get(name) == value for name, value in self.asymmetric_when)

    def exact_chance(self, n_samples: int, params: dict[str, Any]) -> float | None:
        """The closed-form chance level at ``n_samples`` when the metric has an exact one, else None."""
        if self.chance is None or not self.chance_exact:
            return None
        value = self.chance(n_samples, **self.resolve_params(params))
        return None if value is None else float(value)

    def resolve_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``params``, each validated; unknown names raise InputError."""
        by_name = {param.name: param for param in self.params}
        unknown = sorted(set(params) - set(by_name))
        if unknown:
            valid = ", ".join(by_name) or "none"
            raise InputError(f"{self.name} has no parameter {', '.join(unknown)}; its parameters are: {valid}")
        resolved = self.defaults()
        for key, value in params.items():
            resolved[key] = by_name[key].validate(value, self.name)
        return resolved


_REGISTRY: dict[str, MetricSpec] = {}
_loaded = False


def register(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to the registry; registering a second spec under one name is an error."""
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing.fn is not spec.fn:
        raise ValueError(f"metric {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        for module in _FAMILY_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_metrics(family: str | None = None) -> list[MetricSpec]:
    """All registered specs (optionally one family), sorted by family then name.

    Example:
        >>> "mutual_knn" in [spec.name for spec in list_metrics("knn")]
        True
    """
    _ensure_loaded()
    specs = [spec for spec in _REGISTRY.values() if family is None or spec.family == family]
    if family is not None and not specs:
        families = sorted({spec.family for spec in _REGISTRY.values()})
        raise UnknownMetricError(f"no metric family {family!r}; families: {', '.join(families)}")
    return sorted(specs, key=lambda spec: (spec.family, spec.name))


def list_families() -> list[str]:
    _ensure_loaded()
    return sorted({spec.family for spec in _REGISTRY.values()})


def get_metric(name: str) -> MetricSpec:
    """The spec registered under ``name``.

    Raises:
        UnknownMetricError: listing the valid names.
    """
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(_REGISTRY))
        raise UnknownMetricError(f"unknown metric {name!r}; valid metrics: {valid}") from None


def compute(
    name: str,
    feats_a: Any,
    feats_b: Any,
    *,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    **params: Any,
) -> float:
    """Compute metric ``name`` with ``params`` validated against the spec's bounds.

    Args:
        name: a registered metric name (see :func:`list_metrics`).
        feats_a: [n, d_a] tensor or array.
        feats_b: [n, d_b], the same samples in the same order.
        name_a, name_b: labels used in error messages, e.g. ``"minilm layer 3"``.
        **params: the metric's parameters (``spec.params``); others raise InputError.

    Returns:
        The metric value as a Python float.
    """
    spec = get_metric(name)
    resolved = spec.resolve_params(params)
    return float(spec.fn(feats_a, feats_b, name_a=name_a, name_b=name_b, **resolved))
