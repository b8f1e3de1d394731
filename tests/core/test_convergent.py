"""Convergent learning views and the layer-identification check, against hand-written numpy references."""

import itertools

import numpy as np
import pytest

from alignscope.core import convergent
from alignscope.core.errors import InputError
from alignscope.core.metrics import registry


def gaussian(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d))


def corr_by_hand(a, b):
    """Pearson correlation of every column of a with every column of b, from the textbook formula."""
    out = np.zeros((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            x, y = a[:, i] - a[:, i].mean(), b[:, j] - b[:, j].mean()
            out[i, j] = (x @ y) / np.sqrt((x @ x) * (y @ y))
    return out


def linear_cka_by_hand(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return np.linalg.norm(b.T @ a) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))


def test_matching_curves_match_brute_force_matching_and_hand_correlations():
    a = gaussian(40, 4, 1)
    b = np.hstack([0.9 * a[:, [3, 1]] + 0.5 * gaussian(40, 2, 2), gaussian(40, 3, 3)])  # d_b = 5
    curves = convergent.matching_curves(a, b, thresholds=(0.3, 0.8))
    corr = np.abs(corr_by_hand(a, b))
    best = max(itertools.permutations(range(5), 4), key=lambda cols: sum(corr[i, c] for i, c in enumerate(cols)))
    assert curves.one_to_one == pytest.approx(sorted((corr[i, c] for i, c in enumerate(best)), reverse=True))
    assert curves.semi == pytest.approx(sorted(corr.max(axis=1), reverse=True))
    within_a = np.abs(corr_by_hand(a, a)) - 2 * np.eye(4)  # push the unit itself below every other
    within_b = np.abs(corr_by_hand(b, b)) - 2 * np.eye(5)
    assert curves.within_a == pytest.approx(sorted(within_a.max(axis=1), reverse=True))
    assert curves.within_b == pytest.approx(sorted(within_b.max(axis=1), reverse=True))
    assert curves.fraction_above == {t: np.mean(corr.max(axis=1) > t) for t in (0.3, 0.8)}
    assert curves.within_fraction_above == {t: np.mean(within_a.max(axis=1) > t) for t in (0.3, 0.8)}
    assert curves.one_to_one.shape == (4,) and curves.semi.shape == (4,) and curves.within_b.shape == (5,)
    # the planted pairs (a0 ~ b1... a3 ~ b0, a1 ~ b1) are the two best between-net matches, far above the rest
    assert curves.one_to_one[1] > 0.7 > curves.one_to_one[2]


def test_within_baseline_needs_two_units_and_thresholds_are_correlations():
    with pytest.raises(InputError, match="at least 2"):
        convergent.within_curve(gaussian(20, 1, 4))
    with pytest.raises(InputError, match="thresholds"):
        convergent.matching_curves(gaussian(20, 3, 5), gaussian(20, 3, 6), thresholds=(1.5,))


def planted_family(n_nets=3, n_layers=4, n_samples=80, width=6, twin_layers=(), seed=0):
    """Nets from different "seeds": layer l of every net is a rotated, noisy view of one latent z_l.

    z_l = 0.6 z_(l-1) + 0.8 fresh_l, so neighbouring layers are alike but each layer is most like its own
    counterpart; layers listed in ``twin_layers`` reuse the previous layer's latent (genuinely ambiguous).
    """
    rng = np.random.default_rng(seed)
    latents = [rng.standard_normal((n_samples, width))]
    for layer in range(1, n_layers):
        fresh = rng.standard_normal((n_samples, width))
        latents.append(latents[-1] if layer in twin_layers else 0.6 * latents[-1] + 0.8 * fresh)
    nets = []
    for _ in range(n_nets):
        net = []
        for latent in latents:
            rotation, _ = np.linalg.qr(rng.standard_normal((width, width)))
            net.append(latent @ rotation + 0.3 * rng.standard_normal((n_samples, width)))
        nets.append(net)
    return nets


def test_family_layer_matrices_average_hand_cka_over_unordered_pairs():
    nets = planted_family()
    family = convergent.family_layer_matrices(nets, "linear_cka")
    assert family.pairs == ((0, 1), (0, 2), (1, 2)) and family.symmetric
    expected = np.array([[[linear_cka_by_hand(x, y) for y in nets[b]] for x in nets[a]] for a, b in family.pairs])
    assert family.values == pytest.approx(expected, abs=1e-10)
    ordered = family.ordered()
    assert len(ordered) == 6 and ordered[(2, 0)] == pytest.approx(expected[1].T)
    # the mean over every ordered pair: (layer i, layer j) whichever seed has the lower index
    assert family.mean == pytest.approx(np.mean(list(ordered.values()), axis=0), abs=1e-10)
    assert family.mean == pytest.approx(family.mean.T, abs=1e-12)
    both_ways = (expected + expected.transpose(0, 2, 1)) / 2
    assert family.std == pytest.approx(both_ways.std(axis=0, ddof=1), abs=1e-10)
    asymmetric = convergent.family_layer_matrices(nets, "cycle_knn", k=5)
    assert len(asymmetric.pairs) == 6 and not asymmetric.symmetric
    single = convergent.family_layer_matrices(nets[:2], "linear_cka")
    assert np.isnan(single.std).all()
    with pytest.raises(InputError, match="same number of layers"):
        convergent.family_layer_matrices([nets[0], nets[1][:3]], "linear_cka")


def test_curve_band_keeps_equal_lengths_and_interpolates_on_rank_fractions():
    same = convergent.curve_band([np.array([0.9, 0.5, 0.1]), np.array([0.7, 0.3, 0.2])])
    assert same.grid.tolist() == [0.0, 0.5, 1.0]
    assert same.mean == pytest.approx([0.8, 0.4, 0.15])
    assert same.std == pytest.approx(np.std([[0.9, 0.5, 0.1], [0.7, 0.3, 0.2]], axis=0, ddof=1))
    mixed = convergent.curve_band([np.array([1.0, 0.8, 0.6, 0.4, 0.2]), np.array([0.9, 0.3, 0.0])])
    # the five-unit curve read at rank fractions 0, 0.5, 1: its points 0, 2 and 4
    assert mixed.curves == pytest.approx(np.array([[1.0, 0.6, 0.2], [0.9, 0.3, 0.0]]))
    fine = convergent.curve_band([np.array([1.0, 0.0]), np.array([1.0, 0.5, 0.0])], n_points=5)
    assert fine.curves[0].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_family_matching_curves_collect_every_pair_and_direction():
    nets = planted_family(n_nets=3, n_layers=2, width=5)
    family = convergent.family_matching_curves(nets, 1, thresholds=(0.5,))
    assert family.one_to_one.n_curves == 3 and family.semi.n_curves == 6 and family.within.n_curves == 3
    one_to_one, semi, fractions = [], [], []
    for a, b in itertools.combinations(range(3), 2):
        corr = np.abs(corr_by_hand(nets[a][1], nets[b][1]))
        best = max(itertools.permutations(range(5)), key=lambda cols: sum(corr[i, c] for i, c in enumerate(cols)))
        one_to_one.append(sorted((corr[i, c] for i, c in enumerate(best)), reverse=True))
        for matrix in (corr, corr.T):
            semi.append(sorted(matrix.max(axis=1), reverse=True))
            fractions.append(np.mean(matrix.max(axis=1) > 0.5))
    assert family.one_to_one.mean == pytest.approx(np.mean(one_to_one, axis=0))
    assert family.semi.mean == pytest.approx(np.mean(semi, axis=0))
    assert family.semi.std == pytest.approx(np.std(semi, axis=0, ddof=1))
    assert family.fraction_above_mean[0.5] == pytest.approx(np.mean(fractions))
    assert family.fraction_above_std[0.5] == pytest.approx(np.std(fractions, ddof=1))
    within = [sorted((np.abs(corr_by_hand(net[1], net[1])) - 2 * np.eye(5)).max(axis=1), reverse=True) for net in nets]
    assert family.within.mean == pytest.approx(np.mean(within, axis=0))
    assert family.layer_index == 1 and convergent.family_matching_curves(nets, -1).layer_index == 1
    with pytest.raises(InputError, match="layer_index"):
        convergent.family_matching_curves(nets, 2)


def identification_by_hand(nets, score, higher_is_better=True):
    """Kornblith et al. Table 2 by loops: for each ordered pair and layer, is the best layer the same one?"""
    n_layers = len(nets[0])
    hits = np.zeros(n_layers)
    pairs = list(itertools.permutations(range(len(nets)), 2))
    for a, b in pairs:
        for i in range(n_layers):
            values = [score(nets[a][i], nets[b][j]) for j in range(n_layers)]
            best = int(np.argmax(values) if higher_is_better else np.argmin(values))
            hits[i] += best == i
    return hits / len(pairs)


def test_layer_identification_finds_planted_layers_and_matches_a_hand_count():
    nets = planted_family(n_nets=3, n_layers=5, twin_layers=(3,), seed=1)  # layers 2 and 3 share a latent
    result = convergent.identify_layers(nets, ["linear_cka", "unit_match"])
    expected = identification_by_hand(nets, linear_cka_by_hand)
    assert result.per_layer["linear_cka"] == pytest.approx(expected)
    assert result.accuracy["linear_cka"] == pytest.approx(expected.mean())
    assert expected[[0, 1, 4]].tolist() == [1.0, 1.0, 1.0] and expected[2] + expected[3] < 2
    assert result.n_layers == 5 and result.n_ordered_pairs == 6 and result.chance == 0.2
    assert set(result.accuracy) == {"linear_cka", "unit_match"}
    clean = convergent.identify_layers(planted_family(n_nets=3, n_layers=4, seed=2), ["linear_cka"])
    assert clean.accuracy["linear_cka"] == 1.0


def _temporary_metric(monkeypatch, name, fn, higher_is_better=True):
    registry.list_metrics()  # load the built-in families first
    spec = registry.MetricSpec(
        name=name,
        family="test",
        fn=fn,
        higher_is_better=higher_is_better,
        symmetric=False,
        value_range=(-np.inf, np.inf),
        invariances=(),
    )
    monkeypatch.setitem(registry._REGISTRY, name, spec)


def test_a_random_metric_identifies_one_layer_in_L_and_direction_is_respected(monkeypatch):
    rng = np.random.default_rng(3)
    _temporary_metric(monkeypatch, "test_random_score", lambda a, b, **_: float(rng.random()))
    _temporary_metric(
        monkeypatch, "test_cka_distance", lambda a, b, **_: 1.0 - linear_cka_by_hand(a, b), higher_is_better=False
    )
    _temporary_metric(monkeypatch, "test_constant", lambda a, b, **_: 0.5)
    nets = planted_family(n_nets=6, n_layers=5, n_samples=30, width=3, seed=4)
    result = convergent.identify_layers(nets, ["test_random_score", "test_cka_distance", "test_constant"])
    trials = 30 * 5  # ordered pairs x layers
    assert abs(result.accuracy["test_random_score"] - 0.2) < 4 * np.sqrt(0.2 * 0.8 / trials)
    assert result.accuracy["test_cka_distance"] == 1.0  # the minimum of a distance is the match
    assert result.accuracy["test_constant"] == 0.2  # ties go to layer 0: exactly 1 / L
    assert result.per_layer["test_constant"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_identification_hits_treats_nan_as_never_best():
    matrix = np.array([[np.nan, 0.1], [0.3, 0.9]])
    assert convergent.identification_hits({(0, 1): matrix}, higher_is_better=True).tolist() == [0.0, 1.0]
    assert convergent.identification_hits({(0, 1): -matrix}, higher_is_better=False).tolist() == [0.0, 1.0]
    nan_row = np.array([[np.nan, np.nan], [0.3, 0.9]])
    assert convergent.identification_hits({(0, 1): nan_row}, higher_is_better=True).tolist() == [0.0, 1.0]
