"""Model-version compatibility on the engine (BCT / BT² / Stationary Representations): can the new model's
queries search the gallery the old model embedded, with classes as relevance?

:class:`CompatibilityRequest` splits a dataset's seeded subset into disjoint queries and gallery (and,
when the two layers differ in width, a third part that fits the ridge map new → old, kept apart from
both), then runs :func:`alignscope.core.compatibility.compatibility_report`: M(old, old), M(new, old),
M(new, new) with bootstrap intervals over queries, the criterion M(new, old) > M(old, old) as pass /
fail, and each setting's full retrieval (recall@k, mAP, CMC).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import Request
from alignscope.core.analysis.results import register_result_type
from alignscope.core.analysis.scorer import check_same_samples
from alignscope.core.compatibility import (
    CompatibilityReport,
    PairwiseCompatibility,
    ScoreInterval,
    compatibility_report,
    parse_measure,
)
from alignscope.core.errors import InputError
from alignscope.core.metrics.retrieval import RetrievalResult, fit_linear_map
from alignscope.core.numbers import signed

CMC_RANKS = (1, 5, 10, 20)  # the CMC read at these ranks in tables
MAP_FRACTION = 0.3  # of the samples, to fit the ridge map when the widths differ
# the fewest scored queries (each with an item of its class in the gallery) and gallery items a verdict
# is given on: with fewer, the bootstrap interval is a few distinct values and the verdict noise
MIN_QUERIES = MIN_GALLERY = 10


@dataclass(frozen=True)
class CompatibilityRequest(Request):
    """Old model's layer ``layer_old`` vs new model's ``layer_new`` (negative: from the end) on ``dataset``.

    ``query_fraction`` of the samples (after the map's share, when one is fitted) are queries, the rest
    the gallery; ``measure`` is ``"mean_average_precision"`` or ``"recall@k"``."""

    kind: ClassVar[str] = "compatibility"
    result_version: ClassVar[int] = 2  # 2: no share of the new model's gain where that gain is not measurable
    old_model: str
    new_model: str
    dataset: str
    n: int
    seed: int = 0
    layer_old: int = -1
    layer_new: int = -1
    measure: str = "mean_average_precision"
    query_fraction: float = 0.3
    bootstrap: int = 200

    def __post_init__(self) -> None:
        if self.old_model == self.new_model:
            raise InputError("compatibility compares two different models: an old one and a new one")
        parse_measure(self.measure)
        if not 0.05 <= self.query_fraction <= 0.95:
            raise InputError(f"query_fraction must be in [0.05, 0.95], got {self.query_fraction!r}")
        if self.bootstrap < 2:
            raise InputError(f"bootstrap must be at least 2 resamples, got {self.bootstrap}")

    def feature_models(self) -> tuple[str, ...]:
        return (self.old_model, self.new_model)

    def describe(self) -> str:
        return f"compatibility of {self.new_model} with {self.old_model} ({self.measure})"


@dataclass(frozen=True)
class Compatibility:
    """A :class:`CompatibilityReport` with what it was computed on.

    Attributes:
        layer_old, layer_new: resolved indices; ``layer_old_name``, ``layer_new_name``.
        n_fit: samples that fitted the ridge map new → old (0 when the widths agree and no map is used).
        report: the criterion, the three settings' values and intervals, their retrievals.
    """

    old_model: str
    new_model: str
    dataset: str
    layer_old: int
    layer_new: int
    layer_old_name: str
    layer_new_name: str
    n_fit: int
    report: CompatibilityReport

    def setting_rows(self) -> list[dict[str, str]]:
        """One row per (query model, gallery model) setting: the criterion's measure with its interval,
        then mAP, recall@k and the CMC at a few ranks from the full retrieval."""
        report = self.report
        settings = [
            ("old → old gallery", report.old_old, report.old_old_result),
            ("new → old gallery", report.new_old, report.new_old_result),
            ("new → new gallery", report.new_new, report.new_new_result),
        ]
        rows = []
        for name, interval, retrieval in settings:
            if interval is None or retrieval is None:
                continue
            row = {
                "queries → gallery": name,
                report.measure: f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]",
            }
            if report.measure != "mean_average_precision":
                row["mAP"] = f"{retrieval.mean_average_precision:.3f}"
            for rank in CMC_RANKS:
                if rank <= retrieval.cmc.size:
                    row[f"CMC@{rank}"] = f"{retrieval.cmc[rank - 1]:.3f}"
            rows.append(row)
        return rows

    def verdict(self) -> str:
        """The criterion in one sentence: the difference with its interval, and what it means."""
        report = self.report
        d = report.difference
        level = f"{report.confidence:.0%}"
        if max(abs(d.estimate), abs(d.low), abs(d.high)) < 1e-12:
            words = "the new model's queries rank the old gallery exactly as the old model's do (the same retrieval)"
        elif report.confident:
            words = f"compatible: new queries search the old gallery better than old ones ({level} interval above 0)"
        elif report.passed:
            words = f"compatible by the point estimate only: the {level} interval includes 0"
        else:
            words = "not compatible: new queries search the old gallery no better than old ones"
        gain = (
            ""
            if report.update_gain is None or not report.passed
            else f"; {report.update_gain:.0%} of the new model's gain kept without re-indexing"
        )
        return f"M(new, old) − M(old, old) = {signed(d.estimate)} [{signed(d.low)}, {signed(d.high)}]: {words}{gain}."


for _type in (Compatibility, CompatibilityReport, PairwiseCompatibility, ScoreInterval, RetrievalResult):
    register_result_type(_type)


def _split(n: int, seed: int, query_fraction: float, mapped: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, queries, gallery) row indices: a seeded permutation cut into disjoint parts (each sorted)."""
    order = np.random.default_rng(seed).permutation(n)
    n_fit = int(round(MAP_FRACTION * n)) if mapped else 0
    rest = order[n_fit:]
    n_query = int(round(query_fraction * rest.size))
    if n_query < MIN_QUERIES or rest.size - n_query < MIN_GALLERY or (mapped and n_fit < 3):
        kept = 1.0 - MAP_FRACTION if mapped else 1.0
        needed = max(MIN_QUERIES / query_fraction, MIN_GALLERY / (1.0 - query_fraction)) / kept
        raise InputError(
            f"n = {n} gives {n_query} {'query' if n_query == 1 else 'queries'} and a gallery of "
            f"{rest.size - n_query}{' (after the map fit)' if mapped else ''}; a compatibility verdict needs at "
            f"least {MIN_QUERIES} queries and a gallery of {MIN_GALLERY}: use n >= {math.ceil(needed) + 1}"
        )
    return np.sort(order[:n_fit]), np.sort(rest[:n_query]), np.sort(rest[n_query:])


def compute_compatibility(request: CompatibilityRequest, views: Mapping[str, ViewFeatures]) -> Compatibility:
    old, new = views[request.old_model], views[request.new_model]
    check_same_samples(old, new)
    if old.labels is None:
        raise InputError(f"{request.dataset} has no labels: class-level retrieval needs them")
    for layer, view in ((request.layer_old, old), (request.layer_new, new)):
        if not -len(view.values) <= layer < len(view.values):
            raise InputError(f"layer {layer} is out of range: {view.model} has {len(view.values)} layers")
    i, j = request.layer_old % len(old.values), request.layer_new % len(new.values)
    feats_old, feats_new = old.values[i], new.values[j]
    mapped = feats_old.shape[1] != feats_new.shape[1]
    fit, queries, gallery = _split(old.n_samples, request.seed, request.query_fraction, mapped)
    labels = np.asarray(old.labels)
    query_map = fit_linear_map(feats_new[fit], feats_old[fit], name_source="new", name_target="old") if mapped else None
    report = compatibility_report(
        feats_old[queries],
        feats_new[queries],
        feats_old[gallery],
        feats_new[gallery],
        query_labels=labels[queries],
        gallery_labels=labels[gallery],
        measure=request.measure,
        query_map=query_map,
        n_boot=request.bootstrap,
        seed=request.seed,
    )
    if report.n_queries < MIN_QUERIES:
        raise InputError(
            f"only {report.n_queries} of {queries.size} queries have an item of their class in the gallery; a "
            f"compatibility verdict needs at least {MIN_QUERIES}: use a larger n"
        )
    return Compatibility(
        request.old_model,
        request.new_model,
        request.dataset,
        i,
        j,
        old.layer_names[i],
        new.layer_names[j],
        int(fit.size),
        report,
    )
