"""Per-sample neighbour lists and how two lists agree (as sets, or as ordered sequences): exact by default,
or approximate with the recall it measured.

Conventions: the sample itself is never its own neighbour, and neighbours are listed from most to least
similar. Ties are broken by the lower sample index, so the same features always give the same lists.
``similarity`` says what "near" means:

- ``"cosine"`` (default, platonic-rep's convention): rows L2-normalised, then the inner product. A zero
  row has cosine 0 to every other row. Invariant to rescaling each row by its own positive factor.
- ``"ip"``: the raw inner product ⟨x_i, x_j⟩. Not invariant to per-row scale; invariant to one rotation
  (and one positive scale) of the whole space.
- ``"euclidean"``: nearest by ‖x_i − x_j‖. Invariant to translation, rotation and one positive scale.

``neighbors`` says how the lists are found:

- ``"exact"`` (default): every pair is compared. Two backends give the same lists (``exact_backend``):
  torch row blocks (only a ``block_size`` x n block of similarities is ever held, so n = 100,000 works on
  a laptop; on the CPU each pair's similarity is computed once, for i < j, and read for both rows: half
  the products, see :func:`_symmetric_search`), or faiss's flat search (:func:`alignscope.core.ann.flat_candidates`: IndexFlatIP's inner
  products, IndexFlatL2's distances) whose k + c + 1 best candidates per row (c the most copies of one
  sample) are re-sorted by (−similarity, index); a row whose k-th value equals the last fetched one may
  have lower-index ties beyond them and is searched again on torch blocks, so ties go to the lower index
  exactly as there. ``"auto"`` takes torch blocks (see ``bench/results/neighbors.json``: faiss's flat
  search was not faster on 2 cores at n = 1,000 ... 100,000, and it needs float32 features on the CPU).
  Float64 cosines are compared on a grid of 2^-30 (~1e-9; :data:`COSINE_GRID`): two cosines closer than
  that are a tie, broken by index — so an exact tie stays one whatever the rounding of the row
  normalisation and of the BLAS's summation order (orthogonal rows, a zero row next to an orthogonal one,
  parallel rows of different lengths). Float32 cosines are ranked as computed: their rounding (~1e-7) is
  coarser than any such grid could be without merging distinct neighbours. Both backends rank by float32
  arithmetic: exact ties (small integer features,
  duplicate rows) are broken identically, but faiss's BLAS (OpenBLAS) and torch's (MKL) round some products differently, so two
  neighbours whose similarities agree to float32 rounding may swap: on the bench data 1 row in 30,000
  and 2 in 100,000 differed, each by two neighbours whose cosines differ by ~4e-7.
- ``"approx"``: IVF-Flat (:mod:`alignscope.core.ann`, which states how its parameters follow from n).
  Before the full search, ``n_probe`` is raised (x1.5) until recall@k on :data:`TUNE_QUERIES` seeded queries
  reaches ``target_recall``; then recall@k is measured on :data:`RECALL_QUERIES` other seeded queries,
  whose exact lists alone are computed (about 0.8 % of an exact search at n = 100,000), and reported in
  the :class:`SearchReport` of the result. Below :data:`~alignscope.core.ann.APPROX_MIN_SAMPLES` samples
  the search is exact (and says so). Needs the optional package faiss (for its k-means). The lists are
  ordered by (−similarity, index) among the candidates found, and the same features and seed give the
  same lists; a tie at the k-th place (copies of one sample, say) may keep a higher index than the exact
  search would.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from alignscope.core import ann
from alignscope.core.devices import torch_threads
from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import as_tensor, check_choice, check_features, check_k
from alignscope.core.metrics.self_gram import MIN_ROWS as SELF_GRAM_MIN_ROWS
from alignscope.core.metrics.self_gram import self_gram

DEFAULT_BLOCK_SIZE = 1024
SIMILARITIES = ("cosine", "ip", "euclidean")
NEIGHBOR_MODES = ("exact", "approx")
EXACT_BACKENDS = ("auto", "torch", "faiss")
TARGET_RECALL = 0.97
TUNE_QUERIES = 256
RECALL_QUERIES = 512
# columns per chunk of the chunked top-k, and the block width from which it beats one top-k pass
_CHUNK = 128
_CHUNKED_MIN_COLUMNS = 32_768
# query rows per block of the exact reference lists that measure an approximate search's recall
_REFERENCE_BLOCK = 256
# columns per torch.median call when shifting features for the Euclidean search (bounds its copy)
_MEDIAN_ELEMENTS = 1 << 24
# columns of a row block read transposed at a time by the symmetric search (bounds that copy: 32 MiB at
# 1024 float32 rows)
_TRANSPOSED_COLUMNS = 8192


@dataclass(frozen=True)
class SearchReport:
    """How one layer's neighbour lists were found, and how close to exact they are.

    Attributes:
        mode: ``"exact"`` or ``"approx"`` (what ran: an approximate request below the IVF minimum runs
            exactly).
        method: ``"torch_blocks"``, ``"faiss_flat"`` or ``"ivf_flat"``.
        k: neighbours per sample.
        recall: mean over the measured queries of |approximate list ∩ exact list| / k; 1.0 for an exact
            search (exact by construction, nothing measured).
        recall_queries: how many seeded queries the recall was measured on; 0 for an exact search.
        params: the approximate index's parameters (``n_lists``, ``n_probe`` as used, ...), else empty.
        note: why an approximate request ran exactly, else empty.
    """

    mode: str
    method: str
    k: int
    recall: float = 1.0
    recall_queries: int = 0
    params: tuple[tuple[str, float], ...] = ()
    note: str = ""

    def describe(self) -> str:
        """One line for a score's caption, e.g. ``approx (ivf_flat, 632 lists, 10 probed), recall@10 = 0.97
        on 512 queries``.

        Example:
            >>> SearchReport("exact", "torch_blocks", 10).describe()
            'exact (torch_blocks)'
        """
        if self.mode == "exact":
            return f"exact ({self.method}{'; ' + self.note if self.note else ''})"
        settings = dict(self.params)
        index = f"{self.method}, {int(settings['n_lists'])} lists, {int(settings['n_probe'])} probed"
        return f"approx ({index}), recall@{self.k} = {self.recall:.3f} on {self.recall_queries} queries"


@dataclass(frozen=True)
class NeighborSearch:
    """The result of :func:`search_neighbors`: indices [n, k] int64 (most similar first), optionally the
    float64 values that ranked them [n, k], and the :class:`SearchReport`."""

    indices: torch.Tensor
    values: torch.Tensor | None
    report: SearchReport

    @property
    def recall(self) -> float:
        return self.report.recall

    @property
    def method(self) -> str:
        return self.report.method

    @property
    def params(self) -> tuple[tuple[str, float], ...]:
        return self.report.params


@dataclass(frozen=True)
class _Prepared:
    """What a search ranks by: the rows (normalised / raw / shifted), squared norms for euclidean, the
    sample ids whose copies are excluded, and the similarity."""

    rows: torch.Tensor
    sq_norms: torch.Tensor | None
    sample_ids: torch.Tensor | None
    similarity: str

    @property
    def n_samples(self) -> int:
        return int(self.rows.shape[0])


COSINE_GRID = 2.0**30  # cosines are ranked at a resolution of 2^-30 (see the module docstring)


def snap_cosines(values: torch.Tensor) -> torch.Tensor:
    """Round float64 cosines (in place) to the grid of :data:`COSINE_GRID`; -inf (excluded pairs) stays
    -inf; float32 values are left as they are (see the module docstring)."""
    if values.dtype != torch.float64:
        return values
    return values.mul_(COSINE_GRID).round_().div_(COSINE_GRID)


def _order_candidates(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row of candidates by similarity (descending), ties by lower index."""
    by_index = torch.argsort(indices, dim=1)
    indices = torch.gather(indices, 1, by_index)
    values = torch.gather(values, 1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    return torch.gather(values, 1, by_value), torch.gather(indices, 1, by_value)


def _full_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
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
    # topk sorts by value; only rows holding equal values need their ties put in index order
    equal = (values[:, 1:] == values[:, :-1]).any(dim=1)
    if bool(equal.any()):
        rows = torch.nonzero(equal).flatten()
        values[rows], indices[rows] = _order_candidates(values[rows], indices[rows])
    return values, indices


def _chunked_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`_full_topk` of a wide block from the chunks that can hold its top k; None to decline.

    Columns are cut into chunks of :data:`_CHUNK` and τ is each row's k-th largest chunk maximum: at least
    k entries are >= τ, so every entry of the top k (ties at the k-th place included) lies in a chunk
    whose maximum is >= τ. Those chunks, in column order, are a few k·``_CHUNK`` candidates instead of n,
    and the same tie rule on them gives the same lists; one max pass replaces most of a top-k pass
    (measured 2.6x faster on a 1024 x 100,000 block, slower below about 30,000 columns).
    """
    n_rows, n_columns = sims.shape
    n_chunks = n_columns // _CHUNK
    body = sims[:, : n_chunks * _CHUNK].view(n_rows, n_chunks, _CHUNK)
    maxima = body.amax(dim=2)
    best = torch.topk(maxima, k, dim=1)
    threshold = best.values[:, -1]
    if not bool(torch.isfinite(threshold).all()):
        return None  # rows with fewer than k finite chunks (copies excluded en masse): the full pass
    width = int((maxima >= threshold[:, None]).sum(dim=1).max())
    if width > n_chunks // 4:
        return None  # chunk maxima tie widely (repeated rows): nothing to save
    chunks = best.indices if width == k else torch.topk(maxima, width, dim=1).indices
    chunks = torch.sort(chunks, dim=1).values
    offsets = torch.arange(_CHUNK, device=sims.device)
    candidates = torch.gather(body, 1, chunks[:, :, None].expand(n_rows, width, _CHUNK)).view(n_rows, -1)
    columns = (chunks[:, :, None] * _CHUNK + offsets).view(n_rows, -1)
    if n_chunks * _CHUNK < n_columns:  # the last, partial chunk is always a candidate (it comes last)
        tail = torch.arange(n_chunks * _CHUNK, n_columns, device=sims.device)
        candidates = torch.cat([candidates, sims[:, n_chunks * _CHUNK :]], dim=1)
        columns = torch.cat([columns, tail.expand(n_rows, -1)], dim=1)
    values, positions = _full_topk(candidates, k)
    return values, torch.gather(columns, 1, positions)


def _block_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of ``sims`` [rows, n] (values and column indices, best first), ties to the lower
    column."""
    if sims.shape[1] >= _CHUNKED_MIN_COLUMNS and 4 * k * _CHUNK <= sims.shape[1]:
        found = _chunked_topk(sims, k)
        if found is not None:
            return found
    return _full_topk(sims, k)


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


def _mask_block(sims: torch.Tensor, prepared: _Prepared, query_index: torch.Tensor, first_column: int = 0) -> None:
    """In place, on the similarities of rows ``query_index`` [b] to the columns from ``first_column`` on
    [b, n - first_column]: snap cosines, turn inner products into −‖x_i − x_j‖² (Euclidean), and exclude
    each row's own column and its copies' (-inf). Every query row's own column is in the block."""
    sq_norms, sample_ids = prepared.sq_norms, prepared.sample_ids
    if prepared.similarity == "cosine":
        snap_cosines(sims)
    if sq_norms is not None:  # −‖x_i − x_j‖², in place; rounding must not make a distance negative
        sims.mul_(2).sub_(sq_norms[query_index, None]).sub_(sq_norms[None, first_column:]).clamp_(max=0.0)
    sims[torch.arange(sims.shape[0], device=sims.device), query_index - first_column] = float("-inf")
    if sample_ids is not None:
        sims.masked_fill_(sample_ids[query_index, None] == sample_ids[None, first_column:], float("-inf"))


def _exact_search(
    prepared: _Prepared, k: int, block_size: int, queries: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (values, indices) [q, k] of the query rows (all rows when ``queries`` is None), torch blocks."""
    rows = prepared.rows
    if queries is None and rows.device.type == "cpu":
        if block_size < prepared.n_samples:
            return _symmetric_search(prepared, k, block_size)
        if prepared.n_samples >= SELF_GRAM_MIN_ROWS:
            return _one_block_search(prepared, k, block_size)
    n_queries = prepared.n_samples if queries is None else int(queries.numel())
    out_indices = torch.empty((n_queries, k), dtype=torch.long, device=rows.device)
    out_values = torch.empty((n_queries, k), dtype=rows.dtype, device=rows.device)
    # one block buffer for the whole search: a fresh n-wide block per step costs its page faults again
    buffer = torch.empty((min(block_size, n_queries), prepared.n_samples), dtype=rows.dtype, device=rows.device)
    columns = rows.T
    for start in range(0, n_queries, block_size):
        stop = min(start + block_size, n_queries)
        if queries is None:
            query_index = torch.arange(start, stop, device=rows.device)
            query_rows = rows[start:stop]
        else:
            query_index = queries[start:stop]
            query_rows = rows[query_index]
        sims = buffer[: stop - start]
        torch.matmul(query_rows, columns, out=sims)
        _mask_block(sims, prepared, query_index)
        values, indices = _block_topk(sims, k)
        out_indices[start:stop] = indices
        out_values[start:stop] = values
    return out_values, out_indices


def _tie_tolerance(prepared: _Prepared) -> torch.Tensor:
    """[n] per row: how far apart two of its similarities may be and still be a tie to the searches that
    read a pair's similarity from another product than the row's own (BLAS rounds a product's entries by
    its shape and place: a few ulps of the row's scale; this allows 2^5 machine epsilons of it, and two
    grid steps for float64 cosines)."""
    rows = prepared.rows
    relative = torch.finfo(rows.dtype).eps * 2**5
    if prepared.sq_norms is not None:  # −‖x_i − x_j‖² = 2⟨x_i, x_j⟩ − ‖x_i‖² − ‖x_j‖²
        tolerance = relative * (prepared.sq_norms + prepared.sq_norms.max())
    else:
        norms = torch.linalg.vector_norm(rows, dim=1)
        tolerance = relative * norms * norms.max()
    if prepared.similarity == "cosine" and rows.dtype == torch.float64:
        tolerance = tolerance + 2 / COSINE_GRID
    return tolerance


def _near_ties(values: torch.Tensor, tolerance: torch.Tensor) -> torch.Tensor:
    """[m] bool: rows of ``values`` [m, k + 1] (best first) with two neighbouring values within the row's
    ``tolerance`` [m], or with equal k-th and (k + 1)-th values (-inf included)."""
    gaps = values[:, :-1] - values[:, 1:]  # >= 0; NaN between two -inf
    return (gaps <= tolerance[:, None]).any(dim=1) | (values[:, -1] == values[:, -2])


def _one_block_search(prepared: _Prepared, k: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_exact_search` of every row when all fit one block: the similarities from the upper block
    triangle of the Gram (:func:`~alignscope.core.metrics.self_gram.self_gram`). The entries below it are
    copies of entries above, so a row's values come from several products, and equal similarities (copies of
    one sample) may differ in the last bits: a row with a near tie among its k + 1 best is searched again
    in one product (as the plain blocks do), so ties still go to the lower index."""
    n_samples = prepared.n_samples
    sims = self_gram(prepared.rows)
    _mask_block(sims, prepared, torch.arange(n_samples, device=sims.device))
    values, indices = _block_topk(sims, k + 1)
    unsure = _near_ties(values, _tie_tolerance(prepared))
    values, indices = values[:, :k].contiguous(), indices[:, :k].contiguous()
    del sims
    _repair_rows(prepared, k, block_size, values, indices, unsure)
    return values, indices


def _symmetric_search(prepared: _Prepared, k: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_exact_search` of every row from the upper block triangle of the similarities (half the
    products; the similarity of i and j is that of j and i).

    Row block [s, e) meets the columns from s on, [e - s, n - s]. Its rows' k + 1 best among those
    columns, merged with the k + 1 best their columns before s gave (the same products read transposed
    in earlier blocks), are those rows' k + 1 best; its columns from e on, read transposed, give the later
    rows their k + 1 best among rows [s, e), merged into running lists. Each merge keeps the k + 1 largest
    values of the union exactly, but among equal values any index may stay, and a pair read transposed
    comes from another product than the row's own, so equal similarities (copies of one sample) may differ
    in the last bits. A row with a near tie among its k + 1 best (:func:`_tie_tolerance`) is searched again
    in one product (as the plain blocks and the faiss path's unsure rows are), so ties go to the lower index
    as there; the other rows' lists are separated by more than any rounding.
    """
    rows = prepared.rows
    n_samples, keep = prepared.n_samples, k + 1
    device, dtype = rows.device, rows.dtype
    # the best k + 1 of each row among the columns of the row blocks before its own
    earlier_values = torch.full((n_samples, keep), float("-inf"), dtype=dtype, device=device)
    earlier_indices = torch.zeros((n_samples, keep), dtype=torch.long, device=device)
    out_values = torch.empty((n_samples, k), dtype=dtype, device=device)
    out_indices = torch.empty((n_samples, k), dtype=torch.long, device=device)
    unsure = torch.zeros(n_samples, dtype=torch.bool, device=device)
    tolerance = _tie_tolerance(prepared)
    buffer = torch.empty(block_size * n_samples, dtype=dtype, device=device)  # flat: each block contiguous
    for start in range(0, n_samples, block_size):
        stop = min(start + block_size, n_samples)
        sims = buffer[: (stop - start) * (n_samples - start)].view(stop - start, n_samples - start)
        torch.matmul(rows[start:stop], rows[start:].T, out=sims)
        _mask_block(sims, prepared, torch.arange(start, stop, device=device), first_column=start)
        values, columns = _block_topk(sims, min(keep, sims.shape[1]))
        values = torch.cat([values, earlier_values[start:stop]], dim=1)
        indices = torch.cat([columns + start, earlier_indices[start:stop]], dim=1)
        values, indices = _order_candidates(values, indices)
        out_values[start:stop], out_indices[start:stop] = values[:, :k], indices[:, :k]
        unsure[start:stop] = _near_ties(values[:, :keep], tolerance[start:stop])
        for first in range(stop - start, sims.shape[1], _TRANSPOSED_COLUMNS):
            last = min(first + _TRANSPOSED_COLUMNS, sims.shape[1])
            found = torch.topk(sims[:, first:last].T.contiguous(), min(keep, stop - start), dim=1)
            later = slice(start + first, start + last)
            merged_values = torch.cat([earlier_values[later], found.values], dim=1)
            merged_indices = torch.cat([earlier_indices[later], found.indices + start], dim=1)
            best = torch.topk(merged_values, keep, dim=1)
            earlier_values[later] = best.values
            earlier_indices[later] = torch.gather(merged_indices, 1, best.indices)
    del buffer, sims  # the repair holds a block of its own (400 MB at n = 100,000): not both at once
    _repair_rows(prepared, k, block_size, out_values, out_indices, unsure)
    return out_values, out_indices


def _max_copies(sample_ids: torch.Tensor | None) -> int:
    if sample_ids is None:
        return 1
    return int(torch.unique(sample_ids, return_counts=True)[1].max())


def _repair_rows(
    prepared: _Prepared,
    k: int,
    block_size: int,
    values: torch.Tensor,
    indices: torch.Tensor,
    unsure: torch.Tensor,
    queries: torch.Tensor | None = None,
) -> None:
    """Replace the ``unsure`` rows of (values, indices) by the exact torch search, in place."""
    if bool(unsure.any()):
        rows = torch.nonzero(unsure).flatten()
        targets = rows if queries is None else queries[rows]
        with torch_threads(1) if prepared.rows.device.type == "cpu" else contextlib.nullcontext():
            found = _exact_search(prepared, k, block_size, targets.to(prepared.rows.device))
        values[rows], indices[rows] = found


def _faiss_flat_search(prepared: _Prepared, k: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (values, indices) [n, k] from faiss's flat search, with the torch path's tie rule."""
    n_samples = prepared.n_samples
    # the sample and its copies come first (or tie there), then k neighbours and one to check the k-th by
    n_candidates = min(n_samples, k + _max_copies(prepared.sample_ids) + 1)
    values, indices = ann.flat_candidates(prepared.rows, n_candidates, euclidean=prepared.similarity == "euclidean")
    if prepared.similarity == "cosine":
        snap_cosines(values)
    last_fetched = values[:, -1].clone()
    excluded = indices == torch.arange(n_samples)[:, None]
    if prepared.sample_ids is not None:
        ids = prepared.sample_ids.cpu()
        excluded |= ids[indices] == ids[:, None]
    values.masked_fill_(excluded, float("-inf"))
    values, indices = _order_candidates(values, indices)
    values, indices = values[:, :k].contiguous(), indices[:, :k].contiguous()
    # every row better than the last fetched value was fetched; equal ones beyond it may not have been
    unsure = (values[:, -1] <= last_fetched) if n_candidates < n_samples else torch.zeros(n_samples, dtype=torch.bool)
    values = values.to(prepared.rows.dtype)
    _repair_rows(prepared, k, block_size, values, indices, unsure)
    return values, indices


def _exact_backend(prepared: _Prepared, exact_backend: str) -> str:
    check_choice(exact_backend, EXACT_BACKENDS, "exact_backend")
    if exact_backend == "torch" or exact_backend == "auto":
        return "torch_blocks"
    rows = prepared.rows
    if rows.device.type != "cpu" or rows.dtype != torch.float32:
        raise InputError(
            f"exact_backend='faiss' searches float32 features on the CPU; these are {rows.dtype} on {rows.device}. "
            "Use exact_backend='torch' (or 'auto')"
        )
    ann.require_faiss("exact_backend='faiss'")
    return "faiss_flat"


def _recall(found: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean |found_i ∩ exact_i| / k over the rows."""
    return float(overlap_counts(found, torch.sort(exact, dim=1).values).to(torch.float64).mean()) / found.shape[1]


def _ivf_lists(
    prepared: _Prepared,
    index: ann.IvfIndex,
    k: int,
    n_probe: int,
    block_size: int,
    queries: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate (values, indices) [q, k] of the query rows (all when None), ties to the lower index."""
    values, indices = ann.ivf_candidates(index, queries, n_probe, k, prepared.sample_ids)
    if prepared.similarity == "cosine":
        snap_cosines(values)
    values, indices = _order_candidates(values, indices)
    # a query whose probed lists hold fewer than k other samples is searched exactly
    _repair_rows(prepared, k, block_size, values, indices, torch.isinf(values[:, -1]), queries)
    return values, indices


def _approx_search(
    prepared: _Prepared, k: int, block_size: int, params: ann.IvfParams | None, target_recall: float
) -> tuple[torch.Tensor, torch.Tensor, SearchReport]:
    n_samples, n_features = prepared.rows.shape
    if params is None:
        params = ann.choose_ivf_params(n_samples, n_features, k)
    if params is None:
        values, indices = _exact_search(prepared, k, block_size)
        note = f"n={n_samples} with k={k} is too few for an approximate index, so the search was exact"
        return values, indices, SearchReport("exact", "torch_blocks", k, note=note)
    if params.n_lists > n_samples:
        raise InputError(f"an IVF index of {params.n_lists} lists needs at least as many samples; got {n_samples}")
    ann.require_faiss("neighbors='approx'")
    index = ann.build_ivf(prepared.rows, prepared.sq_norms, params, spherical=prepared.similarity == "cosine")
    generator = torch.Generator().manual_seed(params.seed)
    drawn = torch.randperm(n_samples, generator=generator)[: TUNE_QUERIES + RECALL_QUERIES].to(prepared.rows.device)
    n_tune = len(drawn) * TUNE_QUERIES // (TUNE_QUERIES + RECALL_QUERIES)
    tune, held_out = drawn[:n_tune], drawn[n_tune:]
    # the reference lists in narrow blocks: a 768 x n block would cost the memory the index saves
    _, exact_lists = _exact_search(prepared, k, min(block_size, _REFERENCE_BLOCK), drawn)
    exact_tune, exact_held_out = exact_lists[: len(tune)], exact_lists[len(tune) :]
    n_probe = params.n_probe
    tune_recall = _recall(_ivf_lists(prepared, index, k, n_probe, block_size, tune)[1], exact_tune)
    while tune_recall < target_recall and n_probe < params.max_probe:
        n_probe = min(params.max_probe, math.ceil(1.5 * n_probe))
        tune_recall = _recall(_ivf_lists(prepared, index, k, n_probe, block_size, tune)[1], exact_tune)
    values, indices = _ivf_lists(prepared, index, k, n_probe, block_size)
    report = SearchReport(
        "approx",
        "ivf_flat",
        k,
        recall=_recall(indices[held_out], exact_held_out),
        recall_queries=len(held_out),
        params=(
            ("n_lists", params.n_lists),
            ("n_probe", n_probe),
            ("n_train", params.n_train),
            ("n_iter", params.n_iter),
            ("seed", params.seed),
            ("target_recall", target_recall),
            ("tune_recall", tune_recall),
        ),
    )
    return values, indices, report


def _prepare(feats: torch.Tensor, similarity: str, sample_ids: Any, k: int, name: str) -> _Prepared:
    n_samples = feats.shape[0]
    if sample_ids is not None:
        sample_ids = torch.as_tensor(sample_ids, device=feats.device).long().flatten()
        if sample_ids.shape[0] != n_samples:
            raise InputError(f"sample_ids has {sample_ids.shape[0]} entries but {name} has {n_samples} rows")
        n_distinct = int(torch.unique(sample_ids).numel())
        if k > n_distinct - 1:
            raise InputError(f"k={k} needs at least {k + 1} distinct samples; this resample has {n_distinct}")
    rows, sq_norms = _search_rows(feats, similarity)
    return _Prepared(rows, sq_norms, sample_ids, similarity)


def search_neighbors(
    feats: Any,
    k: int,
    *,
    similarity: str = "cosine",
    neighbors: str = "exact",
    block_size: int = DEFAULT_BLOCK_SIZE,
    sample_ids: Any = None,
    return_values: bool = False,
    name: str = "feats",
    check: bool = True,
    exact_backend: str = "auto",
    ivf_params: ann.IvfParams | None = None,
    target_recall: float = TARGET_RECALL,
) -> NeighborSearch:
    """Each row's k most similar rows, exact or approximate, with a report of how they were found.

    Args:
        feats: [n, d] features.
        k: neighbours per sample, 1 <= k <= n - 1.
        similarity: ``"cosine"`` (rows L2-normalised), ``"ip"`` (raw inner product) or ``"euclidean"``
            (nearest by Euclidean distance); see the module docstring.
        neighbors: ``"exact"`` (default) or ``"approx"`` (IVF-Flat with its recall measured).
        block_size: rows per block of the exact search; memory is O(block_size * n).
        sample_ids: optional [n] integer ids; rows sharing the query's id (bootstrap duplicates of the
            same sample) are excluded like the sample itself.
        return_values: also return what ranked the chosen pairs, as float64: the cosine, the inner
            product, or for ``"euclidean"`` the negative squared distance −‖x_i − x_j‖² (<= 0). Computed
            in the input's precision: float64 inputs give float64-exact values.
        check: validate ``feats`` (NaN/Inf, shape); callers that already did pass False.
        exact_backend: ``"auto"``, ``"torch"`` or ``"faiss"`` (float32 CPU features); the same lists.
        ivf_params: the approximate index's parameters instead of :func:`alignscope.core.ann.choose_ivf_params`
            (which declines below its minimum n); given, the index is built whatever n is.
        target_recall: recall@k on the tuning queries at which ``n_probe`` stops growing.

    Returns:
        :class:`NeighborSearch`: indices [n, k] int64, values [n, k] float64 or None, and the report
        (``report.recall`` is measured for ``"approx"``; 1.0 for exact).

    Example:
        >>> import torch
        >>> found = search_neighbors(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), 1)
        >>> found.indices.flatten().tolist(), found.report.describe()
        ([1, 0, 1], 'exact (torch_blocks)')
    """
    feats = check_features(feats, name, min_samples=2) if check else as_tensor(feats, name)
    k = check_k(k, feats.shape[0])
    check_choice(similarity, SIMILARITIES, "similarity")
    check_choice(neighbors, NEIGHBOR_MODES, "neighbors")
    if block_size < 1:
        raise InputError(f"block_size must be >= 1, got {block_size}")
    if not 0.0 < target_recall <= 1.0:
        raise InputError(f"target_recall must be in (0, 1], got {target_recall}")
    prepared = _prepare(feats, similarity, sample_ids, k, name)
    if neighbors == "approx":
        values, indices, report = _approx_search(prepared, k, block_size, ivf_params, target_recall)
    else:
        method = _exact_backend(prepared, exact_backend)
        search = _faiss_flat_search if method == "faiss_flat" else _exact_search
        values, indices = search(prepared, k, block_size)
        report = SearchReport("exact", method, k)
    if return_values and similarity == "cosine" and values.dtype == torch.float64:
        values = _pair_values(prepared.rows, indices, block_size)  # the cosines themselves, not their grid
    return NeighborSearch(indices, values.to(torch.float64) if return_values else None, report)


def _pair_values(rows: torch.Tensor, indices: torch.Tensor, block_size: int) -> torch.Tensor:
    """⟨rows_i, rows_j⟩ for each listed pair [n, k], in row blocks (memory O(block · k · d))."""
    out = torch.empty(indices.shape, dtype=rows.dtype, device=rows.device)
    step = max(1, block_size // max(1, indices.shape[1]))
    for start in range(0, indices.shape[0], step):
        stop = min(start + step, indices.shape[0])
        out[start:stop] = torch.einsum("nd,nkd->nk", rows[start:stop], rows[indices[start:stop]])
    return out


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
    neighbors: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Indices [n, k] (and optionally float64 similarities [n, k]) of each row's k most similar rows.

    :func:`search_neighbors` without its report: the arguments are the same (``neighbors="approx"``
    included), and the recall of an approximate search is on ``search_neighbors(...).report``.

    Returns:
        (indices [n, k] int64, values [n, k] float64 or None).
    """
    found = search_neighbors(
        feats,
        k,
        similarity=similarity,
        neighbors=neighbors,
        block_size=block_size,
        sample_ids=sample_ids,
        return_values=return_values,
        name=name,
        check=check,
    )
    return found.indices, found.values


def knn_indices(
    feats: Any,
    k: int = 10,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    similarity: str = "cosine",
    neighbors: str = "exact",
) -> torch.Tensor:
    """Indices of each sample's k nearest neighbours (cosine by default), the sample itself excluded.

    Args:
        feats: [n, d] tensor or array.
        k: neighbours per sample (1 <= k <= n - 1).
        block_size: rows of the similarity matrix held at once.
        similarity: ``"cosine"``, ``"ip"`` or ``"euclidean"`` (see the module docstring).
        neighbors: ``"exact"`` or ``"approx"``; :func:`search_neighbors` returns the recall with the lists.

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
    return search_neighbors(feats, k, block_size=block_size, similarity=similarity, neighbors=neighbors).indices


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
