"""Per-sample neighbour lists and how two lists agree (as sets, or as ordered sequences), in row blocks.

Conventions: the sample itself is never its own neighbour, and neighbours are listed from most to least
similar. Ties are broken by the lower sample index, so the same features always give the same lists.
``similarity`` says what "near" means:

- ``"cosine"`` (default, platonic-rep's convention): rows L2-normalised, then the inner product. A zero
  row has cosine 0 to every other row. Invariant to rescaling each row by its own positive factor.
- ``"ip"``: the raw inner product ⟨x_i, x_j⟩. Not invariant to per-row scale; invariant to one rotation
  (and one positive scale) of the whole space.
- ``"euclidean"``: nearest by ‖x_i − x_j‖. Invariant to translation, rotation and one positive scale.

Only a ``block_size`` x n block of similarities is ever held, so n = 100,000 works on a laptop.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import as_tensor, check_choice, check_features, check_k

DEFAULT_BLOCK_SIZE = 1024
SIMILARITIES = ("cosine", "ip", "euclidean")
# columns per torch.median call when shifting features for the Euclidean search (bounds its copy)
_MEDIAN_ELEMENTS = 1 << 24


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
    tied = (
        values[:, k] == values[:, k - 1]
        if extra > k
        else torch.zeros(sims.shape[0], dtype=torch.bool, device=sims.device)
    )
    values, indices = values[:, :k].contiguous(), indices[:, :k].contiguous()
    if bool(tied.any()):
        rows = torch.nonzero(tied).flatten()
        order = torch.sort(sims[rows], dim=1, descending=True, stable=True).indices[:, :k]
        indices[rows] = order
        values[rows] = torch.gather(sims[rows], 1, order)
    return _order_candidates(values, indices)


def _search_rows(feats: torch.Tensor, similarity: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows whose inner products rank the neighbours, and for ``"euclidean"`` their squared norms.

    Euclidean ranks by −‖x_i − x_j‖² = 2⟨x_i, x_j⟩ − ‖x_i‖² − ‖x_j‖², one matrix product per block. The
    expansion loses digits far from the origin, so each column is first shifted by its lower median: a
    value the column holds, so integer-valued features stay exact (exact ties stay ties, broken by index)
    and the shift does not depend on the order of the samples.
    """
    if similarity == "cosine":
        return F.normalize(feats, dim=1), None
    if similarity == "ip":
        return feats, None
    n_samples, n_features = feats.shape
    step = max(1, _MEDIAN_ELEMENTS // n_samples)
    medians = [feats[:, start : start + step].median(dim=0).values for start in range(0, n_features, step)]
    shifted = feats - torch.cat(medians)
    return shifted, (shifted * shifted).sum(dim=1)


def topk_similar(
    feats: Any,
    k: int,
    *,
    similarity: str = "cosine",
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
        similarity: ``"cosine"`` (rows L2-normalised), ``"ip"`` (raw inner product) or ``"euclidean"``
            (nearest by Euclidean distance); see the module docstring.
        block_size: rows per block; memory is O(block_size * n).
        sample_ids: optional [n] integer ids; rows sharing the query's id (bootstrap duplicates of the
            same sample) are excluded like the sample itself.
        return_values: also return what ranked the chosen pairs, as float64: the cosine, the inner
            product, or for ``"euclidean"`` the negative squared distance −‖x_i − x_j‖² (<= 0). Computed
            in the input's precision: float64 inputs give float64-exact values.
        check: validate ``feats`` (NaN/Inf, shape); callers that already did pass False.

    Returns:
        (indices [n, k] int64, values [n, k] float64 or None).
    """
    feats = check_features(feats, name, min_samples=2) if check else as_tensor(feats, name)
    n_samples = feats.shape[0]
    k = check_k(k, n_samples)
    check_choice(similarity, SIMILARITIES, "similarity")
    if block_size < 1:
        raise InputError(f"block_size must be >= 1, got {block_size}")
    if sample_ids is not None:
        sample_ids = torch.as_tensor(sample_ids, device=feats.device).long().flatten()
        if sample_ids.shape[0] != n_samples:
            raise InputError(f"sample_ids has {sample_ids.shape[0]} entries but {name} has {n_samples} rows")
        n_distinct = int(torch.unique(sample_ids).numel())
        if k > n_distinct - 1:
            raise InputError(f"k={k} needs at least {k + 1} distinct samples; this resample has {n_distinct}")
    rows_searched, sq_norms = _search_rows(feats, similarity)
    out_indices = torch.empty((n_samples, k), dtype=torch.long, device=feats.device)
    out_values = torch.empty((n_samples, k), dtype=torch.float64, device=feats.device) if return_values else None
    for start in range(0, n_samples, block_size):
        stop = min(start + block_size, n_samples)
        sims = rows_searched[start:stop] @ rows_searched.T
        if sq_norms is not None:  # −‖x_i − x_j‖², in place; rounding must not make a distance negative
            sims.mul_(2).sub_(sq_norms[start:stop, None]).sub_(sq_norms[None, :]).clamp_(max=0.0)
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


def knn_indices(
    feats: Any, k: int = 10, *, block_size: int = DEFAULT_BLOCK_SIZE, similarity: str = "cosine"
) -> torch.Tensor:
    """Indices of each sample's k nearest neighbours (cosine by default), the sample itself excluded.

    Args:
        feats: [n, d] tensor or array.
        k: neighbours per sample (1 <= k <= n - 1).
        block_size: rows of the similarity matrix held at once.
        similarity: ``"cosine"``, ``"ip"`` or ``"euclidean"`` (see the module docstring).

    Returns:
        LongTensor [n, k], most similar first; ties go to the lower index.

    Example:
        >>> import torch
        >>> knn_indices(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), k=1).flatten().tolist()
        [1, 0, 1]
        >>> points = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
        >>> knn_indices(points, k=1, similarity="euclidean").flatten().tolist()
        [2, 0, 0]
    """
    indices, _ = topk_similar(feats, k, block_size=block_size, similarity=similarity)
    return indices


def overlap_counts(idx_a: torch.Tensor, sorted_b: torch.Tensor) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| per row, int64 [n], given B's lists sorted within each row (binary search)."""
    position = torch.searchsorted(sorted_b, idx_a).clamp(max=sorted_b.shape[1] - 1)
    return (torch.gather(sorted_b, 1, position) == idx_a).sum(dim=1)


def _check_lists(idx_a: Any, idx_b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    idx_a = torch.as_tensor(idx_a)
    idx_b = torch.as_tensor(idx_b, device=idx_a.device)
    if idx_a.ndim != 2 or idx_a.shape != idx_b.shape:
        raise InputError(
            f"neighbour lists must have the same shape [n, k]; got {tuple(idx_a.shape)} and {tuple(idx_b.shape)}"
        )
    return idx_a, idx_b


def per_sample_overlap(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| / k for every sample i; its mean is the mutual k-NN score.

    Args:
        idx_a, idx_b: [n, k] neighbour index lists (rows without repeated entries).

    Returns:
        float64 tensor [n] with values in [0, 1].
    """
    idx_a, idx_b = _check_lists(idx_a, idx_b)
    sorted_b = torch.sort(idx_b, dim=1).values
    return overlap_counts(idx_a, sorted_b).to(torch.float64) / idx_a.shape[1]


# The two order measures below run the textbook dynamic programme over the k x k table one row of the
# table at a time, for all n samples at once. Within a table row the left-to-right dependency is a running
# max (LCS) or a running min of ``value - column`` (edit distance), so each row is a few [n, k] tensor
# operations: O(n·k²) time, O(n·k) memory, k Python steps.


def common_subsequence_lengths(idx_a: Any, idx_b: Any) -> torch.Tensor:
    """Length of the longest common subsequence of the ordered lists N_A(i) and N_B(i), for every i.

    A common subsequence is a run of neighbours both lists hold in the same relative order (gaps
    allowed), so it counts shared neighbours that are also ranked consistently.

    Args:
        idx_a, idx_b: [n, k] neighbour index lists, most similar first.

    Returns:
        int64 tensor [n] with values in [0, k].

    Example:
        >>> import torch
        >>> common_subsequence_lengths(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[2, 1, 3, 9]])).tolist()
        [2]
    """
    idx_a, idx_b = _check_lists(idx_a, idx_b)
    n_samples, k = idx_a.shape
    # previous[:, j] = LCS(first t entries of A's list, first j entries of B's list)
    previous = torch.zeros((n_samples, k + 1), dtype=torch.long, device=idx_a.device)
    for position in range(k):
        match = (idx_b == idx_a[:, position : position + 1]).long()
        best = torch.maximum(previous[:, 1:], previous[:, :-1] + match)
        previous = torch.cat([previous[:, :1], torch.cummax(best, dim=1).values], dim=1)
    return previous[:, -1]


def edit_distances(idx_a: Any, idx_b: Any) -> torch.Tensor:
    """Levenshtein distance between the ordered lists N_A(i) and N_B(i), for every i.

    The fewest insertions, deletions and substitutions of single entries that turn one list into the
    other (unit costs, as ``torchaudio.functional.edit_distance``); two lists of length k are at most
    k apart (substitute every entry).

    Args:
        idx_a, idx_b: [n, k] neighbour index lists, most similar first.

    Returns:
        int64 tensor [n] with values in [0, k].

    Example:
        >>> import torch
        >>> edit_distances(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[2, 3, 4, 5]])).tolist()
        [2]
    """
    idx_a, idx_b = _check_lists(idx_a, idx_b)
    n_samples, k = idx_a.shape
    columns = torch.arange(k + 1, device=idx_a.device)
    # previous[:, j] = distance(first t entries of A's list, first j entries of B's list)
    previous = columns.expand(n_samples, k + 1)
    for position in range(k):
        mismatch = (idx_b != idx_a[:, position : position + 1]).long()
        # without the insertion path: delete A's entry, or substitute / match it
        best = torch.minimum(previous[:, 1:] + 1, previous[:, :-1] + mismatch)
        first = torch.full((n_samples, 1), position + 1, dtype=torch.long, device=idx_a.device)
        # insertions: D[j] = min over l <= j of best[l] + (j - l) = j + running min of (best[l] - l)
        shifted = torch.cat([first, best], dim=1) - columns
        previous = torch.cummin(shifted, dim=1).values + columns
    return previous[:, -1]
