"""k-NN alignment metrics with platonic-rep conventions (Huh et al. 2024, minyoungg/platonic-rep).

Features are L2-normalised, similarity is the cosine, the sample itself is excluded and ``k`` defaults
to 10. Each metric compares the per-sample neighbour lists of the two spaces, so a layer's lists are
computed once (``prepare``) and every pair only intersects index lists (``compare``).

- ``mutual_knn``: mean over samples of |N_A(i) ∩ N_B(i)| / k.
- ``cycle_knn``: fraction of samples i found among the A-neighbours of one of i's B-neighbours
  (platonic-rep ``cycle_knn``: ``knn_A[knn_B]`` contains i). Not symmetric.
- ``jaccard_knn``: mean over samples of |N_A ∩ N_B| / |N_A ∪ N_B| (platonic-rep's ``metrics.py`` has no
  Jaccard; this is the set Jaccard of the same neighbour lists).
- ``cknna``: platonic-rep's CKNNA: uncentred kernels K = AAᵀ, L = BBᵀ on L2-normalised features, mask =
  row-wise top-k of K (diagonal excluded) AND of L, unbiased HSIC (Song et al. 2012) of the masked
  kernels, CKNNA = HSIC(K∘M, L∘M) / sqrt(HSIC(K∘M_K, K∘M_K) HSIC(L∘M_L, L∘M_L)). With ``k = n - 1`` it
  equals unbiased CKA of the normalised features. It is not exactly symmetric: a row-wise top-k mask
  is not symmetric, and eq. 5's 1ᵀK̃L̃1 term changes when K and L swap. Two deliberate differences from the reference code:
  no ``+1e-6`` in the denominator (it biases small values), and when a self-term is <= 0 the score is
  defined as 0. The masked kernels are sparse (n·k entries), so CKNNA costs O(n·k) memory beyond the
  neighbour search: n = 100,000 at k = 10 is as cheap as mutual k-NN; ``k = n - 1`` holds n² entries.

Degenerate inputs: zero rows have cosine 0 to every row; identical rows tie and ties go to the lower
sample index, so the value is always defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import hypergeom

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, as_tensor, check_k
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register
from alignscope.core.neighbors import DEFAULT_BLOCK_SIZE, overlap_counts, topk_similar

PLATONIC_REF = "Huh et al. 2024, The Platonic Representation Hypothesis (minyoungg/platonic-rep metrics.py)"


@dataclass(frozen=True)
class NeighborState:
    """One layer's neighbour lists: indices [n, k] (int64, most similar first), the same lists sorted
    by index with the sorting order (for binary-search intersections), and for CKNNA the float64 kernel
    values [n, k] and the self-term HSIC(K∘M_K, K∘M_K)."""

    indices: torch.Tensor
    sorted_indices: torch.Tensor
    sort_order: torch.Tensor
    values: torch.Tensor | None = None
    self_hsic: float | None = None
    reverse: torch.Tensor | None = None


def _state(
    indices: torch.Tensor,
    values: torch.Tensor | None = None,
    self_hsic: float | None = None,
    reverse: torch.Tensor | None = None,
) -> NeighborState:
    sorted_indices, sort_order = torch.sort(indices, dim=1)
    return NeighborState(indices, sorted_indices, sort_order, values, self_hsic, reverse)


def _reverse_positions(indices: torch.Tensor) -> torch.Tensor:
    """For each entry (i, a) with j = indices[i, a]: the column of i in j's list, or -1 if absent.

    Lets CKNNA find the transposed mask entry (j, i) of every pair by gathers alone. The positions
    survive a relabelling of the samples, so a permuted state reuses them.
    """
    n_samples, k = indices.shape
    rows = torch.arange(n_samples, device=indices.device)[:, None].expand_as(indices)
    keys = (rows * n_samples + indices).flatten()  # row-major, so already sorted by row
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    wanted = (indices * n_samples + rows).flatten()
    position = torch.searchsorted(sorted_keys, wanted).clamp(max=sorted_keys.numel() - 1)
    found = sorted_keys[position] == wanted
    column = order[position] % k
    return torch.where(found, column, torch.full_like(column, -1)).view(n_samples, k)


def _pair(feats_a: Any, feats_b: Any, name_a: str, name_b: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    check_k(k, tensor_a.shape[0])
    return tensor_a, tensor_b


def prepare_neighbors(
    feats: Any,
    *,
    k: int = 10,
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    name: str = "feats",
    **_: Any,
) -> NeighborState:
    """Neighbour lists of one layer, for mutual / cycle / Jaccard k-NN."""
    # callers (metric functions, layer_matrix, stats) have validated the features already
    indices, _ = topk_similar(feats, k, sample_ids=sample_ids, block_size=block_size, name=name, check=False)
    return _state(indices)


def permute_neighbors(state: NeighborState, perm: torch.Tensor) -> NeighborState:
    """Neighbour lists of the features with rows reordered as ``feats[perm]``, without a new search."""
    perm = torch.as_tensor(perm, device=state.indices.device).long()
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    values = None if state.values is None else state.values[perm]
    reverse = None if state.reverse is None else state.reverse[perm]
    return _state(inverse[state.indices[perm]], values, state.self_hsic, reverse)


# --- mutual k-NN -----------------------------------------------------------------------------------


def _overlap(state_a: NeighborState, state_b: NeighborState) -> torch.Tensor:
    return overlap_counts(state_a.indices, state_b.sorted_indices).to(torch.float64) / state_a.indices.shape[1]


def _compare_mutual(state_a: NeighborState, state_b: NeighborState, **_: Any) -> float:
    return float(_overlap(state_a, state_b).mean())


def mutual_knn_per_sample(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| / k for each sample: float64 [n]."""
    tensor_a, tensor_b = _pair(feats_a, feats_b, name_a, name_b, k)
    state_a = prepare_neighbors(tensor_a, k=k, sample_ids=sample_ids, block_size=block_size, name=name_a)
    state_b = prepare_neighbors(tensor_b, k=k, sample_ids=sample_ids, block_size=block_size, name=name_b)
    return _overlap(state_a, state_b)


def mutual_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Mutual k-NN alignment: mean fraction of shared cosine neighbours, in [0, 1]; higher is better.

    Args:
        feats_a: [n, d_a]; feats_b: [n, d_b], same samples in the same order.
        k: neighbours per sample (self excluded), 1 <= k <= n - 1.
        sample_ids: optional [n] ids; rows with the query's id are excluded (bootstrap duplicates).

    Example:
        >>> import torch
        >>> feats = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
        >>> mutual_knn(feats, 2 * feats, k=5)
        1.0
    """
    return float(
        mutual_knn_per_sample(
            feats_a, feats_b, k=k, name_a=name_a, name_b=name_b, sample_ids=sample_ids, block_size=block_size
        ).mean()
    )


def mutual_knn_chance(n_samples: int, *, k: int = 10, **_: Any) -> float:
    """k / (n - 1): expected overlap of two independent random k-subsets of the n - 1 other samples."""
    return k / (n_samples - 1)


# --- Jaccard k-NN ----------------------------------------------------------------------------------


def _jaccard_from_overlap(overlap: torch.Tensor, k: int) -> torch.Tensor:
    shared = overlap * k
    return shared / (2 * k - shared)


def _compare_jaccard(state_a: NeighborState, state_b: NeighborState, **_: Any) -> float:
    k = state_a.indices.shape[1]
    return float(_jaccard_from_overlap(_overlap(state_a, state_b), k).mean())


def jaccard_knn_per_sample(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| / |N_A(i) ∪ N_B(i)| for each sample: float64 [n]."""
    overlap = mutual_knn_per_sample(
        feats_a, feats_b, k=k, name_a=name_a, name_b=name_b, sample_ids=sample_ids, block_size=block_size
    )
    return _jaccard_from_overlap(overlap, k)


def jaccard_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Mean Jaccard index of the two cosine k-NN sets, in [0, 1]; higher is better."""
    return float(
        jaccard_knn_per_sample(
            feats_a, feats_b, k=k, name_a=name_a, name_b=name_b, sample_ids=sample_ids, block_size=block_size
        ).mean()
    )


def jaccard_knn_chance(n_samples: int, *, k: int = 10, **_: Any) -> float:
    """E[o / (2k - o)] with o ~ Hypergeometric(n - 1 items, k marked, k drawn): exact for random sets."""
    shared = np.arange(0, k + 1)
    probabilities = hypergeom(n_samples - 1, k, k).pmf(shared)
    return float(np.sum(probabilities * shared / (2 * k - shared)))


# --- cycle k-NN ------------------------------------------------------------------------------------


def _cycle_from_indices(idx_a: torch.Tensor, idx_b: torch.Tensor, block_size: int = 4096) -> torch.Tensor:
    n_samples = idx_a.shape[0]
    hits = torch.empty(n_samples, dtype=torch.float64, device=idx_a.device)
    for start in range(0, n_samples, block_size):
        stop = min(start + block_size, n_samples)
        queries = torch.arange(start, stop, device=idx_a.device).view(-1, 1, 1)
        hits[start:stop] = (idx_a[idx_b[start:stop]] == queries).flatten(1).any(dim=1).to(torch.float64)
    return hits


def _compare_cycle(state_a: NeighborState, state_b: NeighborState, **_: Any) -> float:
    return float(_cycle_from_indices(state_a.indices, state_b.indices).mean())


def cycle_knn_per_sample(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """1.0 where sample i is an A-neighbour of one of its own B-neighbours, else 0.0: float64 [n]."""
    tensor_a, tensor_b = _pair(feats_a, feats_b, name_a, name_b, k)
    state_a = prepare_neighbors(tensor_a, k=k, sample_ids=sample_ids, block_size=block_size, name=name_a)
    state_b = prepare_neighbors(tensor_b, k=k, sample_ids=sample_ids, block_size=block_size, name=name_b)
    return _cycle_from_indices(state_a.indices, state_b.indices)


def cycle_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Cycle k-NN accuracy (B-neighbours, then their A-neighbours, back to i), in [0, 1]."""
    return float(
        cycle_knn_per_sample(
            feats_a, feats_b, k=k, name_a=name_a, name_b=name_b, sample_ids=sample_ids, block_size=block_size
        ).mean()
    )


def cycle_knn_chance(n_samples: int, *, k: int = 10, **_: Any) -> float:
    """1 - (1 - k/(n-1))^k: approximate, treating the k A-neighbour lists as independent draws."""
    return 1.0 - (1.0 - k / (n_samples - 1)) ** k


# --- CKNNA -----------------------------------------------------------------------------------------


def hsic_unbiased_sparse(
    n_samples: int, rows: torch.Tensor, cols: torch.Tensor, k_vals: torch.Tensor, l_vals: torch.Tensor
) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5) of two kernels that are zero outside a sparse mask.

    The mask entries (rows[e], cols[e]) are off-diagonal, without repeats; K̃ and L̃ take the values
    ``k_vals[e]`` and ``l_vals[e]`` there. Neither kernel needs to be symmetric (a top-k mask is not).
    """
    n = n_samples
    if n < 4:
        raise InputError(f"unbiased HSIC needs at least 4 samples, got {n}")
    sum_k = k_vals.sum()
    sum_l = l_vals.sum()
    col_sum_k = torch.zeros(n, dtype=torch.float64, device=k_vals.device).index_add_(0, cols, k_vals)
    row_sum_l = torch.zeros(n, dtype=torch.float64, device=k_vals.device).index_add_(0, rows, l_vals)
    cross = torch.dot(col_sum_k, row_sum_l)  # 1ᵀ K̃ L̃ 1
    keys = rows * n + cols
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    reverse = cols * n + rows
    position = torch.searchsorted(sorted_keys, reverse).clamp(max=max(sorted_keys.numel() - 1, 0))
    found = sorted_keys[position] == reverse
    trace = (k_vals[found] * l_vals[order[position[found]]]).sum()  # Σ K̃_ij L̃_ji
    value = (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 * cross / (n - 2)) / (n * (n - 3))
    return float(value)


def _self_hsic(indices: torch.Tensor, values: torch.Tensor) -> float:
    n_samples, k = indices.shape
    rows = torch.arange(n_samples, device=indices.device).repeat_interleave(k)
    flat = values.flatten()
    return hsic_unbiased_sparse(n_samples, rows, indices.flatten(), flat, flat)


def prepare_cknna(
    feats: Any,
    *,
    k: int = 10,
    normalize: bool = True,
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    name: str = "feats",
    **_: Any,
) -> NeighborState:
    """Neighbour lists, their kernel values and the self-term of one layer, for CKNNA."""
    feats = as_tensor(feats, name)
    if feats.shape[0] < 4:
        raise InputError(f"{name} has {feats.shape[0]} rows; CKNNA's unbiased HSIC needs at least 4 samples")
    indices, values = topk_similar(
        feats, k, normalize=normalize, sample_ids=sample_ids, block_size=block_size, return_values=True, name=name,
        check=False,
    )  # fmt: skip
    return _state(indices, values, _self_hsic(indices, values), _reverse_positions(indices))


def _compare_cknna(state_a: NeighborState, state_b: NeighborState, **_: Any) -> float:
    """Unbiased HSIC of K∘M and L∘M, M = top-k(K) AND top-k(L), from the two neighbour lists: O(n·k).

    Mask entries are A's entries (i, a) whose neighbour j is also in B's list of i (at column b).
    The transposed entry (j, i) is in M when i is in both of j's lists (the precomputed reverse
    positions), which gives eq. 5's Σ K̃_ij L̃_ji without building M.
    """
    if state_a.self_hsic <= 0 or state_b.self_hsic <= 0:
        return 0.0
    idx_a = state_a.indices
    n, k = idx_a.shape
    sorted_position = torch.searchsorted(state_b.sorted_indices, idx_a).clamp(max=k - 1)
    hit = torch.gather(state_b.sorted_indices, 1, sorted_position) == idx_a
    column_b = torch.gather(state_b.sort_order, 1, sorted_position)  # where j sits in B's list of i
    k_vals = torch.where(hit, state_a.values, 0.0)
    l_vals = torch.where(hit, torch.gather(state_b.values, 1, column_b), 0.0)
    zeros = torch.zeros(n, dtype=torch.float64, device=idx_a.device)
    col_sum_k = zeros.index_add(0, idx_a.flatten(), k_vals.flatten())
    row_sum_l = l_vals.sum(dim=1)
    cross = torch.dot(col_sum_k, row_sum_l)
    reverse_a = state_a.reverse
    reverse_b = torch.gather(state_b.reverse, 1, column_b)
    transposed = hit & (reverse_a >= 0) & (reverse_b >= 0)
    l_transposed = state_b.values[idx_a, reverse_b.clamp(min=0)]  # L̃_ji, valid where `transposed`
    trace = torch.where(transposed, k_vals * l_transposed, 0.0).sum()
    hsic_ab = (trace + k_vals.sum() * l_vals.sum() / ((n - 1) * (n - 2)) - 2 * cross / (n - 2)) / (n * (n - 3))
    return float(hsic_ab) / float(np.sqrt(state_a.self_hsic * state_b.self_hsic))


def cknna(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    normalize: bool = True,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """CKNNA (platonic-rep): unbiased CKA restricted to mutual top-k kernel entries; k = n - 1 gives
    unbiased CKA. Needs n >= 4. Roughly in [-1, 1]; higher is better.

    Args:
        normalize: L2-normalise rows first (platonic-rep's ``measure_alignment`` default), so the
            kernels are cosine similarities.
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b, min_samples=4)
    check_k(k, tensor_a.shape[0])
    common = dict(k=k, normalize=normalize, sample_ids=sample_ids, block_size=block_size)
    state_a = prepare_cknna(tensor_a, name=name_a, **common)
    state_b = prepare_cknna(tensor_b, name=name_b, **common)
    return _compare_cknna(state_a, state_b)


_K_PARAM = ParamSpec("k", 10, kind="int", low=1, help="neighbours per sample (self excluded), < n")

for _name, _fn, _per_sample, _compare, _chance, _symmetric, _summary in (
    ("mutual_knn", mutual_knn, mutual_knn_per_sample, _compare_mutual, mutual_knn_chance, True,
     "mean fraction of each sample's k cosine neighbours shared by both spaces"),
    ("jaccard_knn", jaccard_knn, jaccard_knn_per_sample, _compare_jaccard, jaccard_knn_chance, True,
     "mean Jaccard index of each sample's two k-NN sets"),
    ("cycle_knn", cycle_knn, cycle_knn_per_sample, _compare_cycle, cycle_knn_chance, False,
     "fraction of samples reached back via a B-neighbour's A-neighbours"),
):  # fmt: skip
    register(
        MetricSpec(
            name=_name,
            family="knn",
            fn=_fn,
            higher_is_better=True,
            symmetric=_symmetric,
            value_range=(0.0, 1.0),
            invariances=("orthogonal", "isotropic_scale", "permutation"),
            params=(_K_PARAM,),
            reference=PLATONIC_REF,
            summary=_summary,
            per_sample=_per_sample,
            prepare=prepare_neighbors,
            compare=_compare,
            permute=permute_neighbors,
            chance=_chance,
            takes_sample_ids=True,
        )
    )

register(
    MetricSpec(
        name="cknna",
        family="knn",
        fn=cknna,
        higher_is_better=True,
        symmetric=False,
        value_range=(-1.0, 1.0),
        invariances=("orthogonal", "isotropic_scale", "permutation"),
        params=(
            ParamSpec("k", 10, kind="int", low=2, help="neighbours per sample, < n; n - 1 gives unbiased CKA"),
            ParamSpec("normalize", True, kind="bool", help="L2-normalise rows first"),
        ),
        reference=PLATONIC_REF + "; unbiased HSIC of Song et al. 2012",
        summary="unbiased CKA restricted to kernel entries that are mutual top-k neighbours",
        prepare=prepare_cknna,
        compare=_compare_cknna,
        permute=permute_neighbors,
        takes_sample_ids=True,
    )
)
