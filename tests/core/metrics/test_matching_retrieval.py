import itertools

import numpy as np
import pytest
import slow_reference as ref

from alignscope.core.errors import InputError
from alignscope.core.metrics import matching, retrieval
from alignscope.core.metrics.registry import compute


def test_unit_correlation_matches_numpy_and_constant_units_are_zero():
    a, b = ref.gaussian(40, 3, 0), ref.gaussian(40, 4, 1)
    b[:, 3] = 2.0
    corr = matching.unit_correlation(a, b)
    expected = np.corrcoef(a.T, b[:, :3].T)[:3, 3:]
    assert corr[:, :3] == pytest.approx(expected, abs=1e-12)
    assert (corr[:, 3] == 0).all()


def test_hungarian_matching_equals_brute_force():
    a, b = ref.gaussian(30, 4, 2), ref.gaussian(30, 5, 3)
    b[:, :4] += 0.8 * a[:, [2, 0, 3, 1]]
    corr = np.abs(matching.unit_correlation(a, b))
    best = max(itertools.permutations(range(5), 4), key=lambda cols: sum(corr[i, c] for i, c in enumerate(cols)))
    result = matching.match_units(a, b)
    assert sorted(zip(result.units_a, result.units_b)) == list(enumerate(best))
    assert result.mean_abs_correlation == pytest.approx(np.mean([corr[i, c] for i, c in enumerate(best)]))
    assert list(result.curve) == sorted(result.curve, reverse=True)
    semi = matching.match_units(a, b, mode="semi")
    assert semi.units_b.tolist() == np.argmax(corr, axis=1).tolist()


def slow_topk(queries, gallery, top_k):
    q, g = ref.unit_rows(queries), ref.unit_rows(gallery)
    hits = 0
    for i in range(len(q)):
        order = sorted(range(len(g)), key=lambda j: (-(q[i] @ g[j]), j))
        hits += i in order[:top_k]
    return hits / len(q)


def test_retrieval_matches_slow_ranking():
    a = ref.gaussian(80, 6, 4)
    b = a @ ref.gaussian(6, 9, 5) + 0.5 * ref.gaussian(80, 9, 6)
    train, test = retrieval.split_indices(80, 0.5, seed=3)
    train, test = train.numpy(), test.numpy()
    x_mean, y_mean = a[train].mean(0), b[train].mean(0)
    x_c = a[train] - x_mean
    lam = 0.01 * (x_c**2).sum() / 6
    weights = np.linalg.solve(x_c.T @ x_c + lam * np.eye(6), x_c.T @ (b[train] - y_mean))
    mapped = (a[test] - x_mean) @ weights + y_mean
    for top_k in (1, 5):
        expected = slow_topk(mapped, b[test], top_k)
        assert retrieval.retrieval_accuracy(a, b, top_k=top_k, seed=3) == pytest.approx(expected, abs=1e-12)
    assert compute("retrieval_top1_unmapped", a, a) == 1.0
    with pytest.raises(InputError, match="unmapped retrieval needs equal widths"):
        compute("retrieval_top1_unmapped", a, b)


def test_retrieval_of_independent_data_is_near_chance():
    a, b = ref.gaussian(400, 8, 7), ref.gaussian(400, 8, 8)
    chance = 5 / 200
    assert abs(compute("retrieval_top5", a, b) - chance) < 5 * np.sqrt(chance / 200)


# --- query / gallery retrieval: recall@k, mAP, CMC -------------------------------------------------


def slow_rankings(queries, gallery, excluded=None):
    """For each query, gallery indices by descending cosine, ties to the lower index (minus excluded)."""
    q, g = ref.unit_rows(queries), ref.unit_rows(gallery)
    rankings = []
    for i in range(len(q)):
        keep = [j for j in range(len(g)) if excluded is None or not excluded(i, j)]
        rankings.append(sorted(keep, key=lambda j: (-(q[i] @ g[j]), j)))
    return rankings


def slow_scores(rankings, relevant, ks, max_rank):
    """Textbook recall@k (hit within k), AP = mean of precision at each relevant rank, CMC."""
    aps, firsts = [], []
    for i, ranking in enumerate(rankings):
        hit_ranks = [r + 1 for r, j in enumerate(ranking) if relevant(i, j)]
        if not hit_ranks:
            continue
        aps.append(np.mean([(h + 1) / rank for h, rank in enumerate(hit_ranks)]))
        firsts.append(hit_ranks[0])
    firsts = np.array(firsts)
    recall = {k: float(np.mean(firsts <= k)) for k in ks}
    cmc = [float(np.mean(firsts <= r)) for r in range(1, max_rank + 1)]
    return recall, float(np.mean(aps)), cmc, len(rankings) - len(firsts)


def test_class_level_retrieval_matches_slow_reference_and_sklearn_average_precision():
    from sklearn.metrics import average_precision_score

    queries, gallery = ref.gaussian(25, 6, 11), ref.gaussian(40, 6, 12)
    query_labels = np.random.default_rng(13).integers(0, 4, 25)
    gallery_labels = np.random.default_rng(14).integers(0, 4, 40)
    gallery += 0.8 * np.eye(4, 6)[gallery_labels]  # some class structure, so ranks vary
    queries += 0.8 * np.eye(4, 6)[query_labels]
    result = retrieval.evaluate_retrieval(
        queries,
        gallery,
        query_labels=query_labels,
        gallery_labels=gallery_labels,
        ks=(1, 3, 10),
        max_rank=12,
        block_size=7,
    )
    rankings = slow_rankings(queries, gallery)
    recall, mean_ap, cmc, skipped = slow_scores(
        rankings, lambda i, j: query_labels[i] == gallery_labels[j], (1, 3, 10), 12
    )
    assert result.recall_at_k == pytest.approx(recall, abs=1e-12)
    assert result.mean_average_precision == pytest.approx(mean_ap, abs=1e-12)
    assert result.cmc.tolist() == pytest.approx(cmc, abs=1e-12)
    assert result.n_queries == 25 and result.n_gallery == 40 and result.n_queries_without_relevant == skipped == 0
    sims = ref.unit_rows(queries) @ ref.unit_rows(gallery).T
    for i in range(25):  # continuous scores: no ties, so sklearn's AP is the same number
        expected = average_precision_score(gallery_labels == query_labels[i], sims[i])
        assert result.average_precision[i] == pytest.approx(expected, abs=1e-12)
    assert result.cmc[0] == result.recall_at_k[1] and (np.diff(result.cmc) >= 0).all()


def test_ties_go_to_the_lower_gallery_index():
    gallery = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1 tie for the query
    queries = np.array([[1.0, 0.0], [1.0, 0.0]])
    result = retrieval.evaluate_retrieval(queries, gallery, query_labels=[1, 0], gallery_labels=[0, 1, 1], ks=(1, 2))
    # query 0 (label 1): ranking 0, 1, 2 -> hits at ranks 2 and 3; query 1 (label 0): hit at rank 1
    assert result.first_relevant_rank.tolist() == [2, 1]
    assert result.average_precision.tolist() == pytest.approx([(1 / 2 + 2 / 3) / 2, 1.0])
    assert result.recall_at_k == {1: 0.5, 2: 1.0}


def test_leave_one_out_equals_removing_the_query_from_the_gallery():
    feats = ref.gaussian(30, 5, 15)
    labels = np.arange(30) % 3
    feats += 1.5 * np.eye(3, 5)[labels]
    result = retrieval.evaluate_retrieval(
        feats, feats, query_labels=labels, gallery_labels=labels, exclude_same_id=True, ks=(1, 5)
    )
    for i in (0, 7, 29):
        rest = np.delete(np.arange(30), i)
        alone = retrieval.evaluate_retrieval(
            feats[[i]], feats[rest], query_labels=labels[[i]], gallery_labels=labels[rest]
        )
        assert result.average_precision[i] == pytest.approx(alone.average_precision[0], abs=1e-12)
        assert result.first_relevant_rank[i] == alone.first_relevant_rank[0]
        assert result.n_relevant[i] == 9
    plain = retrieval.evaluate_retrieval(feats, feats, query_labels=labels, gallery_labels=labels)
    assert plain.recall_at_k[1] == 1.0  # without exclusion each query finds itself first


def test_instance_level_recall_equals_top_k_hit_rate_and_queries_without_matches_are_skipped():
    gallery = ref.gaussian(50, 8, 16)
    queries = gallery + 0.9 * ref.gaussian(50, 8, 17)
    result = retrieval.evaluate_retrieval(queries, gallery, relevance="instance", ks=(1, 5))
    for k in (1, 5):
        assert result.recall_at_k[k] == pytest.approx(slow_topk(queries, gallery, k), abs=1e-12)
    assert result.mean_average_precision == pytest.approx(np.mean(1.0 / result.first_relevant_rank))
    # ids: queries 0..9 are gallery items 40..49, queries 10..11 have no gallery item
    subset = retrieval.evaluate_retrieval(
        queries[40:], gallery, relevance="instance", ks=(1,), query_ids=np.r_[40:50], gallery_ids=np.arange(50)
    )
    assert subset.first_relevant_rank.tolist() == result.first_relevant_rank[40:].tolist()
    skipped = retrieval.evaluate_retrieval(
        queries[38:], gallery[:40], relevance="instance", ks=(1,), query_ids=np.r_[38:50], gallery_ids=np.arange(40)
    )
    assert skipped.n_queries == 12 and skipped.n_queries_without_relevant == 10
    assert np.isnan(skipped.average_precision[2:]).all() and skipped.first_relevant_rank[2:].tolist() == [0] * 10
    ranks = slow_rankings(queries[38:40], gallery[:40])
    assert skipped.first_relevant_rank[:2].tolist() == [ranks[0].index(38) + 1, ranks[1].index(39) + 1]
    assert skipped.recall_at_k[1] == np.mean(skipped.first_relevant_rank[:2] == 1)


def test_string_labels_and_a_fitted_map_between_widths():
    source, target_weights = ref.gaussian(60, 4, 18), ref.gaussian(4, 7, 19)
    target = source @ target_weights + 0.1 * ref.gaussian(60, 7, 20)
    mapping = retrieval.fit_linear_map(source, target, alpha=0.05)
    x_c = source - source.mean(0)
    lam = 0.05 * (x_c**2).sum() / 4
    weights = np.linalg.solve(x_c.T @ x_c + lam * np.eye(4), x_c.T @ (target - target.mean(0)))
    assert mapping.weights.numpy() == pytest.approx(weights, abs=1e-10)
    mapped = (source[:5] - source.mean(0)) @ weights + target.mean(0)
    assert mapping(source[:5]).numpy() == pytest.approx(mapped, abs=1e-10)
    labels = np.array(["cat", "dog", "owl"])[np.arange(60) % 3]
    with pytest.raises(InputError, match="width 4 but gallery 7.*query_map"):
        retrieval.evaluate_retrieval(source, target, query_labels=labels, gallery_labels=labels)
    via_map = retrieval.evaluate_retrieval(
        source, target, query_labels=labels, gallery_labels=labels, query_map=mapping
    )
    direct = retrieval.evaluate_retrieval(mapping(source), target, query_labels=labels, gallery_labels=labels)
    assert via_map.mean_average_precision == direct.mean_average_precision


def test_retrieval_inputs_are_checked():
    feats = ref.gaussian(10, 3, 21)
    labels = np.arange(10) % 2
    with pytest.raises(InputError, match="exclude_same_id drops the only relevant"):
        retrieval.evaluate_retrieval(feats, feats, relevance="instance", exclude_same_id=True)
    with pytest.raises(InputError, match=r"k of recall@k must be an integer in \[1, 10\]"):
        retrieval.evaluate_retrieval(feats, feats, query_labels=labels, gallery_labels=labels, ks=(11,))
    with pytest.raises(InputError, match="max_rank"):
        retrieval.evaluate_retrieval(feats, feats, query_labels=labels, gallery_labels=labels, max_rank=0)
    with pytest.raises(InputError, match="needs query_labels and gallery_labels"):
        retrieval.evaluate_retrieval(feats, feats)
    with pytest.raises(InputError, match="9 labels"):
        retrieval.evaluate_retrieval(feats, feats, query_labels=labels, gallery_labels=labels[:9])
    with pytest.raises(InputError, match="give query_ids and gallery_ids"):
        retrieval.evaluate_retrieval(feats, feats[:8], relevance="instance")
    with pytest.raises(InputError, match="no query has a relevant item"):
        retrieval.evaluate_retrieval(feats, feats, query_labels=np.zeros(10), gallery_labels=np.ones(10))
    default = retrieval.evaluate_retrieval(feats[:4], feats[:4], query_labels=labels[:4], gallery_labels=labels[:4])
    assert list(default.recall_at_k) == [1] and default.cmc.shape == (4,)


def test_retrieval_chance_is_k_over_the_test_set_split_indices_draws():
    from alignscope.core.metrics.registry import get_metric
    from alignscope.core.stats import chance_level

    for n_samples, fraction in ((100, 0.5), (101, 0.5), (25, 0.3), (9, 0.5), (51, 0.77)):
        _, test = retrieval.split_indices(n_samples, fraction, seed=0)
        for top_k in (1, 2):
            assert retrieval.retrieval_chance(n_samples, top_k=top_k, train_fraction=fraction) == top_k / len(test)
    assert retrieval.retrieval_chance(9, top_k=1, train_fraction=0.5) == 1 / 5  # round(4.5) = 4 train
    for name, top_k in (("retrieval_top1", 1), ("retrieval_top5", 5), ("retrieval_top5_unmapped", 5)):
        assert get_metric(name).chance is not None
        level = chance_level(name, n_samples=400, train_fraction=0.25)
        assert level.analytic == top_k / 300
    with pytest.raises(InputError, match=r"top_k must be in \[1, 3\]"):
        retrieval.retrieval_chance(6, top_k=5)
    # the analytic level is what independent data scores, on average over splits
    a, b = ref.gaussian(200, 8, 22), ref.gaussian(200, 8, 23)
    scores = [compute("retrieval_top5_unmapped", a, b, seed=seed) for seed in range(20)]
    assert abs(np.mean(scores) - 5 / 100) < 4 * np.sqrt(0.05 * 0.95 / 100 / 20)


def test_match_correlations_is_the_matching_step_of_match_units():
    a, b = ref.gaussian(30, 4, 24), ref.gaussian(30, 6, 25)
    corr = matching.unit_correlation(a, b)
    for mode in ("one_to_one", "semi"):
        direct, from_corr = matching.match_units(a, b, mode=mode), matching.match_correlations(corr, mode=mode)
        assert (
            direct.units_b.tolist() == from_corr.units_b.tolist() and direct.curve.tolist() == from_corr.curve.tolist()
        )
    with pytest.raises(InputError, match="mode"):
        matching.match_correlations(corr, mode="greedy")
