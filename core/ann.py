"""The faiss-backed pieces of neighbour search: flat (exact) candidates and an IVF-Flat index.

Nothing here orders neighbours or decides what a search returns: :mod:`alignscope.core.neighbors`
prepares the rows a search ranks by (L2-normalised rows for cosine, raw rows for ip, median-shifted rows
for euclidean), asks for candidates here, and applies the tie rule (lower index first), the exclusion of
the sample and its copies, and the recall measurement. faiss is optional (``pip install faiss-cpu``);
without it the exact search runs on torch blocks and ``neighbors="approx"`` is refused with a message.

IVF-Flat. The rows are clustered by faiss k-means into ``n_lists`` inverted lists (each row is stored in
the list of its best centroid); a query scans the ``n_probe`` lists whose centroids rank highest for it,
by the same ranking as the exact search (inner product; for euclidean 2⟨x, c⟩ − ‖c‖², i.e. nearest
centroid). Because every sample is also a query, the lists are scanned list by list: all queries that
probe one list are compared with its members in one matrix product (the strategy of
``faiss.contrib.big_batch_search``), which measured 2.6x faster than ``IndexIVFFlat.search`` on 2 cores at
n = 30,000 and keeps the scores in the exact search's arithmetic.

The parameter rule (:func:`choose_ivf_params`), for n samples of d features and k neighbours:

- ``n_lists = min(round(2·√n), n // (4k))``: lists of about √n / 2 members (158 at n = 100,000), and at
  least 4k members each so that one list can hold a query's whole neighbour list. No IVF (None: exact is
  as cheap) when n < :data:`APPROX_MIN_SAMPLES` or that leaves fewer than 16 lists.
- k-means on ``n_train = min(n, 32·n_lists)`` rows drawn with ``seed``, ``n_iter = 5`` iterations: 0.6 % of
  an exact search's arithmetic at n = 100,000 (the ratio is 640 / n). At n = 100,000 ten iterations or
  64 rows per centroid changed recall@10 at a given ``n_probe`` by less than 0.01 and cost 1.5-2x more.
- ``n_probe`` starts at ``max(4, ⌈n_lists / 64⌉)`` (about 1.5 % of the rows scanned) and is raised by the
  caller (x1.5) until recall@k on seeded tuning queries reaches its target, up to ``max_probe =
  n_lists // 4`` (a quarter of the rows scanned, where exact search is about as fast).
- d does not enter: k-means, probing and scanning all cost ∝ d, like the exact search they replace, so the
  ratio of their costs depends on n (and k) alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from alignscope.core.devices import side_by_side
from alignscope.core.errors import InputError

# Below this many samples an exact search takes well under a second and beats building an index.
APPROX_MIN_SAMPLES = 4096
MIN_LISTS = 16


def faiss_module() -> Any | None:
    """The faiss module, or None when the optional package is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def require_faiss(purpose: str) -> Any:
    """The faiss module; raises InputError saying what needs it and how to install it."""
    faiss = faiss_module()
    if faiss is None:
        raise InputError(
            f"{purpose} needs the optional package faiss, which is not installed "
            "(pip install faiss-cpu); use neighbors='exact'"
        )
    return faiss


@contextlib.contextmanager
def faiss_threads(faiss: Any) -> Iterator[None]:
    """Run faiss with torch's thread count (its own default is every core), restored afterwards."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _float32_numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())


# --- flat (exact) candidates -----------------------------------------------------------------------


def flat_candidates(rows: torch.Tensor, n_candidates: int, *, euclidean: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n_candidates`` best rows for every row of ``rows`` [n, d] (float32, CPU), by faiss's exact
    search: inner products (IndexFlatIP's computation) or, with ``euclidean``, squared distances
    (IndexFlatL2's), without copying the rows into an index.

    Returns:
        (values [n, m] float32 in the exact search's convention — the inner product, or −‖x_i − x_j‖² — best
        first; indices [n, m] int64). The sample itself is among them; ties come in faiss's order.
    """
    faiss = require_faiss("the faiss exact search")
    matrix = _float32_numpy(rows)
    metric = faiss.METRIC_L2 if euclidean else faiss.METRIC_INNER_PRODUCT
    with faiss_threads(faiss):
        distances, labels = faiss.knn(matrix, matrix, n_candidates, metric=metric)
    values = torch.from_numpy(distances)
    if euclidean:
        values = values.neg_().clamp_(max=0.0)
    return values, torch.from_numpy(labels).long()


# --- IVF-Flat --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IvfParams:
    """How an IVF-Flat index is built and searched (see the module docstring for the rule).

    Attributes:
        n_lists: inverted lists (k-means centroids).
        n_probe: lists scanned per query at first; the caller may raise it up to ``max_probe``.
        max_probe: the most lists a query may scan.
        n_train: rows the k-means is trained on (a seeded sample).
        n_iter: k-means iterations.
        seed: draws the training rows and the k-means initialisation (and the recall queries).
    """

    n_lists: int
    n_probe: int
    max_probe: int
    n_train: int
    n_iter: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.n_probe <= self.max_probe <= self.n_lists or self.n_train < self.n_lists:
            raise InputError(
                f"IVF parameters need 1 <= n_probe <= max_probe <= n_lists <= n_train; got n_probe={self.n_probe}, "
                f"max_probe={self.max_probe}, n_lists={self.n_lists}, n_train={self.n_train}"
            )


def choose_ivf_params(n_samples: int, n_features: int, k: int, *, seed: int = 0) -> IvfParams | None:
    """The IVF-Flat parameters for n samples of d features and k neighbours, or None where exact search
    is as cheap (the rule is in the module docstring; ``n_features`` does not change it).

    Example:
        >>> choose_ivf_params(100_000, 768, 10)
        IvfParams(n_lists=632, n_probe=10, max_probe=158, n_train=20224, n_iter=5, seed=0)
        >>> choose_ivf_params(3_000, 768, 10) is None
        True
    """
    del n_features  # every step costs ∝ d, like the exact search
    n_lists = min(round(2 * math.sqrt(n_samples)), n_samples // (4 * k))
    if n_samples < APPROX_MIN_SAMPLES or n_lists < MIN_LISTS:
        return None
    n_probe = max(4, math.ceil(n_lists / 64))
    return IvfParams(
        n_lists=n_lists,
        n_probe=n_probe,
        max_probe=max(n_probe, n_lists // 4),
        n_train=min(n_samples, 32 * n_lists),
        seed=seed,
    )


@dataclass(frozen=True)
class IvfIndex:
    """Centroids [n_lists, d] and the rows grouped by list.

    ``order[offsets[l]:offsets[l + 1]]`` are the rows stored in list l (increasing), ``sorted_rows`` the
    search rows in that order (so a list is a contiguous slice), ``position`` the inverse of ``order`` and
    ``home`` [n] the list of every row.
    """

    centroids: torch.Tensor
    centroid_sq_norms: torch.Tensor | None
    order: torch.Tensor
    position: torch.Tensor
    offsets: tuple[int, ...]
    home: torch.Tensor
    sorted_rows: torch.Tensor
    sorted_sq_norms: torch.Tensor | None

    @property
    def n_lists(self) -> int:
        return len(self.offsets) - 1


def _centroid_scores(centroids: torch.Tensor, sq_norms: torch.Tensor | None, queries: torch.Tensor) -> torch.Tensor:
    scores = queries @ centroids.T
    if sq_norms is not None:  # nearest centroid: −‖x − c‖² + ‖x‖² = 2⟨x, c⟩ − ‖c‖²
        scores.mul_(2).sub_(sq_norms[None, :])
    return scores


def build_ivf(
    rows: torch.Tensor, sq_norms: torch.Tensor | None, params: IvfParams, *, spherical: bool, block_size: int = 4096
) -> IvfIndex:
    """Train the centroids on a seeded sample of ``rows`` [n, d] and store every row in its best list.

    Args:
        rows: the rows the search ranks by (normalised for cosine, shifted for euclidean).
        sq_norms: their squared norms for euclidean (lists by nearest centroid), else None (largest
            inner product).
        spherical: keep the centroids on the unit sphere (cosine).
    """
    faiss = require_faiss("neighbors='approx'")
    n_samples, n_features = rows.shape
    generator = torch.Generator().manual_seed(params.seed)
    sample = torch.randperm(n_samples, generator=generator)[: params.n_train].sort().values
    kmeans = faiss.Kmeans(
        n_features,
        params.n_lists,
        niter=params.n_iter,
        seed=params.seed,
        spherical=spherical,
        verbose=False,
        min_points_per_centroid=1,  # the rule gives every centroid >= 25 rows; faiss would warn below 39
        max_points_per_centroid=n_samples,  # the sample is drawn here, not again by faiss
    )
    with faiss_threads(faiss):
        kmeans.train(_float32_numpy(rows[sample.to(rows.device)]))
    centroids = torch.from_numpy(kmeans.centroids).to(rows.device, rows.dtype)
    centroid_sq_norms = (centroids * centroids).sum(dim=1) if sq_norms is not None else None
    home = torch.empty(n_samples, dtype=torch.long, device=rows.device)
    for start in range(0, n_samples, block_size):
        home[start : start + block_size] = _centroid_scores(
            centroids, centroid_sq_norms, rows[start : start + block_size]
        ).argmax(dim=1)
    order = torch.argsort(home, stable=True)
    position = torch.empty_like(order)
    position[order] = torch.arange(n_samples, device=rows.device)
    counts = torch.bincount(home, minlength=params.n_lists).cpu()
    return IvfIndex(
        centroids=centroids,
        centroid_sq_norms=centroid_sq_norms,
        order=order,
        position=position,
        offsets=(0, *torch.cumsum(counts, dim=0).tolist()),
        home=home,
        sorted_rows=rows[order],
        sorted_sq_norms=None if sq_norms is None else sq_norms[order],
    )


def probe_sets(index: IvfIndex, n_probe: int) -> torch.Tensor:
    """[n_lists, n_probe] int64: each list itself, then the lists whose centroids rank highest from its
    centroid (by the search's ranking). The queries stored in a list scan these lists."""
    scores = _centroid_scores(index.centroids, index.centroid_sq_norms, index.centroids)
    scores.fill_diagonal_(float("inf"))  # a list always scans itself, first
    return torch.topk(scores, n_probe, dim=1).indices


def ivf_candidates(
    index: IvfIndex,
    queries: torch.Tensor | None,
    n_probe: int,
    k: int,
    sample_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """k candidates for each query from the ``n_probe`` lists its own list scans, one small matrix
    product per (list, probed list) on contiguous slices of the list-ordered rows.

    Args:
        queries: [q] row indices of the queries, or None for every row.
        sample_ids: optional [n] ids; a query's own row and rows sharing its id are excluded.

    Returns:
        (values [q, k], indices [q, k]), not ordered, in the exact search's convention (inner product, or
        −‖x_i − x_j‖²); a slot the probed lists could not fill is −inf.
    """
    device = index.sorted_rows.device
    positions = index.position if queries is None else index.position[queries]
    # queries grouped by their own list; for every row that is the list order itself
    by_home = torch.argsort(index.home[index.order[positions]], stable=True)
    grouped = positions[by_home]
    counts = torch.bincount(index.home[index.order[grouped]], minlength=index.n_lists).cpu()
    query_offsets = (0, *torch.cumsum(counts, dim=0).tolist())
    values = torch.full((grouped.numel(), k), float("-inf"), dtype=index.sorted_rows.dtype, device=device)
    columns = torch.zeros((grouped.numel(), k), dtype=torch.long, device=device)
    probes = probe_sets(index, n_probe).tolist()
    sorted_ids = None if sample_ids is None else sample_ids[index.order]

    def scan(list_ids: list[int]) -> None:
        for list_id in list_ids:
            first, last = query_offsets[list_id], query_offsets[list_id + 1]
            values[first:last], columns[first:last] = _Scan(index, probes[list_id], sorted_ids).best(
                grouped[first:last], k
            )

    busy = [list_id for list_id in range(index.n_lists) if query_offsets[list_id] < query_offsets[list_id + 1]]
    if device.type != "cpu":
        scan(busy)
    else:
        # many small products: each on one thread, the lists shared out over as many threads as torch
        # has (each list's result is the same on any thread)
        workers = max(1, min(torch.get_num_threads(), len(busy)))
        for _ in side_by_side(scan, [busy[worker::workers] for worker in range(workers)], workers):
            pass
    out_values, out_indices = torch.empty_like(values), torch.empty_like(columns)
    out_values[by_home], out_indices[by_home] = values, index.order[columns]
    return out_values, out_indices


@dataclass(frozen=True)
class _Scan:
    """The rows of the lists one list's queries scan, as contiguous slices of the list-ordered rows."""

    index: IvfIndex
    lists: list[int]
    sorted_ids: torch.Tensor | None

    def best(self, query_positions: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, list-ordered positions) [q, k] of the best scanned rows for the queries."""
        index = self.index
        slices = [(index.offsets[lst], index.offsets[lst + 1]) for lst in self.lists]
        slices = [(start, stop) for start, stop in slices if stop > start]
        query_rows = index.sorted_rows[query_positions]
        sims = torch.cat([query_rows @ index.sorted_rows[start:stop].T for start, stop in slices], dim=1)
        scanned = torch.cat([torch.arange(start, stop, device=sims.device) for start, stop in slices])
        if index.sorted_sq_norms is not None:  # −‖x_i − x_j‖², as in the exact search
            norms = index.sorted_sq_norms
            sims.mul_(2).sub_(norms[query_positions, None]).sub_(norms[scanned][None, :]).clamp_(max=0.0)
        sims.masked_fill_(query_positions[:, None] == scanned[None, :], float("-inf"))
        if self.sorted_ids is not None:
            same = self.sorted_ids[query_positions, None] == self.sorted_ids[scanned][None, :]
            sims.masked_fill_(same, float("-inf"))
        taken = min(k, sims.shape[1])
        best_values, best_columns = torch.topk(sims, taken, dim=1)
        if taken < k:
            padding = (0, k - taken)
            best_values = F.pad(best_values, padding, value=float("-inf"))
            best_columns = F.pad(best_columns, padding, value=0)
        return best_values, scanned[best_columns]
