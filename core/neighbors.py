"""Per-sample neighbour sets and their overlaps, computed in row blocks.

Conventions (those of platonic-rep): features are L2-normalised, similarity is the cosine, the sample
itself is never its own neighbour, and neighbours are listed from most to least similar. Ties are broken
by the lower sample index, so the same features always give the same lists. A zero row has cosine 0 to
every other row.

Only a ``block_size`` x n block of similarities is ever held, so n = 100,000 works on a laptop.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import as_tensor, check_features, check_k

DEFAULT_BLOCK_SIZE = 1024


def _order_candidates(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row of candidates by similarity (descending), ties by lower index."""
    by_index = torch.argsort(indices, dim=1)
    indices = torch.gather(indices, 1, by_index)
    values = torch.gather(values, 1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    return torch.gather(values, 1, by_value), torch.gather(indices, 1, by_value)


def _block_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of ``sims`` with deterministic tie-breaking (lower column index first)."""
    # One extra place: a tie straddles the k-th place exactly when the (k+1)-th value equals the k-th
    # (a full-row comparison would cost a third of the search). topk's choice among equal values is
    # unspecified; those rare rows alone go through an exact stable sort.
    extra = min(k + 1, sims.shape[1])
    values, indices = torch.topk(sims, extra, dim=1, sorted=True)
    tied = values[:, k] == values[:, k - 1] if extra > k else torch.zeros(sims.shape[0], dtype=torch.bool, device=sims.device)
    values, indices = values[:, :k].contiguous(), indices[:, :k].contiguous()
    if bool(tied.any()):
        rows = torch.nonzero(tied).flatten()
        order = torch.sort(sims[rows], dim=1, descending=True, stable=True).indices[:, :k]
        indices[rows] = order
        values[rows] = torch.gather(sims[rows], 1, order)
    return _order_candidates(values, indices)


def topk_similar(
    feats: Any,
    k: int,
    *,
    normalize: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    sample_ids: torch.Tensor | None = None,
    return_values: bool = False,
    name: str = "feats",
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Indices [n, k] (and optionally float64 similarities [n, k]) of each row's k most similar rows.

    Args:
        feats: [n, d] features.
        k: neighbours per sample, 1 <= k <= n - 1.
        normalize: rank by cosine (True) or by raw inner product (False, CKNNA with unnormalised kernels).
        block_size: rows per block; memory is O(block_size * n).
        sample_ids: optional [n] integer ids; rows sharing the query's id (bootstrap duplicates of the
            same sample) are excluded like the sample itself.
        return_values: also return the similarities of the chosen pairs, as float64 (computed in the
            input's precision: float64 inputs give float64-exact kernel values).
        check: validate ``feats`` (NaN/Inf, shape); callers that already did pass False.

    Returns:
        (indices [n, k] int64, values [n, k] float64 or None).
    """
    feats = check_features(feats, name, min_samples=2) if check else as_tensor(feats, name)
    n_samples = feats.shape[0]
    k = check_k(k, n_samples)
    if block_size < 1:
        raise InputError(f"block_size must be >= 1, got {block_size}")
    if sample_ids is not None:
        sample_ids = torch.as_tensor(sample_ids, device=feats.device).long().flatten()
        if sample_ids.shape[0] != n_samples:
            raise InputError(f"sample_ids has {sample_ids.shape[0]} entries but {name} has {n_samples} rows")
        n_distinct = int(torch.unique(sample_ids).numel())
        if k > n_distinct - 1:
            raise InputError(f"k={k} needs at least {k + 1} distinct samples; this resample has {n_distinct}")
    unit = F.normalize(feats, dim=1) if normalize else feats
    out_indices = torch.empty((n_samples, k), dtype=torch.long, device=feats.device)
    out_values = torch.empty((n_samples, k), dtype=torch.float64, device=feats.device) if return_values else None
    for start in range(0, n_samples, block_size):
        stop = min(start + block_size, n_samples)
        sims = unit[start:stop] @ unit.T
        rows = torch.arange(stop - start, device=feats.device)
        sims[rows, rows + start] = float("-inf")
        if sample_ids is not None:
            same = sample_ids[start:stop, None] == sample_ids[None, :]
            sims.masked_fill_(same, float("-inf"))
        values, indices = _block_topk(sims, k)
        del sims
        out_indices[start:stop] = indices
        if out_values is not None:
            out_values[start:stop] = values
    return out_indices, out_values


def knn_indices(feats: Any, k: int = 10, *, block_size: int = DEFAULT_BLOCK_SIZE) -> torch.Tensor:
    """Indices of each sample's k nearest neighbours by cosine similarity, the sample itself excluded.

    Args:
        feats: [n, d] tensor or array.
        k: neighbours per sample (1 <= k <= n - 1).
        block_size: rows of the similarity matrix held at once.

    Returns:
        LongTensor [n, k], most similar first; ties go to the lower index.

    Example:
        >>> import torch
        >>> knn_indices(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), k=1).flatten().tolist()
        [1, 0, 1]
    """
    indices, _ = topk_similar(feats, k, block_size=block_size)
    return indices


def overlap_counts(idx_a: torch.Tensor, sorted_b: torch.Tensor) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| per row, int64 [n], given B's lists sorted within each row (binary search)."""
    position = torch.searchsorted(sorted_b, idx_a).clamp(max=sorted_b.shape[1] - 1)
    return (torch.gather(sorted_b, 1, position) == idx_a).sum(dim=1)


def per_sample_overlap(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| / k for every sample i; its mean is the mutual k-NN score.

    Args:
        idx_a, idx_b: [n, k] neighbour index lists (rows without repeated entries).

    Returns:
        float64 tensor [n] with values in [0, 1].
    """
    idx_a = torch.as_tensor(idx_a)
    idx_b = torch.as_tensor(idx_b, device=idx_a.device)
    if idx_a.ndim != 2 or idx_a.shape != idx_b.shape:
        raise InputError(
            f"neighbour lists must have the same shape [n, k]; got {tuple(idx_a.shape)} and {tuple(idx_b.shape)}"
        )
    sorted_b = torch.sort(idx_b, dim=1).values
    return overlap_counts(idx_a, sorted_b).to(torch.float64) / idx_a.shape[1]
