"""Shape distances (Williams et al. 2021, netrep LinearMetric) against two independent numpy references
(the paper's formula through scipy, and netrep's own algorithm restated), the Procrustes and CCA
relations, and the metric axioms (symmetry, identity, invariances, triangle inequality)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import slow_reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.linalg import fractional_matrix_power, orthogonal_procrustes
from scipy.spatial.distance import squareform

from alignscope.core.errors import InputError
from alignscope.core.metrics import shape  # importing it registers shape_distance
from alignscope.core.metrics.cca import canonical_correlations, mean_cca
from alignscope.core.metrics.geometry import kfold_indices, procrustes
from alignscope.core.metrics.layers import layer_matrix
from alignscope.core.metrics.registry import compute, get_metric

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]
# arccos near 1 resolves an angle to ~sqrt(2 eps) ~ 1e-8: equivalent inputs (here: several inputs that
# all span the whole centred sample space) give distances of that size instead of 0
ANGLE_NOISE = 1e-7


# --- references ---------------------------------------------------------------------------------------


def _pad(x, width):
    return np.hstack([x, np.zeros((x.shape[0], width - x.shape[1]))])


def _unit(x):
    centred = x - x.mean(axis=0)
    return centred / np.linalg.norm(centred)


def paper_distance(a, b, alpha, score_method="angular"):
    """Williams et al. 2021: φ(X) = X (αI + (1 - α) C^(-1/2)), C = XᵀX of the centred unit-norm input,
    rescaled to unit norm; min over orthogonal Q of the angle (or chord) between φ(A) and φ(B) Q, the
    narrower one zero-padded. Matrix powers and the rotation come from scipy, not from eigh / SVD code."""

    def phi(x):
        x = _unit(np.asarray(x, dtype=np.float64))
        cov = x.T @ x
        z = alpha * np.eye(cov.shape[0]) + (1 - alpha) * np.real(fractional_matrix_power(cov, -0.5))
        w = x @ z
        return w / np.linalg.norm(w)

    pa, pb = phi(a), phi(b)
    width = max(pa.shape[1], pb.shape[1])
    pa, pb = _pad(pa, width), _pad(pb, width)
    rotation, _ = orthogonal_procrustes(pb, pa)
    if score_method == "angular":
        return float(np.arccos(np.clip((pa * (pb @ rotation)).sum(), -1.0, 1.0)))
    return float(np.linalg.norm(pa - pb @ rotation))


def netrep_fit(x, y, alpha):
    """netrep LinearMetric(alpha, center_columns=True, zero_pad=True).fit, restated: utils.whiten with
    eigval_tol = 1e-7 and preserve_variance, then the full SVD of XwᵀYw (netrep @ 0186b8a)."""
    width = max(x.shape[1], y.shape[1])
    x, y = _pad(np.asarray(x, float), width), _pad(np.asarray(y, float), width)

    def whiten(centred):
        if alpha > 1 - 1e-7:
            return np.eye(centred.shape[1])
        lam, vectors = np.linalg.eigh(centred.T @ centred)
        lam = np.maximum(lam, 1e-7)
        d = alpha + (1 - alpha) * lam ** (-1 / 2)
        new_var = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
        d *= np.sqrt(np.sum(lam) / new_var)
        return (vectors * d[None, :]) @ vectors.T

    mx, my = x.mean(0), y.mean(0)
    zx, zy = whiten(x - mx), whiten(y - my)
    u, _, vt = np.linalg.svd(((x - mx) @ zx).T @ ((y - my) @ zy))
    return mx, my, zx @ u, zy @ vt.T, width


def netrep_score(fitted, x, y, score_method):
    mx, my, wx, wy, width = fitted
    tx = (_pad(np.asarray(x, float), width) - mx) @ wx
    ty = (_pad(np.asarray(y, float), width) - my) @ wy
    if score_method == "angular":
        return float(np.arccos(np.clip((tx * ty).sum() / np.linalg.norm(tx) / np.linalg.norm(ty), -1, 1)))
    return float(np.linalg.norm(tx - ty))


def related_pair(n, width_a, width_b, noise, seed):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 4))
    a = latent @ rng.standard_normal((4, width_a)) + noise * rng.standard_normal((n, width_a))
    b = latent @ rng.standard_normal((4, width_b)) + noise * rng.standard_normal((n, width_b))
    return a, b


# --- (a) the same formula, computed independently -----------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("score_method", ["angular", "euclidean"])
@pytest.mark.parametrize("widths", [(5, 5), (6, 3)])
def test_matches_the_paper_formula(alpha, score_method, widths):
    a, b = related_pair(60, *widths, noise=0.7, seed=1)
    expected = paper_distance(a, b, alpha, score_method)
    assert shape.shape_distance(a, b, alpha=alpha, score_method=score_method) == pytest.approx(expected, abs=1e-9)
    assert 0.05 < expected < 1.4  # a value that could be wrong


@pytest.mark.parametrize("alpha", ALPHAS)
def test_matches_netrep_on_unit_norm_inputs(alpha):
    """Angular: equal to netrep for any widths (zero-padded). Euclidean: netrep's Frobenius norm of
    the aligned unit-norm inputs, for equal widths (netrep's variance rescaling also counts padded
    directions, which rescales a padded input; the module docstring says why we don't)."""
    a, b = related_pair(50, 6, 4, noise=0.5, seed=2)
    angular = netrep_score(netrep_fit(_unit(a), _unit(b), alpha), _unit(a), _unit(b), "angular")
    assert shape.shape_distance(a, b, alpha=alpha) == pytest.approx(angular, abs=1e-9)
    b_square = related_pair(50, 6, 6, noise=0.5, seed=2)[1]  # full rank: no direction is floored
    fitted = netrep_fit(_unit(a), _unit(b_square), alpha)
    euclidean = netrep_score(fitted, _unit(a), _unit(b_square), "euclidean")
    assert shape.shape_distance(a, b_square, alpha=alpha, score_method="euclidean") == pytest.approx(
        euclidean, abs=1e-9
    )


def test_raw_netrep_agrees_at_the_ends_and_depends_on_units_in_between():
    a, b = related_pair(50, 5, 5, noise=0.5, seed=4)
    for alpha in (0.0, 1.0):
        raw = netrep_score(netrep_fit(a, b, alpha), a, b, "angular")
        assert shape.shape_distance(a, b, alpha=alpha) == pytest.approx(raw, abs=1e-9)
    # netrep whitens the raw scatter matrix, so at alpha = 0.5 its value moves with the units of A;
    # ours (unit-norm inputs first) does not.
    raw, rescaled = (netrep_score(netrep_fit(s * a, b, 0.5), s * a, b, "angular") for s in (0.1, 0.001))
    assert abs(raw - rescaled) > 0.05
    assert shape.shape_distance(100 * a, b, alpha=0.5) == pytest.approx(
        shape.shape_distance(a, b, alpha=0.5), abs=1e-12
    )


# --- (b) alpha = 1 is Procrustes, (c) alpha = 0 is CCA --------------------------------------------------


@pytest.mark.parametrize("n, widths", [(40, (7, 3)), (40, (4, 4)), (20, (50, 30))])
def test_alpha_one_is_arccos_of_procrustes(n, widths):
    """Both centre and scale to unit Frobenius norm; Procrustes similarity = ‖ÃᵀB̃‖_* = cos θ, and the
    euclidean variant is geometry's Procrustes distance sqrt(2 - 2·similarity)."""
    a, b = related_pair(n, *widths, noise=1.0, seed=5)
    similarity = procrustes(a, b)
    assert shape.shape_distance(a, b, alpha=1.0) == pytest.approx(math.acos(similarity), abs=1e-10)
    euclidean = shape.shape_distance(a, b, alpha=1.0, score_method="euclidean")
    assert euclidean == pytest.approx(math.sqrt(2 - 2 * similarity), abs=1e-10)


@pytest.mark.parametrize("widths", [(4, 4), (6, 3), (2, 5)])
def test_alpha_zero_is_arccos_of_summed_canonical_correlations(widths):
    """Fully whitened inputs are orthonormal bases of their column spaces scaled to unit norm, so
    cos θ = Σ ρ_i / sqrt(d_a d_b): arccos(mean CCA) for equal widths (netrep test_principal_angles)."""
    a, b = related_pair(80, *widths, noise=1.0, seed=6)
    rho = canonical_correlations(a, b).numpy()
    expected = math.acos(rho.sum() / math.sqrt(widths[0] * widths[1]))
    assert shape.shape_distance(a, b, alpha=0.0) == pytest.approx(expected, abs=1e-9)
    if widths[0] == widths[1]:
        assert shape.shape_distance(a, b, alpha=0.0) == pytest.approx(math.acos(mean_cca(a, b)), abs=1e-9)


# --- (d) metric properties ------------------------------------------------------------------------------


@st.composite
def triples(draw):
    n = draw(st.integers(8, 24))
    widths = draw(st.lists(st.integers(1, 7), min_size=3, max_size=3))
    noises = draw(st.lists(st.sampled_from([0.05, 0.3, 1.0, 3.0]), min_size=3, max_size=3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    feats = [latent @ rng.standard_normal((3, w)) + s * rng.standard_normal((n, w)) for w, s in zip(widths, noises)]
    alpha = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    return feats, alpha, draw(st.sampled_from(["angular", "euclidean"]))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(triples())
def test_triangle_inequality_symmetry_and_range(case):
    feats, alpha, score_method = case
    matrix = shape.pairwise_shape_distances(feats, alpha, score_method=score_method)
    for i, j, k in itertools.permutations(range(3)):
        assert matrix[i, k] <= matrix[i, j] + matrix[j, k] + ANGLE_NOISE
    high = math.pi / 2 if score_method == "angular" else math.sqrt(2)
    assert ((matrix >= 0) & (matrix <= high + 1e-12)).all()
    a, b = feats[0], feats[1]
    forward = shape.shape_distance(a, b, alpha=alpha, score_method=score_method)
    assert forward == pytest.approx(shape.shape_distance(b, a, alpha=alpha, score_method=score_method), abs=ANGLE_NOISE)
    assert forward == pytest.approx(matrix[0, 1], abs=1e-12)


def test_triangle_inequality_on_a_many_model_matrix():
    rng = np.random.default_rng(7)
    latent = rng.standard_normal((40, 5))
    feats = [
        latent @ rng.standard_normal((5, w)) + s * rng.standard_normal((40, w))
        for w, s in zip([3, 5, 8, 12, 5, 2], [0.1, 0.5, 1.0, 2.0, 0.2, 0.05])
    ]
    for alpha in (0.0, 0.4, 1.0):
        matrix = shape.pairwise_shape_distances(feats, alpha)
        for i, j, k in itertools.permutations(range(len(feats)), 3):
            assert matrix[i, k] <= matrix[i, j] + matrix[j, k] + 1e-9
        assert np.array_equal(matrix, matrix.T) and (np.diag(matrix) == 0).all()


@pytest.mark.parametrize("alpha", ALPHAS)
def test_identity_and_invariances(alpha):
    a, b = related_pair(50, 6, 4, noise=0.6, seed=8)
    value = shape.shape_distance(a, b, alpha=alpha)
    q = ref.random_orthogonal(4, 9)
    for changed in (b @ q, 3.7 * b, 1e-3 * b, b + 5.0, b[:, ::-1]):
        assert shape.shape_distance(a, changed, alpha=alpha) == pytest.approx(value, abs=1e-10)
    assert shape.shape_distance(a, 2.5 * a @ ref.random_orthogonal(6, 10) - 1.0, alpha=alpha) < 1e-6
    assert shape.shape_distance(a, a, alpha=alpha, score_method="euclidean") < 1e-6
    # zero-padded columns change nothing (netrep zero_pad), in-sample and held-out
    padded = _pad(b, 9)
    assert shape.shape_distance(a, padded, alpha=alpha) == pytest.approx(value, abs=1e-10)
    held_out = shape.cross_validated_shape_distance(a, b, alpha=alpha, n_folds=4)
    assert shape.cross_validated_shape_distance(a, padded, alpha=alpha, n_folds=4) == pytest.approx(held_out, abs=1e-10)


def test_invertible_linear_maps_only_at_alpha_zero():
    a, b = related_pair(60, 5, 5, noise=0.6, seed=11)
    mixing = np.eye(5) + np.triu(np.ones((5, 5)), 1) + np.diag([0.0, 2.0, 0.0, 4.0, 0.0])
    assert shape.shape_distance(a @ mixing, b, alpha=0.0) == pytest.approx(
        shape.shape_distance(a, b, alpha=0.0), abs=1e-10
    )
    assert shape.shape_distance(a, a @ mixing + 3.0, alpha=0.0) < 1e-6
    for alpha in (0.5, 1.0):  # partial or no whitening: the map is visible
        assert abs(shape.shape_distance(a @ mixing, b, alpha=alpha) - shape.shape_distance(a, b, alpha=alpha)) > 1e-3


# --- (e) held-out distances ------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_cross_validated_matches_netrep_fit_on_train_score_on_test(alpha):
    """Per fold: netrep fit on the training rows (scaled to unit norm, our units), score on the held-out
    rows; angular as is, euclidean per sample (÷ sqrt(n_test), × sqrt(n_train) for the units)."""
    a, b = related_pair(50, 4, 4, noise=0.8, seed=13)
    folds = kfold_indices(50, 5, 3)
    angular, euclidean = [], []
    for fold in folds:
        test = fold.numpy()
        train = np.setdiff1d(np.arange(50), test)
        scale_a = np.linalg.norm(a[train] - a[train].mean(0))
        scale_b = np.linalg.norm(b[train] - b[train].mean(0))
        fitted = netrep_fit(a[train] / scale_a, b[train] / scale_b, alpha)
        angular.append(netrep_score(fitted, a[test] / scale_a, b[test] / scale_b, "angular"))
        frobenius = netrep_score(fitted, a[test] / scale_a, b[test] / scale_b, "euclidean")
        euclidean.append(frobenius * math.sqrt(len(train) / len(test)))
    got = shape.cross_validated_shape_distance(a, b, alpha=alpha, n_folds=5, seed=3)
    assert got == pytest.approx(np.mean(angular), abs=1e-9)
    got = shape.cross_validated_shape_distance(a, b, alpha=alpha, n_folds=5, seed=3, score_method="euclidean")
    assert got == pytest.approx(np.mean(euclidean), abs=1e-9)


def test_fitted_alignment_scores_held_out_rows_and_its_training_rows():
    a, b = related_pair(60, 5, 3, noise=0.7, seed=14)
    for score_method in ("angular", "euclidean"):
        fitted = shape.fit_shape_alignment(a[:40], b[:40], 0.3, score_method=score_method)
        in_sample = shape.shape_distance(a[:40], b[:40], alpha=0.3, score_method=score_method)
        assert fitted.score(a[:40], b[:40]) == pytest.approx(in_sample, abs=1e-10)
        scale_a, scale_b = (np.linalg.norm(x[:40] - x[:40].mean(0)) for x in (a, b))
        netrep = netrep_fit(a[:40] / scale_a, b[:40] / scale_b, 0.3)
        expected = netrep_score(netrep, a[40:] / scale_a, b[40:] / scale_b, "angular")
        if score_method == "angular":
            assert fitted.score(a[40:], b[40:]) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(InputError, match="feats_b has 4 features but the alignment was fitted on 3"):
        fitted.score(a[40:], a[40:, :4])


def test_cross_validated_is_deterministic_symmetric_and_seeded():
    a, b = related_pair(45, 6, 3, noise=1.0, seed=15)
    first = shape.cross_validated_shape_distance(a, b, alpha=0.5, n_folds=3, seed=1)
    assert first == shape.cross_validated_shape_distance(a, b, alpha=0.5, n_folds=3, seed=1)
    assert first == pytest.approx(shape.cross_validated_shape_distance(b, a, alpha=0.5, n_folds=3, seed=1), abs=1e-10)
    assert first != shape.cross_validated_shape_distance(a, b, alpha=0.5, n_folds=3, seed=2)
    assert first == shape.shape_distance(a, b, alpha=0.5, n_folds=3, seed=1)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_cross_validated_exceeds_in_sample_for_noise(alpha):
    """Independent noise: fitting finds spurious alignment in-sample (it overfits), none held-out, where
    the expected cosine is 0 (angle π/2)."""
    in_sample, held_out = [], []
    for seed in range(4):
        a, b = ref.gaussian(60, 8, 100 + seed), ref.gaussian(60, 6, 200 + seed)
        in_sample.append(shape.shape_distance(a, b, alpha=alpha))
        held_out.append(shape.cross_validated_shape_distance(a, b, alpha=alpha, n_folds=5, seed=seed))
    assert np.mean(held_out) > np.mean(in_sample) + 0.05
    assert np.mean(held_out) == pytest.approx(math.pi / 2, abs=0.1)


def test_held_out_alignment_generalises_when_the_relation_is_real():
    a = ref.gaussian(60, 5, 16)
    mixed = a @ (np.eye(5) + np.triu(np.ones((5, 5)), 1)) + 2.0
    assert shape.cross_validated_shape_distance(a, mixed, alpha=0.0, n_folds=4) < 1e-6
    assert shape.cross_validated_shape_distance(a, mixed, alpha=1.0, n_folds=4) > 0.05
    rotated = 3.0 * a @ ref.random_orthogonal(5, 17)
    assert shape.cross_validated_shape_distance(a, rotated, alpha=1.0, n_folds=4) < 1e-6


# --- registry, split form, pairwise matrices ----------------------------------------------------------------


def test_registered_spec_and_compute():
    spec = get_metric("shape_distance")
    assert (spec.family, spec.higher_is_better, spec.symmetric, spec.value_range[0]) == (
        "shape",
        False,
        True,
        0.0,
    )
    assert spec.prepare is not None and spec.compare is not None and spec.permute is not None
    a, b = related_pair(40, 4, 6, noise=0.5, seed=18)
    assert compute("shape_distance", a, b, alpha=0.3) == shape.shape_distance(a, b, alpha=0.3)
    with pytest.raises(InputError, match="parameter alpha must be <= 1.0"):
        compute("shape_distance", a, b, alpha=1.5)
    with pytest.raises(InputError, match="n_folds must be 0 \\(in-sample\\) or in \\[2, n/2 = 20\\], got 1"):
        compute("shape_distance", a, b, n_folds=1)
    with pytest.raises(InputError, match="score_method must be one of"):
        compute("shape_distance", a, b, score_method="cosine")
    with pytest.raises(InputError, match="feats_a has 40 rows but feats_b has 39"):
        shape.shape_distance(a, b[:39])
    with pytest.raises(InputError, match="zero variance"):
        shape.shape_distance(a, np.ones((40, 3)))


@pytest.mark.parametrize(
    "params",
    [
        {"alpha": 0.5},
        {"alpha": 0.0, "n_folds": 3, "seed": 2},
        {"alpha": 1.0, "score_method": "euclidean", "n_folds": 4},
    ],
)
def test_layer_matrix_and_permutation_use_the_split_form_faithfully(params):
    layers_a = [related_pair(36, w, 2, noise=0.5, seed=19 + w)[0] for w in (3, 6)]
    layers_b = [related_pair(36, 2, w, noise=0.5, seed=19 + w)[1] for w in (2, 5, 4)]
    result = layer_matrix(layers_a, layers_b, "shape_distance", **params)
    for i, j in itertools.product(range(2), range(3)):
        assert result.values[i, j] == pytest.approx(shape.shape_distance(layers_a[i], layers_b[j], **params), abs=1e-12)
    spec = get_metric("shape_distance")
    resolved = spec.resolve_params(params)
    perm = np.random.default_rng(20).permutation(36)
    state_a, state_b = (spec.prepare(x, **resolved) for x in (layers_a[0], layers_b[1]))
    permuted = spec.compare(state_a, spec.permute(state_b, perm), **resolved)
    assert permuted == pytest.approx(shape.shape_distance(layers_a[0], layers_b[1][perm], **params), abs=1e-12)


def test_bootstrap_sample_ids_keep_copies_in_one_fold():
    a, b = related_pair(40, 4, 4, noise=0.5, seed=21)
    rows = np.random.default_rng(22).integers(0, 40, 40)
    value = shape.shape_distance(a[rows], b[rows], n_folds=4, sample_ids=rows)
    assert value == shape.shape_distance(a[rows], b[rows], n_folds=4, sample_ids=rows)
    # the copies move whole samples between folds, so the partition (and the value) differs
    assert value != shape.shape_distance(a[rows], b[rows], n_folds=4)


def test_pairwise_matrix_is_a_distance_matrix_that_clusters():
    rng = np.random.default_rng(23)
    groups = [rng.standard_normal((50, 4)) for _ in range(2)]
    feats = [g @ rng.standard_normal((4, w)) + 0.1 * rng.standard_normal((50, w)) for g in groups for w in (4, 6, 9)]
    for n_folds in (0, 5):
        matrix = shape.pairwise_shape_distances(feats, 0.5, n_folds=n_folds)
        assert matrix.shape == (6, 6) and np.array_equal(matrix, matrix.T) and (np.diag(matrix) == 0).all()
        assert matrix[0, 4] == pytest.approx(
            shape.shape_distance(feats[0], feats[4], alpha=0.5, n_folds=n_folds), abs=1e-12
        )
        labels = fcluster(linkage(squareform(matrix), "average"), 2, criterion="maxclust")
        assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    with pytest.raises(InputError, match="representation 0 has 50 rows but representation 1 has 49"):
        shape.pairwise_shape_distances([feats[0], feats[1][:49]])
