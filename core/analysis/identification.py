"""Layer identification (Kornblith et al. 2019, Table 2) on the engine: for a family of nets of one
architecture from different seeds, how often each metric's best match for layer i of one net is layer i
of another. Every ordered pair's layer matrix is the engine's :class:`MatrixRequest` (stored, shared with
Compare and Many models); the hit rule is :func:`alignscope.core.convergent.identification_hits`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alignscope.core.analysis.requests import MatrixRequest, Request
from alignscope.core.analysis.results import LayerMatrix, register_result_type
from alignscope.core.convergent import LayerIdentification, identification_hits
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import get_metric

register_result_type(LayerIdentification)


@dataclass(frozen=True)
class IdentificationRequest(Request):
    """``metrics``: (label, metric, resolved params) each, on every ordered pair of ``models``."""

    kind: ClassVar[str] = "layer-identification"
    models: tuple[str, ...]
    dataset: str
    n: int
    seed: int = 0
    metrics: tuple[tuple[str, str, tuple[tuple[str, object], ...]], ...] = ()

    def __post_init__(self) -> None:
        if len(self.models) < 2:
            raise InputError("layer identification needs at least two nets of one architecture")
        if not self.metrics:
            raise InputError("give at least one metric to identify layers with")

    def feature_models(self) -> tuple[str, ...]:
        return self.models

    def describe(self) -> str:
        return f"layer identification of {len(self.models)} nets by {len(self.metrics)} metrics"


def identification_request(
    models: tuple[str, ...], dataset: str, n: int, metrics: tuple[str, ...], *, seed: int = 0, **available: object
) -> IdentificationRequest:
    """A request with each metric's parameters resolved from ``available`` (k, similarity, …); an entry
    ``metric:similarity`` (e.g. ``mutual_knn:ip``) sets that k-NN metric's similarity, so one table can
    compare cosine with raw inner products.

    Example:
        >>> request = identification_request(("a", "b"), "digits", 100, ("mutual_knn:ip", "linear_cka"), k=5)
        >>> [(label, metric, dict(params).get("similarity")) for label, metric, params in request.metrics]
        [('mutual_knn:ip', 'mutual_knn', 'ip'), ('linear_cka', 'linear_cka', None)]
    """
    from alignscope.core.analysis.requests import metric_params

    entries = []
    for entry in dict.fromkeys(metrics):
        metric, _, similarity = entry.partition(":")
        get_metric(metric)  # an unknown metric is an error naming it
        chosen = {**available, **({"similarity": similarity} if similarity else {})}
        params = metric_params(metric, **chosen)
        if similarity and dict(params).get("similarity") != similarity:
            raise InputError(f"{entry!r}: {metric} takes no similarity (or not {similarity!r})")
        entries.append((entry, metric, params))
    return IdentificationRequest(tuple(models), dataset, n, seed, tuple(entries))


def compute_identification(
    request: IdentificationRequest,
    layer_counts: dict[str, int],
    matrix: Callable[[MatrixRequest], LayerMatrix],
    progress: Callable[[int, int], None] | None = None,
) -> LayerIdentification:
    """Hits per layer and metric over every ordered pair (a, b), a ≠ b (ties to the lower layer)."""
    counts = {layer_counts[m] for m in request.models}
    if len(counts) != 1:
        shown = ", ".join(f"{m}: {layer_counts[m]}" for m in request.models)
        raise InputError(f"layer identification needs nets with the same number of layers ({shown})")
    if counts == {1}:  # every "best layer" is the only one: accuracy 1.000 against chance 1.000, meaning nothing
        raise InputError(
            f"layer identification needs nets with two or more layers; {', '.join(request.models)} have one each"
        )
    pairs = [(a, b) for a in request.models for b in request.models if a != b]
    accuracy, per_layer = {}, {}
    total, done = len(pairs) * len(request.metrics), 0
    for label, metric, params in request.metrics:
        matrices = {}
        for a, b in pairs:
            scored = matrix(MatrixRequest(a, b, request.dataset, request.n, request.seed, metric, params))
            matrices[a, b] = np.asarray(scored.values, dtype=float)
            done += 1
            if progress is not None:
                progress(done, total)
        hits = identification_hits(matrices, higher_is_better=get_metric(metric).higher_is_better)
        accuracy[label], per_layer[label] = float(hits.mean()), hits
    return LayerIdentification(
        accuracy=accuracy,
        per_layer=per_layer,
        n_layers=counts.pop(),
        n_nets=len(request.models),
        n_ordered_pairs=len(pairs),
    )
