import numpy as np
import pytest
import slow_reference as ref
from scipy.linalg import orthogonal_procrustes
from sklearn.linear_model import Ridge

from alignscope.core.errors import InputError
from alignscope.core.metrics import cca, geometry


def inv_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return vectors @ np.diag(values**-0.5) @ vectors.T


def slow_cca(a, b, reg=0.0):
    a, b = a - a.mean(0), b - b.mean(0)
    caa, cbb = a.T @ a, b.T @ b
    caa = caa + reg * np.trace(caa) / caa.shape[0] * np.eye(caa.shape[0])
    cbb = cbb + reg * np.trace(cbb) / cbb.shape[0] * np.eye(cbb.shape[0])
    wa = inv_sqrt(caa)
    p, rho, _ = np.linalg.svd(wa @ (a.T @ b) @ inv_sqrt(cbb))
    n_dirs = min(a.shape[1], b.shape[1])
    return rho[:n_dirs], a @ wa @ p[:, :n_dirs]


def related(n, d_a, d_b, seed):
    a, b = ref.gaussian(n, d_a, seed), ref.gaussian(n, d_b, seed + 1)
    b[:, :2] += a[:, :2] @ np.array([[1.0, 0.5], [0.2, 1.0]])
    return a, b


@pytest.mark.parametrize("reg", [0.0, 0.1])
def test_mean_cca_matches_covariance_formula(reg):
    a, b = related(80, 5, 7, 0)
    rho, _ = slow_cca(a, b, reg)
    assert cca.canonical_correlations(a, b, reg=reg).numpy() == pytest.approx(rho, abs=1e-10)
    assert cca.mean_cca(a, b, reg=reg) == pytest.approx(rho.mean(), abs=1e-10)


def test_pwcca_weights_by_projection_onto_a():
    a, b = related(80, 5, 7, 2)
    rho, variates = slow_cca(a, b)
    variates = variates / np.linalg.norm(variates, axis=0)
    weights = np.abs(variates.T @ (a - a.mean(0))).sum(axis=1)
    assert cca.pwcca(a, b) == pytest.approx((weights * rho).sum() / weights.sum(), abs=1e-10)
    assert cca.pwcca(a, b) != pytest.approx(cca.pwcca(b, a), abs=1e-6)  # asymmetric


def test_svcca_keeps_the_variance_asked_for():
    rng = np.random.default_rng(3)
    signal = rng.standard_normal((100, 3))
    a = np.hstack([signal * 10, rng.standard_normal((100, 5)) * 0.01])  # 3 strong directions
    b = signal @ rng.standard_normal((3, 6)) + 0.01 * rng.standard_normal((100, 6))
    assert cca.svcca(a, b, keep_variance=0.99) > 0.99
    u, s, _ = np.linalg.svd(a - a.mean(0), full_matrices=False)
    u_b, s_b, _ = np.linalg.svd(b - b.mean(0), full_matrices=False)
    rho, _ = slow_cca(u[:, :3] * s[:3], u_b[:, :3] * s_b[:3])
    assert cca.svcca(a, b, n_components=3) == pytest.approx(rho.mean(), abs=1e-10)


def test_cca_invariant_to_invertible_maps_and_stable_when_d_exceeds_n():
    a, b = related(60, 4, 4, 4)
    mix = np.array([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 5, 1], [1, 0, 0, 1]])
    assert cca.mean_cca(a, b @ mix + 3) == pytest.approx(cca.mean_cca(a, b), abs=1e-10)
    wide_a, wide_b = ref.gaussian(20, 50, 5), ref.gaussian(20, 60, 6)
    first = cca.mean_cca(wide_a, wide_b)
    assert first == cca.mean_cca(wide_a, wide_b)  # deterministic
    assert first == pytest.approx(1.0, abs=1e-8)  # unregularised CCA overfits, as documented
    regularised = cca.mean_cca(wide_a, wide_b, reg=1.0)
    assert np.isfinite(regularised) and regularised < 0.9
    assert 0.0 <= cca.svcca(wide_a, wide_b, n_components=5) <= 1.0
    with pytest.raises(InputError, match="zero variance"):
        cca.mean_cca(a, np.ones((60, 2)))


def test_procrustes_matches_scipy_with_zero_padding():
    a, b = related(50, 4, 6, 7)

    def normalised(x):
        x = x - x.mean(0)
        return x / np.linalg.norm(x)

    na, nb = normalised(a), normalised(b)
    na = np.hstack([na, np.zeros((50, 2))])
    rotation, _ = orthogonal_procrustes(nb, na)
    expected = 1 - np.linalg.norm(na - nb @ rotation) ** 2 / 2
    assert geometry.procrustes(a, b) == pytest.approx(expected, abs=1e-10)
    wide_a, wide_b = ref.gaussian(10, 30, 8), ref.gaussian(10, 40, 9)  # d > n path
    na, nb = normalised(wide_a), np.hstack([normalised(wide_b)])
    na = np.hstack([na, np.zeros((10, 10))])
    rotation, _ = orthogonal_procrustes(nb, na)
    assert geometry.procrustes(wide_a, wide_b) == pytest.approx(
        1 - np.linalg.norm(na - nb @ rotation) ** 2 / 2, abs=1e-10
    )


def test_ridge_r2_matches_sklearn_with_the_same_folds():
    a, b = related(60, 5, 3, 10)
    folds = [fold.numpy() for fold in geometry.kfold_indices(60, 4, seed=1)]
    residual = total = 0.0
    for index, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != index])
        x_c = a[train] - a[train].mean(0)
        model = Ridge(alpha=0.05 * (x_c**2).sum() / 5).fit(a[train], b[train])
        residual += ((b[test] - model.predict(a[test])) ** 2).sum()
        total += ((b[test] - b[train].mean(0)) ** 2).sum()
    value = geometry.ridge_r2(a, b, alpha=0.05, n_folds=4, seed=1)
    assert value == pytest.approx(1 - residual / total, abs=1e-10)
    assert geometry.ridge_r2(a, b, direction="b_to_a", n_folds=4) != pytest.approx(value, abs=1e-3)


def test_ridge_r2_on_independent_data_is_at_most_zero():
    a, b = ref.gaussian(200, 5, 11), ref.gaussian(200, 5, 12)
    assert -0.2 < geometry.ridge_r2(a, b) < 0.02


def test_ridge_with_alpha_zero_on_collinear_features_is_the_least_squares_fit_not_an_error():
    import numpy as np
    import torch

    from alignscope.core.metrics.registry import compute

    generator = torch.Generator().manual_seed(0)
    base = torch.randn(80, 5, dtype=torch.float64, generator=generator)
    collinear = torch.cat([base, base[:, :2] * 2.0], dim=1)  # rank 5 in 7 columns: singular normal equations
    target = base @ torch.randn(5, 3, dtype=torch.float64, generator=generator)
    # an exact linear map exists, so the minimum-norm least-squares fit predicts held-out rows perfectly
    assert compute("ridge_r2", collinear, target, alpha=0.0) == pytest.approx(1.0, abs=1e-8)
    assert np.isfinite(compute("retrieval_top1", collinear, target, alpha=0.0))


def test_least_squares_on_float32_features_wider_than_the_train_rows_ignores_rounding_noise():
    """Features from float32 nets with d > n: the directions below float32 precision are rounding noise.

    Inverting them (pinv at float64 precision) fitted that noise: on EfficientNet-Lite0 vs Lite1 heads
    (digits, n = 500, d = 1280) R² was −0.673 where scikit-learn's LinearRegression on the same folds
    gives −0.443. Here the same situation, planted: a rank-20 signal in 300 float32 columns, 80 rows.
    """
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    latent = rng.normal(size=(80, 20))
    a = (latent @ rng.normal(size=(20, 300))).astype(np.float32)  # rank 20 in exact arithmetic
    b = (latent @ rng.normal(size=(20, 40)) + 0.5 * rng.normal(size=(80, 40))).astype(np.float32)
    residual = total = 0.0
    for test in geometry.kfold_indices(80, 5, 0):
        test = test.numpy()
        train = np.setdiff1d(np.arange(80), test)
        fitted = LinearRegression().fit(a[train].astype(np.float64), b[train].astype(np.float64))
        residual += ((b[test] - fitted.predict(a[test].astype(np.float64))) ** 2).sum()
        total += ((b[test] - b[train].mean(0)) ** 2).sum()
    assert geometry.ridge_r2(a, b, alpha=0.0) == pytest.approx(1 - residual / total, abs=1e-6)
    assert geometry.ridge_r2(a, b, alpha=0.0) > 0.5  # the planted signal is predictable
