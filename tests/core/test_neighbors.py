import numpy as np
import pytest
import torch

from alignscope.core import ann, neighbors
from alignscope.core.errors import InputError
from alignscope.core.neighbors import (
    SIMILARITIES,
    SearchReport,
    _block_topk,
    _chunked_topk,
    _full_topk,
    common_subsequence_lengths,
    edit_distances,
    knn_indices,
    per_sample_overlap,
    search_neighbors,
    topk_similar,
)


def slow_knn(feats, k, exclude_ids=None):
    feats = np.asarray(feats, dtype=np.float64)
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    lists = []
    for i in range(len(unit)):
        candidates = []
        for j in range(len(unit)):
            if j == i or (exclude_ids is not None and exclude_ids[j] == exclude_ids[i]):
                continue
            candidates.append((-float(unit[i] @ unit[j]), j))
        lists.append([j for _, j in sorted(candidates)[:k]])
    return np.array(lists)


def slow_lists(feats, k, similarity):
    """The k best other rows by cosine, inner product or (nearest first) distance; ties to the lower index."""
    feats = np.asarray(feats, dtype=np.float64)
    lists = []
    for i in range(len(feats)):
        candidates = []
        for j in range(len(feats)):
            if j == i:
                continue
            if similarity == "cosine":
                norms = max(np.linalg.norm(feats[i]), 1e-12) * max(np.linalg.norm(feats[j]), 1e-12)
                score = float(feats[i] @ feats[j]) / norms
            elif similarity == "ip":
                score = float(feats[i] @ feats[j])
            else:
                score = -float(np.sum((feats[i] - feats[j]) ** 2))
            candidates.append((-score, j))
        lists.append([j for _, j in sorted(candidates)[:k]])
    return np.array(lists)


@pytest.mark.parametrize("block_size", [1, 7, 1024])
def test_knn_indices_match_slow_loop_in_any_block_size(block_size):
    feats = np.random.default_rng(0).standard_normal((37, 5))
    assert np.array_equal(knn_indices(feats, 6, block_size=block_size).numpy(), slow_knn(feats, 6))


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("block_size", [1, 7, 1024])
def test_every_similarity_matches_its_slow_loop_in_any_block_size(similarity, block_size):
    feats = np.random.default_rng(10).standard_normal((37, 5)) * np.linspace(0.2, 3.0, 37)[:, None] + 0.7
    found = knn_indices(feats, 6, block_size=block_size, similarity=similarity).numpy()
    assert np.array_equal(found, slow_lists(feats, 6, similarity))


@pytest.mark.parametrize("similarity", ["ip", "euclidean"])
def test_ties_go_to_the_lower_index_for_inner_products_and_distances(similarity):
    feats = np.random.default_rng(11).integers(-2, 3, size=(40, 3)).astype(np.float64)  # many exact ties
    indices = knn_indices(feats, 6, block_size=8, similarity=similarity).numpy()
    assert np.array_equal(indices, slow_lists(feats, 6, similarity))
    assert not (indices == np.arange(40)[:, None]).any()


def test_values_are_what_ranked_the_pairs():
    feats = torch.randn(30, 4, generator=torch.Generator().manual_seed(12), dtype=torch.float64) + 2.0
    indices, values = topk_similar(feats, 4, return_values=True, similarity="ip")
    assert torch.allclose(values, (feats[:, None, :] * feats[indices]).sum(-1), atol=1e-12)
    indices, values = topk_similar(feats, 4, return_values=True, similarity="euclidean")
    assert torch.allclose(values, -((feats[:, None, :] - feats[indices]) ** 2).sum(-1), atol=1e-12)
    assert bool((values[:, :-1] >= values[:, 1:]).all()) and bool((values <= 0).all())


def test_a_duplicate_row_is_the_nearest_at_distance_zero():
    feats = np.random.default_rng(13).standard_normal((20, 3))
    feats[15] = feats[4]
    indices, values = topk_similar(feats, 1, return_values=True, similarity="euclidean")
    assert indices[4, 0] == 15 and indices[15, 0] == 4
    assert values[4, 0] == 0.0


def test_ties_go_to_the_lower_index_and_self_is_excluded():
    feats = np.random.default_rng(1).integers(-1, 2, size=(40, 2)).astype(np.float64)  # many exact ties
    indices = knn_indices(feats, 5, block_size=8).numpy()
    assert np.array_equal(indices, slow_knn(feats, 5))
    assert not (indices == np.arange(40)[:, None]).any()


def test_neighbours_are_sorted_by_similarity_and_values_are_float64_cosines():
    feats = torch.randn(30, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    indices, values = topk_similar(feats, 4, return_values=True)
    assert values.dtype == torch.float64
    assert bool((values[:, :-1] >= values[:, 1:]).all())
    unit = torch.nn.functional.normalize(feats.double(), dim=1)
    expected = (unit[:, None, :] * unit[indices]).sum(-1)
    assert torch.allclose(values, expected, atol=1e-12)


def test_sample_ids_exclude_copies_of_the_query():
    feats = np.random.default_rng(3).standard_normal((20, 3))
    rows = np.array([0, 0, 1, 2, 2, 2] + list(range(3, 17)))
    indices, _ = topk_similar(feats[rows], 3, sample_ids=torch.from_numpy(rows))
    assert np.array_equal(indices.numpy(), slow_knn(feats[rows], 3, exclude_ids=rows))
    assert not (rows[indices.numpy()] == rows[:, None]).any()


def test_per_sample_overlap_is_set_overlap_over_k():
    rng = np.random.default_rng(4)
    idx_a = np.stack([rng.choice(50, 6, replace=False) for _ in range(50)])
    idx_b = np.stack([rng.choice(50, 6, replace=False) for _ in range(50)])
    expected = [len(set(x) & set(y)) / 6 for x, y in zip(idx_a, idx_b)]
    got = per_sample_overlap(torch.from_numpy(idx_a), torch.from_numpy(idx_b))
    assert got.dtype == torch.float64
    assert np.allclose(got.numpy(), expected, atol=0)


def _slow_lcs(x, y):
    table = np.zeros((len(x) + 1, len(y) + 1), dtype=int)
    for i in range(len(x)):
        for j in range(len(y)):
            table[i + 1, j + 1] = table[i, j] + 1 if x[i] == y[j] else max(table[i, j + 1], table[i + 1, j])
    return int(table[-1, -1])


def _slow_edit(x, y):
    table = np.zeros((len(x) + 1, len(y) + 1), dtype=int)
    table[:, 0], table[0, :] = np.arange(len(x) + 1), np.arange(len(y) + 1)
    for i in range(len(x)):
        for j in range(len(y)):
            table[i + 1, j + 1] = min(table[i, j + 1] + 1, table[i + 1, j] + 1, table[i, j] + (x[i] != y[j]))
    return int(table[-1, -1])


@pytest.mark.parametrize("k,pool", [(1, 3), (4, 6), (7, 9), (10, 40)])
def test_order_measures_of_lists_match_the_textbook_tables(k, pool):
    rng = np.random.default_rng(k)
    # a small pool of indices makes lists share many entries in many orders
    idx_a = np.stack([rng.choice(pool, k, replace=False) for _ in range(200)])
    idx_b = np.stack([rng.choice(pool, k, replace=False) for _ in range(200)])
    idx_b[:20] = idx_a[:20]
    idx_b[20:40] = idx_a[20:40, ::-1]
    lcs = common_subsequence_lengths(torch.from_numpy(idx_a), torch.from_numpy(idx_b))
    edit = edit_distances(torch.from_numpy(idx_a), torch.from_numpy(idx_b))
    assert lcs.dtype == edit.dtype == torch.long
    assert lcs.tolist() == [_slow_lcs(x, y) for x, y in zip(idx_a, idx_b)]
    assert edit.tolist() == [_slow_edit(x, y) for x, y in zip(idx_a, idx_b)]
    assert edit.tolist() == edit_distances(torch.from_numpy(idx_b), torch.from_numpy(idx_a)).tolist()


def test_errors():
    feats = np.zeros((5, 2))
    with pytest.raises(InputError, match="k=5 needs more samples"):
        knn_indices(feats, 5)
    with pytest.raises(InputError, match="same shape"):
        per_sample_overlap(torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(InputError, match="NaN"):
        knn_indices(np.full((5, 2), np.nan), 2)
    with pytest.raises(InputError, match="similarity must be one of 'cosine', 'ip', 'euclidean'; got 'l2'"):
        knn_indices(np.eye(5), 2, similarity="l2")
    for order_measure in (common_subsequence_lengths, edit_distances):
        with pytest.raises(InputError, match="same shape"):
            order_measure(torch.zeros(4, 2, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))


# --- exact backends, the chunked top-k and the search report ----------------------------------------

needs_faiss = pytest.mark.skipif(ann.faiss_module() is None, reason="faiss (faiss-cpu) is not installed")


def _tied(n, d, seed):
    """Small integer features: many exact ties (equal inner products / distances) and zero rows."""
    return np.random.default_rng(seed).integers(-2, 3, size=(n, d)).astype(np.float32)


@needs_faiss
@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("k", [1, 4, 9])
def test_faiss_flat_search_gives_the_torch_lists_on_data_full_of_ties(similarity, k):
    # cosine ties are exact in floating point only for two-term sums, hence two columns there
    feats = _tied(300, 2 if similarity == "cosine" else 3, k)
    torch_found = search_neighbors(feats, k, similarity=similarity, exact_backend="torch", return_values=True)
    faiss_found = search_neighbors(feats, k, similarity=similarity, exact_backend="faiss", return_values=True)
    assert faiss_found.report.method == "faiss_flat" and torch_found.report.method == "torch_blocks"
    assert torch.equal(faiss_found.indices, torch_found.indices)
    assert torch.equal(faiss_found.values, torch_found.values)
    assert np.array_equal(faiss_found.indices.numpy(), slow_lists(feats, k, similarity))


@needs_faiss
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_faiss_flat_search_gives_the_torch_lists_on_continuous_data_and_with_copies(similarity):
    feats = np.random.default_rng(20).standard_normal((400, 16)).astype(np.float32) + 0.5
    rows = np.concatenate([np.arange(400), np.arange(0, 400, 3), np.arange(0, 400, 7)])  # up to 3 copies
    for data, ids in ((feats, None), (feats[rows], torch.from_numpy(rows))):
        expected = search_neighbors(data, 7, similarity=similarity, sample_ids=ids, exact_backend="torch")
        found = search_neighbors(data, 7, similarity=similarity, sample_ids=ids, exact_backend="faiss")
        assert torch.equal(found.indices, expected.indices)
        if ids is not None:
            assert not (ids[found.indices] == ids[:, None]).any()


@needs_faiss
def test_faiss_flat_search_repairs_rows_whose_ties_run_past_its_candidates():
    # 40 copies of one point: each one's 5 neighbours all tie (cosine 1), far more than the k + 2 fetched
    feats = np.concatenate([np.tile([[1.0, 2.0]], (40, 1)), _tied(60, 2, 21) + 5.0]).astype(np.float32)
    found = search_neighbors(feats, 5, exact_backend="faiss").indices
    assert found[0].tolist() == [1, 2, 3, 4, 5] and found[39].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(found, search_neighbors(feats, 5, exact_backend="torch").indices)


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_chunked_top_k_equals_the_full_pass_with_ties_and_masked_columns(k, seed):
    rng = np.random.default_rng(seed)
    n_columns = 4 * k * 128 + 37  # a partial last chunk
    left = torch.from_numpy(rng.integers(-2, 3, size=(64, 3)).astype(np.float32))
    right = torch.from_numpy(rng.integers(-2, 3, size=(n_columns, 3)).astype(np.float32))
    sims = left @ right.T  # integer inner products: ties at every place
    sims[torch.arange(64), torch.arange(64)] = float("-inf")
    sims[:5, 100:900] = float("-inf")  # whole chunks masked, as copies of the query would be
    expected = _full_topk(sims, k)
    found = _chunked_topk(sims, k)
    if found is None:  # declined (wide ties of chunk maxima): the full pass answers instead
        found = _block_topk(sims, k)
    assert torch.equal(found[1], expected[1]) and torch.equal(found[0], expected[0])


def test_the_chunked_top_k_runs_and_agrees_on_continuous_data():
    generator = torch.Generator().manual_seed(22)
    sims = torch.randn(32, 4 * 10 * 128 + 5, generator=generator)
    found = _chunked_topk(sims, 10)
    assert found is not None  # no ties: it must not decline
    expected = _full_topk(sims, 10)
    assert torch.equal(found[1], expected[1]) and torch.equal(found[0], expected[0])
    assert torch.equal(found[1], torch.sort(sims, dim=1, descending=True, stable=True).indices[:, :10])


def matrix_lists(feats, k, similarity):
    """slow_lists from one float64 score matrix (lexsort by score, then index): for larger n."""
    feats = np.asarray(feats, dtype=np.float64)
    if similarity == "cosine":
        feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    if similarity == "euclidean":
        scores = -((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    else:
        scores = feats @ feats.T
    np.fill_diagonal(scores, -np.inf)
    columns = np.arange(len(feats))
    return np.array([np.lexsort((columns, -row))[:k] for row in scores])


def test_exact_searches_wide_enough_for_the_chunked_top_k_give_the_slow_lists(monkeypatch):
    feats = np.random.default_rng(23).standard_normal((2000, 4)).astype(np.float32)
    monkeypatch.setattr(neighbors, "_CHUNKED_MIN_COLUMNS", 1024)  # the wide-block path at n = 2000
    answered = []

    def counted(sims, k):
        found = _chunked_topk(sims, k)
        answered.append(found is not None)
        return found

    monkeypatch.setattr(neighbors, "_chunked_topk", counted)
    for similarity in SIMILARITIES:
        found = search_neighbors(feats, 2, similarity=similarity, block_size=256).indices.numpy()
        assert np.array_equal(found, matrix_lists(feats, 2, similarity))
    assert answered and all(answered)  # the wide blocks went through the chunked path
    tied = _tied(2000, 3, 26)  # many ties: the chunked path declines or agrees, never differs
    found = search_neighbors(tied, 2, similarity="ip", block_size=256).indices.numpy()
    assert np.array_equal(found, matrix_lists(tied, 2, "ip"))


def test_the_report_of_an_exact_search_and_bad_choices():
    feats = np.random.default_rng(24).standard_normal((30, 3))
    found = search_neighbors(feats, 4)
    assert found.report == SearchReport("exact", "torch_blocks", 4) and found.recall == 1.0
    assert found.report.recall_queries == 0 and found.values is None
    assert found.report.describe() == "exact (torch_blocks)"
    assert torch.equal(found.indices, knn_indices(feats, 4))
    assert torch.equal(topk_similar(feats, 4, neighbors="exact")[0], found.indices)
    with pytest.raises(InputError, match="neighbors must be one of 'exact', 'approx'; got 'fast'"):
        search_neighbors(feats, 4, neighbors="fast")
    with pytest.raises(InputError, match="exact_backend must be one of 'auto', 'torch', 'faiss'"):
        search_neighbors(feats, 4, exact_backend="blas")
    with pytest.raises(InputError, match="target_recall must be in"):
        search_neighbors(feats, 4, target_recall=1.5)
    if ann.faiss_module() is not None:
        with pytest.raises(InputError, match="float32 features on the CPU; these are torch.float64"):
            search_neighbors(feats, 4, exact_backend="faiss")  # float64 stays float64: torch only


def test_without_faiss_exact_search_still_runs_and_faiss_requests_say_what_to_install(monkeypatch):
    monkeypatch.setattr(ann, "faiss_module", lambda: None)
    feats = np.random.default_rng(25).standard_normal((5000, 4)).astype(np.float32)
    assert search_neighbors(feats, 3).report.method == "torch_blocks"
    for options in ({"exact_backend": "faiss"}, {"neighbors": "approx"}):
        with pytest.raises(InputError, match="pip install faiss-cpu"):
            search_neighbors(feats, 3, **options)


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize(("n_samples", "block_size", "k"), [(65, 64, 3), (200, 48, 9), (30, 7, 28)])
def test_the_symmetric_search_gives_the_row_block_lists(similarity, n_samples, block_size, k):
    """Half the products (upper block triangle, transposed reads, merged lists, tied rows searched
    again) give exactly the lists of the plain row blocks, ties, copies and a one-row last block included.
    Cosines in float64, which are ranked on a grid (float32 cosines of tied rows differ by rounding)."""
    feats = torch.as_tensor(_tied(n_samples, 3, n_samples))
    feats = feats.double() if similarity == "cosine" else feats
    ids = torch.arange(n_samples) // 2  # bootstrap copies: each sample twice
    for sample_ids in (None, ids):
        if sample_ids is not None and k > n_samples // 2 - 1:
            continue
        prepared = neighbors._prepare(feats, similarity, sample_ids, k, "feats")
        every_row = torch.arange(n_samples)
        values, indices = neighbors._symmetric_search(prepared, k, block_size)
        plain_values, plain_indices = neighbors._exact_search(prepared, k, block_size, queries=every_row)
        assert torch.equal(indices, plain_indices)
        assert torch.equal(values, plain_values)


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_copies_of_samples_give_the_plain_lists_in_every_block_layout(similarity, dtype):
    """Real-valued features with exact copies of rows: a pair read transposed from another product may
    differ from the row's own product in the last bits, so rows with near ties are searched again, and the
    one-block (upper-triangle Gram) and symmetric searches give the plain row blocks' lists."""
    generator = torch.Generator().manual_seed(31)
    feats = torch.randn(400, 96, generator=generator, dtype=dtype) + 0.2
    feats[300:] = feats[:100]  # rows 300..399 are copies of rows 0..99
    prepared = neighbors._prepare(feats, similarity, None, 10, "feats")
    plain = neighbors._exact_search(prepared, 10, 1024, queries=torch.arange(400))[1]
    for block_size in (64, 128, 1024):
        assert torch.equal(neighbors._exact_search(prepared, 10, block_size)[1], plain), block_size
