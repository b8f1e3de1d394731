import numpy as np
import pytest
import torch

from alignscope.core.errors import InputError
from alignscope.core.neighbors import knn_indices, per_sample_overlap, topk_similar


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


@pytest.mark.parametrize("block_size", [1, 7, 1024])
def test_knn_indices_match_slow_loop_in_any_block_size(block_size):
    feats = np.random.default_rng(0).standard_normal((37, 5))
    assert np.array_equal(knn_indices(feats, 6, block_size=block_size).numpy(), slow_knn(feats, 6))


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


def test_errors():
    feats = np.zeros((5, 2))
    with pytest.raises(InputError, match="k=5 needs more samples"):
        knn_indices(feats, 5)
    with pytest.raises(InputError, match="same shape"):
        per_sample_overlap(torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(InputError, match="NaN"):
        knn_indices(np.full((5, 2), np.nan), 2)
