"""k-NN alignment metrics with platonic-rep conventions (Huh et al. 2024, minyoungg/platonic-rep).

By default features are L2-normalised and similarity is the cosine (platonic-rep's ``measure_alignment``
normalises before every metric); ``similarity="ip"`` ranks by the raw inner product and
``similarity="euclidean"`` by Euclidean distance (see :mod:`alignscope.core.neighbors`). The sample itself
is excluded, ties go to the lower sample index and ``k`` defaults to 10. Each metric compares the
per-sample neighbour lists of the two spaces, so a layer's lists are computed once (``prepare``) and every
pair only compares index lists (``compare``); a permutation null relabels the lists (``permute``).

Set measures (which neighbours):

- ``mutual_knn``: mean over samples of |N_A(i) ∩ N_B(i)| / k.
- ``cycle_knn``: fraction of samples i found among the A-neighbours of one of i's B-neighbours
  (platonic-rep ``cycle_knn``: ``knn_A[knn_B]`` contains i). Not symmetric.
- ``jaccard_knn``: mean over samples of |N_A ∩ N_B| / |N_A ∪ N_B| (platonic-rep's ``metrics.py`` has no
  Jaccard; this is the set Jaccard of the same neighbour lists).
- ``cknna``: platonic-rep's CKNNA: uncentred kernels K = AAᵀ, L = BBᵀ on L2-normalised features
  (``similarity="cosine"``; the raw features with ``"ip"``), mask = row-wise top-k of K (diagonal
  excluded) AND of L, unbiased HSIC (Song et al. 2012) of the masked kernels,
  CKNNA = HSIC(K∘M, L∘M) / sqrt(HSIC(K∘M_K, K∘M_K) HSIC(L∘M_L, L∘M_L)). With ``k = n - 1`` it
  equals unbiased CKA of the normalised features. It is not exactly symmetric: a row-wise top-k mask
  is not symmetric, and eq. 5's 1ᵀK̃L̃1 term changes when K and L swap. Two deliberate differences from the reference code:
  no ``+1e-6`` in the denominator (it biases small values), and when a self-term is <= 0 the score is
  defined as 0. The masked kernels are sparse (n·k entries), so CKNNA costs O(n·k) memory beyond the
  neighbour search: n = 100,000 at k = 10 is as cheap as mutual k-NN; ``k = n - 1`` holds n² entries.
  With ``similarity="euclidean"`` the mask is the Euclidean k-NN of each space and the kernel values
  stay inner products, of the column-centred features: K_ij = ⟨x_i − μ, x_j − μ⟩ (μ the column mean,
  the Gram matrix classical MDS recovers from the distances), so that CKNNA is translation-invariant
  like its mask; ``k = n - 1`` then gives unbiased CKA of the centred features.

Order measures (platonic-rep ``metrics.py``, commit e8d2075, ``lcs_knn`` lines 88-92 and
``edit_distance_knn`` lines 164-176): both compare the two lists of each sample as sequences, most
similar first, so a shared neighbour counts only where the two spaces also rank it consistently.

- ``lcs_knn``: mean over samples of LCS(N_A(i), N_B(i)) / k, the length of the longest common
  subsequence (platonic-rep's ``longest_ordinal_sequence``, the classic LCS dynamic programme) divided
  by k. platonic-rep returns the mean length itself, in [0, k]; the division puts it in [0, 1] like the
  other k-NN scores (multiply by k for platonic-rep's number). Higher is better; 1 means identical
  ordered lists. Symmetric.
- ``edit_distance_knn``: 1 - mean over samples of ED(N_A(i), N_B(i)) / k, ED the Levenshtein distance
  with unit insertion, deletion and substitution costs (``torchaudio.functional.edit_distance``), exactly
  platonic-rep's ``1 - torch.mean(edit_distance) / topk``. In [0, 1] (two length-k lists are at most k
  edits apart), higher is better, 1 means identical ordered lists. Symmetric. No analytic chance level
  (the expected distance depends on where shared neighbours sit, not only on how many there are); the
  permutation null gives it.

Exact or approximate: ``neighbors="exact"`` (default) compares every pair; ``neighbors="approx"`` finds
the lists with an IVF-Flat index (:mod:`alignscope.core.ann`) and measures their recall@k against exact
search on seeded queries. Every prepared :class:`NeighborState` keeps the :class:`SearchReport` of its
search, and :func:`measured_recall` gives the recall the engine reports beside a score (None when exact).
CKNNA's kernel values are those of the pairs found, so its approximate value uses the same lists.

Degenerate inputs: zero rows have cosine 0 to every row; identical rows tie and ties go to the lower
sample index, so the value is always defined.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import hypergeom

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, as_tensor, centered64, check_k, present
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register
from alignscope.core.neighbors import (
    DEFAULT_BLOCK_SIZE,
    NEIGHBOR_MODES,
    SIMILARITIES,
    SearchReport,
    common_subsequence_lengths,
    edit_distances,
    overlap_counts,
    search_neighbors,
)

PLATONIC_REF = "Huh et al. 2024, The Platonic Representation Hypothesis (minyoungg/platonic-rep metrics.py)"
# E[LIS] of a random permutation is summed exactly over the partitions of m: 5,604 for m = 30 (a
# fraction of a second), 37,338 for m = 40 (seconds)
LIS_EXACT_MAX = 30


@dataclass(frozen=True)
class NeighborState:
    """One layer's neighbour lists: indices [n, k] (int64, most similar first), the same lists sorted
    by index with the sorting order (for binary-search intersections), for CKNNA the float64 kernel
    values [n, k] and the self-term HSIC(K∘M_K, K∘M_K), and the :class:`SearchReport` of the search that
    found the lists (exact, or approximate with its measured recall; see :func:`measured_recall`)."""

    indices: torch.Tensor
    sorted_indices: torch.Tensor
    sort_order: torch.Tensor
    values: torch.Tensor | None = None
    self_hsic: float | None = None
    reverse: torch.Tensor | None = None
    report: SearchReport | None = None


def _state(
    indices: torch.Tensor,
    values: torch.Tensor | None = None,
    self_hsic: float | None = None,
    reverse: torch.Tensor | None = None,
    report: SearchReport | None = None,
) -> NeighborState:
    sorted_indices, sort_order = torch.sort(indices, dim=1)
    return NeighborState(indices, sorted_indices, sort_order, values, self_hsic, reverse, report)


def measured_recall(*states: NeighborState) -> float | None:
    """The lowest recall@k measured by the approximate searches behind ``states``, or None when every
    one was exact (nothing to measure). The engine shows it beside a score: "approx, recall@10 = 0.97".

    Example:
        >>> import torch
        >>> state = prepare_neighbors(torch.randn(20, 3, generator=torch.Generator().manual_seed(0)), k=3)
        >>> measured_recall(state) is None, state.report.describe()
        (True, 'exact (torch_blocks)')
    """
    recalls = [state.report.recall for state in states if state.report is not None and state.report.mode == "approx"]
    return min(recalls) if recalls else None


def _reverse_positions(indices: torch.Tensor, sorted_indices: torch.Tensor, sort_order: torch.Tensor) -> torch.Tensor:
    """For each entry (i, a) with j = indices[i, a]: the column of i in j's list, or -1 if absent.

    Lets CKNNA find the transposed mask entry (j, i) of every pair by gathers alone. The positions
    survive a relabelling of the samples, so a permuted state reuses them. ``sorted_indices`` and
    ``sort_order`` are each list sorted by index and its order (:func:`torch.sort` along rows): the keys
    i·n + j of the sorted lists are sorted as a whole, so one binary search finds every (j, i).
    """
    n_samples, k = indices.shape
    rows = torch.arange(n_samples, device=indices.device)[:, None]
    sorted_keys = (rows * n_samples + sorted_indices).flatten()
    wanted = (indices * n_samples + rows).flatten()
    position = torch.searchsorted(sorted_keys, wanted).clamp_(max=sorted_keys.numel() - 1)
    found = sorted_keys[position] == wanted
    column = sort_order.flatten()[position]
    return torch.where(found, column, torch.full_like(column, -1)).view(n_samples, k)


def _pair(feats_a: Any, feats_b: Any, name_a: str, name_b: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    check_k(k, tensor_a.shape[0])
    return tensor_a, tensor_b


def prepare_neighbors(
    feats: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    name: str = "feats",
    **_: Any,
) -> NeighborState:
    """Neighbour lists of one layer, for mutual / cycle / Jaccard / LCS / edit-distance k-NN."""
    # callers (metric functions, layer_matrix, stats) have validated the features already
    found = search_neighbors(
        feats,
        k,
        similarity=similarity,
        neighbors=neighbors,
        sample_ids=sample_ids,
        block_size=block_size,
        name=name,
        check=False,
    )
    return _state(found.indices, report=found.report)


def _pair_states(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int,
    similarity: str,
    neighbors: str,
    sample_ids: Any,
    block_size: int,
    name_a: str,
    name_b: str,
) -> tuple[NeighborState, NeighborState]:
    tensor_a, tensor_b = _pair(feats_a, feats_b, name_a, name_b, k)
    common = dict(k=k, similarity=similarity, neighbors=neighbors, sample_ids=sample_ids, block_size=block_size)
    state_a = prepare_neighbors(tensor_a, name=name_a, **common)
    return state_a, prepare_neighbors(tensor_b, name=name_b, **common)


def permute_neighbors(state: NeighborState, perm: torch.Tensor) -> NeighborState:
    """Neighbour lists of the features with rows reordered as ``feats[perm]``, without a new search."""
    perm = torch.as_tensor(perm, device=state.indices.device).long()
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    values = None if state.values is None else state.values[perm]
    reverse = None if state.reverse is None else state.reverse[perm]
    return _state(inverse[state.indices[perm]], values, state.self_hsic, reverse, state.report)


# --- all layer pairs at once (layer matrices) ------------------------------------------------------

# A batched comparison stacks B's lists in groups of at most this many entries (layers · n · k) ...
_STACK_ENTRIES = 1 << 22
# ... and finds B's entries in one A layer's lists by a lookup in that layer's n x n table of list
# positions while the table takes at most this many bytes (n <= 5,792; a binary search in A's sorted
# lists above). One table, read by every B layer of a group, stays in cache where a table per B layer
# (the former way round) did not: the lookups were a quarter of a CKNNA layer matrix at n = 1024.
_TABLE_BYTES = 1 << 26
# A's tables are kept across B's groups while together at most this many bytes (else built per group)
_KEPT_TABLE_BYTES = 1 << 28


@dataclass(frozen=True)
class _StackedLists:
    """g of B's layers stacked for batched comparisons: the first layer's place, and [g, n, k] stacks of
    the fields asked for, ``indices`` always, and ``keys`` (i·n + indices[., i, b], the table positions)
    when the lists get position tables."""

    start: int
    size: int
    fields: dict[str, torch.Tensor]


def _group_size(states_b: list[NeighborState]) -> int:
    """B layers per stacked group: at most :data:`_STACK_ENTRIES` list entries."""
    n_samples, k = states_b[0].indices.shape
    return max(1, _STACK_ENTRIES // max(1, n_samples * k))


def _has_table(n_samples: int, k: int) -> bool:
    """Whether a layer's lists get a position table (:class:`_ListLookup`), else a binary search."""
    return n_samples * n_samples * 2 <= _TABLE_BYTES and k < 2**15 - 1


def _table_keys(lists: torch.Tensor) -> torch.Tensor:
    """i·n + j for each entry j = lists[..., i, b] of lists [..., n, k]: where a position table holds (i, j)."""
    n_samples = lists.shape[-2]
    return torch.arange(n_samples, device=lists.device)[:, None] * n_samples + lists


def _stacked_groups(states_b: list[NeighborState], *fields: str) -> Iterator[_StackedLists]:
    """B's states in consecutive groups of at most :data:`_STACK_ENTRIES` list entries."""
    n_samples = states_b[0].indices.shape[0]
    size = _group_size(states_b)
    for start in range(0, len(states_b), size):
        group = states_b[start : start + size]
        stacks = {
            name: torch.stack([present(getattr(state, name)) for state in group]) for name in ("indices", *fields)
        }
        if _has_table(n_samples, stacks["indices"].shape[2]):
            stacks["keys"] = _table_keys(stacks["indices"])
        yield _StackedLists(start, len(group), stacks)


@dataclass(frozen=True)
class _ListLookup:
    """Where a sample sits in one layer's neighbour lists. ``table`` [n·n] int16 holds 1 + the column of j
    in the list of i at i·n + j (0 where j is not listed); None when larger than :data:`_TABLE_BYTES`,
    then the sorted lists are searched."""

    state: NeighborState
    table: torch.Tensor | None

    @classmethod
    def of(cls, state: NeighborState) -> _ListLookup:
        n_samples, k = state.indices.shape
        if not _has_table(n_samples, k):
            return cls(state, None)
        keys = _table_keys(state.indices).flatten()
        columns = torch.arange(1, k + 1, dtype=torch.int16, device=keys.device).repeat(n_samples)
        table = torch.zeros(n_samples * n_samples, dtype=torch.int16, device=keys.device)
        return cls(state, table.scatter_(0, keys, columns))

    def find(self, group: _StackedLists) -> torch.Tensor:
        """For B's stacked lists [g, n, k] (j = lists[., i, b]): 1 + the column of j in this layer's list of
        i, 0 where that list does not hold j; [g, n, k], int16 from the table, int64 from the search."""
        lists = group.fields["indices"]
        size, n_samples, k = lists.shape
        if self.table is not None:
            return _read(self.table, group.fields["keys"])
        sorted_a = self.state.sorted_indices.expand(size, -1, -1).contiguous()
        position = torch.searchsorted(sorted_a, lists).clamp_(max=k - 1)
        hit = torch.gather(sorted_a, 2, position) == lists
        order = torch.gather(self.state.sort_order.expand(size, -1, -1), 2, position)
        return torch.where(hit, order + 1, 0)


class _Lookups:
    """The A layers' :class:`_ListLookup` for one batched comparison: with more than one group of B, built
    once each while their tables fit :data:`_KEPT_TABLE_BYTES` together (kept across the groups), else
    built when asked for and not kept."""

    def __init__(self, states_a: list[NeighborState], states_b: list[NeighborState]) -> None:
        n_samples = states_a[0].indices.shape[0]
        groups = -(-len(states_b) // _group_size(states_b))
        self._states = states_a
        self._kept: dict[int, _ListLookup] | None = (
            {} if groups > 1 and len(states_a) * n_samples * n_samples * 2 <= _KEPT_TABLE_BYTES else None
        )

    def __getitem__(self, index: int) -> _ListLookup:
        if self._kept is None:
            return _ListLookup.of(self._states[index])
        if index not in self._kept:
            self._kept[index] = _ListLookup.of(self._states[index])
        return self._kept[index]


def _compare_all_overlaps(
    states_a: list[NeighborState], states_b: list[NeighborState], *, jaccard: bool = False, **_: Any
) -> np.ndarray:
    """Mutual (or Jaccard) k-NN of every layer pair [La, Lb], B's lists stacked: one lookup per A layer
    and group of B layers instead of one per pair (the overlap |N_A(i) ∩ N_B(i)| is the same counted from
    either side). Equal to :func:`_compare_mutual` per pair."""
    values = np.empty((len(states_a), len(states_b)), dtype=np.float64)
    k = states_a[0].indices.shape[1]
    lookups = _Lookups(states_a, states_b)
    for group in _stacked_groups(states_b):
        for i in range(len(states_a)):
            overlap = (lookups[i].find(group) > 0).sum(dim=2).to(torch.float64) / k
            per_sample = _jaccard_from_overlap(overlap, k) if jaccard else overlap
            values[i, group.start : group.start + group.size] = per_sample.mean(dim=1).cpu().numpy()
    return values


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
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| / k for each sample: float64 [n]."""
    state_a, state_b = _pair_states(
        feats_a,
        feats_b,
        k=k,
        similarity=similarity,
        neighbors=neighbors,
        sample_ids=sample_ids,
        block_size=block_size,
        name_a=name_a,
        name_b=name_b,
    )
    return _overlap(state_a, state_b)


def mutual_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Mutual k-NN alignment: mean fraction of shared neighbours, in [0, 1]; higher is better.

    Args:
        feats_a: [n, d_a]; feats_b: [n, d_b], same samples in the same order.
        k: neighbours per sample (self excluded), 1 <= k <= n - 1.
        similarity: ``"cosine"`` (default, rows L2-normalised), ``"ip"`` (raw inner product) or
            ``"euclidean"``; the same for every k-NN metric here.
        neighbors: ``"exact"`` (default) or ``"approx"`` (IVF-Flat, its recall@k measured and kept on the
            prepared states: :func:`measured_recall`); the same for every k-NN metric here.
        sample_ids: optional [n] ids; rows with the query's id are excluded (bootstrap duplicates).

    Example:
        >>> import torch
        >>> feats = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
        >>> mutual_knn(feats, 2 * feats, k=5)
        1.0
    """
    return float(
        mutual_knn_per_sample(
            feats_a,
            feats_b,
            k=k,
            similarity=similarity,
            neighbors=neighbors,
            name_a=name_a,
            name_b=name_b,
            sample_ids=sample_ids,
            block_size=block_size,
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
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """|N_A(i) ∩ N_B(i)| / |N_A(i) ∪ N_B(i)| for each sample: float64 [n]."""
    overlap = mutual_knn_per_sample(
        feats_a,
        feats_b,
        k=k,
        similarity=similarity,
        neighbors=neighbors,
        name_a=name_a,
        name_b=name_b,
        sample_ids=sample_ids,
        block_size=block_size,
    )
    return _jaccard_from_overlap(overlap, k)


def jaccard_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Mean Jaccard index of the two k-NN sets, in [0, 1]; higher is better."""
    return float(
        jaccard_knn_per_sample(
            feats_a,
            feats_b,
            k=k,
            similarity=similarity,
            neighbors=neighbors,
            name_a=name_a,
            name_b=name_b,
            sample_ids=sample_ids,
            block_size=block_size,
        ).mean()
    )


def _shared_distribution(n_samples: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlaps o = 0..k of two independent random k-subsets of the n - 1 other samples and P(o):
    Hypergeometric(n - 1 items, k marked, k drawn)."""
    shared = np.arange(0, k + 1)
    return shared, hypergeom(n_samples - 1, k, k).pmf(shared)


def jaccard_knn_chance(n_samples: int, *, k: int = 10, **_: Any) -> float:
    """E[o / (2k - o)] with o ~ Hypergeometric(n - 1 items, k marked, k drawn): exact for random sets."""
    shared, probabilities = _shared_distribution(n_samples, k)
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
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """1.0 where sample i is an A-neighbour of one of its own B-neighbours, else 0.0: float64 [n]."""
    state_a, state_b = _pair_states(
        feats_a,
        feats_b,
        k=k,
        similarity=similarity,
        neighbors=neighbors,
        sample_ids=sample_ids,
        block_size=block_size,
        name_a=name_a,
        name_b=name_b,
    )
    return _cycle_from_indices(state_a.indices, state_b.indices)


def cycle_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Cycle k-NN accuracy (B-neighbours, then their A-neighbours, back to i), in [0, 1]."""
    return float(
        cycle_knn_per_sample(
            feats_a,
            feats_b,
            k=k,
            similarity=similarity,
            neighbors=neighbors,
            name_a=name_a,
            name_b=name_b,
            sample_ids=sample_ids,
            block_size=block_size,
        ).mean()
    )


def cycle_knn_chance(n_samples: int, *, k: int = 10, **_: Any) -> float:
    """1 - (1 - k/(n-1))^k: approximate, treating the k A-neighbour lists as independent draws."""
    return 1.0 - (1.0 - k / (n_samples - 1)) ** k


# --- LCS k-NN --------------------------------------------------------------------------------------


def _lcs_fraction(state_a: NeighborState, state_b: NeighborState) -> torch.Tensor:
    k = state_a.indices.shape[1]
    return common_subsequence_lengths(state_a.indices, state_b.indices).to(torch.float64) / k


def _compare_lcs(state_a: NeighborState, state_b: NeighborState, **_: Any) -> float:
    return float(_lcs_fraction(state_a, state_b).mean())


def lcs_knn_per_sample(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """LCS(N_A(i), N_B(i)) / k for each sample, the lists ordered most similar first: float64 [n]."""
    state_a, state_b = _pair_states(
        feats_a,
        feats_b,
        k=k,
        similarity=similarity,
        neighbors=neighbors,
        sample_ids=sample_ids,
        block_size=block_size,
        name_a=name_a,
        name_b=name_b,
    )
    return _lcs_fraction(state_a, state_b)


def lcs_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """Mean longest-common-subsequence length of the two ordered k-NN lists over k, in [0, 1]; higher is
    better. platonic-rep's ``lcs_knn`` is k times this (the mean length).

    Args:
        feats_a: [n, d_a]; feats_b: [n, d_b], same samples in the same order.
        k: neighbours per sample (self excluded), 1 <= k <= n - 1.
        similarity: ``"cosine"`` (default), ``"ip"`` or ``"euclidean"``.
        neighbors: ``"exact"`` (default) or ``"approx"``.
        sample_ids: optional [n] ids; rows with the query's id are excluded (bootstrap duplicates).

    Example:
        >>> import torch
        >>> feats = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
        >>> lcs_knn(feats, 2 * feats, k=5), lcs_knn(feats, feats + 3.0, k=5, similarity="euclidean")
        (1.0, 1.0)
    """
    return float(
        lcs_knn_per_sample(
            feats_a,
            feats_b,
            k=k,
            similarity=similarity,
            neighbors=neighbors,
            name_a=name_a,
            name_b=name_b,
            sample_ids=sample_ids,
            block_size=block_size,
        ).mean()
    )


def _partitions(total: int, largest: int | None = None) -> Iterator[tuple[int, ...]]:
    """The partitions of ``total`` into parts <= ``largest``, each as a non-increasing tuple."""
    largest = total if largest is None else largest
    if total == 0:
        yield ()
        return
    for first in range(min(total, largest), 0, -1):
        for rest in _partitions(total - first, first):
            yield (first, *rest)


def _standard_tableaux(shape: tuple[int, ...]) -> int:
    """f^λ, the number of standard Young tableaux of shape λ (hook length formula)."""
    column_heights = [sum(1 for row in shape if row > column) for column in range(shape[0])]
    hooks = 1
    for row_index, row in enumerate(shape):
        for column in range(row):
            hooks *= (row - column) + (column_heights[column] - row_index) - 1
    return math.factorial(sum(shape)) // hooks


@functools.cache
def expected_longest_increasing(m: int) -> float:
    """E[length of the longest increasing subsequence] of a uniformly random permutation of m items.

    Exact: by the Robinson-Schensted correspondence the permutations whose RSK shape is λ number
    (f^λ)², and their longest increasing subsequence is λ's first row, so E = Σ_{λ ⊢ m} λ_1 (f^λ)² / m!.
    The sum runs over the partitions of m, so keep m <= ``LIS_EXACT_MAX``.

    Example:
        >>> [expected_longest_increasing(m) for m in range(4)]
        [0.0, 1.0, 1.5, 2.0]
    """
    if m == 0:
        return 0.0
    weighted = sum(shape[0] * _standard_tableaux(shape) ** 2 for shape in _partitions(m))
    return weighted / math.factorial(m)


def lcs_knn_chance(n_samples: int, *, k: int = 10, **_: Any) -> float | None:
    """E[LCS] / k for two independent random ordered k-lists of the n - 1 other samples.

    Only shared neighbours can be in a common subsequence, and the order of the o shared ones in one
    list relative to the other is a uniformly random permutation, whose longest increasing subsequence
    is the LCS. So E[LCS] = Σ_o P(o) E[LIS_o] with o ~ Hypergeometric(n - 1, k, k), exact. None when
    overlaps above ``LIS_EXACT_MAX`` have a probability that matters (k near n).
    """
    shared, probabilities = _shared_distribution(n_samples, k)
    if float(probabilities[shared > LIS_EXACT_MAX].sum()) > 1e-12:
        return None
    # terms below 1e-15 change nothing visible and would cost the sums for large m
    terms = [p * expected_longest_increasing(int(m)) for m, p in zip(shared, probabilities) if p > 1e-15]
    return float(sum(terms)) / k


# --- edit-distance k-NN ----------------------------------------------------------------------------


def _edit_similarity(state_a: NeighborState, state_b: NeighborState) -> torch.Tensor:
    k = state_a.indices.shape[1]
    return 1.0 - edit_distances(state_a.indices, state_b.indices).to(torch.float64) / k


def _compare_edit(state_a: NeighborState, state_b: NeighborState, **_: Any) -> float:
    return float(_edit_similarity(state_a, state_b).mean())


def edit_distance_knn_per_sample(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """1 - ED(N_A(i), N_B(i)) / k for each sample (Levenshtein distance of the ordered lists): float64 [n]."""
    state_a, state_b = _pair_states(
        feats_a,
        feats_b,
        k=k,
        similarity=similarity,
        neighbors=neighbors,
        sample_ids=sample_ids,
        block_size=block_size,
        name_a=name_a,
        name_b=name_b,
    )
    return _edit_similarity(state_a, state_b)


def edit_distance_knn(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """1 - mean Levenshtein distance of the two ordered k-NN lists over k, in [0, 1]; higher is better
    (platonic-rep's ``edit_distance_knn``).

    Args:
        feats_a: [n, d_a]; feats_b: [n, d_b], same samples in the same order.
        k: neighbours per sample (self excluded), 1 <= k <= n - 1.
        similarity: ``"cosine"`` (default), ``"ip"`` or ``"euclidean"``.
        neighbors: ``"exact"`` (default) or ``"approx"``.
        sample_ids: optional [n] ids; rows with the query's id are excluded (bootstrap duplicates).

    Example:
        >>> import torch
        >>> feats = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
        >>> edit_distance_knn(feats, feats[:, [3, 1, 0, 2, 7, 5, 6, 4]], k=5)
        1.0
    """
    return float(
        edit_distance_knn_per_sample(
            feats_a,
            feats_b,
            k=k,
            similarity=similarity,
            neighbors=neighbors,
            name_a=name_a,
            name_b=name_b,
            sample_ids=sample_ids,
            block_size=block_size,
        ).mean()
    )


# --- CKNNA -----------------------------------------------------------------------------------------


def _self_hsic(indices: torch.Tensor, values: torch.Tensor, reverse: torch.Tensor) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5) of K̃ = K∘M_K with itself: ``values`` [n, k] are K at the
    mask entries (i, indices[i, a]), ``reverse`` their transposed entries' columns (-1: not in the mask).
    K̃ need not be symmetric (a top-k mask is not)."""
    n, k = indices.shape
    total = values.sum()
    col_sums = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(
        0, indices.flatten(), values.flatten()
    )
    cross = torch.dot(col_sums, values.sum(dim=1))  # 1ᵀ K̃ K̃ 1
    transposed = values[indices, reverse.clamp(min=0)]  # K̃_ji, valid where reverse >= 0
    trace = torch.where(reverse >= 0, values * transposed, 0.0).sum()  # Σ K̃_ij K̃_ji
    return float((trace + total * total / ((n - 1) * (n - 2)) - 2 * cross / (n - 2)) / (n * (n - 3)))


def prepare_cknna(
    feats: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    name: str = "feats",
    **_: Any,
) -> NeighborState:
    """Neighbour lists, their kernel values and the self-term of one layer, for CKNNA."""
    feats = as_tensor(feats, name)
    if feats.shape[0] < 4:
        raise InputError(f"{name} has {feats.shape[0]} rows; CKNNA's unbiased HSIC needs at least 4 samples")
    found = search_neighbors(
        feats,
        k,
        similarity=similarity,
        neighbors=neighbors,
        sample_ids=sample_ids,
        block_size=block_size,
        return_values=True,
        name=name,
        check=False,
    )
    indices, values = found.indices, present(found.values)
    if similarity == "euclidean":
        # the search returned −‖x_i − x_j‖², and with x̄ the column-centred features the kernel is
        # ⟨x̄_i, x̄_j⟩ = (‖x̄_i‖² + ‖x̄_j‖² − ‖x_i − x_j‖²) / 2: no second pass over the pairs is needed
        sq_norms = centered64(feats).square().sum(dim=1)
        values = (sq_norms[:, None] + sq_norms[indices] + values) / 2
    sorted_indices, sort_order = torch.sort(indices, dim=1)
    reverse = _reverse_positions(indices, sorted_indices, sort_order)
    self_hsic = _self_hsic(indices, values, reverse)
    return NeighborState(indices, sorted_indices, sort_order, values, self_hsic, reverse, found.report)


def _compare_cknna(state_a: NeighborState, state_b: NeighborState, **_: Any) -> float:
    """CKNNA of one pair: :func:`_compare_all_cknna` of one layer against one."""
    return float(_compare_all_cknna([state_a], [state_b])[0, 0])


def _read(flat: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """``flat[at]`` (index_select on the flattened index: 2.6x faster than indexing on 2 cores)."""
    return torch.index_select(flat, 0, at.reshape(-1)).view(at.shape)


def _compare_all_cknna(states_a: list[NeighborState], states_b: list[NeighborState], **_: Any) -> np.ndarray:
    """CKNNA of every layer pair [La, Lb]: the unbiased HSIC of K∘M and L∘M, M = top-k(K) AND top-k(L),
    from the neighbour lists alone, O(n·k) per pair; B's lists, values and reverse positions stacked, so
    each A layer meets a group of B layers in one pass of [g, n, k] tensors.

    Mask entries are B's entries (i, b) whose neighbour j is also in A's list of i (found by A's
    :class:`_ListLookup`). K is read from A's lists, whose values and reverse positions get a leading
    column of zeros, so that "not in the list" (position 0) reads a zero without a mask. The transposed
    entry (j, i) is in M when i is in both of j's lists (the precomputed reverse positions), which gives
    eq. 5's Σ K̃_ij L̃_ji = Σ K̃_ji L̃_ij without building M.
    """
    values = np.zeros((len(states_a), len(states_b)), dtype=np.float64)
    n, k = states_a[0].indices.shape
    self_b_all = np.array([present(state.self_hsic) for state in states_b])
    row_start = torch.arange(n, device=states_a[0].indices.device)[:, None] * (k + 1)
    lookups = _Lookups(states_a, states_b)
    for group in _stacked_groups(states_b, "values", "reverse"):
        idx_b, values_b = group.fields["indices"], group.fields["values"]
        l_both = torch.where(group.fields["reverse"] >= 0, values_b, 0.0)  # L_ij where (j, i) in M_L
        j_start = idx_b * (k + 1)
        self_b = self_b_all[group.start : group.start + group.size]
        for i, state_a in enumerate(states_a):
            self_a = present(state_a.self_hsic)
            if self_a <= 0:
                continue
            # [n, k + 1], flattened: column 0 reads zero; reverse + 1 is 0 where i is not in j's list
            values_a = F.pad(present(state_a.values), (1, 0)).view(-1)
            reverse_a = F.pad(present(state_a.reverse) + 1, (1, 0)).view(-1)
            found = lookups[i].find(group)  # 1 + where j sits in A's list of i, 0 if absent
            at_ij = row_start + found
            k_vals = _read(values_a, at_ij)  # K̃_ij, 0 outside M
            l_vals = torch.where(found > 0, values_b, 0.0)  # L̃_ij, 0 outside M
            k_transposed = _read(values_a, j_start + _read(reverse_a, at_ij))  # K_ji where (j, i) in M_K
            trace = (l_both * k_transposed).sum(dim=(1, 2))  # Σ K̃_ji L̃_ij
            col_sum_k = torch.zeros(group.size, n, dtype=torch.float64, device=idx_b.device)
            col_sum_k.scatter_add_(1, idx_b.view(group.size, -1), k_vals.view(group.size, -1))
            row_sum_l = l_vals.sum(dim=2)
            cross = (col_sum_k * row_sum_l).sum(dim=1)  # 1ᵀ K̃ L̃ 1
            sums = k_vals.sum(dim=(1, 2)) * row_sum_l.sum(dim=1)
            hsic = ((trace + sums / ((n - 1) * (n - 2)) - 2 * cross / (n - 2)) / (n * (n - 3))).cpu().numpy()
            positive = self_b > 0
            stop = group.start + group.size
            values[i, group.start : stop][positive] = hsic[positive] / np.sqrt(self_a * self_b[positive])
    return values


def cknna(
    feats_a: Any,
    feats_b: Any,
    *,
    k: int = 10,
    similarity: str = "cosine",
    neighbors: str = "exact",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    sample_ids: Any = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> float:
    """CKNNA (platonic-rep): unbiased CKA restricted to mutual top-k kernel entries; k = n - 1 gives
    unbiased CKA. Needs n >= 4. Roughly in [-1, 1]; higher is better.

    Args:
        k: neighbours per sample, 2 <= k <= n - 1.
        similarity: ``"cosine"`` (default: rows L2-normalised, platonic-rep's ``measure_alignment``
            default, kernels are cosines), ``"ip"`` (raw features, kernels are inner products) or
            ``"euclidean"`` (mask from Euclidean neighbours, kernels are inner products of the
            column-centred features).
        neighbors: ``"exact"`` (default) or ``"approx"`` (the mask from approximate lists; near k = n - 1
            the search is exact anyway).
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b, min_samples=4)
    check_k(k, tensor_a.shape[0])
    common = dict(k=k, similarity=similarity, neighbors=neighbors, sample_ids=sample_ids, block_size=block_size)
    state_a = prepare_cknna(tensor_a, name=name_a, **common)
    state_b = prepare_cknna(tensor_b, name=name_b, **common)
    return _compare_cknna(state_a, state_b)


_K_PARAM = ParamSpec("k", 10, kind="int", low=1, help="neighbours per sample (self excluded), < n")
_SIMILARITY_PARAM = ParamSpec(
    "similarity",
    "cosine",
    kind="str",
    choices=SIMILARITIES,
    help="what makes neighbours: cosine (rows L2-normalised, platonic-rep), raw inner product (ip) or "
    "Euclidean distance",
)
_NEIGHBORS_PARAM = ParamSpec(
    "neighbors",
    "exact",
    kind="str",
    choices=NEIGHBOR_MODES,
    help="how neighbour lists are found: exact (every pair compared) or approx (IVF-Flat index, much "
    "faster at large n; its recall@k against exact search is measured on seeded queries and reported)",
)
_ORDER_REF = (
    PLATONIC_REF + " @ e8d2075: lcs_knn (l. 88-92, longest_ordinal_sequence l. 288-308) and "
    "edit_distance_knn (l. 164-176, torchaudio edit_distance)"
)

_COMPARE_ALL: dict[str, Callable[..., np.ndarray]] = {
    "mutual_knn": _compare_all_overlaps,
    "jaccard_knn": functools.partial(_compare_all_overlaps, jaccard=True),
}

for _name, _fn, _per_sample, _compare, _chance, _symmetric, _reference, _summary in (
    (
        "mutual_knn",
        mutual_knn,
        mutual_knn_per_sample,
        _compare_mutual,
        mutual_knn_chance,
        True,
        PLATONIC_REF,
        "mean fraction of each sample's k neighbours shared by both spaces",
    ),
    (
        "jaccard_knn",
        jaccard_knn,
        jaccard_knn_per_sample,
        _compare_jaccard,
        jaccard_knn_chance,
        True,
        PLATONIC_REF,
        "mean Jaccard index of each sample's two k-NN sets",
    ),
    (
        "cycle_knn",
        cycle_knn,
        cycle_knn_per_sample,
        _compare_cycle,
        cycle_knn_chance,
        False,
        PLATONIC_REF,
        "fraction of samples reached back via a B-neighbour's A-neighbours",
    ),
    (
        "lcs_knn",
        lcs_knn,
        lcs_knn_per_sample,
        _compare_lcs,
        lcs_knn_chance,
        True,
        _ORDER_REF,
        "mean longest common subsequence of each sample's two ordered k-NN lists, over k",
    ),
    (
        "edit_distance_knn",
        edit_distance_knn,
        edit_distance_knn_per_sample,
        _compare_edit,
        None,
        True,
        _ORDER_REF,
        "1 - mean edit (Levenshtein) distance between each sample's two ordered k-NN lists, over k",
    ),
):
    register(
        MetricSpec(
            name=_name,
            family="knn",
            fn=_fn,
            higher_is_better=True,
            symmetric=_symmetric,
            value_range=(0.0, 1.0),
            invariances=("orthogonal", "isotropic_scale", "permutation"),
            params=(_K_PARAM, _SIMILARITY_PARAM, _NEIGHBORS_PARAM),
            reference=_reference,
            summary=_summary,
            per_sample=_per_sample,
            prepare=prepare_neighbors,
            compare=_compare,
            permute=permute_neighbors,
            compare_all=_COMPARE_ALL.get(_name),
            chance=_chance,
            chance_exact=_name != "cycle_knn",  # cycle's closed form treats the k lists as independent
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
        # not bounded by 1: each self-term uses that model's own neighbour mask, so Cauchy–Schwarz does not
        # hold (1.018 on 12 nearly identical samples); usually within [-1, 1]
        value_range=(-math.inf, math.inf),
        invariances=("orthogonal", "isotropic_scale", "permutation"),
        params=(
            ParamSpec("k", 10, kind="int", low=2, help="neighbours per sample, < n; n - 1 gives unbiased CKA"),
            _SIMILARITY_PARAM,
            _NEIGHBORS_PARAM,
        ),
        reference=PLATONIC_REF + "; unbiased HSIC of Song et al. 2012",
        summary="unbiased CKA restricted to kernel entries that are mutual top-k neighbours; usually within "
        "[-1, 1], a little above 1 possible at small n",
        prepare=prepare_cknna,
        compare=_compare_cknna,
        permute=permute_neighbors,
        compare_all=_compare_all_cknna,
        takes_sample_ids=True,
    )
)
