import numpy as np
import pytest
import torch

from alignscope.core.errors import InputError
from alignscope.core.neighbors import (
    SIMILARITIES,
    common_subsequence_lengths,
    edit_distances,
    knn_indices,
    per_sample_overlap,
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
