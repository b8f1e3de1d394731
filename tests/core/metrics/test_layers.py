import numpy as np
import pytest
import slow_reference as ref
import torch

from alignscope.core.errors import InputError
from alignscope.core.metrics.layers import layer_matrix
from alignscope.core.metrics.registry import compute


def _layers(seed, widths, n=45):
    base = ref.gaussian(n, 4, seed)
    rng = np.random.default_rng(seed + 100)
    # layers share some structure so the matrix is not flat
    return [np.hstack([base * (i + 1), rng.standard_normal((n, w - 4))]) for i, w in enumerate(widths)]


@pytest.mark.parametrize(
    "metric,params",
    [
        ("mutual_knn", {"k": 5}),
        ("cycle_knn", {"k": 5}),
        ("jaccard_knn", {}),
        ("cknna", {"k": 6}),
        ("linear_cka", {}),
        ("debiased_cka", {}),
        ("rbf_cka", {"sigma_factor": 0.8}),
        ("mean_cca", {}),
        ("mean_cca", {"reg": 0.3}),
        ("svcca", {"keep_variance": 0.9}),
        ("svcca", {"n_components": 3}),
        ("pwcca", {}),
        ("pwcca", {"reg": 0.1}),
        ("procrustes", {}),
        ("rsa", {}),
        ("rsa", {"compare": "kendall"}),
        ("rsa", {"rdm_method": "euclidean", "compare": "pearson"}),
    ],
)
def test_layer_matrix_equals_per_pair_computation(metric, params):
    layers_a, layers_b = _layers(1, [6, 9, 5]), _layers(2, [12, 4])
    result = layer_matrix(layers_a, layers_b, metric, **params)
    expected = np.array([[compute(metric, a, b, **params) for b in layers_b] for a in layers_a])
    assert result.values.shape == (3, 2)
    assert result.values.dtype == np.float64
    assert np.allclose(result.values, expected, atol=1e-10, rtol=0)
    i, j = np.unravel_index(np.argmax(expected), expected.shape)
    assert result.best_index == (i, j)
    assert result.best_value == result.values[i, j]


def test_diagonal_of_a_model_with_itself_is_perfect_and_progress_is_reported():
    layers = [torch.from_numpy(x) for x in _layers(3, [5, 8, 6])]
    calls = []
    result = layer_matrix(layers, layers, "linear_cka", progress=lambda done, total: calls.append((done, total)))
    assert np.allclose(np.diag(result.values), 1.0, atol=1e-12)
    assert calls[-1] == (calls[-1][1], 3 + 3 + 9)
    assert [done for done, _ in calls] == list(range(1, 16))


def test_layers_with_different_sample_counts_are_rejected():
    with pytest.raises(InputError, match="all layers must hold the same samples"):
        layer_matrix([ref.gaussian(10, 3, 0)], [ref.gaussian(9, 3, 1)], "mutual_knn", k=3)


def test_layer_matrix_validates_params():
    with pytest.raises(InputError, match="must be >= 1"):
        layer_matrix([ref.gaussian(10, 3, 0)], [ref.gaussian(10, 3, 1)], "mutual_knn", k=0)


@pytest.mark.parametrize("metric", ["procrustes", "svcca", "pwcca", "rsa"])
def test_split_forms_match_when_features_are_wider_than_the_sample_count(metric):
    layers_a = [ref.gaussian(8, width, seed) for seed, width in enumerate((12, 5, 30))]
    layers_b = [layers_a[0] @ ref.gaussian(12, 20, 7), ref.gaussian(8, 3, 8)]
    result = layer_matrix(layers_a, layers_b, metric)
    expected = np.array([[compute(metric, a, b) for b in layers_b] for a in layers_a])
    assert np.allclose(result.values, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("metric", ["mutual_knn", "jaccard_knn", "cknna"])
@pytest.mark.parametrize("similarity", ["cosine", "ip"])
def test_batched_knn_layer_matrix_is_the_same_in_any_grouping(metric, similarity, monkeypatch):
    """Layer matrices compare each A layer with B's lists stacked; stacking one B layer at a time (the
    grouping used at large n), every B layer at once, two B layers at a time (a partial last group), and
    finding B's entries in A's sorted lists by binary search instead of position tables (n above 5,792),
    with A's lookups kept across groups or built per group, give the per-pair values."""
    from alignscope.core.metrics import knn

    layers_a, layers_b = _layers(1, [5, 7, 9]), _layers(2, [6, 8])
    params = {"k": 6, "similarity": similarity}
    whole = layer_matrix(layers_a, layers_b, metric, **params).values
    monkeypatch.setattr(knn, "_STACK_ENTRIES", 1)
    one_by_one = layer_matrix(layers_a, layers_b, metric, **params).values
    monkeypatch.setattr(knn, "_STACK_ENTRIES", 2 * 45 * 6)  # groups of two B layers (n = 45, k = 6)
    pairs = layer_matrix(layers_a, layers_b + layers_b[:1], metric, **params).values
    monkeypatch.setattr(knn, "_KEPT_TABLE_BYTES", 0)  # A's tables built again for each group
    rebuilt = layer_matrix(layers_a, layers_b + layers_b[:1], metric, **params).values
    monkeypatch.setattr(knn, "_TABLE_BYTES", 0)
    searched = layer_matrix(layers_a, layers_b, metric, **params).values
    per_pair = np.array([[compute(metric, a, b, **params) for b in layers_b] for a in layers_a])
    assert np.array_equal(whole, one_by_one) and np.array_equal(whole, searched)
    assert (
        np.array_equal(pairs, rebuilt)
        and np.array_equal(pairs[:, :2], whole)
        and np.array_equal(pairs[:, 2], whole[:, 0])
    )
    assert np.allclose(whole, per_pair, atol=1e-12, rtol=0)


@pytest.mark.parametrize("metric", ["mutual_knn", "debiased_cka", "linear_cka", "cknna"])
def test_a_layer_matrix_is_the_same_on_one_thread_as_on_all(metric):
    """A stored result is keyed by its inputs, not by the machine's core count: neighbour lists are
    identical on one thread and on all, float64 sums agree to rounding (a parallel reduction adds in
    another order). On all threads two layers are prepared at once (one thread each here, on 2 cores), on
    one thread in turn."""
    from alignscope.core.devices import torch_threads

    generator = torch.Generator().manual_seed(0)
    layers_a = [torch.randn(300, 96, generator=generator) for _ in range(3)]
    layers_b = [torch.randn(300, 64, generator=generator) @ torch.randn(64, 80, generator=generator) for _ in range(2)]
    params = {"k": 10} if metric in ("mutual_knn", "cknna") else {}
    with torch_threads(1):
        one = layer_matrix(layers_a, layers_b, metric, **params).values
    everything = layer_matrix(layers_a, layers_b, metric, **params).values
    if metric == "debiased_cka":
        np.testing.assert_allclose(one, everything, rtol=1e-12, atol=1e-15)
    else:
        assert np.array_equal(one, everything)
