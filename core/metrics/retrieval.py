"""Cross-model retrieval / compatibility (Stationary Representations; BT² backward compatibility).

A linear map A → B (ridge, fitted on a seeded train split of the samples) sends held-out A embeddings
into B's space; each mapped query then retrieves, by cosine similarity, among the held-out B embeddings.
Top-k accuracy is the fraction of queries whose own sample is among the k most similar; chance is
k / n_test. The unmapped variant compares A and B directly and needs equal widths (two versions of one
model trained to stay compatible). Ties are broken by the lower index.

:func:`evaluate_retrieval` is the general form used to judge model-version compatibility
(:mod:`alignscope.core.compatibility`): separate query and gallery sets, possibly from different models,
with class-level hits (a gallery item is relevant to a query when their labels match) or instance-level
hits (same sample id), scored as recall@k, mean average precision and the CMC curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, check_choice, check_features, check_positive
from alignscope.core.metrics.geometry import _groups, _ridge_fit_predict
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register


def split_sizes(n_samples: int, train_fraction: float) -> tuple[int, int]:
    """(n_train, n_test) of :func:`split_indices` over ``n_samples`` distinct samples."""
    if not 0.0 < float(train_fraction) < 1.0:
        raise InputError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    n_train = int(round(train_fraction * n_samples))
    return n_train, n_samples - n_train


def retrieval_chance(n_samples: int, *, top_k: int, train_fraction: float = 0.5, **_: Any) -> float:
    """k / n_test: top-k accuracy of a random ranking of the held-out gallery (exact).

    A random ranking puts the query's own item at each of the n_test ranks with equal probability, so it
    lands in the top k with probability k / n_test; n_test is sized exactly as :func:`split_indices`
    sizes the test set. (With ``sample_ids`` the gallery holds copies; this level is for distinct samples.)

    Example:
        >>> retrieval_chance(1000, top_k=5, train_fraction=0.5)
        0.01
    """
    n_train, n_test = split_sizes(int(n_samples), train_fraction)
    if n_train < 2 or n_test < 2:
        raise InputError(f"{n_samples} samples leave too few for a train/test split at {train_fraction}")
    if not 1 <= top_k <= n_test:
        raise InputError(f"top_k must be in [1, {n_test}] for {n_test} held-out items, got {top_k}")
    return top_k / n_test


def split_indices(
    n_samples: int, train_fraction: float, seed: int, sample_ids: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded train / test split of range(n_samples).

    ``sample_ids`` [n] (a bootstrap resample's original indices): the split is drawn over distinct
    samples, so all copies of one sample land on the same side.
    """
    generator = torch.Generator().manual_seed(int(seed))
    if sample_ids is None:
        n_train, _ = split_sizes(n_samples, train_fraction)
        order = torch.randperm(n_samples, generator=generator)
        train, test = order[:n_train], order[n_train:]
        distinct_train, distinct_test = train.numel(), test.numel()
    else:
        groups, members = _groups(sample_ids, n_samples)
        n_train_groups, _ = split_sizes(len(groups), train_fraction)
        order = torch.randperm(len(groups), generator=generator)
        in_train = torch.zeros(len(groups), dtype=torch.bool)
        in_train[order[:n_train_groups]] = True
        train, test = torch.nonzero(in_train[members]).flatten(), torch.nonzero(~in_train[members]).flatten()
        distinct_train, distinct_test = n_train_groups, len(groups) - n_train_groups
    if distinct_train < 2 or distinct_test < 2:
        raise InputError(f"{n_samples} samples leave too few for a train/test split at {train_fraction}")
    return train, test


def topk_hit_rate(queries: torch.Tensor, gallery: torch.Tensor, top_k: int, sample_ids: Any = None) -> float:
    """Fraction of rows i whose gallery row i is among the ``top_k`` most cosine-similar gallery rows.

    ``sample_ids`` [n] of the rows: other copies of query i's own sample do not compete with it.
    """
    n_items = gallery.shape[0]
    if not 1 <= top_k <= n_items:
        raise InputError(f"top_k must be in [1, {n_items}] for {n_items} held-out items, got {top_k}")
    sims = F.normalize(queries.to(torch.float64), dim=1) @ F.normalize(gallery.to(torch.float64), dim=1).T
    own = sims.diagonal()[:, None]
    columns = torch.arange(n_items, device=sims.device)
    # rank of the true item: items strictly more similar, plus equally similar ones with a lower index
    better = (sims > own) | ((sims == own) & (columns[None, :] < columns[:, None]))
    if sample_ids is not None:
        ids = torch.as_tensor(sample_ids, device=sims.device).flatten()
        if ids.numel() != n_items:
            raise InputError(f"sample_ids has {ids.numel()} entries for {n_items} items; give one id per item")
        distinct = int(torch.unique(ids).numel())
        if top_k > distinct:
            raise InputError(f"top_k = {top_k} but the held-out items hold only {distinct} distinct samples")
        # other copies of the query's own sample do not compete (copies of other samples each do)
        better &= ids[None, :] != ids[:, None]
    return float((better.sum(dim=1) < top_k).to(torch.float64).mean())


def retrieval_accuracy(
    feats_a: Any,
    feats_b: Any,
    *,
    top_k: int = 1,
    mapped: bool = True,
    train_fraction: float = 0.5,
    alpha: float = 1e-2,
    seed: int = 0,
    sample_ids: Any = None,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """Top-k accuracy of retrieving B's held-out items from (mapped) A queries, in [0, 1].

    Args:
        top_k: 1 for top-1, 5 for top-5.
        mapped: fit a ridge map A → B on the train split (True) or compare directly (False; equal widths).
        train_fraction: share of samples used to fit the map; the rest are queries and gallery.
        alpha: ridge penalty relative to the mean eigenvalue of A's train covariance.
        sample_ids: a bootstrap resample's original indices: copies of a sample stay on one side of the
            split and do not compete with each other in the gallery.
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    train, test = split_indices(tensor_a.shape[0], train_fraction, seed, sample_ids)
    train, test = train.to(tensor_a.device), test.to(tensor_a.device)
    a64, b64 = tensor_a.to(torch.float64), tensor_b.to(torch.float64)
    if mapped:
        queries = _ridge_fit_predict(a64[train], b64[train], a64[test], check_positive(alpha, "alpha", allow_zero=True))
    else:
        if tensor_a.shape[1] != tensor_b.shape[1]:
            raise InputError(
                f"unmapped retrieval needs equal widths, but {name_a} has {tensor_a.shape[1]} and {name_b} has "
                f"{tensor_b.shape[1]}: compare only layers of equal width, or use retrieval_top1 / retrieval_top5, "
                "which fit a linear map from A to B first"
            )
        queries = a64[test]
    test_ids = None if sample_ids is None else torch.as_tensor(sample_ids).flatten()[test.cpu()]
    return topk_hit_rate(queries, b64[test], int(top_k), test_ids)


# --- query / gallery retrieval (model-version compatibility) ---------------------------------------


@dataclass(frozen=True)
class LinearMap:
    """An affine map ``x ↦ (x − source_mean) @ weights + target_mean`` from one embedding space to another.

    Attributes:
        weights: float64 [d_source, d_target].
        source_mean: float64 [d_source]; target_mean: float64 [d_target].
    """

    weights: torch.Tensor
    source_mean: torch.Tensor
    target_mean: torch.Tensor

    @property
    def source_dim(self) -> int:
        return int(self.weights.shape[0])

    @property
    def target_dim(self) -> int:
        return int(self.weights.shape[1])

    def __call__(self, feats: Any, name: str = "feats") -> torch.Tensor:
        tensor = check_features(feats, name, min_samples=1).to(torch.float64)
        if tensor.shape[1] != self.source_dim:
            raise InputError(f"{name} has width {tensor.shape[1]} but the map was fitted on width {self.source_dim}")
        weights = self.weights.to(tensor.device)
        return (tensor - self.source_mean.to(tensor.device)) @ weights + self.target_mean.to(tensor.device)


def fit_linear_map(
    source: Any, target: Any, *, alpha: float = 1e-2, name_source: str = "source", name_target: str = "target"
) -> LinearMap:
    """Ridge map from ``source`` [n, d_s] to ``target`` [n, d_t] (rows: the same samples), the one
    :func:`retrieval_accuracy` fits; ``alpha`` is relative to the mean eigenvalue of the source covariance.

    Fit it on samples kept apart from the ones you evaluate on (e.g. the training set embedded by both
    models), not on the queries and gallery themselves.

    Example:
        >>> import torch
        >>> source = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> target = source @ torch.tensor([[2.0], [0.0], [-1.0]], dtype=torch.float64) + 5
        >>> mapping = fit_linear_map(source, target, alpha=0.0)
        >>> mapping.weights.shape, torch.allclose(mapping(source), target)
        (torch.Size([3, 1]), True)
    """
    tensor_s, tensor_t = _check_inputs(source, target, name_a=name_source, name_b=name_target)
    s64, t64 = tensor_s.to(torch.float64), tensor_t.to(torch.float64)
    source_mean = s64.mean(0)
    # The ridge solver only predicts; reading it at the mean and at the mean plus each unit vector gives
    # the affine map exactly (one solve, no second copy of the solver).
    probes = source_mean + torch.cat(
        [
            torch.zeros(1, s64.shape[1], dtype=torch.float64, device=s64.device),
            torch.eye(s64.shape[1], dtype=torch.float64, device=s64.device),
        ]
    )
    predicted = _ridge_fit_predict(s64, t64, probes, check_positive(alpha, "alpha", allow_zero=True))
    target_mean = predicted[0]
    return LinearMap(weights=predicted[1:] - target_mean, source_mean=source_mean, target_mean=target_mean)


RELEVANCE_MODES = ("class", "instance")
DEFAULT_KS = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalResult:
    """Ranked retrieval of a gallery from each query, by cosine similarity (ties to the lower gallery index).

    Averages are over the *scored* queries: those with at least one relevant gallery item (a query
    without one has no first hit and no average precision; it is counted in
    ``n_queries_without_relevant`` and left out, as the Market-1501 evaluation does).

    Attributes:
        recall_at_k: {k: fraction of scored queries with at least one relevant item among the top k}
            (the metric-learning / re-identification "Recall@k" = top-k accuracy = ``cmc[k - 1]``; not
            the IR ratio of relevant items retrieved).
        mean_average_precision: mean over scored queries of AP = (1 / R_q) Σ_r P@r · rel(r), the sum over
            all ranks r of the full ranking, R_q the query's number of relevant gallery items and P@r
            the fraction of the top r that is relevant (non-interpolated AP, sklearn's
            ``average_precision_score`` when scores have no ties).
        cmc: float64 [max_rank]; ``cmc[r - 1]`` = fraction of scored queries whose first relevant item is
            at rank ≤ r.
        n_queries: queries given; n_gallery: gallery items.
        n_queries_without_relevant: queries left out of every average.
        relevance: ``"class"`` (labels match) or ``"instance"`` (sample ids match).
        average_precision: float64 [n_queries], NaN for queries without a relevant item.
        first_relevant_rank: int64 [n_queries], 1-based rank of the first relevant item, 0 if none.
        n_relevant: int64 [n_queries], relevant gallery items per query (excluded items not counted).
    """

    recall_at_k: dict[int, float]
    mean_average_precision: float
    cmc: np.ndarray
    n_queries: int
    n_gallery: int
    n_queries_without_relevant: int
    relevance: str
    average_precision: np.ndarray
    first_relevant_rank: np.ndarray
    n_relevant: np.ndarray

    @property
    def scored(self) -> np.ndarray:
        """bool [n_queries]: the queries that enter the averages."""
        return self.n_relevant > 0


def _codes(
    query_values: Any,
    gallery_values: Any,
    n_queries: int,
    n_gallery: int,
    what: str,
    name_query: str,
    name_gallery: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared integer codes of query and gallery labels (or ids), any comparable dtype (ints, strings)."""

    def flat(values: Any) -> np.ndarray:
        return np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values).reshape(-1)

    query_array, gallery_array = flat(query_values), flat(gallery_values)
    for array, count, name in ((query_array, n_queries, name_query), (gallery_array, n_gallery, name_gallery)):
        if array.size != count:
            raise InputError(f"{name} has {count} rows but {array.size} {what}; give one per row")
    try:
        _, inverse = np.unique(np.concatenate([query_array, gallery_array]), return_inverse=True)
    except TypeError as error:
        raise InputError(f"query and gallery {what} must be of one comparable type (ints or strings)") from error
    codes = torch.from_numpy(inverse.reshape(-1).astype(np.int64))
    return codes[:n_queries], codes[n_queries:]


@dataclass(frozen=True)
class RelevanceCodes:
    """Which gallery items are relevant to (and which are excluded from) each query's ranking.

    ``query_codes`` [n_q] / ``gallery_codes`` [n_g]: equal codes mean relevant (shared codes of labels or
    sample ids); ``query_ids`` / ``gallery_ids``: codes of sample ids whose matches are excluded
    (leave-one-out), or None.
    """

    query_codes: torch.Tensor
    gallery_codes: torch.Tensor
    query_ids: torch.Tensor | None = None
    gallery_ids: torch.Tensor | None = None

    def to(self, device: torch.device) -> RelevanceCodes:
        def move(codes: torch.Tensor | None) -> torch.Tensor | None:
            return None if codes is None else codes.to(device)

        return RelevanceCodes(
            self.query_codes.to(device), self.gallery_codes.to(device), move(self.query_ids), move(self.gallery_ids)
        )

    def block(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(relevant, excluded) bool [stop - start, n_g] for queries start..stop; excluded items are not relevant."""
        relevant = self.query_codes[start:stop, None] == self.gallery_codes[None, :]
        if self.query_ids is None or self.gallery_ids is None:
            return relevant, None
        excluded = self.query_ids[start:stop, None] == self.gallery_ids[None, :]
        return relevant & ~excluded, excluded


def relevance_masks(
    n_queries: int,
    n_gallery: int,
    *,
    relevance: str = "class",
    query_labels: Any = None,
    gallery_labels: Any = None,
    query_ids: Any = None,
    gallery_ids: Any = None,
    exclude_same_id: bool = False,
    name_query: str = "queries",
    name_gallery: str = "gallery",
) -> RelevanceCodes:
    """Check labels / ids against the set sizes and encode them (see :func:`evaluate_retrieval`)."""
    check_choice(relevance, RELEVANCE_MODES, "relevance")
    if relevance == "instance" and exclude_same_id:
        raise InputError(
            "exclude_same_id drops the only relevant items of instance-level retrieval; use it with relevance='class'"
        )
    id_codes = None
    if relevance == "instance" or exclude_same_id:
        if query_ids is None and gallery_ids is None:
            if n_queries != n_gallery:
                raise InputError(
                    f"{name_query} have {n_queries} rows and {name_gallery} {n_gallery}; give query_ids and "
                    "gallery_ids to say which gallery item is which query's sample"
                )
            query_ids = gallery_ids = np.arange(n_queries)
        elif query_ids is None or gallery_ids is None:
            raise InputError("give both query_ids and gallery_ids, or neither")
        id_codes = _codes(query_ids, gallery_ids, n_queries, n_gallery, "ids", name_query, name_gallery)
    if relevance == "instance":
        assert id_codes is not None
        return RelevanceCodes(*id_codes)
    if query_labels is None or gallery_labels is None:
        raise InputError("relevance='class' needs query_labels and gallery_labels")
    label_codes = _codes(query_labels, gallery_labels, n_queries, n_gallery, "labels", name_query, name_gallery)
    return RelevanceCodes(*label_codes, *(id_codes if exclude_same_id and id_codes is not None else (None, None)))


def _check_ks(ks: Sequence[int] | None, n_gallery: int) -> tuple[int, ...]:
    if ks is None:
        return tuple(k for k in DEFAULT_KS if k <= n_gallery)
    checked = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= n_gallery:
            raise InputError(f"each k of recall@k must be an integer in [1, {n_gallery}] (the gallery size), got {k!r}")
        checked.append(int(k))
    if not checked:
        raise InputError("ks is empty; give at least one k for recall@k")
    return tuple(sorted(set(checked)))


def evaluate_retrieval(
    queries: Any,
    gallery: Any,
    *,
    query_labels: Any = None,
    gallery_labels: Any = None,
    relevance: str = "class",
    query_ids: Any = None,
    gallery_ids: Any = None,
    exclude_same_id: bool = False,
    ks: Sequence[int] | None = None,
    max_rank: int | None = None,
    query_map: LinearMap | None = None,
    name_query: str = "queries",
    name_gallery: str = "gallery",
    block_size: int | None = None,
) -> RetrievalResult:
    """Rank the gallery for every query by cosine similarity and score the rankings.

    Args:
        queries: [n_q, d] query embeddings (e.g. the new model's).
        gallery: [n_g, d] gallery embeddings (e.g. the old model's); the same width as the queries
            unless ``query_map`` maps the queries into the gallery's space.
        query_labels, gallery_labels: [n_q], [n_g] class labels (ints or strings); needed for
            ``relevance="class"``.
        relevance: ``"class"``: a gallery item is relevant to a query when their labels match;
            ``"instance"``: when their sample ids match.
        query_ids, gallery_ids: [n_q], [n_g] sample ids, for ``"instance"`` and ``exclude_same_id``.
            When both are omitted and n_q == n_g, row i of the queries and of the gallery are taken to
            be the same sample (ids 0..n - 1).
        exclude_same_id: leave-one-out: drop from each query's ranking the gallery items with the
            query's own sample id (a gallery that holds the query images too). Class relevance only.
        ks: the k of recall@k; default (1, 5, 10), those that fit the gallery.
        max_rank: length R of the CMC curve; default the gallery size.
        query_map: a :class:`LinearMap` applied to the queries first (e.g. new → old space).
        block_size: queries ranked at a time (memory: about 5 · block_size · n_g · 8 bytes); default
            sized to keep that near 170 MB.

    Returns:
        A :class:`RetrievalResult`.

    Raises:
        InputError: widths differ without a map, labels / ids missing or of the wrong length, k or
            max_rank outside [1, n_g], or no query has a relevant item.

    Example:
        >>> import torch
        >>> gallery = torch.eye(3)
        >>> queries = torch.tensor([[1.0, 0.1, 0.0], [0.0, 0.2, 1.0]])
        >>> result = evaluate_retrieval(queries, gallery, query_labels=[0, 1], gallery_labels=[0, 1, 1])
        >>> result.recall_at_k, result.cmc.tolist(), round(result.mean_average_precision, 4)
        ({1: 1.0}, [1.0, 1.0, 1.0], 1.0)
    """
    query_tensor = check_features(queries, name_query, min_samples=1)
    gallery_tensor = check_features(gallery, name_gallery, min_samples=1).to(query_tensor.device)
    if query_map is not None:
        query_tensor = query_map(query_tensor, name_query)
    if query_tensor.shape[1] != gallery_tensor.shape[1]:
        raise InputError(
            f"{name_query} have width {query_tensor.shape[1]} but {name_gallery} {gallery_tensor.shape[1]}; "
            "cross-model retrieval needs one space: pass query_map=fit_linear_map(...) fitted on paired data"
        )
    n_queries, n_gallery = query_tensor.shape[0], gallery_tensor.shape[0]
    recall_ks = _check_ks(ks, n_gallery)
    if max_rank is None:
        max_rank = n_gallery
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or not 1 <= max_rank <= n_gallery:
        raise InputError(f"max_rank must be an integer in [1, {n_gallery}] (the gallery size), got {max_rank!r}")
    relevance_codes = relevance_masks(
        n_queries,
        n_gallery,
        relevance=relevance,
        query_labels=query_labels,
        gallery_labels=gallery_labels,
        query_ids=query_ids,
        gallery_ids=gallery_ids,
        exclude_same_id=exclude_same_id,
        name_query=name_query,
        name_gallery=name_gallery,
    )
    device = query_tensor.device
    relevance_codes = relevance_codes.to(device)
    unit_queries = F.normalize(query_tensor.to(torch.float64), dim=1)
    unit_gallery = F.normalize(gallery_tensor.to(torch.float64), dim=1)
    if block_size is None:
        block_size = max(1, (1 << 22) // max(n_gallery, 1))
    ranks = torch.arange(1, n_gallery + 1, dtype=torch.float64, device=device)
    average_precision = torch.empty(n_queries, dtype=torch.float64, device=device)
    first_rank = torch.empty(n_queries, dtype=torch.int64, device=device)
    n_relevant = torch.empty(n_queries, dtype=torch.int64, device=device)
    for start in range(0, n_queries, block_size):
        stop = min(start + block_size, n_queries)
        sims = unit_queries[start:stop] @ unit_gallery.T
        relevant, excluded = relevance_codes.block(start, stop)
        if excluded is not None:
            sims = sims.masked_fill(excluded, -torch.inf)  # ranked after every real item (cosines >= -1)
        order = torch.argsort(sims, dim=1, descending=True, stable=True)  # stable: ties to the lower index
        hits = relevant.gather(1, order).to(torch.float64)
        cumulative = hits.cumsum(dim=1)
        count = cumulative[:, -1]
        average_precision[start:stop] = (hits * cumulative / ranks).sum(dim=1) / count  # NaN where count = 0
        first_rank[start:stop] = torch.where(count > 0, hits.argmax(dim=1) + 1, 0)
        n_relevant[start:stop] = count.to(torch.int64)

    scored = n_relevant > 0
    n_scored = int(scored.sum())
    if n_scored == 0:
        raise InputError(
            f"no query has a relevant item in {name_gallery}; check the labels / ids "
            "(and that exclude_same_id does not remove every match)"
        )
    scored_first = first_rank[scored]
    first_counts = torch.bincount(scored_first, minlength=n_gallery + 1)[1 : max_rank + 1]
    cmc = first_counts.cumsum(0).to(torch.float64) / n_scored
    recall = {k: float((scored_first <= k).to(torch.float64).mean()) for k in recall_ks}
    return RetrievalResult(
        recall_at_k=recall,
        mean_average_precision=float(average_precision[scored].mean()),
        cmc=cmc.cpu().numpy(),
        n_queries=n_queries,
        n_gallery=n_gallery,
        n_queries_without_relevant=n_queries - n_scored,
        relevance=relevance,
        average_precision=average_precision.cpu().numpy(),
        first_relevant_rank=first_rank.cpu().numpy(),
        n_relevant=n_relevant.cpu().numpy(),
    )


def _retrieval(top_k: int, mapped: bool):
    def metric(feats_a: Any, feats_b: Any, **params: Any) -> float:
        return retrieval_accuracy(feats_a, feats_b, top_k=top_k, mapped=mapped, **params)

    metric.__name__ = f"retrieval_top{top_k}" + ("" if mapped else "_unmapped")
    metric.__doc__ = (
        f"Top-{top_k} retrieval accuracy ({'ridge-mapped' if mapped else 'unmapped'}); see retrieval_accuracy."
    )
    return metric


_COMMON = (
    ParamSpec("train_fraction", 0.5, low=0.05, high=0.95, help="share of samples that fit the map"),
    ParamSpec("seed", 0, kind="int", low=0, help="train/test split"),
)
_ALPHA = ParamSpec("alpha", 1e-2, low=0.0, high=1e6, help="ridge penalty relative to the mean eigenvalue")
_REF = "Shen et al. 2020 (BCT) / Jaeckle et al. 2023 (BT²) / Stationary Representations (Biondi et al. 2024)"

for _top_k in (1, 5):
    register(
        MetricSpec(
            name=f"retrieval_top{_top_k}",
            family="retrieval",
            fn=_retrieval(_top_k, True),
            higher_is_better=True,
            symmetric=False,
            value_range=(0.0, 1.0),
            # cosine ranking in B's space: a shift of B moves queries and gallery but changes cosines
            invariances=("orthogonal", "isotropic_scale", "permutation"),
            params=_COMMON + (_ALPHA,),
            reference=_REF,
            summary=f"top-{_top_k} retrieval of held-out B items from ridge-mapped A queries",
            chance=partial(retrieval_chance, top_k=_top_k),
            randomized=True,
            takes_sample_ids=True,
        )
    )
    register(
        MetricSpec(
            name=f"retrieval_top{_top_k}_unmapped",
            family="retrieval",
            fn=_retrieval(_top_k, False),
            higher_is_better=True,
            symmetric=False,
            value_range=(0.0, 1.0),
            invariances=("isotropic_scale",),
            params=_COMMON,
            reference=_REF,
            summary=f"top-{_top_k} retrieval of held-out B items from A queries directly (equal widths)",
            chance=partial(retrieval_chance, top_k=_top_k),
            randomized=True,
            requires_equal_dims=True,
            takes_sample_ids=True,
        )
    )
