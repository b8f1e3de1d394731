"""Model-vs-data scoring: noise ceilings against rsatoolbox, the stimulus/subject bootstrap, and data
that covers only some of the samples."""

import warnings

import numpy as np
import pytest
import torch

from alignscope.core import brain
from alignscope.core.brain import brain_score, noise_ceiling, rdms_from_measurements, score_shared, shared_samples
from alignscope.core.errors import InputError
from alignscope.core.metrics.rdm import COMPARE_METHODS, _compare_many, compare_rdms, compute_rdm, resample_rdm

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.inference import boot_noise_ceiling  # noqa: E402
from rsatoolbox.rdm import RDMs, calc_rdm, compare  # noqa: E402

TOL = 1e-10
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


def _subject_rdms(n_subjects: int, n_stimuli: int, seed: int, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A true RDM and noisy subject RDMs [n_subjects, n_pairs] around it (all positive)."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n_stimuli * (n_stimuli - 1) // 2) + 0.2
    return truth, truth + noise * rng.random((n_subjects, truth.size))


def _rsatoolbox_ceiling(rdms: np.ndarray, method: str) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "noise ceiling for tau based on averaged ranks"
        low, high = boot_noise_ceiling(RDMs(rdms), method=RSATOOLBOX_NAMES[method])
    return float(low), float(high)


# --- noise ceiling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", COMPARE_METHODS)
@pytest.mark.parametrize("n_subjects", [2, 5])
def test_noise_ceiling_matches_rsatoolbox(method, n_subjects):
    _, rdms = _subject_rdms(n_subjects, 9, seed=n_subjects)
    low, high = _rsatoolbox_ceiling(rdms, method)
    ceiling = noise_ceiling(rdms, method)
    assert (ceiling.low, ceiling.high) == pytest.approx((low, high), abs=TOL)
    assert ceiling.low <= ceiling.high and ceiling.over == "subjects" and ceiling.n_units == n_subjects
    assert ceiling.low_per_unit.mean() == pytest.approx(ceiling.low, abs=1e-15)


def test_noise_ceiling_restated_for_pearson():
    # Upper: each subject vs the mean of all z-scored RDMs; lower: vs the mean of the others'.
    _, rdms = _subject_rdms(4, 8, seed=1)
    zscored = (rdms - rdms.mean(axis=1, keepdims=True)) / rdms.std(axis=1, keepdims=True)
    high = np.mean([np.corrcoef(zscored.mean(axis=0), row)[0, 1] for row in rdms])
    low = np.mean([np.corrcoef(np.delete(zscored, s, 0).mean(axis=0), rdms[s])[0, 1] for s in range(4)])
    ceiling = noise_ceiling(rdms, "pearson")
    assert (ceiling.low, ceiling.high) == pytest.approx((low, high), abs=1e-12)


def test_identical_subjects_have_a_ceiling_of_one():
    truth, _ = _subject_rdms(1, 8, seed=2)
    ceiling = noise_ceiling(np.stack([truth] * 3), "spearman")
    assert (ceiling.low, ceiling.high) == pytest.approx((1.0, 1.0), abs=1e-12)


def test_repeats_of_one_subject_give_a_ceiling_over_repeats_and_say_so():
    rng = np.random.default_rng(3)
    patterns = rng.normal(size=(10, 6))
    repeats = patterns + 0.8 * rng.normal(size=(4, 10, 6))  # one subject, 4 repeats
    per_repeat = rdms_from_measurements(repeats, "correlation", over="repeats")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.concatenate([calc_rdm(Dataset(run), "correlation").get_vectors() for run in repeats])
    assert per_repeat == pytest.approx(reference, abs=TOL)
    ceiling = noise_ceiling(per_repeat, "corr", over="repeats")
    assert (ceiling.low, ceiling.high) == pytest.approx(_rsatoolbox_ceiling(reference, "corr"), abs=TOL)
    model = compute_rdm(patterns)
    score = brain_score(model, per_repeat, method="corr", over="repeats", n_boot=40)
    assert score.ceiling_over == "repeats" and "repeats of one subject" in score.note
    assert score.n_subjects == 1 and score.n_repeats == 4 and score.resampled == "stimuli and repeats"
    assert (score.noise_ceiling_low, score.noise_ceiling_high) == (ceiling.low, ceiling.high)


# --- score and bootstrap ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spearman", "kendall", "corr", "cosine", "cosine_cov"])
def test_score_is_rsatoolbox_mean_over_subjects(method):
    truth, rdms = _subject_rdms(5, 10, seed=4)
    model = truth + 0.3 * np.random.default_rng(5).random(truth.size)
    expected = compare(RDMs(model[None]), RDMs(rdms), RSATOOLBOX_NAMES[method])[0]
    score = brain_score(model, rdms, method=method, n_boot=30, seed=1)
    assert score.per_unit == pytest.approx(expected, abs=TOL)
    assert score.value == pytest.approx(expected.mean(), abs=TOL)
    assert (score.n_stimuli, score.n_subjects, score.method, score.ceiling_over) == (10, 5, method, "subjects")
    assert score.noise_ceiling_low == pytest.approx(_rsatoolbox_ceiling(rdms, method)[0], abs=TOL)


def test_bootstrap_is_seeded_and_its_interval_is_the_percentiles():
    truth, rdms = _subject_rdms(4, 12, seed=6)
    first = brain_score(truth, rdms, n_boot=60, seed=3)
    again = brain_score(truth, rdms, n_boot=60, seed=3)
    other = brain_score(truth, rdms, n_boot=60, seed=4)
    assert np.array_equal(first.bootstrap_values, again.bootstrap_values) and first == again
    assert not np.array_equal(first.bootstrap_values, other.bootstrap_values)
    assert (first.ci_low, first.ci_high) == pytest.approx(tuple(np.quantile(first.bootstrap_values, [0.025, 0.975])))
    assert first.ci_low <= first.value <= first.ci_high
    assert first.resampled == "stimuli and subjects" and first.n_failed == 0


def test_no_bootstrap_leaves_the_score_and_ceiling_and_no_interval():
    truth, rdms = _subject_rdms(4, 12, seed=6)
    full = brain_score(truth, rdms, n_boot=60, seed=3)
    bare = brain_score(truth, rdms, n_boot=0, seed=3)
    assert (bare.value, bare.noise_ceiling_low, bare.noise_ceiling_high) == (
        full.value,
        full.noise_ceiling_low,
        full.noise_ceiling_high,
    )
    assert np.isnan(bare.ci_low) and np.isnan(bare.ci_high) and bare.bootstrap_values.size == 0
    assert bare.n_boot == 0 and bare.resampled == ""
    with pytest.raises(InputError, match="0 \\(no interval\\) or at least 2"):
        brain_score(truth, rdms, n_boot=1)


def test_subject_only_bootstrap_resamples_the_per_subject_scores():
    truth, rdms = _subject_rdms(5, 10, seed=7)
    model = truth + 0.5 * np.random.default_rng(8).random(truth.size)
    score = brain_score(model, rdms, n_boot=50, resample="subjects", seed=0)
    generator = torch.Generator().manual_seed(0)  # restate the draws: each value is a mean of 5 drawn subjects
    expected = [score.per_unit[torch.randint(0, 5, (5,), generator=generator).numpy()].mean() for _ in range(50)]
    assert score.bootstrap_values == pytest.approx(expected, abs=1e-12)
    assert score.resampled == "subjects"


def test_stimulus_bootstrap_drops_the_pair_of_a_stimulus_with_its_copy():
    # Independent model and data: copies would add pairs that are 0 in both RDMs and inflate the
    # resampled scores (by ~0.16 here); dropping them leaves the resamples centred on the estimate.
    rng = np.random.default_rng(3)
    model, rdms = rng.random(190), rng.random((3, 190))
    score = brain_score(model, rdms, n_boot=120, resample="stimuli", seed=0)
    assert abs(score.bootstrap_values.mean() - score.value) < 0.03
    generator = torch.Generator().manual_seed(0)
    with_copies = []
    for _ in range(120):
        stimuli = np.sort(torch.randint(0, 20, (20,), generator=generator).numpy())
        kept = [np.nan_to_num(resample_rdm(x, stimuli)) for x in (model, rdms)]  # copy pairs kept as 0
        with_copies.append(_compare_many(kept[0], kept[1], "spearman").mean())
    assert np.mean(with_copies) > score.value + 0.1
    # each resample is rsatoolbox's: its subsample_pattern (NaN at copies) then compare, averaged over subjects
    stimuli = np.sort(torch.randint(0, 20, (20,), generator=torch.Generator().manual_seed(0)).numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = compare(
            RDMs(model[None]).subsample_pattern("index", stimuli),
            RDMs(rdms).subsample_pattern("index", stimuli),
            "spearman",
        ).mean()
    assert score.bootstrap_values[0] == pytest.approx(reference, abs=TOL)


def test_one_data_rdm_has_no_ceiling_and_bootstraps_stimuli_only():
    truth, rdms = _subject_rdms(1, 10, seed=9)
    score = brain_score(truth, rdms[0], n_boot=30)
    assert np.isnan(score.noise_ceiling_low) and np.isnan(score.noise_ceiling_high)
    assert score.ceiling_over == "none" and score.resampled == "stimuli" and "no noise ceiling" in score.note
    assert score.value == pytest.approx(compare_rdms(truth, rdms[0]), abs=1e-12)


def test_brain_score_bad_inputs():
    truth, rdms = _subject_rdms(3, 8, seed=10)
    with pytest.raises(InputError, match="model_rdm is over 8 stimuli but data_rdms over 7"):
        brain_score(truth, rdms[:, :21])
    with pytest.raises(InputError, match="needs at least 2 subjects"):
        brain_score(truth, rdms[0], resample="subjects")
    with pytest.raises(InputError, match="at least 2 subjects"):
        noise_ceiling(rdms[:1])
    constant = rdms.copy()
    constant[1] = 1.0
    with pytest.raises(InputError, match="subject 1's RDM"):
        brain_score(truth, constant)
    with pytest.raises(InputError, match="resample must be one of"):
        brain_score(truth, rdms, resample="pairs")
    with pytest.raises(InputError, match="too few for a bootstrap"):
        brain_score(truth[:3], rdms[:, :3], n_boot=20)


# --- data covering a subset of the samples ---------------------------------------------------------


def test_shared_samples_keep_the_data_order_and_name_the_counts():
    shared = shared_samples([10, 11, 12, 13, 14], [14, 99, 11, 10, 12])
    assert shared.ids == (14, 11, 10, 12)
    assert shared.model_index.tolist() == [4, 1, 0, 2] and shared.data_index.tolist() == [0, 2, 3, 4]
    assert (shared.n_model, shared.n_data) == (5, 5)
    with pytest.raises(InputError, match="the model covers 4 samples and the data 3, but only 2 sample ids are shared"):
        shared_samples(["a", "b", "c", "d"], ["a", "b", "z"])
    with pytest.raises(InputError, match="model ids are int but the data ids str"):
        shared_samples([1, 2, 3], ["1", "2", "3"])
    with pytest.raises(InputError, match="sample id 'b' twice"):
        shared_samples(["a", "b", "b"], ["a", "b"])


def test_score_shared_equals_brain_score_on_the_matched_samples():
    rng = np.random.default_rng(11)
    n_data, n_channels = 14, 6
    data = rng.normal(size=(3, n_data, n_channels))  # 3 subjects
    data_ids = [f"img{index:02d}" for index in range(n_data)]
    model_ids = [data_ids[index] for index in rng.permutation(n_data)[:11]] + ["extra0", "extra1"]
    lookup = {sample: row for row, sample in enumerate(data_ids)}
    model_feats = np.stack([data[0, lookup[s]] if s in lookup else rng.normal(size=n_channels) for s in model_ids])
    model_feats = model_feats @ rng.normal(size=(n_channels, 5)) + 0.3 * rng.normal(size=(len(model_ids), 5))
    score = score_shared(model_feats, model_ids, data, data_ids, n_boot=40, seed=2)

    shared = [s for s in data_ids if s in set(model_ids)]  # by hand: the data's order
    model_rows = [model_ids.index(s) for s in shared]
    data_rows = [lookup[s] for s in shared]
    expected = brain_score(
        compute_rdm(model_feats[model_rows]), np.stack([compute_rdm(d[data_rows]) for d in data]), n_boot=40, seed=2
    )
    assert score == expected and score.n_stimuli == 11
    assert np.array_equal(score.bootstrap_values, expected.bootstrap_values)
    # the same data given as precomputed RDMs over all 14 samples
    data_rdms = np.stack([compute_rdm(d) for d in data])
    assert score_shared(model_feats, model_ids, data_rdms, data_ids, data_kind="rdms", n_boot=40, seed=2) == expected


def test_score_shared_with_crossnobis_per_subject():
    rng = np.random.default_rng(12)
    patterns = rng.normal(size=(9, 5))
    data = patterns + 0.5 * rng.normal(size=(2, 3, 9, 5))  # 2 subjects x 3 repeats
    ids = list(range(9))
    score = score_shared(
        patterns[::-1],
        ids[::-1],
        data,
        ids,
        data_rdm="crossnobis",
        model_rdm="squared_euclidean",
        method="corr",
        n_boot=30,
    )
    assert (score.n_subjects, score.n_repeats, score.n_stimuli) == (2, 3, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_subject = [
            calc_rdm(
                Dataset(
                    subject.reshape(-1, 5), obs_descriptors={"stim": np.tile(ids, 3), "run": np.repeat([0, 1, 2], 9)}
                ),
                "crossnobis",
                descriptor="stim",
                cv_descriptor="run",
            ).get_vectors()
            for subject in data
        ]
        model = calc_rdm(Dataset(patterns), "euclidean").get_vectors()
    assert score.per_unit == pytest.approx(compare(RDMs(model), RDMs(np.concatenate(per_subject)), "corr")[0], abs=TOL)


def test_score_shared_bad_inputs():
    rng = np.random.default_rng(13)
    with pytest.raises(InputError, match="only 2 sample ids are shared"):
        score_shared(rng.normal(size=(5, 3)), list("abcde"), rng.normal(size=(4, 3)), list("abxy"))
    with pytest.raises(InputError, match="there are 4 model_ids"):
        score_shared(rng.normal(size=(5, 3)), list("abcd"), rng.normal(size=(4, 3)), list("abcd"))
    with pytest.raises(InputError, match="data holds 4 samples but there are 3 data_ids"):
        score_shared(rng.normal(size=(5, 3)), list("abcde"), rng.normal(size=(2, 4, 3)), list("abc"))
    with pytest.raises(InputError, match="over='repeats' takes one subject's repeats"):
        rdms_from_measurements(rng.normal(size=(2, 3, 5, 4)), over="repeats")
    assert brain.OVER == ("subjects", "repeats")
