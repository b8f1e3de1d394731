"""2-D projections of feature matrices: exact PCA, UMAP and aligned UMAP of two models.

Inputs are ``[n, d]`` features (torch tensors or numpy arrays, rows = samples); outputs are
``[n, 2]`` float64 numpy arrays whose rows are the same samples in the same order. Every projection is
deterministic: PCA is an exact eigendecomposition with a fixed sign convention, and UMAP takes a
``seed`` (which also makes it single-threaded: umap-learn's parallel SGD is not reproducible).

UMAP (umap-learn) JIT-compiles with numba on first use, ~45 s on a laptop. ``import umap`` happens only
inside these functions, after :func:`core.settings.get_settings` has pointed ``NUMBA_CACHE_DIR`` at the
cache, so pynndescent's compiled code (``cache=True``) is reused across processes; umap's own layout code
is compiled anew in each process, so :func:`warm_up` pays for it once on tiny data in a process that stays
up (the dashboard's worker, :mod:`alignscope.core.analysis.worker`).
UMAP and aligned UMAP use the cosine metric by default, the similarity :mod:`core.neighbors` ranks by.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import check_features

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(steps_done, steps_total)``; for UMAP the steps are optimisation epochs."""

MIN_UMAP_SAMPLES = 5
UMAP_METRICS = ("cosine", "euclidean")


def _as_float64(feats: Any, name: str, *, min_samples: int = 2) -> np.ndarray:
    tensor = check_features(feats, name, min_samples=min_samples)
    return tensor.detach().to("cpu").double().numpy()


# --------------------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PCAResult:
    """Scores of the samples on the leading principal components.

    Attributes:
        coords: ``[n, n_components]`` float64 scores (centred data times the components).
        components: ``[n_components, d]`` unit-norm principal axes, in order of explained variance.
        explained_variance: ``[n_components]`` variance along each axis (ddof=1), descending.
        explained_variance_ratio: the same as a fraction of the total variance.
    """

    coords: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray


def pca(feats: Any, n_components: int = 2) -> PCAResult:
    """Exact PCA of ``feats`` [n, d] (centred, not scaled), deterministic down to the sign.

    The eigendecomposition is of the smaller of the d x d covariance and the n x n Gram matrix, in
    float64, so wide (n < d) and tall inputs are both cheap. Signs: each component's largest-magnitude
    loading is positive (sklearn's ``svd_flip`` convention on the components). Components beyond the
    rank of the data are zero.

    Args:
        feats: [n, d] features, n >= 2.
        n_components: how many components (1 <= n_components <= d).

    Returns:
        :class:`PCAResult`; ``coords`` is [n, n_components].

    Example:
        >>> import numpy as np
        >>> result = pca(np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.1]]), n_components=1)
        >>> result.coords.shape, bool(result.explained_variance_ratio[0] > 0.99)
        ((3, 1), True)
    """
    data = _as_float64(feats, "feats")
    n_samples, n_features = data.shape
    if not 1 <= n_components <= n_features:
        raise InputError(f"n_components must be between 1 and {n_features} (the feature width), got {n_components}")
    centred = data - data.mean(axis=0, keepdims=True)
    total_variance = float((centred**2).sum() / (n_samples - 1))
    if n_features <= n_samples:
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)  # ascending
        order = np.argsort(-eigenvalues, kind="stable")[:n_components]
        components = eigenvectors[:, order].T
        sq_singular = np.clip(eigenvalues[order], 0.0, None)
    else:
        eigenvalues, eigenvectors = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(-eigenvalues, kind="stable")[:n_components]
        sq_singular = np.clip(eigenvalues[order], 0.0, None)
        # V = X^T U / s; directions with (numerically) zero variance stay zero.
        scale = np.sqrt(sq_singular)
        tolerance = max(scale.max(initial=0.0), 1.0) * 1e-12 * max(n_samples, n_features)
        safe = np.where(scale > tolerance, scale, np.inf)
        components = (centred.T @ eigenvectors[:, order] / safe).T
    # Eigenvalues below rounding noise are a rank deficit, not a direction of the data.
    rank_tolerance = max(sq_singular.max(initial=0.0), 1e-300) * 1e-15 * max(n_samples, n_features)
    components[sq_singular <= rank_tolerance] = 0.0
    sq_singular = np.where(sq_singular <= rank_tolerance, 0.0, sq_singular)
    # Deterministic signs: the largest-magnitude loading of each component is positive.
    biggest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(n_components), biggest])
    signs[signs == 0] = 1.0
    components = components * signs[:, None]
    explained_variance = sq_singular / (n_samples - 1)
    ratio = explained_variance / total_variance if total_variance > 0 else np.zeros_like(explained_variance)
    return PCAResult(
        coords=centred @ components.T,
        components=components,
        explained_variance=explained_variance,
        explained_variance_ratio=ratio,
    )


def pca_2d(feats: Any) -> np.ndarray:
    """The first two principal-component scores, [n, 2]; a 1-wide input gets a zero second column."""
    data = _as_float64(feats, "feats")
    result = pca(data, n_components=min(2, data.shape[1]))
    if result.coords.shape[1] == 2:
        return result.coords
    return np.column_stack([result.coords[:, 0], np.zeros(data.shape[0])])


# --------------------------------------------------------------------------------------------------
# UMAP
# --------------------------------------------------------------------------------------------------


def _import_umap():
    """``import umap`` only after the settings have pointed numba at its persistent cache."""
    from alignscope.core.settings import get_settings

    get_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

    return umap


class _EpochReporter:
    """A file-like sink for umap's tqdm bar that turns ``"<done>/<total>"`` into ``progress`` calls.

    umap-learn has no progress callback, but it forwards ``tqdm_kwds`` to the bar over its epochs; the
    bar is given this object as its file and a bare ``n/total`` format. Anything unparsable is ignored.
    """

    _pattern = re.compile(r"(\d+)/(\d+)")

    def __init__(self, progress: ProgressCallback):
        self.progress = progress
        self.last = -1

    def write(self, text: str) -> int:
        for done, total in self._pattern.findall(text):
            if int(done) != self.last:
                self.last = int(done)
                self.progress(int(done), int(total))
        return len(text)

    def flush(self) -> None:
        pass


def _tqdm_kwds(progress: ProgressCallback | None) -> dict:
    if progress is None:
        return {"disable": True}
    return {
        "disable": False,
        "file": _EpochReporter(progress),
        "bar_format": "{n}/{total}",
        "mininterval": 0.25,
        "ascii": True,
    }


def _check_umap_params(n_samples: int, n_neighbors: int, min_dist: float, metric: str) -> int:
    if n_samples < MIN_UMAP_SAMPLES:
        raise InputError(f"UMAP needs at least {MIN_UMAP_SAMPLES} samples, got {n_samples}; use PCA instead")
    if n_neighbors < 2:
        raise InputError(f"n_neighbors must be at least 2, got {n_neighbors}")
    if not 0.0 <= min_dist <= 1.0:
        raise InputError(f"min_dist must be between 0 and 1, got {min_dist}")
    if metric not in UMAP_METRICS:
        raise InputError(f"metric {metric!r} is not one of {UMAP_METRICS}")
    return min(n_neighbors, n_samples - 1)


GRAPH_FROM_SAMPLES = 4096


def neighbour_graph(data: np.ndarray, n_neighbors: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """umap-learn's ``precomputed_knn``: (indices [n, n_neighbors] int64, distances float32), each row
    starting with the sample itself at distance 0; cosine distance 1 − cos, or Euclidean distance. The
    search is exact below the approximate search's threshold, approximate (IVF-Flat) above it."""
    from alignscope.core.ann import APPROX_MIN_SAMPLES
    from alignscope.core.neighbors import search_neighbors

    mode = "approx" if data.shape[0] >= APPROX_MIN_SAMPLES else "exact"
    found = search_neighbors(
        data.astype(np.float32), n_neighbors - 1, similarity=metric, neighbors=mode, return_values=True
    )
    assert found.values is not None  # asked for with return_values
    values = found.values.numpy()
    distances = 1.0 - values if metric == "cosine" else np.sqrt(np.maximum(-values, 0.0))
    n = data.shape[0]
    indices = np.concatenate([np.arange(n)[:, None], found.indices.numpy()], axis=1)
    distances = np.concatenate([np.zeros((n, 1)), np.maximum(distances, 0.0)], axis=1)
    return indices.astype(np.int64), distances.astype(np.float32)


def umap_2d(
    feats: Any,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    n_epochs: int | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    graph_from: int = GRAPH_FROM_SAMPLES,
) -> np.ndarray:
    """UMAP embedding of ``feats`` [n, d] into 2-D, seeded (same inputs and seed -> identical output).

    From ``graph_from`` samples on, the neighbour graph is Alignscope's own search (exact below
    :data:`alignscope.core.ann.APPROX_MIN_SAMPLES`, approximate IVF-Flat above, recall measured) passed
    to umap-learn as ``precomputed_knn``, instead of umap's NN-descent: at 10^4-10^5 samples that search is
    most of a UMAP's time.

    Args:
        feats: [n, d] features, n >= 5.
        n_neighbors: size of the local neighbourhood (clamped to n - 1).
        min_dist: how tightly points may pack in 2-D.
        metric: ``cosine`` (default, as :mod:`core.neighbors`) or ``euclidean``.
        n_epochs: optimisation epochs; ``None`` lets umap choose (200 for n > 10,000, else 500).
        seed: random seed.
        progress: ``progress(epochs_done, n_epochs)`` during the optimisation.

    Returns:
        [n, 2] float64 coordinates.
    """
    data = _as_float64(feats, "feats", min_samples=MIN_UMAP_SAMPLES)
    n_neighbors = _check_umap_params(data.shape[0], n_neighbors, min_dist, metric)
    umap = _import_umap()
    graph = neighbour_graph(data, n_neighbors, metric) if data.shape[0] >= graph_from else None
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        n_components=2,
        min_dist=min_dist,
        metric=metric,
        n_epochs=n_epochs,
        random_state=int(seed),
        tqdm_kwds=_tqdm_kwds(progress),
        precomputed_knn=graph if graph is not None else (None, None, None),
    )
    with warnings.catch_warnings():
        # random_state forces n_jobs=1 (reproducibility) and umap warns about it each time.
        warnings.simplefilter("ignore")
        coords = reducer.fit_transform(data.astype(np.float32))
    return np.asarray(coords, dtype=np.float64)


def aligned_umap_2d(
    feats_a: Any,
    feats_b: Any,
    *,
    alignment_regularisation: float = 1e-2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    n_epochs: int | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned UMAP of two models' features of the same samples: one 2-D map each, pulled together.

    ``umap.AlignedUMAP`` with the identity relation (sample i of A is sample i of B). The larger
    ``alignment_regularisation``, the more each sample is held at the same place in both maps; at 0 the
    two maps are independent UMAPs (up to the shared Procrustes-aligned initialisation).

    Args:
        feats_a: [n, d_a] features of model A.
        feats_b: [n, d_b] features of model B, same samples in the same order.
        alignment_regularisation: strength of the pull between a sample's two positions (>= 0).
        n_neighbors, min_dist, metric, n_epochs, seed: as :func:`umap_2d`.
        progress: called as ``progress(stage, 2)`` after each stage (the per-model graphs, the joint
            optimisation); umap's aligned optimiser reports nothing finer.

    Returns:
        (coords_a [n, 2], coords_b [n, 2]) float64. Samples umap leaves disconnected from the graph are NaN.
    """
    data_a = _as_float64(feats_a, "feats_a", min_samples=MIN_UMAP_SAMPLES)
    data_b = _as_float64(feats_b, "feats_b", min_samples=MIN_UMAP_SAMPLES)
    if data_a.shape[0] != data_b.shape[0]:
        raise InputError(
            f"feats_a has {data_a.shape[0]} rows but feats_b has {data_b.shape[0]}; "
            "both must hold the same samples in the same order"
        )
    if not alignment_regularisation >= 0:
        raise InputError(f"alignment_regularisation must be >= 0, got {alignment_regularisation}")
    n_samples = data_a.shape[0]
    n_neighbors = _check_umap_params(n_samples, n_neighbors, min_dist, metric)
    umap = _import_umap()
    if progress is not None:
        progress(0, 2)
    reducer = umap.AlignedUMAP(
        n_neighbors=n_neighbors,
        n_components=2,
        min_dist=min_dist,
        metric=metric,
        n_epochs=n_epochs,
        alignment_regularisation=float(alignment_regularisation),
        random_state=int(seed),
        transform_seed=int(seed),
    )
    identity = {i: i for i in range(n_samples)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer.fit([data_a.astype(np.float32), data_b.astype(np.float32)], relations=[identity])
    if progress is not None:
        progress(2, 2)
    coords_a, coords_b = (np.asarray(e, dtype=np.float64) for e in reducer.embeddings_)
    return coords_a, coords_b


def warm_up(*, metric: str = "cosine", seed: int = 0) -> float:
    """JIT-compile umap's code paths (UMAP and aligned UMAP) on tiny data; returns the seconds it took.

    With ``NUMBA_CACHE_DIR`` pointing at a warm cache this takes a few seconds; cold, ~1 minute.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    tiny_a = rng.normal(size=(40, 6))
    tiny_b = tiny_a @ rng.normal(size=(6, 5))
    umap_2d(tiny_a, n_neighbors=5, metric=metric, n_epochs=10, seed=seed)
    aligned_umap_2d(tiny_a, tiny_b, n_neighbors=5, metric=metric, n_epochs=10, seed=seed)
    return time.perf_counter() - started
