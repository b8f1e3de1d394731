"""Cross-model retrieval / compatibility (Stationary Representations; BT² backward compatibility).

A linear map A → B (ridge, fitted on a seeded train split of the samples) sends held-out A embeddings
into B's space; each mapped query then retrieves, by cosine similarity, among the held-out B embeddings.
Top-k accuracy is the fraction of queries whose own sample is among the k most similar; chance is
k / n_test. The unmapped variant compares A and B directly and needs equal widths (two versions of one
model trained to stay compatible). Ties are broken by the lower index.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, check_positive
from alignscope.core.metrics.geometry import _groups, _ridge_fit_predict
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register


def split_indices(n_samples: int, train_fraction: float, seed: int,
                  sample_ids: Any = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Seeded train / test split of range(n_samples).

    ``sample_ids`` [n] (a bootstrap resample's original indices): the split is drawn over distinct
    samples, so all copies of one sample land on the same side.
    """
    if not 0.0 < float(train_fraction) < 1.0:
        raise InputError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    generator = torch.Generator().manual_seed(int(seed))
    if sample_ids is None:
        order = torch.randperm(n_samples, generator=generator)
        n_train = int(round(train_fraction * n_samples))
        train, test = order[:n_train], order[n_train:]
        distinct_train, distinct_test = train.numel(), test.numel()
    else:
        groups, members = _groups(sample_ids, n_samples)
        order = torch.randperm(len(groups), generator=generator)
        n_train_groups = int(round(train_fraction * len(groups)))
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
                f"{tensor_b.shape[1]}; use mapped=True"
            )
        queries = a64[test]
    test_ids = None if sample_ids is None else torch.as_tensor(sample_ids).flatten()[test.cpu()]
    return topk_hit_rate(queries, b64[test], int(top_k), test_ids)


def _retrieval(top_k: int, mapped: bool):
    def metric(feats_a: Any, feats_b: Any, **params: Any) -> float:
        return retrieval_accuracy(feats_a, feats_b, top_k=top_k, mapped=mapped, **params)

    metric.__name__ = f"retrieval_top{top_k}" + ("" if mapped else "_unmapped")
    metric.__doc__ = f"Top-{top_k} retrieval accuracy ({'ridge-mapped' if mapped else 'unmapped'}); see retrieval_accuracy."
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
            randomized=True,
            requires_equal_dims=True,
            takes_sample_ids=True,
        )
    )
