"""Model-version compatibility: can a new model's queries search a gallery the old model embedded?

Backward-compatible training (Shen et al. 2020, BCT; Jaeckle et al. 2023, BT²; Biondi et al. 2024,
Stationary Representations) calls a new model φ_new compatible with an old one φ_old when searching the
old gallery with new queries beats searching it with old ones. With M a retrieval measure (mean average
precision or recall@k, :func:`alignscope.core.metrics.retrieval.evaluate_retrieval`) and
M(query model, gallery model), BCT's *empirical compatibility criterion* is

    M(φ_new^Q, φ_old^G) > M(φ_old^Q, φ_old^G),

and M(φ_new^Q, φ_new^G), the re-indexed gallery, is the ceiling one compares with. :func:`compatibility_report`
reports the three values, the difference M(new, old) − M(old, old), pass / fail, seeded bootstrap
intervals over queries for each, and the two pairwise inequalities of BCT's definition (the "two
inequality constraints" of Stationary Representations): for a query i and gallery item j with the same
label, cos(φ_new(x_i), φ_old(x_j)) ≥ cos(φ_old(x_i), φ_old(x_j)) (new queries are no farther from their
matches), and for different labels cos(φ_new(x_i), φ_old(x_j)) ≤ cos(φ_old(x_i), φ_old(x_j)) (no nearer
to the rest).

Bootstrap: the gallery is fixed and each M is a mean of per-query values (average precision, or 1 when
the first hit is within k), so the queries are resampled with replacement — the same resampled queries
for every M, so the difference is paired — and each M is re-averaged. A copy of a query does not
interact with another (unlike the samples of a k-NN metric, see :mod:`alignscope.core.stats`), so the
bootstrap is centred on the estimate and the plain percentile interval is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import check_features
from alignscope.core.metrics.retrieval import LinearMap, RetrievalResult, evaluate_retrieval, relevance_masks
from alignscope.core.stats import _count

MEASURES = ("mean_average_precision", "recall@k")


@dataclass(frozen=True)
class ScoreInterval:
    """A value and its bootstrap interval [low, high] at the report's confidence."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class PairwiseCompatibility:
    """BCT's two pairwise inequalities, as the fraction of query–gallery pairs that satisfy them.

    Attributes:
        positive_satisfied: over same-label pairs, fraction with cos(new_i, old_j) ≥ cos(old_i, old_j).
        negative_satisfied: over different-label pairs, fraction with cos(new_i, old_j) ≤ cos(old_i, old_j).
        n_positive, n_negative: the pairs counted (pairs excluded by ``exclude_same_id`` are not).
    """

    positive_satisfied: float
    negative_satisfied: float
    n_positive: int
    n_negative: int


@dataclass(frozen=True)
class CompatibilityReport:
    """BCT's empirical compatibility criterion with bootstrap intervals.

    Attributes:
        measure: ``"mean_average_precision"`` or ``"recall@k"`` for a k, e.g. ``"recall@1"``.
        new_old: M(new queries, old gallery); old_old: M(old queries, old gallery);
            new_new: M(new queries, new gallery), or None without a new gallery.
        difference: M(new, old) − M(old, old), its interval from the same (paired) resamples.
        reindexing_gain: M(new, new) − M(new, old), what re-embedding the gallery would add; or None.
        passed: the criterion, ``difference.estimate > 0`` (strict, as BCT states it).
        confident: ``difference.low > 0``: the interval excludes "no better than the old model".
        update_gain: (M(new, old) − M(old, old)) / (M(new, new) − M(old, old)), the share of the new
            model's improvement kept without re-indexing; None without a new gallery or when the new
            model is not measurably better than the old one (the interval of M(new, new) − M(old, old)
            reaches 0: there is no improvement to keep a share of).
        pairwise: the two pairwise inequalities (:class:`PairwiseCompatibility`).
        n_queries: queries scored (those with a relevant gallery item); n_gallery: gallery items.
        confidence, n_boot, seed: the bootstrap settings.
        new_old_result, old_old_result, new_new_result: the full :class:`RetrievalResult` of each
            setting (every measure is in each, not only ``measure``); the last is None without a new
            gallery.
    """

    measure: str
    new_old: ScoreInterval
    old_old: ScoreInterval
    new_new: ScoreInterval | None
    difference: ScoreInterval
    reindexing_gain: ScoreInterval | None
    passed: bool
    confident: bool
    update_gain: float | None
    pairwise: PairwiseCompatibility
    n_queries: int
    n_gallery: int
    confidence: float
    n_boot: int
    seed: int
    new_old_result: RetrievalResult
    old_old_result: RetrievalResult
    new_new_result: RetrievalResult | None


def parse_measure(measure: str) -> int | None:
    """None for mean average precision, else the k of ``"recall@k"``."""
    if measure == "mean_average_precision":
        return None
    match = re.fullmatch(r"recall@([1-9][0-9]*)", str(measure))
    if match is None:
        raise InputError(f"measure must be 'mean_average_precision' or 'recall@k' (e.g. 'recall@1'), got {measure!r}")
    return int(match.group(1))


def per_query_values(result: RetrievalResult, measure: str) -> np.ndarray:
    """float64 [n_scored]: the per-query values whose mean is ``measure`` (AP, or 1.0 / 0.0 hits at k)."""
    top_k = parse_measure(measure)
    scored = result.scored
    if top_k is None:
        return result.average_precision[scored]
    if top_k > result.n_gallery:
        raise InputError(f"{measure}: k = {top_k} exceeds the gallery size {result.n_gallery}")
    return (result.first_relevant_rank[scored] <= top_k).astype(np.float64)


def _bootstrap_means(columns: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n_columns]: column means over rows resampled with replacement (the same rows for all)."""
    generator = torch.Generator().manual_seed(int(seed))
    n_rows = columns.shape[0]
    means = np.empty((n_boot, columns.shape[1]), dtype=np.float64)
    chunk = max(1, (1 << 22) // max(n_rows, 1))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        rows = torch.randint(0, n_rows, (stop - start, n_rows), generator=generator).numpy()
        means[start:stop] = columns[rows].mean(axis=1)
    return means


def _interval(estimate: float, resampled: np.ndarray, confidence: float) -> ScoreInterval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [alpha, 1.0 - alpha])
    return ScoreInterval(float(estimate), float(low), float(high))


def pairwise_compatibility(
    old_queries: Any,
    new_queries: Any,
    old_gallery: Any,
    *,
    query_labels: Any = None,
    gallery_labels: Any = None,
    relevance: str = "class",
    query_ids: Any = None,
    gallery_ids: Any = None,
    exclude_same_id: bool = False,
    query_map: LinearMap | None = None,
    block_size: int | None = None,
) -> PairwiseCompatibility:
    """Fractions of query–gallery pairs satisfying BCT's two inequalities (see the module docstring).

    Arguments as in :func:`compatibility_report`; ``relevance`` decides what a same-class ("positive") pair is.
    Ties (equal cosines) count as satisfied.
    """
    old_q = check_features(old_queries, "old_queries", min_samples=1).to(torch.float64)
    new_q = check_features(new_queries, "new_queries", min_samples=1).to(old_q.device, torch.float64)
    old_g = check_features(old_gallery, "old_gallery", min_samples=1).to(old_q.device, torch.float64)
    if query_map is not None:
        new_q = query_map(new_q, "new_queries")
    _check_widths(old_q, new_q, old_g, mapped=query_map is not None)
    codes = relevance_masks(
        old_q.shape[0],
        old_g.shape[0],
        relevance=relevance,
        query_labels=query_labels,
        gallery_labels=gallery_labels,
        query_ids=query_ids,
        gallery_ids=gallery_ids,
        exclude_same_id=exclude_same_id,
        name_query="queries",
        name_gallery="old_gallery",
    ).to(old_q.device)
    unit_old_q, unit_new_q, unit_old_g = (F.normalize(t, dim=1) for t in (old_q, new_q, old_g))
    n_queries, n_gallery = old_q.shape[0], old_g.shape[0]
    block_size = block_size or max(1, (1 << 22) // max(n_gallery, 1))
    positive_ok = negative_ok = n_positive = n_negative = 0
    for start in range(0, n_queries, block_size):
        stop = min(start + block_size, n_queries)
        new_old = unit_new_q[start:stop] @ unit_old_g.T
        old_old = unit_old_q[start:stop] @ unit_old_g.T
        relevant, excluded = codes.block(start, stop)
        negative = ~relevant if excluded is None else ~relevant & ~excluded
        positive_ok += int((relevant & (new_old >= old_old)).sum())
        negative_ok += int((negative & (new_old <= old_old)).sum())
        n_positive += int(relevant.sum())
        n_negative += int(negative.sum())
    return PairwiseCompatibility(
        positive_satisfied=positive_ok / n_positive if n_positive else float("nan"),
        negative_satisfied=negative_ok / n_negative if n_negative else float("nan"),
        n_positive=n_positive,
        n_negative=n_negative,
    )


def _check_widths(old_q: torch.Tensor, new_q: torch.Tensor, old_g: torch.Tensor, *, mapped: bool) -> None:
    if old_q.shape[1] != old_g.shape[1]:
        raise InputError(
            f"old_queries have width {old_q.shape[1]} but old_gallery {old_g.shape[1]}; both must "
            "come from the old model"
        )
    if new_q.shape[1] != old_g.shape[1]:
        if mapped:
            raise InputError(
                f"query_map sends new queries to width {new_q.shape[1]} but old_gallery has width "
                f"{old_g.shape[1]}; fit the map from new to old embeddings"
            )
        raise InputError(
            f"new_queries have width {new_q.shape[1]} but old_gallery {old_g.shape[1]}; new queries can search "
            "the old gallery only in one space: pass query_map=fit_linear_map(new_train, old_train), fitted on "
            "samples both models embedded (not the evaluation queries)"
        )


def compatibility_report(
    old_queries: Any,
    new_queries: Any,
    old_gallery: Any,
    new_gallery: Any = None,
    *,
    query_labels: Any = None,
    gallery_labels: Any = None,
    measure: str = "mean_average_precision",
    relevance: str = "class",
    query_ids: Any = None,
    gallery_ids: Any = None,
    exclude_same_id: bool = False,
    query_map: LinearMap | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CompatibilityReport:
    """BCT's empirical compatibility criterion M(new, old) > M(old, old), with M(new, new) for comparison.

    Args:
        old_queries, new_queries: [n_q, d_old], [n_q, d_new]: the same query samples embedded by the old
            and the new model (rows in the same order).
        old_gallery: [n_g, d_old], the gallery as the old model embedded it.
        new_gallery: [n_g, d_new], the same gallery samples embedded by the new model; optional (gives
            M(new, new), the re-indexing gain and the update gain).
        query_labels, gallery_labels: class labels [n_q], [n_g] (class-level hits).
        measure: ``"mean_average_precision"`` or ``"recall@k"`` (top-k accuracy, e.g. ``"recall@1"``).
        relevance, query_ids, gallery_ids, exclude_same_id: as in
            :func:`~alignscope.core.metrics.retrieval.evaluate_retrieval`.
        query_map: a :class:`~alignscope.core.metrics.retrieval.LinearMap` from new to old embeddings,
            needed when the widths differ (it is applied to the new queries searching the old gallery
            only; M(new, new) stays in the new space).
        n_boot, confidence, seed: the bootstrap over queries.

    Raises:
        InputError: widths differ and no map is given; labels missing; a bad measure or bootstrap setting.

    Example:
        >>> import torch
        >>> generator = torch.Generator().manual_seed(0)
        >>> centres = torch.randn(5, 8, generator=generator)
        >>> labels = torch.arange(40) % 5
        >>> def embed(noise):  # one model: class centre plus noise of the given size
        ...     return centres[labels] + noise * torch.randn(40, 8, generator=generator)
        >>> report = compatibility_report(embed(2.0), embed(0.3), embed(2.0), embed(0.3),
        ...                        query_labels=labels, gallery_labels=labels, exclude_same_id=True, n_boot=200)
        >>> report.passed, report.confident, report.new_old.estimate > report.old_old.estimate
        (True, True, True)
    """
    top_k = parse_measure(measure)
    n_boot = _count(n_boot, "n_boot", low=2)
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    old_q = check_features(old_queries, "old_queries", min_samples=1)
    new_q = check_features(new_queries, "new_queries", min_samples=1)
    old_g = check_features(old_gallery, "old_gallery", min_samples=1)
    if old_q.shape[0] != new_q.shape[0]:
        raise InputError(
            f"old_queries has {old_q.shape[0]} rows but new_queries has {new_q.shape[0]}; both must "
            "hold the same query samples in the same order"
        )
    mapped_new_q = query_map(new_q, "new_queries") if query_map is not None else new_q
    _check_widths(old_q, mapped_new_q, old_g, mapped=query_map is not None)
    new_g = None
    if new_gallery is not None:
        new_g = check_features(new_gallery, "new_gallery", min_samples=1)
        if new_g.shape[0] != old_g.shape[0]:
            raise InputError(
                f"old_gallery has {old_g.shape[0]} rows but new_gallery has {new_g.shape[0]}; both "
                "must hold the same gallery samples in the same order"
            )
    if top_k is not None and top_k > old_g.shape[0]:
        raise InputError(f"{measure}: k = {top_k} exceeds the gallery size {old_g.shape[0]}")
    shared = dict(
        query_labels=query_labels,
        gallery_labels=gallery_labels,
        relevance=relevance,
        query_ids=query_ids,
        gallery_ids=gallery_ids,
        exclude_same_id=exclude_same_id,
    )
    results = {
        "new_old": evaluate_retrieval(
            mapped_new_q, old_g, name_query="new_queries", name_gallery="old_gallery", **shared
        ),
        "old_old": evaluate_retrieval(old_q, old_g, name_query="old_queries", name_gallery="old_gallery", **shared),
    }
    if new_g is not None:
        results["new_new"] = evaluate_retrieval(
            new_q, new_g, name_query="new_queries", name_gallery="new_gallery", **shared
        )
    # Relevance depends only on labels / ids, never on the embeddings: every setting scores the same queries.
    columns = np.column_stack([per_query_values(result, measure) for result in results.values()])
    estimates = columns.mean(axis=0)
    resampled = _bootstrap_means(columns, int(n_boot), int(seed))
    level = float(confidence)
    intervals = {key: _interval(estimates[i], resampled[:, i], level) for i, key in enumerate(results)}
    difference = _interval(estimates[0] - estimates[1], resampled[:, 0] - resampled[:, 1], level)
    reindexing_gain = update_gain = None
    if new_g is not None:
        reindexing_gain = _interval(estimates[2] - estimates[0], resampled[:, 2] - resampled[:, 0], level)
        own_gain = _interval(estimates[2] - estimates[1], resampled[:, 2] - resampled[:, 1], level)
        if own_gain.low > 0:  # else a share of no measurable gain: noise over noise (2256 % at chance)
            update_gain = float((estimates[0] - estimates[1]) / own_gain.estimate)
    pairwise = pairwise_compatibility(old_q, new_q, old_g, query_map=query_map, **shared)
    return CompatibilityReport(
        measure=measure,
        new_old=intervals["new_old"],
        old_old=intervals["old_old"],
        new_new=intervals.get("new_new"),
        difference=difference,
        reindexing_gain=reindexing_gain,
        passed=bool(difference.estimate > 0),
        confident=bool(difference.low > 0),
        update_gain=update_gain,
        pairwise=pairwise,
        n_queries=int(columns.shape[0]),
        n_gallery=int(old_g.shape[0]),
        confidence=level,
        n_boot=int(n_boot),
        seed=int(seed),
        new_old_result=results["new_old"],
        old_old_result=results["old_old"],
        new_new_result=results.get("new_new"),
    )


__all__ = [
    "MEASURES",
    "CompatibilityReport",
    "PairwiseCompatibility",
    "ScoreInterval",
    "compatibility_report",
    "pairwise_compatibility",
    "per_query_values",
]
