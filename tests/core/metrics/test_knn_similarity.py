"""The ``similarity`` choice of every k-NN metric, and the two order measures (LCS, edit distance)."""

import math

import numpy as np
import pytest
import slow_reference as ref
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from alignscope.core.errors import InputError
from alignscope.core.metrics import knn
from alignscope.core.metrics.registry import compute, get_metric
from alignscope.core.neighbors import (
    SIMILARITIES,
    common_subsequence_lengths,
    edit_distances,
    knn_indices,
    per_sample_overlap,
)

LIST_METRICS = {
    "mutual_knn": knn.mutual_knn,
    "jaccard_knn": knn.jaccard_knn,
    "cycle_knn": knn.cycle_knn,
    "lcs_knn": knn.lcs_knn,
    "edit_distance_knn": knn.edit_distance_knn,
}
ALL_METRICS = {**LIST_METRICS, "cknna": knn.cknna}


def _related(n, d_a, d_b, seed):
    """Two representations that share some structure, so that scores are neither ~chance nor 1."""
    a, b = ref.gaussian(n, d_a, seed), ref.gaussian(n, d_b, seed + 1)
    b[:, :3] += a[:, :3]
    return a, b


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("n,d_a,d_b,k", [(30, 5, 7, 3), (41, 3, 12, 10), (25, 8, 4, 24)])
def test_list_metrics_match_slow_loops_for_every_similarity(similarity, n, d_a, d_b, k):
    a, b = _related(n, d_a, d_b, n)
    expected = ref.knn_scores(a, b, k, similarity)
    for name, metric in LIST_METRICS.items():
        assert metric(a, b, k=k, similarity=similarity) == pytest.approx(expected[name], abs=1e-12), name


@given(
    arrays(np.int8, (12, 2), elements=st.integers(-2, 2)),
    arrays(np.int8, (12, 3), elements=st.integers(-2, 2)),
    st.integers(1, 11),
    st.sampled_from(SIMILARITIES),
)
@example(  # found by CI: [2, -2] has cosine exactly 0 with [2, 2] and with a zero row (a tie, to the lower
    # index); the float reference's fused multiply-add made it a tiny negative and picked the zero row
    a=np.array([[2, -2]] + [[2, 2]] * 4 + [[0, 0]] + [[2, 2]] * 6, dtype=np.int8),
    b=np.zeros((12, 3), dtype=np.int8),
    k=1,
    similarity="cosine",
)
@settings(max_examples=60, deadline=None)
def test_list_metrics_match_slow_loops_with_ties(a, b, k, similarity):
    # Small integers give many exact ties (and zero rows): equal cosines, inner products and distances
    # must all go to the lower index, in the order as well as in the set. Cosine ties are only exact in
    # floating point when the sums have two terms, so the cosine side keeps two columns.
    a, b = a.astype(np.float64), b.astype(np.float64)
    if similarity == "cosine":
        b = b[:, :2]
    expected = ref.knn_scores(a, b, k, similarity)
    for name, metric in LIST_METRICS.items():
        assert metric(a, b, k=k, similarity=similarity) == pytest.approx(expected[name], abs=1e-12), name


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("k", [2, 6, 39])
def test_cknna_matches_the_dense_formula_for_every_similarity(similarity, k):
    a, b = _related(40, 6, 9, 3)
    a += 1.5  # off-centre, so "euclidean"'s centred kernels differ from "ip"'s raw ones
    expected = ref.cknna_by_similarity(a, b, k, similarity)
    assert knn.cknna(a, b, k=k, similarity=similarity) == pytest.approx(expected, abs=1e-10)


def test_cknna_with_all_neighbours_is_unbiased_cka_of_what_the_kernel_holds():
    a, b = _related(48, 7, 10, 5)
    a, b = a + 2.0, b - 1.0
    n = a.shape[0]
    unbiased = {
        "cosine": ref.debiased_cka(ref.unit_rows(a), ref.unit_rows(b)),
        "ip": ref.debiased_cka(a, b),
        "euclidean": ref.debiased_cka(a - a.mean(axis=0), b - b.mean(axis=0)),
    }
    for similarity, expected in unbiased.items():
        value = knn.cknna(a, b, k=n - 1, similarity=similarity)
        assert value == pytest.approx(expected, abs=1e-12), similarity


def _row_scales(n, seed):
    return np.exp(np.random.default_rng(seed).uniform(-2.0, 2.0, size=(n, 1)))


@pytest.mark.parametrize("name", ALL_METRICS)
def test_cosine_neighbours_ignore_each_rows_scale(name):
    metric = ALL_METRICS[name]
    a, b = _related(70, 6, 8, 20)
    value = metric(a, b, similarity="cosine")
    assert metric(a, b * _row_scales(70, 1), similarity="cosine") == pytest.approx(value, abs=1e-12)
    assert metric(a * _row_scales(70, 2), b, similarity="cosine") == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("name", ALL_METRICS)
def test_inner_product_neighbours_follow_a_common_rotation_but_not_each_rows_scale(name):
    metric = ALL_METRICS[name]
    a, b = _related(70, 6, 8, 22)
    value = metric(a, b, similarity="ip")
    rotated = 1.7 * b @ ref.random_orthogonal(8, 3)
    assert metric(a, rotated, similarity="ip") == pytest.approx(value, abs=1e-12)
    assert metric(a @ ref.random_orthogonal(6, 4), b, similarity="ip") == pytest.approx(value, abs=1e-12)
    assert abs(metric(a, b * _row_scales(70, 5), similarity="ip") - value) > 1e-3


@pytest.mark.parametrize("name", ALL_METRICS)
def test_euclidean_neighbours_follow_translation_and_rotation_but_not_each_rows_scale(name):
    metric = ALL_METRICS[name]
    a, b = _related(70, 6, 8, 24)
    value = metric(a, b, similarity="euclidean")
    moved = b @ ref.random_orthogonal(8, 6) + np.random.default_rng(7).normal(0.0, 5.0, size=8)
    assert metric(a, moved, similarity="euclidean") == pytest.approx(value, abs=1e-12)
    assert metric(a - 40.0, 0.5 * b, similarity="euclidean") == pytest.approx(value, abs=1e-12)
    assert abs(metric(a, b * _row_scales(70, 8), similarity="euclidean") - value) > 1e-3


def test_euclidean_search_keeps_its_digits_far_from_the_origin_in_float32():
    # 2<x,y> - |x|² - |y|² at |x| ~ 1e4 would cancel away all of float32's digits (|x|² ~ 1e8 against
    # distances ~ 1); shifting by the column medians first keeps them
    far = (ref.gaussian(200, 5, 30) + 1e4).astype(np.float32)
    found = knn_indices(far, 7, similarity="euclidean").numpy()
    exact = np.array(ref.similarity_lists(far.astype(np.float64), 7, "euclidean"))
    assert (found == exact).mean() > 0.99


@pytest.mark.parametrize("name", ALL_METRICS)
def test_the_similarity_changes_the_score_where_it_changes_the_neighbours(name):
    metric = ALL_METRICS[name]
    # b holds a's directions with very different row norms: cosine sees a copy of a, the inner
    # product and the distance do not
    a = ref.gaussian(60, 5, 40)
    b = a * _row_scales(60, 9)
    lists = {similarity: knn_indices(b, 10, similarity=similarity) for similarity in SIMILARITIES}
    assert not torch.equal(lists["cosine"], lists["ip"])
    assert not torch.equal(lists["cosine"], lists["euclidean"])
    assert metric(a, b, similarity="cosine") == pytest.approx(1.0, abs=1e-12)
    assert metric(a, b, similarity="ip") < 0.99
    assert metric(a, b, similarity="euclidean") < 0.99


@pytest.mark.parametrize("name", ALL_METRICS)
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_permuting_a_prepared_state_equals_recomputing_on_permuted_rows(name, similarity):
    spec = get_metric(name)
    a, b = _related(50, 5, 7, 50)
    perm = torch.from_numpy(np.random.default_rng(51).permutation(50))
    params = spec.resolve_params({"k": 6, "similarity": similarity})
    state_a = spec.prepare(torch.from_numpy(a), **params)
    state_b = spec.prepare(torch.from_numpy(b), **params)
    shuffled = spec.compare(state_a, spec.permute(state_b, perm), **params)
    assert shuffled == pytest.approx(compute(name, a, b[perm.numpy()], **params), abs=1e-12)
    assert spec.compare(state_a, state_b, **params) == pytest.approx(compute(name, a, b, **params), abs=1e-12)


def test_every_knn_metric_registers_the_similarity_choice():
    for name in ALL_METRICS:
        spec = get_metric(name)
        (param,) = [param for param in spec.params if param.name == "similarity"]
        assert param.kind == "str" and param.default == "cosine" and param.choices == SIMILARITIES
        assert spec.prepare is not None and spec.compare is not None and spec.permute is not None
    for name in ("lcs_knn", "edit_distance_knn"):
        spec = get_metric(name)
        assert spec.higher_is_better and spec.symmetric and spec.value_range == (0.0, 1.0)
        assert "platonic-rep" in spec.reference and spec.per_sample is not None and spec.takes_sample_ids
    a = ref.gaussian(30, 4, 60)
    with pytest.raises(InputError, match="parameter similarity must be one of 'cosine', 'ip', 'euclidean'"):
        compute("lcs_knn", a, a, similarity="l2")
    with pytest.raises(InputError, match="similarity must be one of"):
        knn.mutual_knn(a, a, similarity="dot")
    # the registry passes the choice through
    b = ref.gaussian(30, 5, 61)
    assert compute("lcs_knn", a, b, k=4, similarity="ip") == knn.lcs_knn(a, b, k=4, similarity="ip")
    assert compute("cknna", a, b, similarity="ip") == knn.cknna(a, b, similarity="ip")


def test_order_measures_see_what_set_overlap_does_not():
    # every list reversed: the same sets, opposite rankings
    n, k = 12, 4
    idx = knn_indices(ref.gaussian(n, 3, 71), k)
    reversed_lists = idx.flip(1)
    assert per_sample_overlap(idx, reversed_lists).tolist() == [1.0] * n
    assert common_subsequence_lengths(idx, reversed_lists).tolist() == [1] * n
    expected_edits = [ref.levenshtein(x, x[::-1]) for x in idx.tolist()]
    assert edit_distances(idx, reversed_lists).tolist() == expected_edits == [4] * n
    assert common_subsequence_lengths(idx, idx).tolist() == [k] * n
    assert edit_distances(idx, idx).tolist() == [0] * n


def test_lcs_and_edit_distance_per_sample_values_are_defined_by_the_lists():
    a, b = _related(40, 4, 6, 80)
    k = 5
    la, lb = ref.similarity_lists(a, k), ref.similarity_lists(b, k)
    lcs = knn.lcs_knn_per_sample(a, b, k=k)
    edit = knn.edit_distance_knn_per_sample(a, b, k=k)
    assert lcs.dtype == edit.dtype == torch.float64
    assert np.array_equal(lcs.numpy(), [ref.lcs_length(x, y) / k for x, y in zip(la, lb)])
    assert np.array_equal(edit.numpy(), [1 - ref.levenshtein(x, y) / k for x, y in zip(la, lb)])
    # k - LCS entries of a list are not matched, so each costs at least one edit, and deleting and
    # re-inserting them all costs 2 (k - LCS): (1 - lcs) <= (1 - edit) <= 2 (1 - lcs)
    assert bool((1 - edit >= 1 - lcs - 1e-12).all())
    assert bool((1 - edit <= 2 * (1 - lcs) + 1e-12).all())


@pytest.mark.parametrize("m", range(0, 8))
def test_expected_longest_increasing_subsequence_is_exact(m):
    assert knn.expected_longest_increasing(m) == pytest.approx(ref.expected_lis_by_enumeration(m), abs=1e-12)


def test_expected_longest_increasing_subsequence_known_values():
    # OEIS A003316: the sum of the longest increasing subsequence lengths over all m! permutations
    sums = [1, 3, 12, 58, 335, 2261, 17465, 152020, 1473057, 15730705]
    for m, total in enumerate(sums, start=1):
        assert knn.expected_longest_increasing(m) == pytest.approx(total / math.factorial(m), rel=1e-15), m


@pytest.mark.parametrize("n_samples,k", [(6, 3), (5, 4), (8, 2), (4, 1)])
def test_lcs_chance_is_the_exact_mean_over_all_pairs_of_random_lists(n_samples, k):
    expected = ref.expected_lcs_of_random_lists(n_samples - 1, k) / k
    assert knn.lcs_knn_chance(n_samples, k=k) == pytest.approx(expected, abs=1e-12)


def test_lcs_chance_declines_when_overlaps_beyond_the_exact_sum_are_likely():
    assert knn.lcs_knn_chance(60, k=59) is None  # o = 59 surely, beyond the exact sum
    assert knn.lcs_knn_chance(100_000, k=50) is not None
    assert get_metric("edit_distance_knn").chance is None


def test_sample_ids_exclude_copies_in_the_order_measures_too():
    a, b = _related(30, 4, 5, 90)
    rows = np.array([0, 0, 1, 2, 2] + list(range(3, 28)))
    ids = torch.from_numpy(rows)
    for metric in (knn.lcs_knn, knn.edit_distance_knn):
        value = metric(a[rows], b[rows], k=4, sample_ids=ids)
        assert 0.0 <= value <= 1.0
    state = knn.prepare_neighbors(torch.from_numpy(a[rows]), k=4, sample_ids=ids, similarity="euclidean")
    assert not (rows[state.indices.numpy()] == rows[:, None]).any()
