"""BCT's compatibility criterion on embeddings whose answer is known by construction."""

import numpy as np
import pytest
import torch

from alignscope.core.compatibility import compatibility_report, pairwise_compatibility, per_query_values
from alignscope.core.errors import InputError
from alignscope.core.metrics.retrieval import evaluate_retrieval, fit_linear_map

N_CLASSES, DIM = 6, 12


def embed(labels, noise, seed, rotation=None, centres_seed=0):
    """One "model": its class centres plus isotropic noise; a better model has less noise."""
    centres = np.random.default_rng(centres_seed).standard_normal((N_CLASSES, DIM))
    feats = centres[labels] + noise * np.random.default_rng(seed).standard_normal((len(labels), DIM))
    return feats if rotation is None else feats @ rotation


def orthogonal(dim, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


QUERY_LABELS = np.arange(60) % N_CLASSES
GALLERY_LABELS = np.arange(90) % N_CLASSES


def test_a_better_model_in_the_same_space_passes_and_the_numbers_are_the_three_retrievals():
    old_q, new_q = embed(QUERY_LABELS, 2.5, 1), embed(QUERY_LABELS, 0.8, 2)
    old_g, new_g = embed(GALLERY_LABELS, 2.5, 3), embed(GALLERY_LABELS, 0.8, 4)
    labels = dict(query_labels=QUERY_LABELS, gallery_labels=GALLERY_LABELS)
    report = compatibility_report(old_q, new_q, old_g, new_g, n_boot=300, seed=5, **labels)
    new_old = evaluate_retrieval(new_q, old_g, **labels).mean_average_precision
    old_old = evaluate_retrieval(old_q, old_g, **labels).mean_average_precision
    new_new = evaluate_retrieval(new_q, new_g, **labels).mean_average_precision
    assert report.new_old.estimate == pytest.approx(new_old, abs=1e-12)
    assert report.old_old.estimate == pytest.approx(old_old, abs=1e-12)
    assert report.new_new.estimate == pytest.approx(new_new, abs=1e-12)
    assert report.difference.estimate == pytest.approx(new_old - old_old, abs=1e-12)
    assert report.reindexing_gain.estimate == pytest.approx(new_new - new_old, abs=1e-12)
    assert report.update_gain == pytest.approx((new_old - old_old) / (new_new - old_old))
    assert old_old < new_old < new_new  # the known ordering of this construction
    assert report.passed and report.confident and report.difference.low > 0
    assert report.n_queries == 60 and report.n_gallery == 90 and report.measure == "mean_average_precision"
    for interval in (report.new_old, report.old_old, report.new_new, report.difference):
        assert interval.low <= interval.estimate <= interval.high


def test_a_rotated_new_space_fails_and_recall_at_1_reads_the_first_hits():
    old_q, old_g = embed(QUERY_LABELS, 2.0, 1), embed(GALLERY_LABELS, 2.0, 3)
    rotation = orthogonal(DIM, 9)  # the new model is as good, in a different basis: incompatible
    new_q, new_g = embed(QUERY_LABELS, 0.8, 2, rotation), embed(GALLERY_LABELS, 0.8, 4, rotation)
    labels = dict(query_labels=QUERY_LABELS, gallery_labels=GALLERY_LABELS)
    report = compatibility_report(old_q, new_q, old_g, new_g, measure="recall@1", n_boot=300, **labels)
    assert not report.passed and report.difference.high < 0
    assert report.new_old.estimate == evaluate_retrieval(new_q, old_g, ks=(1,), **labels).recall_at_k[1]
    assert report.new_new.estimate > report.old_old.estimate > report.new_old.estimate
    # a linear map fitted on separate samples both models embedded restores compatibility
    train_labels = np.arange(120) % N_CLASSES
    mapping = fit_linear_map(embed(train_labels, 0.8, 7, rotation), embed(train_labels, 2.0, 8), alpha=0.1)
    mapped = compatibility_report(
        old_q, new_q, old_g, new_g, measure="recall@1", query_map=mapping, n_boot=300, **labels
    )
    assert mapped.new_old.estimate > report.new_old.estimate and mapped.passed


def test_widths_that_differ_without_a_map_are_an_input_error():
    old_q, old_g = embed(QUERY_LABELS, 1.0, 1), embed(GALLERY_LABELS, 1.0, 3)
    new_q = np.hstack([old_q, np.ones((60, 4))])
    with pytest.raises(InputError, match=r"new_queries have width 16 but old_gallery 12.*query_map=fit_linear_map"):
        compatibility_report(old_q, new_q, old_g, query_labels=QUERY_LABELS, gallery_labels=GALLERY_LABELS)
    with pytest.raises(InputError, match="old_queries has 60 rows but new_queries has 59"):
        compatibility_report(old_q, new_q[:59, :12], old_g, query_labels=QUERY_LABELS, gallery_labels=GALLERY_LABELS)
    with pytest.raises(InputError, match="measure must be"):
        compatibility_report(
            old_q, old_q, old_g, query_labels=QUERY_LABELS, gallery_labels=GALLERY_LABELS, measure="top1"
        )


def test_bootstrap_interval_has_the_width_of_a_mean_over_queries_and_is_seeded():
    labels = np.arange(400) % N_CLASSES
    old_q, new_q = embed(labels, 2.0, 1), embed(labels, 1.5, 2)
    old_g = embed(GALLERY_LABELS, 2.0, 3)
    kwargs = dict(query_labels=labels, gallery_labels=GALLERY_LABELS, n_boot=2000, confidence=0.9)
    report = compatibility_report(old_q, new_q, old_g, seed=1, **kwargs)
    again = compatibility_report(old_q, new_q, old_g, seed=1, **kwargs)
    other = compatibility_report(old_q, new_q, old_g, seed=2, **kwargs)
    assert report.difference == again.difference and report.difference != other.difference
    assert report.new_new is None and report.update_gain is None and report.reindexing_gain is None
    # normal theory for a mean over 400 queries: half-width 1.645 sd / sqrt(n)
    for interval, result in ((report.new_old, report.new_old_result), (report.old_old, report.old_old_result)):
        values = per_query_values(result, "mean_average_precision")
        half_width = 1.645 * values.std(ddof=1) / np.sqrt(values.size)
        assert (interval.high - interval.low) / 2 == pytest.approx(half_width, rel=0.15)
    paired = per_query_values(report.new_old_result, "mean_average_precision") - per_query_values(
        report.old_old_result, "mean_average_precision"
    )
    half_width = 1.645 * paired.std(ddof=1) / np.sqrt(paired.size)
    assert (report.difference.high - report.difference.low) / 2 == pytest.approx(half_width, rel=0.15)


def test_pairwise_inequalities_match_a_brute_force_count():
    q_labels, g_labels = np.arange(12) % 3, np.arange(15) % 3
    old_q, new_q = embed(q_labels, 1.5, 1), embed(q_labels, 1.0, 2)
    old_g = embed(g_labels, 1.5, 3)
    result = pairwise_compatibility(old_q, new_q, old_g, query_labels=q_labels, gallery_labels=g_labels, block_size=5)

    def cos(u, v):
        return u @ v / np.linalg.norm(u) / np.linalg.norm(v)

    positive, negative = [], []
    for i in range(12):
        for j in range(15):
            new_old, old_old = cos(new_q[i], old_g[j]), cos(old_q[i], old_g[j])
            if q_labels[i] == g_labels[j]:
                positive.append(new_old >= old_old)
            else:
                negative.append(new_old <= old_old)
    assert result.n_positive == len(positive) == 60 and result.n_negative == len(negative) == 120
    assert result.positive_satisfied == pytest.approx(np.mean(positive))
    assert result.negative_satisfied == pytest.approx(np.mean(negative))
    # leave-one-out on a shared query / gallery set: the pairs (i, i) are not counted
    shared = pairwise_compatibility(
        old_g, embed(g_labels, 1.0, 4), old_g, query_labels=g_labels, gallery_labels=g_labels, exclude_same_id=True
    )
    assert shared.n_positive == 15 * 4 and shared.n_negative == 15 * 10


def test_update_gain_is_none_when_the_new_model_is_no_better():
    """(new,old − old,old) / (new,new − old,old) only means "share of the improvement kept" when there is
    an improvement; a worse new model would give a ratio of arbitrary sign and size."""
    generator = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 6, generator=generator)
    labels = torch.arange(60) % 4

    def embed(noise):
        return centres[labels] + noise * torch.randn(60, 6, generator=generator)

    good, bad = embed(0.3), embed(3.0)
    report = compatibility_report(
        good, bad, good, bad, query_labels=labels, gallery_labels=labels, exclude_same_id=True, n_boot=50
    )
    assert report.new_new.estimate < report.old_old.estimate
    assert report.update_gain is None


def test_no_share_of_a_gain_the_new_model_does_not_measurably_have():
    """Two random embeddings retrieve at chance (mAP about 1/6 here); their mAPs differ by noise, and the
    share "kept" of that noise came out as 102 % or 2256 %. A share is given only where the new model's own
    gain over the old has an interval above 0."""
    rng = np.random.default_rng(2)
    old_q, new_q = rng.standard_normal((60, DIM)), rng.standard_normal((60, DIM))
    old_g, new_g = rng.standard_normal((90, DIM)), rng.standard_normal((90, DIM))
    labels = dict(query_labels=QUERY_LABELS, gallery_labels=GALLERY_LABELS)
    report = compatibility_report(old_q, new_q, old_g, new_g, n_boot=300, seed=5, **labels)
    assert abs(report.new_new.estimate - 1 / N_CLASSES) < 0.1 and abs(report.old_old.estimate - 1 / N_CLASSES) < 0.1
    assert report.new_new.estimate > report.old_old.estimate  # a positive denominator, made of noise
    assert report.update_gain is None
