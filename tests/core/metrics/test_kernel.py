import numpy as np
import pytest
import slow_reference as ref
import torch

from alignscope.core.errors import InputError
from alignscope.core.metrics import kernel


@pytest.mark.parametrize("n,d_a,d_b", [(40, 5, 8), (12, 30, 20), (25, 25, 3)])  # feature and Gram forms
def test_linear_and_debiased_cka_match_textbook_formulas(n, d_a, d_b):
    a, b = ref.gaussian(n, d_a, 1), ref.gaussian(n, d_b, 2)
    b[:, :2] += a[:, :2]
    assert kernel.linear_cka(a, b) == pytest.approx(ref.linear_cka(a, b), abs=1e-12)
    assert kernel.debiased_cka(a, b) == pytest.approx(ref.debiased_cka(a, b), abs=1e-12)


def test_feature_form_equals_gram_form_in_prepared_states():
    a, b = ref.gaussian(50, 7, 3), ref.gaussian(50, 4, 4)
    b[:, 0] += a[:, 0]
    for prepare, compare in (
        (kernel._prepare_linear, kernel._compare_linear),
        (kernel._prepare_debiased, kernel._compare_debiased),
    ):
        by_gram = compare(prepare(a, gram=True), prepare(b, gram=True))
        by_features = compare(prepare(a, gram=False), prepare(b, gram=False))
        assert by_gram == pytest.approx(by_features, abs=1e-12)


def test_rbf_cka_matches_slow_kernel():
    a, b = ref.gaussian(30, 4, 5), ref.gaussian(30, 6, 6)
    b[:, :2] += a[:, :2]
    for factor in (0.5, 1.0, 2.0):
        assert kernel.rbf_cka(a, b, sigma_factor=factor) == pytest.approx(ref.rbf_cka(a, b, factor), abs=1e-12)


@pytest.mark.parametrize("metric", [kernel.linear_cka, kernel.debiased_cka, kernel.rbf_cka])
def test_claimed_invariances_hold(metric):
    a = ref.gaussian(60, 12, 7)
    q = ref.random_orthogonal(12, 8)
    assert metric(a, a) == pytest.approx(1.0, abs=1e-12)
    assert metric(a, 3 * a @ q) == pytest.approx(1.0, abs=1e-12)  # CKA(X, 3·X·Q) = 1
    assert metric(a, a + 5.0) == pytest.approx(1.0, abs=1e-12)
    assert metric(a, a[:, ::-1]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("metric", [kernel.linear_cka, kernel.debiased_cka, kernel.rbf_cka])
def test_anisotropic_scaling_is_not_an_invariance(metric):
    a = ref.gaussian(60, 6, 9)
    stretch = np.diag([10.0, 1, 1, 1, 1, 0.1])
    assert metric(a, a @ stretch) < 0.9


def test_independent_gaussians_biased_is_about_point_two_and_debiased_about_zero():
    a, b = ref.gaussian(1024, 256, 10), ref.gaussian(1024, 256, 11)
    # biased linear CKA of independent Gaussians ≈ d / sqrt((n + d)²) ... ≈ 0.2 at n=1024, d=256
    assert kernel.linear_cka(a, b) == pytest.approx(0.20, abs=0.01)
    # debiased: the unbiased HSIC has mean 0; its sd here is ~1/n
    assert abs(kernel.debiased_cka(a, b)) < 0.005


def test_symmetry_range_and_inputs():
    a, b = ref.gaussian(40, 5, 12), ref.gaussian(40, 8, 13)
    for metric in (kernel.linear_cka, kernel.debiased_cka, kernel.rbf_cka):
        assert metric(a, b) == pytest.approx(metric(b, a), abs=1e-12)
    assert 0.0 <= kernel.linear_cka(a, b) <= 1.0
    assert kernel.linear_cka(torch.from_numpy(a).float(), b) == pytest.approx(kernel.linear_cka(a, b), abs=1e-6)


def test_zero_variance_is_a_clear_error():
    a = ref.gaussian(20, 3, 14)
    with pytest.raises(InputError, match="layer 0 has zero variance"):
        kernel.linear_cka(a, np.ones((20, 4)), name_b="layer 0")
    with pytest.raises(InputError, match="zero variance"):
        kernel.debiased_cka(np.zeros((20, 2)), a)


def test_u_centering_gives_song_unbiased_hsic():
    a, b = ref.gaussian(15, 3, 15), ref.gaussian(15, 4, 16)
    K, L = a @ a.T, b @ b.T
    uk = kernel.u_center_gram(torch.from_numpy(K)).numpy()
    ul = kernel.u_center_gram(torch.from_numpy(L)).numpy()
    assert (uk * ul).sum() / (15 * 12) == pytest.approx(ref.hsic_unbiased(K, L), abs=1e-12)
