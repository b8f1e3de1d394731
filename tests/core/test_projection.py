"""PCA / UMAP / aligned UMAP: properties, not snapshots. UMAP tests are tiny and marked slow (numba JIT)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from alignscope.core import projection
from alignscope.core.errors import InputError


def _blobs(n_per_blob: int = 40, dim: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian blobs in ``dim`` dimensions and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 10.0
    labels = np.repeat(np.arange(3), n_per_blob)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def _knn_label_purity(coords: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Fraction of each point's k nearest 2-D neighbours that share its label."""
    distances = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :k]
    return float((labels[neighbours] == labels[:, None]).mean())


# --------------------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------------------


def test_pca_explained_variance_is_descending_and_sums_to_at_most_one():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 6)) * np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    result = projection.pca(feats, n_components=6)
    assert np.all(np.diff(result.explained_variance) <= 0)
    assert np.isclose(result.explained_variance_ratio.sum(), 1.0)
    # The scores' variances are the explained variances, and the axes are orthonormal.
    np.testing.assert_allclose(result.coords.var(axis=0, ddof=1), result.explained_variance, rtol=1e-10)
    np.testing.assert_allclose(result.components @ result.components.T, np.eye(6), atol=1e-10)


@pytest.mark.parametrize("shape", [(80, 12), (12, 80)], ids=["tall-covariance", "wide-gram"])
def test_pca_matches_sklearn_full_solver_up_to_sign(shape):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    feats = rng.normal(size=shape) @ np.diag(rng.uniform(0.5, 3.0, size=shape[1]))
    ours = projection.pca(feats, n_components=3)
    reference = PCA(n_components=3, svd_solver="full").fit(feats)
    np.testing.assert_allclose(ours.explained_variance, reference.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(ours.components), np.abs(reference.components_), atol=1e-8)
    np.testing.assert_allclose(np.abs(ours.coords), np.abs(reference.transform(feats)), atol=1e-8)


@pytest.mark.parametrize("shape", [(50, 8), (8, 50)], ids=["tall", "wide"])
def test_pca_is_deterministic_and_sign_convention_holds(shape):
    feats = np.random.default_rng(2).normal(size=shape)
    first, second = projection.pca(feats, n_components=2), projection.pca(feats.copy(), n_components=2)
    np.testing.assert_array_equal(first.coords, second.coords)
    biggest = np.argmax(np.abs(first.components), axis=1)
    assert np.all(first.components[np.arange(2), biggest] > 0)


def test_pca_of_data_in_a_2d_plane_preserves_all_distances():
    rng = np.random.default_rng(4)
    plane_coords = rng.normal(size=(60, 2)) * np.array([3.0, 1.0])
    basis, _ = np.linalg.qr(rng.normal(size=(30, 2)))  # an orthonormal 2-D plane in 30-D
    feats = plane_coords @ basis.T + rng.normal(size=30)  # shifted off the origin too
    coords = projection.pca_2d(torch.as_tensor(feats, dtype=torch.float64))
    np.testing.assert_allclose(pdist(coords), pdist(plane_coords), rtol=1e-9, atol=1e-9)
    assert np.isclose(projection.pca(feats, 2).explained_variance_ratio.sum(), 1.0)


def test_pca_of_rank_one_data_has_a_zero_second_component():
    feats = np.outer(np.arange(10.0), np.array([1.0, 2.0, 3.0]))
    result = projection.pca(feats, n_components=2)
    assert result.explained_variance_ratio[0] == pytest.approx(1.0)
    np.testing.assert_allclose(result.coords[:, 1], 0.0, atol=1e-9)


def test_pca_2d_of_one_column_pads_with_zeros():
    coords = projection.pca_2d(np.arange(5.0)[:, None])
    assert coords.shape == (5, 2)
    assert np.all(coords[:, 1] == 0)


def test_pca_rejects_bad_input():
    with pytest.raises(InputError, match="NaN"):
        projection.pca(np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(InputError, match="n_components"):
        projection.pca(np.eye(3), n_components=4)


# --------------------------------------------------------------------------------------------------
# UMAP (numba JIT: the first call in a process costs tens of seconds)
# --------------------------------------------------------------------------------------------------


def test_umap_parameter_errors_come_before_importing_umap():
    with pytest.raises(InputError, match="at least 5"):
        projection.umap_2d(np.eye(4))
    with pytest.raises(InputError, match="metric"):
        projection.umap_2d(np.eye(6), metric="hamming")
    with pytest.raises(InputError, match="same samples"):
        projection.aligned_umap_2d(np.eye(6), np.eye(7))
    with pytest.raises(InputError, match="alignment_regularisation"):
        projection.aligned_umap_2d(np.eye(6), np.eye(6), alignment_regularisation=-1.0)


@pytest.mark.slow
def test_umap_keeps_separated_clusters_separated_and_is_deterministic():
    feats, labels = _blobs(n_per_blob=40)
    epochs = []
    coords = projection.umap_2d(
        feats, metric="euclidean", n_epochs=100, seed=3, progress=lambda d, t: epochs.append((d, t))
    )
    assert coords.shape == (120, 2) and coords.dtype == np.float64
    assert _knn_label_purity(coords, labels) > 0.95
    again = projection.umap_2d(feats, metric="euclidean", n_epochs=100, seed=3)
    np.testing.assert_array_equal(coords, again)
    assert epochs and epochs[-1] == (100, 100)


@pytest.mark.slow
def test_aligned_umap_pulls_identical_inputs_together():
    feats, labels = _blobs(n_per_blob=30, seed=5)
    progress = []
    aligned_a, aligned_b = projection.aligned_umap_2d(
        feats,
        feats,
        alignment_regularisation=0.5,
        n_epochs=100,
        seed=0,
        progress=lambda d, t: progress.append(d),
    )
    assert aligned_a.shape == aligned_b.shape == (90, 2)
    assert progress == [0, 2]
    assert _knn_label_purity(aligned_a, labels) > 0.95
    # Two independent UMAPs of the same data (different seeds) land in different places; the aligned pair
    # of the same data sits on top of each other.
    free_a = projection.umap_2d(feats, n_epochs=100, seed=1)
    free_b = projection.umap_2d(feats, n_epochs=100, seed=2)

    def mean_gap(a: np.ndarray, b: np.ndarray) -> float:
        scale = np.linalg.norm(np.vstack([a, b]) - np.vstack([a, b]).mean(0), axis=1).mean()
        return float(np.linalg.norm(a - b, axis=1).mean() / scale)

    assert mean_gap(aligned_a, aligned_b) < 0.5 * mean_gap(free_a, free_b)


@pytest.mark.slow
def test_warm_up_runs():
    assert projection.warm_up() > 0


def test_umap_on_alignscopes_own_neighbour_graph_is_as_faithful_as_on_nn_descent():
    from sklearn.manifold import trustworthiness

    from alignscope.core.neighbors import knn_indices
    from alignscope.core.projection import neighbour_graph, umap_2d

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4, size=(6, 20))
    x = centres[rng.integers(0, 6, 400)] + rng.normal(size=(400, 20))
    indices, distances = neighbour_graph(x, 15, "cosine")
    assert (indices[:, 0] == np.arange(400)).all() and (distances[:, 0] == 0).all()
    assert np.array_equal(indices[:, 1:], knn_indices(torch.as_tensor(x), 14).numpy())
    assert (np.diff(distances, axis=1) >= -1e-6).all()  # nearest first
    ours = umap_2d(x, graph_from=0, n_epochs=100)
    assert np.array_equal(ours, umap_2d(x, graph_from=0, n_epochs=100))  # seeded: reproducible
    theirs = umap_2d(x, n_epochs=100)
    assert trustworthiness(x, ours, n_neighbors=10) > 0.9
    assert abs(trustworthiness(x, ours, n_neighbors=10) - trustworthiness(x, theirs, n_neighbors=10)) < 0.02
