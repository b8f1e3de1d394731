"""Paired score differences and family-wise corrected layer searches (core/comparisons.py).

The calibration tests simulate many data sets with fixed seeds, so they are deterministic: each asserts
what a calibrated test must show (p-values ~ uniform, rejections near the nominal rate) with margins
measured once and noted next to the assertion.
"""

import itertools

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from alignscope.core.comparisons import _sign_flip_p, max_stat_test, score_difference
from alignscope.core.errors import InputError
from alignscope.core.metrics.layers import layer_matrix
from alignscope.core.metrics.registry import compute, get_metric
from alignscope.core.stats import _loop_threads, permutation_test


def no_difference(seed, n, width=8):
    """A and B: the same map of a latent shared with X, independent noise, so neither is more aligned."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    feats_x = latent @ rng.standard_normal((3, width)) + 0.5 * rng.standard_normal((n, width))
    mapping = rng.standard_normal((3, width))
    feats_a = latent @ mapping + rng.standard_normal((n, width))
    feats_b = latent @ mapping + rng.standard_normal((n, width))
    return feats_a, feats_b, feats_x


def planted_difference(seed, n, width=8):
    """A shares X's structure, B is noise."""
    rng = np.random.default_rng(seed)
    feats_x = rng.standard_normal((n, width))
    feats_a = feats_x + 0.7 * rng.standard_normal((n, width))  # the same space, for GRAM volume too
    return feats_a, rng.standard_normal((n, width)), feats_x


def network(rng, n, n_layers=3, width=6):
    """Layers of one random tanh network: each layer depends on the previous one, like real depth."""
    layer = rng.standard_normal((n, width))
    layers = [layer]
    for _ in range(n_layers - 1):
        layer = np.tanh(layer @ rng.standard_normal((width, width)) / np.sqrt(width))
        layer = layer + 0.3 * rng.standard_normal((n, width))
        layers.append(layer)
    return layers


# --- paired difference: calibration ----------------------------------------------------------------


def test_paired_bootstrap_is_calibrated_when_there_is_no_difference():
    # 150 data sets, n = 40: measured KS p 0.50, 2.0 % rejections at 5 %, 95.3 % coverage of 0
    results = [score_difference("linear_cka", *no_difference(seed, 40), n_boot=199, seed=seed) for seed in range(150)]
    p_values = np.array([result.p_value for result in results])
    assert {result.method for result in results} == {"bootstrap"}
    assert scipy_stats.kstest(p_values, "uniform").pvalue > 0.05
    assert 0.005 <= np.mean(p_values < 0.05) <= 0.09
    assert 0.10 <= np.mean(p_values < 0.2) <= 0.30
    coverage = np.mean([result.ci_low <= 0.0 <= result.ci_high for result in results])
    assert 0.90 <= coverage <= 0.99
    for result in results:
        # the p-value is the stated interval inversion, and p < 1 - confidence means 0 lies outside
        shifted = result.bootstrap_differences - result.bias
        tail = min(np.sum(shifted <= 0), np.sum(shifted >= 0))
        assert result.p_bootstrap == min(1.0, 2 * (1 + tail) / (1 + result.n_resamples))
        if result.p_bootstrap < 0.05:
            assert not result.ci_low <= 0.0 <= result.ci_high


def test_sign_flip_is_calibrated_for_independent_per_sample_values():
    # GRAM volume: each sample's value depends on its own rows only, so the flips are exact.
    # 200 data sets, n = 60: measured KS p 0.73, 6 % rejections at 5 %
    p_values = np.array(
        [
            score_difference(
                "gram_volume", *no_difference(seed, 60), method="sign_flip", n_boot=10, n_flips=999, seed=seed
            ).p_value
            for seed in range(200)
        ]
    )
    assert scipy_stats.kstest(p_values, "uniform").pvalue > 0.05
    assert 0.02 <= np.mean(p_values < 0.05) <= 0.09


def test_sign_flip_is_anti_conservative_for_knn_metrics_so_auto_does_not_use_it():
    # A sample's k-NN overlap depends on its neighbours' rows, so neighbouring per-sample differences
    # are positively correlated and the flips understate the variance of the mean: measured 13.5 % false
    # rejections at the 5 % level, KS p 0.003 (200 data sets, n = 100, k = 10).
    spec = get_metric("mutual_knn")
    p_values = []
    with _loop_threads(100, torch.device("cpu")):
        for seed in range(200):
            feats_a, feats_b, feats_x = (torch.tensor(feats, dtype=torch.float32) for feats in no_difference(seed, 100))
            differences = spec.per_sample(feats_a, feats_x, k=10) - spec.per_sample(feats_b, feats_x, k=10)
            p_values.append(_sign_flip_p(differences, 999, seed))
    assert np.mean(np.array(p_values) < 0.05) > 0.10
    result = score_difference("mutual_knn", *no_difference(0, 60), n_boot=20)
    assert result.method == "bootstrap" and result.p_sign_flip is None and result.n_flips == 0


def test_monte_carlo_sign_flip_matches_full_enumeration():
    feats_a, feats_b, feats_x = no_difference(3, 10)
    spec = get_metric("gram_volume")
    differences = (spec.per_sample(feats_a, feats_x) - spec.per_sample(feats_b, feats_x)).numpy()
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=10)))
    flipped = np.abs(signs @ differences) / 10
    exact = np.mean(flipped >= abs(differences.mean()) - 1e-12)
    result = score_difference("gram_volume", feats_a, feats_b, feats_x, method="sign_flip", n_boot=20, n_flips=20000)
    assert 0.05 < exact < 0.95  # a p-value in the middle, where Monte Carlo error is largest
    assert result.p_value == result.p_sign_flip == pytest.approx(exact, abs=0.012)  # 3.5 SE
    assert result.difference == pytest.approx(differences.mean(), abs=1e-12)


# --- paired difference: power and bookkeeping ----------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "method"),
    [
        ("linear_cka", "bootstrap"),
        ("mutual_knn", "bootstrap"),
        ("mutual_knn", "sign_flip"),
        ("gram_volume", "sign_flip"),
    ],
)
def test_a_planted_difference_is_detected(metric, method):
    feats_a, feats_b, feats_x = planted_difference(1, 150)
    result = score_difference(metric, feats_a, feats_b, feats_x, method=method, n_boot=300, seed=2)
    assert result.method == method
    assert result.p_value < 0.01
    assert result.a_is_better
    assert result.score_a == pytest.approx(compute(metric, feats_a, feats_x), abs=1e-12)
    assert result.score_b == pytest.approx(compute(metric, feats_b, feats_x), abs=1e-12)
    assert result.difference == pytest.approx(result.score_a - result.score_b, abs=1e-15)
    if get_metric(metric).higher_is_better:
        assert 0.0 < result.ci_low <= result.ci_high
    else:  # GRAM volume: lower is better, so A's advantage is a negative difference
        assert result.ci_low <= result.ci_high < 0.0
    assert result.n_samples == 150 and result.n_resamples + result.n_failed == 300


def test_the_bootstrap_resamples_the_same_rows_for_all_three_and_passes_sample_ids():
    # B = A: every resample scores A and B on identical rows, so each d* is exactly 0. Then each d*
    # against the metric called on the resample's rows of A, B and X with the rows as sample_ids.
    feats_a, _, feats_x = planted_difference(4, 50)
    same = score_difference("mutual_knn", feats_a, feats_a, feats_x, n_boot=30, seed=5)
    assert np.all(same.bootstrap_differences == 0.0)
    assert same.p_bootstrap == 1.0 and same.ci_low == same.ci_high == 0.0
    feats_b = planted_difference(5, 50)[1]
    result = score_difference("mutual_knn", feats_a, feats_b, feats_x, n_boot=3, seed=5)
    mutual_knn = get_metric("mutual_knn").fn
    generator = torch.Generator().manual_seed(5)
    for value in result.bootstrap_differences:
        rows = torch.randint(0, 50, (50,), generator=generator)
        picked = rows.numpy()
        expected = mutual_knn(feats_a[picked], feats_x[picked], sample_ids=rows) - mutual_knn(
            feats_b[picked], feats_x[picked], sample_ids=rows
        )
        assert value == pytest.approx(expected, abs=1e-12)


def test_score_difference_is_deterministic_for_a_seed():
    data = planted_difference(6, 40)
    first = score_difference("gram_volume", *data, method="sign_flip", n_boot=20, n_flips=500, seed=3)
    second = score_difference("gram_volume", *data, method="sign_flip", n_boot=20, n_flips=500, seed=3)
    other = score_difference("gram_volume", *data, method="sign_flip", n_boot=20, n_flips=500, seed=4)
    assert np.array_equal(first.bootstrap_differences, second.bootstrap_differences)
    assert (first.p_value, first.ci_low, first.ci_high) == (second.p_value, second.ci_low, second.ci_high)
    assert not np.array_equal(first.bootstrap_differences, other.bootstrap_differences)


def test_score_difference_errors_name_the_problem():
    feats_a, feats_b, feats_x = planted_difference(7, 30)
    with pytest.raises(InputError, match="no per-sample values"):
        score_difference("linear_cka", feats_a, feats_b, feats_x, method="sign_flip")
    with pytest.raises(InputError, match="method must be one of"):
        score_difference("linear_cka", feats_a, feats_b, feats_x, method="t_test")
    with pytest.raises(InputError, match="feats_x has 30 rows but feats_b has 29"):
        score_difference("linear_cka", feats_a, feats_b[:29], feats_x)
    with pytest.raises(InputError, match="confidence"):
        score_difference("linear_cka", feats_a, feats_b, feats_x, confidence=1.0)


# --- layer search: max-statistic null ------------------------------------------------------------


def test_max_stat_p_of_the_best_cell_is_calibrated_and_the_raw_p_is_not():
    # Independent 3-layer networks, 3 x 3 cells, 150 simulations, P = 99: measured KS p 0.70 and 3.3 %
    # rejections at 5 % for the max-stat p of the best cell; the uncorrected p of that cell: 18 %.
    maxstat, raw, bonferroni = [], [], []
    for seed in range(150):
        rng = np.random.default_rng(1000 + seed)
        result = max_stat_test(network(rng, 30), network(rng, 30), "debiased_cka", n_permutations=99, seed=seed)
        maxstat.append(result.p_best_maxstat)
        raw.append(result.p_best_raw)
        bonferroni.append(result.p_best_bonferroni)
    maxstat, raw = np.array(maxstat), np.array(raw)
    assert scipy_stats.kstest(maxstat, "uniform").pvalue > 0.05
    assert np.mean(maxstat < 0.05) <= 0.08
    assert np.mean(raw < 0.05) >= 0.12
    assert np.mean(raw < 0.05) >= 3 * max(np.mean(maxstat < 0.05), 0.02)
    assert np.all(maxstat >= raw)
    assert np.mean(np.array(bonferroni) < 0.05) <= np.mean(maxstat < 0.05)


@pytest.mark.parametrize("metric", ["debiased_cka", "mutual_knn"])
def test_max_stat_finds_a_planted_layer_pair(metric):
    rng = np.random.default_rng(11)
    layers_a = [rng.standard_normal((60, 6)) for _ in range(3)]
    layers_b = [rng.standard_normal((60, 6)) for _ in range(3)]
    layers_b[2] = layers_a[1] @ rng.standard_normal((6, 6)) + 0.5 * rng.standard_normal((60, 6))
    result = max_stat_test(layers_a, layers_b, metric, n_permutations=199, seed=0)
    assert result.best_index == (1, 2)
    assert result.p_best_maxstat == pytest.approx(1 / 200)
    assert result.p_best_maxstat <= result.p_best_bonferroni
    assert np.sum(result.p_cells_maxstat < 0.01) == 1  # only the planted cell
    assert result.observed == pytest.approx(layer_matrix(layers_a, layers_b, metric).values, abs=1e-12)


@pytest.mark.parametrize("metric", ["mutual_knn", "debiased_cka", "mean_cca", "unit_match"])
def test_each_shuffled_matrix_equals_layer_matrix_on_shuffled_b(metric):
    # mutual_knn: permuted neighbour lists; debiased_cka: permuted Grams, one batched product;
    # mean_cca: B re-prepared per shuffle (no permute); unit_match: no split form, every pair recomputed
    rng = np.random.default_rng(12)
    layers_a = [rng.standard_normal((40, 5)) for _ in range(2)]
    layers_b = [layers_a[0] + rng.standard_normal((40, 5)), rng.standard_normal((40, 4)), rng.standard_normal((40, 5))]
    result = max_stat_test(layers_a, layers_b, metric, n_permutations=3, seed=9)
    assert result.null_values.shape == (3, 2, 3)
    generator = torch.Generator().manual_seed(9)
    for shuffled in result.null_values:
        perm = torch.randperm(40, generator=generator).numpy()
        expected = layer_matrix(layers_a, [layer[perm] for layer in layers_b], metric).values
        assert shuffled == pytest.approx(expected, abs=1e-10)
    assert np.array_equal(result.null_max, result.null_values.reshape(3, -1).max(axis=1))


def test_raw_cell_p_values_equal_permutation_test_on_the_same_shuffles():
    rng = np.random.default_rng(13)
    layers_a = [rng.standard_normal((50, 4)) for _ in range(2)]
    layers_b = [layers_a[1] + rng.standard_normal((50, 4)), rng.standard_normal((50, 4))]
    result = max_stat_test(layers_a, layers_b, "mutual_knn", n_permutations=49, seed=2, k=5)
    for i, j in itertools.product(range(2), range(2)):
        single = permutation_test("mutual_knn", layers_a[i], layers_b[j], n_permutations=49, seed=2, k=5)
        assert result.p_cells_raw[i, j] == single.p_value
        assert np.array_equal(result.null_values[:, i, j], single.null_values)
    assert np.array_equal(result.p_cells_bonferroni, np.minimum(1.0, 4 * result.p_cells_raw))


def test_max_stat_is_below_bonferroni_where_cells_share_a_null():
    # Not a theorem for max-T (see the next test); with cells of one null shape it holds on these examples.
    for seed, metric in itertools.product(range(4), ("debiased_cka", "mutual_knn")):
        rng = np.random.default_rng(20 + seed)
        layers_a = [rng.standard_normal((50, 5)) for _ in range(3)]
        layers_b = [rng.standard_normal((50, 5)) for _ in range(3)]
        layers_b[seed % 3] = layers_a[0] + (1.0 + seed) * rng.standard_normal((50, 5))  # weak to strong
        result = max_stat_test(layers_a, layers_b, metric, n_permutations=199, seed=seed)
        assert result.p_best_maxstat <= result.p_best_bonferroni, (seed, metric)
        assert np.all(result.p_cells_maxstat >= result.p_cells_raw)


def test_min_p_is_never_above_bonferroni_and_max_t_can_be():
    # Biased linear CKA: a width-40 pair at n = 40 has a null near 0.48, a width-2 pair one near 0.05.
    # The real signal (cell 0, 0: 0.39, null sd 0.04) is below the wide pair's chance level, so max-T
    # gives it p = 1 while Bonferroni and min P find it.
    rng = np.random.default_rng(0)
    narrow_a, wide_a = rng.standard_normal((40, 2)), rng.standard_normal((40, 40))
    narrow_b, wide_b = narrow_a + 1.5 * rng.standard_normal((40, 2)), rng.standard_normal((40, 40))
    layers_a, layers_b = [narrow_a, wide_a], [narrow_b, wide_b]
    max_t = max_stat_test(layers_a, layers_b, "linear_cka", n_permutations=199, seed=0)
    min_p = max_stat_test(layers_a, layers_b, "linear_cka", n_permutations=199, seed=0, adjustment="min_p")
    assert max_t.best_index == (1, 1)  # the search's raw best is the chance-level wide pair
    assert max_t.p_cells_maxstat[0, 0] == 1.0
    assert max_t.p_cells_bonferroni[0, 0] == pytest.approx(4 / 200)
    assert min_p.p_cells_maxstat[0, 0] <= max_t.p_cells_bonferroni[0, 0]
    assert np.array_equal(min_p.p_cells_raw, max_t.p_cells_raw)
    for seed in range(6):  # min P <= Bonferroni on every cell, whatever the nulls look like
        rng = np.random.default_rng(40 + seed)
        layers_a = [rng.standard_normal((30, width)) for width in (2, 10, 30)]
        planted = layers_a[seed % 3] + (0.5 + seed) * rng.standard_normal(layers_a[seed % 3].shape)
        layers_b = [planted, rng.standard_normal((30, 3)), rng.standard_normal((30, 25))]
        for metric in ("linear_cka", "mutual_knn"):
            result = max_stat_test(layers_a, layers_b, metric, n_permutations=99, seed=seed, adjustment="min_p")
            assert np.all(result.p_cells_maxstat <= result.p_cells_bonferroni + 1e-15), (seed, metric)
            assert np.all(result.p_cells_maxstat >= result.p_cells_raw)


def test_lower_is_better_metrics_use_the_per_shuffle_minimum():
    rng = np.random.default_rng(14)
    layers_a = [rng.standard_normal((40, 4)) for _ in range(2)]
    layers_b = [rng.standard_normal((40, 4)), layers_a[0] + 0.3 * rng.standard_normal((40, 4))]
    result = max_stat_test(layers_a, layers_b, "gram_volume", n_permutations=49, seed=1)
    assert not result.higher_is_better
    assert result.best_index == (0, 1) and result.best_value == result.observed.min()
    assert np.array_equal(result.null_max, result.null_values.reshape(49, -1).min(axis=1))
    assert result.p_best_maxstat == pytest.approx(1 / 50)


def test_progress_is_called_after_each_shuffle_and_results_are_deterministic():
    rng = np.random.default_rng(15)
    layers = [rng.standard_normal((30, 3)) for _ in range(2)]
    calls = []
    first = max_stat_test(
        layers,
        layers[::-1],
        "linear_cka",
        n_permutations=7,
        seed=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(done, 7) for done in range(1, 8)]
    second = max_stat_test(layers, layers[::-1], "linear_cka", n_permutations=7, seed=4)
    assert np.array_equal(first.null_values, second.null_values)
    assert np.array_equal(first.p_cells_maxstat, second.p_cells_maxstat)
    assert first.n_permutations == 7 and first.null_max.shape == (7,)


def test_max_stat_errors_name_the_problem():
    rng = np.random.default_rng(16)
    layers = [rng.standard_normal((30, 3)) for _ in range(2)]
    with pytest.raises(InputError, match="A layer 0 has 30 rows but B layer 1 has 29"):
        max_stat_test(layers, [layers[0], layers[1][:29]], "linear_cka", n_permutations=5)
    with pytest.raises(InputError, match="adjustment must be one of"):
        max_stat_test(layers, layers, "linear_cka", adjustment="holm")
    with pytest.raises(InputError, match="at least one layer"):
        max_stat_test([], layers, "linear_cka")


def test_a_p_at_its_floor_reads_as_at_most_the_floor():
    # no resample reached d = 0: p is 2 / (1 + B), the smallest the test can give, not an estimate
    feats_a, _, feats_x = planted_difference(0, 80)
    noise = np.random.default_rng(1).standard_normal(feats_a.shape)
    planted = score_difference("linear_cka", feats_a, noise, feats_x, n_boot=199, seed=0)
    assert planted.p_value == pytest.approx(2 / 200) == pytest.approx(planted.p_floor)
    assert planted.p_text == "p ≤ 0.01"
    none = score_difference("linear_cka", *no_difference(3, 40), n_boot=199, seed=3)
    assert none.p_value > none.p_floor and none.p_text == f"p = {none.p_value:.3g}"
    flipped = score_difference("gram_volume", feats_a, noise, feats_x, method="sign_flip", n_boot=10, n_flips=99)
    assert flipped.p_floor == pytest.approx(0.01) and flipped.p_text == "p ≤ 0.01"


def test_auto_uses_the_sign_flip_exactly_where_per_sample_values_are_independent_and_warns_where_forced():
    """GRAM volume never declared its per-sample values independent, so 'auto' never used its sign flip;
    a sign flip forced on a k-NN metric (13.5 % false positives at 5 %) gave its low p without a word."""
    feats_a, feats_b, feats_x = planted_difference(1, 80)
    gram = score_difference("gram_volume", feats_a, feats_b, feats_x, n_boot=20, n_flips=200, seed=2)
    assert gram.method == "sign_flip" and gram.caveat == ""
    knn = score_difference("mutual_knn", feats_a, feats_b, feats_x, method="sign_flip", n_boot=20, seed=2)
    assert "not independent" in knn.caveat and "13.5 %" in knn.caveat
    auto = score_difference("mutual_knn", feats_a, feats_b, feats_x, n_boot=20, seed=2)
    assert auto.method == "bootstrap" and auto.caveat == ""


def test_a_shuffle_that_ties_the_observed_score_up_to_rounding_counts_toward_p():
    """Mutual k-NN is a count over n·k, summed in another order for a shuffle than for the observed pairing:
    on these features 0.021200000000000004 observed against shuffles of 0.0212, and p counted 31 such
    shuffles where 35 tie or beat it (p 0.317 instead of 0.356, anti-conservative). The exact p counts in
    integers of n·k; every permutation p of the tool must equal it."""
    n, k, shuffles = 500, 10, 100
    generator = torch.Generator().manual_seed(17)
    a, b = torch.randn(n, 16, generator=generator), torch.randn(n, 16, generator=generator)
    searched = max_stat_test([a], [b], "mutual_knn", n_permutations=shuffles, k=k)
    min_p = max_stat_test([a], [b], "mutual_knn", n_permutations=shuffles, adjustment="min_p", k=k)
    single = permutation_test("mutual_knn", a, b, n_permutations=shuffles, k=k)
    counts, observed = np.rint(searched.null_values[:, 0, 0] * n * k), np.rint(searched.observed[0, 0] * n * k)
    exact = (1 + int((counts >= observed).sum())) / (1 + shuffles)
    assert exact == pytest.approx(36 / 101)
    assert searched.p_cells_raw[0, 0] == searched.p_best_maxstat == min_p.p_best_maxstat == single.p_value == exact
