import numpy as np
import pytest
import slow_reference as ref
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from alignscope.core import ann
from alignscope.core.errors import InputError
from alignscope.core.metrics import knn
from alignscope.core.metrics.kernel import debiased_cka
from alignscope.core.metrics.registry import compute, get_metric
from alignscope.core.neighbors import per_sample_overlap


@pytest.mark.parametrize("n,d_a,d_b,k", [(30, 5, 7, 3), (41, 3, 12, 10), (25, 8, 2, 24)])
def test_knn_metrics_match_slow_loops(n, d_a, d_b, k):
    a, b = ref.gaussian(n, d_a, 1), ref.gaussian(n, d_b, 2)
    assert knn.mutual_knn(a, b, k=k) == pytest.approx(ref.mutual_knn(a, b, k), abs=1e-12)
    assert knn.jaccard_knn(a, b, k=k) == pytest.approx(ref.jaccard_knn(a, b, k), abs=1e-12)
    assert knn.cycle_knn(a, b, k=k) == pytest.approx(ref.cycle_knn(a, b, k), abs=1e-12)


@given(
    arrays(np.int8, (12, 3), elements=st.integers(-2, 2)),
    arrays(np.int8, (12, 2), elements=st.integers(-2, 2)),
    st.integers(1, 11),
)
@settings(max_examples=40, deadline=None)
def test_mutual_knn_matches_slow_loop_with_ties_and_zero_rows(a, b, k):
    # Small integer features produce many exact ties and zero rows: the tie-breaking rule must agree.
    a, b = a.astype(np.float64), b.astype(np.float64)
    assert knn.mutual_knn(a, b, k=k) == pytest.approx(ref.mutual_knn(a, b, k), abs=1e-12)
    assert knn.cycle_knn(a, b, k=k) == pytest.approx(ref.cycle_knn(a, b, k), abs=1e-12)


@pytest.mark.parametrize("k", [2, 5, 17, 39])
@pytest.mark.parametrize("similarity", ["cosine", "ip"])
def test_cknna_matches_dense_platonic_formula(k, similarity):
    a, b = ref.gaussian(40, 6, 3), ref.gaussian(40, 9, 4)
    b[:, :3] += a[:, :3]  # some shared structure so the value is not ~0
    expected = ref.cknna(a, b, k, normalize=similarity == "cosine")
    assert knn.cknna(a, b, k=k, similarity=similarity) == pytest.approx(expected, abs=1e-10)


def test_cknna_with_all_neighbours_is_unbiased_cka():
    a, b = ref.gaussian(64, 10, 5), ref.gaussian(64, 12, 6)
    b[:, :4] += 0.5 * a[:, :4]
    unit_a, unit_b = ref.unit_rows(a), ref.unit_rows(b)
    assert knn.cknna(a, b, k=63) == pytest.approx(debiased_cka(unit_a, unit_b), abs=1e-12)
    assert knn.cknna(a, b, k=63) == pytest.approx(ref.debiased_cka(unit_a, unit_b), abs=1e-12)


@pytest.mark.parametrize(
    "metric", [knn.mutual_knn, knn.jaccard_knn, knn.cycle_knn, knn.cknna, knn.lcs_knn, knn.edit_distance_knn]
)
def test_identity_rotation_scale_and_unit_permutation_give_maximum(metric):
    a = ref.gaussian(80, 16, 7)
    q = ref.random_orthogonal(16, 8)
    perm = np.random.default_rng(9).permutation(16)
    assert metric(a, a) == pytest.approx(1.0, abs=1e-12)
    assert metric(a, 2.5 * a @ q) == pytest.approx(1.0, abs=1e-12)
    assert metric(a, a[:, perm]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("metric", [knn.mutual_knn, knn.jaccard_knn, knn.cknna, knn.lcs_knn, knn.edit_distance_knn])
def test_translation_is_not_an_invariance_of_cosine_neighbours(metric):
    a = ref.gaussian(80, 4, 10)
    assert metric(a, a + 3.0) < 0.9


def test_symmetry_and_cycle_asymmetry():
    a, b = ref.gaussian(60, 5, 11), ref.gaussian(60, 5, 12)
    b[:, :2] += a[:, :2]
    for metric in (knn.mutual_knn, knn.jaccard_knn, knn.lcs_knn, knn.edit_distance_knn):
        assert metric(a, b) == pytest.approx(metric(b, a), abs=1e-12)
    assert knn.cycle_knn(a, b, k=3) != knn.cycle_knn(b, a, k=3)
    # platonic-rep's CKNNA is not symmetric: the masked kernels are not symmetric, and eq. 5's
    # 1ᵀK̃L̃1 term changes when K and L swap. Both orders must still match the reference.
    assert knn.cknna(a, b) != pytest.approx(knn.cknna(b, a), abs=1e-6)
    assert knn.cknna(b, a) == pytest.approx(ref.cknna(b, a, 10), abs=1e-10)


@pytest.mark.parametrize(
    "metric,chance", [(knn.mutual_knn, knn.mutual_knn_chance), (knn.jaccard_knn, knn.jaccard_knn_chance)]
)
def test_independent_data_is_near_analytic_chance(metric, chance):
    n, k = 600, 10
    a, b = ref.gaussian(n, 32, 13), ref.gaussian(n, 32, 14)
    p = k / (n - 1)
    # per-sample overlap has sd ≈ sqrt(p(1-p)/k); the mean of n (weakly dependent) samples, 6 sd
    tolerance = 6 * np.sqrt(p * (1 - p) / (k * n))
    value = metric(a, b, k=k)
    assert 0.0 <= value <= 1.0
    assert abs(value - chance(n, k=k)) < tolerance


def test_per_sample_decompositions_average_to_the_score():
    a, b = ref.gaussian(50, 6, 15), ref.gaussian(50, 6, 16)
    for per_sample, metric in (
        (knn.mutual_knn_per_sample, knn.mutual_knn),
        (knn.jaccard_knn_per_sample, knn.jaccard_knn),
        (knn.cycle_knn_per_sample, knn.cycle_knn),
        (knn.lcs_knn_per_sample, knn.lcs_knn),
        (knn.edit_distance_knn_per_sample, knn.edit_distance_knn),
    ):
        values = per_sample(a, b, k=4)
        assert values.shape == (50,)
        assert float(values.mean()) == metric(a, b, k=4)


def test_torch_and_numpy_inputs_agree_and_repeat_bit_identically():
    a, b = ref.gaussian(70, 6, 17), ref.gaussian(70, 9, 18)
    first = knn.cknna(a, b, k=7)
    assert knn.cknna(torch.from_numpy(a), torch.from_numpy(b), k=7) == first
    assert knn.cknna(a, b, k=7) == first


def test_errors_name_the_inputs():
    a = ref.gaussian(20, 4, 19)
    with pytest.raises(InputError, match="feats_a has 20 rows but feats_b has 19; both must hold the same"):
        knn.mutual_knn(a, a[:19])
    bad = a.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="minilm layer 3 contains 1 NaN"):
        knn.mutual_knn(a, bad, name_b="minilm layer 3")
    with pytest.raises(InputError, match="k=20 needs more samples"):
        knn.mutual_knn(a, a, k=20)
    with pytest.raises(InputError, match="at least 3 samples"):
        knn.mutual_knn(a[:2], a[:2], k=1)
    with pytest.raises(InputError, match="k must be an integer"):
        knn.jaccard_knn(a, a, k=2.5)


def test_identical_rows_give_a_defined_value():
    a = np.ones((10, 3))
    assert knn.mutual_knn(a, a, k=3) == 1.0


# --- neighbors="exact" | "approx" ------------------------------------------------------------------

KNN_METRICS = ("mutual_knn", "jaccard_knn", "cycle_knn", "lcs_knn", "edit_distance_knn", "cknna")
needs_faiss = pytest.mark.skipif(ann.faiss_module() is None, reason="faiss (faiss-cpu) is not installed")


def _clustered_pair(n, seed):
    """Two views of one clustered latent (like two models' embeddings of the same samples)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((40, 6))[rng.integers(40, size=n)] * 2 + rng.standard_normal((n, 6))
    a = latent @ rng.standard_normal((6, 20)) + 0.1 * rng.standard_normal((n, 20))
    b = np.tanh(latent) @ rng.standard_normal((6, 16)) + 0.3 * rng.standard_normal((n, 16))
    return a.astype(np.float32), b.astype(np.float32)


def test_every_knn_metric_registers_the_neighbors_choice():
    for name in KNN_METRICS:
        spec = get_metric(name)
        (param,) = [param for param in spec.params if param.name == "neighbors"]
        assert (param.kind, param.default, param.choices) == ("str", "exact", ("exact", "approx"))
        assert spec.resolve_params({})["neighbors"] == "exact"
    with pytest.raises(InputError, match="parameter neighbors must be one of 'exact', 'approx'; got 'hnsw'"):
        compute("mutual_knn", np.eye(5), np.eye(5), k=2, neighbors="hnsw")


def test_exact_states_report_no_measured_recall():
    a = ref.gaussian(40, 5, 30)
    state = knn.prepare_neighbors(a, k=4)
    assert knn.measured_recall(state) is None
    assert (state.report.mode, state.report.method, state.report.k) == ("exact", "torch_blocks", 4)
    assert knn.permute_neighbors(state, torch.arange(40).flip(0)).report == state.report
    assert knn.mutual_knn(a, a[::-1].copy(), k=4, neighbors="exact") == knn.mutual_knn(a, a[::-1].copy(), k=4)


@needs_faiss
def test_approximate_scores_are_close_to_exact_and_their_states_carry_the_recall():
    a, b = _clustered_pair(6000, 31)
    spec = get_metric("mutual_knn")
    params = spec.resolve_params({"neighbors": "approx"})
    state_a, state_b = spec.prepare(a, **params), spec.prepare(b, **params)
    recall_a, recall_b = state_a.report.recall, state_b.report.recall
    assert state_a.report.mode == "approx" and 0.93 <= recall_a < 1.0 and 0.93 <= recall_b < 1.0
    for name in KNN_METRICS:
        exact = compute(name, a, b, k=10)
        approx = compute(name, a, b, k=10, neighbors="approx")
        assert approx == pytest.approx(exact, abs=0.03), name
        if name == "mutual_knn":  # each missed neighbour moves one sample's overlap by at most 1/k
            assert abs(approx - exact) <= (1 - recall_a) + (1 - recall_b) + 0.01
    assert knn.measured_recall(state_a, state_b) == min(recall_a, recall_b)
    assert knn.measured_recall(state_a, knn.prepare_neighbors(a, k=10)) == recall_a  # exact states add nothing
    true_recall = float(per_sample_overlap(state_a.indices, knn.prepare_neighbors(a, k=10).indices).mean())
    assert recall_a == pytest.approx(true_recall, abs=0.03)
    shuffled = spec.permute(state_b, torch.randperm(6000, generator=torch.Generator().manual_seed(0)))
    assert shuffled.report == state_b.report  # a permutation null keeps the recall of the lists it relabels
    assert spec.compare(state_a, state_b) == compute("mutual_knn", a, b, k=10, neighbors="approx")
    cknna_state = get_metric("cknna").prepare(a, k=10, neighbors="approx")
    assert cknna_state.report == state_a.report  # the same search, so the same lists and recall
    assert torch.equal(cknna_state.indices, state_a.indices)


def test_finite_features_whose_sum_overflows_pass_and_one_inf_among_them_does_not():
    """The finiteness check sums first (one NaN or Inf makes the sum non-finite): a float32 matrix of
    finite values near the float32 maximum overflows that sum and must still pass."""
    from alignscope.core.metrics._checks import check_features

    huge = torch.full((6, 3), 3e38, dtype=torch.float32)
    huge[:, 1] = torch.linspace(-3e38, -0.5e38, 6)
    assert not torch.isfinite(huge.sum())  # the sum overflows ...
    assert check_features(huge) is not None  # ... and nothing is refused
    huge[2, 2] = float("inf")
    with pytest.raises(InputError, match="contains 1 NaN or Inf"):
        check_features(huge)
    offsetting = torch.ones(6, 3)
    offsetting[0, 0], offsetting[1, 0] = float("inf"), float("-inf")  # their sum is NaN, still caught
    with pytest.raises(InputError, match="contains 2 NaN or Inf"):
        check_features(offsetting)
