import itertools
import math

import numpy as np
import pytest
import slow_reference as ref
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

from alignscope.core.errors import InputError
from alignscope.core.metrics import gram, relative, rsa


def slow_tau_a(x, y):
    total = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        total += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    return total / (len(x) * (len(x) - 1) / 2)


@pytest.mark.parametrize("rdm_method,scipy_name", [("correlation", "correlation"), ("euclidean", "euclidean")])
def test_rsa_matches_scipy_rdms_and_correlations(rdm_method, scipy_name):
    a, b = ref.gaussian(14, 6, 0), ref.gaussian(14, 4, 1)
    b[:, :2] += a[:, :2]
    rdm_a, rdm_b = pdist(a, scipy_name), pdist(b, scipy_name)
    assert rsa.rdm(__import__("torch").from_numpy(a), rdm_method) == pytest.approx(rdm_a, abs=1e-12)
    assert rsa.rsa(a, b, rdm_method=rdm_method) == pytest.approx(spearmanr(rdm_a, rdm_b).statistic, abs=1e-12)
    assert rsa.rsa(a, b, rdm_method=rdm_method, compare="pearson") == pytest.approx(
        pearsonr(rdm_a, rdm_b).statistic, abs=1e-12
    )
    assert rsa.rsa(a, b, rdm_method=rdm_method, compare="kendall") == pytest.approx(slow_tau_a(rdm_a, rdm_b), abs=1e-12)


def test_kendall_tau_a_counts_ties_as_neither():
    x = np.array([1, 1, 2, 3, 3, 3, 4.0])
    y = np.array([2, 1, 1, 3, 4, 4, 0.0])
    assert rsa.kendall_tau_a(x, y) == pytest.approx(slow_tau_a(x, y), abs=1e-12)


def test_rsa_translation_changes_correlation_rdm_and_constant_rows_error():
    a = ref.gaussian(20, 3, 2)
    assert rsa.rsa(a, a + np.array([5.0, 0, 0])) < 0.95
    with pytest.raises(InputError, match="sample 0 is constant"):
        rsa.rsa(np.vstack([np.ones(3), a[1:]]), a)


def test_relative_representation_matches_loops_and_anchor_choice():
    a, b = ref.gaussian(30, 5, 3), ref.gaussian(30, 7, 4)
    anchors = [1, 4, 9, 20]
    unit_a, unit_b = ref.unit_rows(a), ref.unit_rows(b)
    cosines = []
    for i in range(30):
        rel_a = np.array([unit_a[i] @ unit_a[j] for j in anchors])
        rel_b = np.array([unit_b[i] @ unit_b[j] for j in anchors])
        cosines.append(rel_a @ rel_b / np.linalg.norm(rel_a) / np.linalg.norm(rel_b))
    assert relative.relative_similarity(a, b, anchors=anchors) == pytest.approx(np.mean(cosines), abs=1e-12)
    assert relative.choose_anchors(30, 5, seed=1).tolist() == relative.choose_anchors(30, 5, seed=1).tolist()
    assert relative.relative_similarity(a, b, n_anchors=5, seed=1) != relative.relative_similarity(
        a, b, n_anchors=5, seed=2
    )
    with pytest.raises(InputError, match="anchors must be"):
        relative.relative_similarity(a, b, anchors=[30])


@pytest.mark.parametrize("theta", [0.0, 0.3, math.pi / 2, 2.0, math.pi])
def test_gram_of_two_unit_vectors_is_abs_sin(theta):
    a = np.array([[1.0, 0.0, 0.0]] * 3)
    b = np.array([[math.cos(theta), math.sin(theta), 0.0]] * 3) * 7.0
    assert gram.gram_volume(a, b) == pytest.approx(abs(math.sin(theta)), abs=1e-7)


def test_gram_of_three_models_is_the_parallelepiped_volume():
    rng = np.random.default_rng(5)
    feats = [rng.standard_normal((6, 3)) for _ in range(3)]
    expected = [abs(np.linalg.det(np.stack([ref.unit_rows(f)[i] for f in feats]))) for i in range(6)]
    got = gram.gram_volume_per_sample(*feats).numpy()
    assert got == pytest.approx(expected, abs=1e-10)
    assert gram.gram_volume(*feats) == pytest.approx(np.mean(expected), abs=1e-10)


def test_gram_requires_a_shared_space_and_is_not_rotation_invariant():
    a = ref.gaussian(10, 4, 6)
    with pytest.raises(InputError, match="GRAM needs embeddings in one shared space"):
        gram.gram_volume(a, ref.gaussian(10, 5, 7))
    assert gram.gram_volume(a, a @ ref.random_orthogonal(4, 8)) > 0.3
