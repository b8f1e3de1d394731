"""RDMs and RDM comparisons against rsatoolbox (the reference implementation) and scipy, plus the
properties every RDM must have and the unbiasedness that sets crossnobis apart."""

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from alignscope.core.errors import InputError
from alignscope.core.metrics import rdm as rdm_mod
from alignscope.core.metrics import rsa
from alignscope.core.metrics.rdm import compare_rdms, compute_rdm, resample_rdm, square_rdm

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.rdm import RDMs, calc_rdm, compare  # noqa: E402

TOL = 1e-10


def _dataset(repeats: np.ndarray) -> Dataset:
    """[n_repeats, n, d] as an rsatoolbox Dataset: one observation per (repeat, stimulus)."""
    n_repeats, n_stimuli, n_channels = repeats.shape
    descriptors = {
        "stimulus": np.tile(np.arange(n_stimuli), n_repeats),
        "run": np.repeat(np.arange(n_repeats), n_stimuli),
    }
    return Dataset(repeats.reshape(-1, n_channels), obs_descriptors=descriptors)


def _reference(repeats: np.ndarray, method: str, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = calc_rdm(_dataset(repeats), method, descriptor="stimulus", **kwargs)
    return result.get_vectors()[0]


def _precision(n_channels: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=(4 * n_channels, n_channels))
    return np.linalg.inv(np.cov(noise, rowvar=False))


# --- distances -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ours,theirs", [("correlation", "correlation"), ("squared_euclidean", "euclidean")])
@pytest.mark.parametrize("n_repeats", [1, 3])
def test_plain_distances_match_rsatoolbox(ours, theirs, n_repeats):
    repeats = np.random.default_rng(n_repeats).normal(size=(n_repeats, 9, 6))
    data = repeats[0] if n_repeats == 1 else repeats  # 3-D input: repeats averaged, as rsatoolbox does
    assert compute_rdm(data, ours) == pytest.approx(_reference(repeats, theirs), abs=TOL)
    assert compute_rdm(data, ours, remove_mean=True) == pytest.approx(
        _reference(repeats, theirs, remove_mean=True), abs=TOL
    )


def test_mahalanobis_matches_rsatoolbox_and_covariance_is_its_inverse():
    repeats = np.random.default_rng(0).normal(size=(2, 8, 5))
    precision = _precision(5, 1)
    expected = _reference(repeats, "mahalanobis", noise=precision)
    assert compute_rdm(repeats, "mahalanobis", noise_precision=precision) == pytest.approx(expected, abs=TOL)
    assert compute_rdm(repeats, "mahalanobis", noise_covariance=np.linalg.inv(precision)) == pytest.approx(
        expected, abs=1e-8
    )
    # no precision: the squared Euclidean distance / d, as in rsatoolbox
    assert compute_rdm(repeats, "mahalanobis") == pytest.approx(compute_rdm(repeats, "squared_euclidean"), abs=TOL)


def test_euclidean_and_cosine_match_scipy():
    feats = np.random.default_rng(2).normal(size=(11, 7))
    assert compute_rdm(feats, "euclidean") == pytest.approx(pdist(feats, "euclidean"), abs=TOL)
    assert compute_rdm(feats, "cosine") == pytest.approx(pdist(feats, "cosine"), abs=TOL)
    # rsatoolbox's "euclidean" is our squared one: ||x_i - x_j||² / d
    assert compute_rdm(feats, "squared_euclidean") == pytest.approx(pdist(feats, "sqeuclidean") / 7, abs=TOL)
    assert compute_rdm(torch.from_numpy(feats).float(), "cosine") == pytest.approx(pdist(feats, "cosine"), abs=1e-6)


@pytest.mark.parametrize("n_repeats", [2, 3, 4])
@pytest.mark.parametrize("with_precision", [False, True])
@pytest.mark.parametrize("remove_mean", [False, True])
def test_crossnobis_matches_rsatoolbox(n_repeats, with_precision, remove_mean):
    repeats = np.random.default_rng(10 + n_repeats).normal(size=(n_repeats, 8, 6))
    repeats += np.random.default_rng(99).normal(size=(1, 8, 6))  # a shared signal, so distances are not all ~0
    precision = _precision(6, n_repeats) if with_precision else None
    expected = _reference(repeats, "crossnobis", noise=precision, cv_descriptor="run", remove_mean=remove_mean)
    ours = compute_rdm(repeats, "crossnobis", noise_precision=precision, remove_mean=remove_mean)
    assert ours == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("n_repeats", [2, 3, 4])
def test_crossnobis_with_one_precision_per_repeat_matches_rsatoolbox(n_repeats):
    repeats = np.random.default_rng(20 + n_repeats).normal(size=(n_repeats, 7, 5))
    precisions = np.stack([_precision(5, seed) for seed in range(n_repeats)])
    expected = _reference(repeats, "crossnobis", noise=list(precisions), cv_descriptor="run")
    assert compute_rdm(repeats, "crossnobis", noise_precision=precisions) == pytest.approx(expected, abs=TOL)


def test_crossnobis_restated_as_average_over_pairs_of_repeats():
    # With the identity, leave-one-repeat-out equals the mean over ordered pairs k != l of δ_k·δ_l / d.
    repeats = np.random.default_rng(3).normal(size=(4, 6, 9))
    rows, cols = np.triu_indices(6, 1)
    deltas = repeats[:, rows] - repeats[:, cols]  # [R, pairs, d]
    products = np.einsum("kpd,lpd->klp", deltas, deltas) / 9
    off_diagonal = ~np.eye(4, dtype=bool)
    assert compute_rdm(repeats, "crossnobis") == pytest.approx(products[off_diagonal].mean(axis=0), abs=TOL)


# --- properties ------------------------------------------------------------------------------------

PLAIN = ("correlation", "euclidean", "squared_euclidean", "cosine", "mahalanobis")


@pytest.mark.parametrize("method", PLAIN)
def test_rdm_is_a_symmetric_dissimilarity_with_zero_diagonal(method):
    feats = np.random.default_rng(4).normal(size=(10, 6))
    feats[7] = feats[2]  # a duplicated stimulus is at distance 0 from its copy
    full = square_rdm(compute_rdm(feats, method))
    assert np.array_equal(full, full.T) and np.all(np.diag(full) == 0)
    assert full[2, 7] == pytest.approx(0.0, abs=1e-12)
    assert (full >= -1e-12).all()
    order = np.random.default_rng(5).permutation(10)  # relabelling the stimuli permutes rows and columns
    assert square_rdm(compute_rdm(feats[order], method)) == pytest.approx(full[np.ix_(order, order)], abs=1e-12)
    assert rdm_mod.condense_rdm(full) == pytest.approx(squareform(full, checks=False), abs=0)


def test_crossnobis_is_unbiased_where_euclidean_is_not():
    # Ten stimuli with one and the same true pattern, measured 3 times with unit noise: the true distance
    # is 0. Squared Euclidean of the averaged repeats has expectation 2σ²/R = 2/3; crossnobis has 0.
    # And for two truly different patterns crossnobis recovers ||μ_i - μ_j||² / d on average.
    n_repeats, n_stimuli, n_channels, n_seeds = 3, 10, 40, 30
    truth = np.zeros((n_stimuli, n_channels))
    truth[1] += 1.5  # stimulus 1 differs from the rest by 1.5 in every channel: true distance 2.25
    crossnobis, euclidean = [], []
    for seed in range(n_seeds):
        repeats = truth + np.random.default_rng(seed).normal(size=(n_repeats, n_stimuli, n_channels))
        crossnobis.append(square_rdm(compute_rdm(repeats, "crossnobis")))
        euclidean.append(square_rdm(compute_rdm(repeats, "squared_euclidean")))
    crossnobis, euclidean = np.mean(crossnobis, axis=0), np.mean(euclidean, axis=0)
    same = np.triu(np.ones((n_stimuli, n_stimuli), dtype=bool), 1)
    same[1] = same[:, 1] = False
    assert abs(crossnobis[same].mean()) < 0.03
    assert euclidean[same].mean() == pytest.approx(2 / n_repeats, abs=0.03)
    assert crossnobis[1, [0, 2, 3]].mean() == pytest.approx(2.25, abs=0.15)
    assert euclidean[1, [0, 2, 3]].mean() == pytest.approx(2.25 + 2 / n_repeats, abs=0.15)
    assert (crossnobis[same] < 0).any()  # unbiased means it can go negative


# --- comparisons -----------------------------------------------------------------------------------

RSATOOLBOX_NAMES = {
    "spearman": "spearman",
    "pearson": "corr",
    "kendall": "tau-a",
    "corr": "corr",
    "tau-a": "tau-a",
    "tau-b": "tau-b",
    "rho-a": "rho-a",
    "cosine": "cosine",
    "cosine_cov": "cosine_cov",
    "corr_cov": "corr_cov",
}


def _rdm_pair(seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = rng.random(45)
    data = model + 0.7 * rng.random(45)
    if ties:  # rank methods differ exactly in how they treat ties
        model, data = np.round(model, 1), np.round(data, 1)
    return model, data


@pytest.mark.parametrize("method", rdm_mod.COMPARE_METHODS)
@pytest.mark.parametrize("ties", [False, True])
def test_every_comparison_matches_rsatoolbox(method, ties):
    assert set(RSATOOLBOX_NAMES) == set(rdm_mod.COMPARE_METHODS)
    model, data = _rdm_pair(7, ties)
    expected = compare(RDMs(model[None]), RDMs(data[None]), RSATOOLBOX_NAMES[method])[0, 0]
    assert compare_rdms(model, data, method) == pytest.approx(expected, abs=TOL)
    assert compare_rdms(data, model, method) == pytest.approx(expected, abs=TOL)
    assert compare_rdms(square_rdm(model), data, method) == pytest.approx(expected, abs=TOL)
    # τ_a and ρ_a count ties against a perfect score, so only an RDM without ties reaches 1 with itself
    perfect = not ties or method not in ("kendall", "tau-a", "rho-a")
    assert (compare_rdms(model, model, method) == pytest.approx(1.0, abs=1e-12)) == perfect


def test_rsa_comparisons_are_the_ones_in_rsa_py():
    a, b = np.random.default_rng(8).normal(size=(2, 12, 5))
    rdm_a, rdm_b = compute_rdm(a), compute_rdm(b)
    for method in ("spearman", "pearson", "kendall"):
        assert compare_rdms(rdm_a, rdm_b, method) == pytest.approx(rsa.rsa(a, b, compare=method), abs=1e-12)


@pytest.mark.parametrize("method", rdm_mod.COMPARE_METHODS)
def test_resampled_rdms_drop_copy_pairs_like_rsatoolbox(method):
    model, data = _rdm_pair(9, ties=False)
    second = np.random.default_rng(10).random(45)
    index = np.sort(np.random.default_rng(11).integers(0, 10, 10))
    assert len(set(index.tolist())) < 10  # the draw holds copies
    theirs_model = RDMs(model[None]).subsample_pattern("index", index).get_vectors()
    theirs_data = RDMs(np.stack([data, second])).subsample_pattern("index", index).get_vectors()
    ours_model, ours_data = resample_rdm(model, index), resample_rdm(np.stack([data, second]), index)
    assert np.array_equal(np.isnan(ours_model), np.isnan(theirs_model[0]))
    assert np.array_equal(ours_data, theirs_data, equal_nan=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = compare(RDMs(theirs_model), RDMs(theirs_data), RSATOOLBOX_NAMES[method])[0]
    assert rdm_mod._compare_many(ours_model, ours_data, method) == pytest.approx(expected, abs=TOL)


# --- bad input -------------------------------------------------------------------------------------


def test_bad_inputs_raise_input_errors_a_user_can_act_on():
    rng = np.random.default_rng(12)
    with pytest.raises(InputError, match="2 rows; at least 3"):
        compute_rdm(rng.normal(size=(2, 4)))
    with pytest.raises(InputError, match="crossnobis needs at least 2 independent repeats"):
        compute_rdm(rng.normal(size=(1, 5, 4)), "crossnobis")
    with pytest.raises(InputError, match=r"crossnobis needs repeated measurements \[n_repeats"):
        compute_rdm(rng.normal(size=(5, 4)), "crossnobis")
    feats = rng.normal(size=(5, 4))
    feats[1, 2] = np.nan
    with pytest.raises(InputError, match="1 NaN or Inf"):
        compute_rdm(feats)
    with pytest.raises(InputError, match="2 NaN or Inf"):
        compute_rdm(np.stack([feats, feats]), "crossnobis")
    with pytest.raises(InputError, match="rdm method must be one of"):
        compute_rdm(rng.normal(size=(5, 4)), "manhattan")
    with pytest.raises(InputError, match=r"shape \(3, 3\); it must be \(4, 4\)"):
        compute_rdm(rng.normal(size=(2, 5, 4)), "crossnobis", noise_precision=np.eye(3))
    with pytest.raises(InputError, match="not positive definite"):
        compute_rdm(rng.normal(size=(5, 4)), "mahalanobis", noise_precision=-np.eye(4))
    with pytest.raises(InputError, match="not both"):
        compute_rdm(rng.normal(size=(5, 4)), "mahalanobis", noise_precision=np.eye(4), noise_covariance=np.eye(4))
    with pytest.raises(InputError, match="applies to 'mahalanobis' and 'crossnobis'"):
        compute_rdm(rng.normal(size=(5, 4)), "euclidean", noise_precision=np.eye(4))
    with pytest.raises(InputError, match="all-zero pattern"):
        compute_rdm(np.vstack([np.zeros(4), rng.normal(size=(4, 4))]), "cosine")
    with pytest.raises(InputError, match="not n\\(n-1\\)/2"):
        compare_rdms(np.ones(5), np.ones(5))
    with pytest.raises(InputError, match="over 4 stimuli but rdm_b over 5"):
        compare_rdms(rng.random(6), rng.random(10))
    with pytest.raises(InputError, match="all dissimilarities equal"):
        compare_rdms(np.ones(6), rng.random(6), "spearman")
    with pytest.raises(InputError, match="NaN or Inf dissimilarities"):
        compare_rdms(np.r_[np.nan, rng.random(5)], rng.random(6))
    with pytest.raises(InputError, match="over 2 stimuli; at least 3"):
        compare_rdms(np.ones(1), np.ones(1))
    with pytest.raises(InputError, match="compare method must be one of"):
        compare_rdms(rng.random(6), rng.random(6), "kendall_b")
