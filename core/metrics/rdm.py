"""Representational dissimilarity matrices (RDMs) and their comparison, in rsatoolbox's conventions.

An RDM over n stimuli is returned *condensed*: the n(n-1)/2 entries above the diagonal, row-major
(pairs (0,1), (0,2), ..., (1,2), ...), as float64 numpy — the order of ``np.triu_indices(n, 1)`` and
of ``rsatoolbox.rdm.RDMs.get_vectors()``. :func:`square_rdm` and :func:`condense_rdm` convert.

Distances (:data:`RDM_METHODS`) from features [n, d], or from repeated measurements
[n_repeats, n, d] (every distance but crossnobis averages the repeats first, as rsatoolbox's
``calc_rdm`` does when several observations share a pattern descriptor):

- ``"correlation"``: 1 - Pearson r between two stimuli's patterns (rsatoolbox ``"correlation"``).
- ``"euclidean"``: the plain Euclidean distance ||x_i - x_j|| (scipy's ``"euclidean"``, and the
  ``rdm_method="euclidean"`` of :func:`alignscope.core.metrics.rsa.rsa`). **Differs from rsatoolbox**,
  whose ``"euclidean"`` is the squared distance divided by d: that one is ``"squared_euclidean"``.
- ``"squared_euclidean"``: ||x_i - x_j||² / d, rsatoolbox's ``"euclidean"`` (which labels its result
  ``"squared euclidean"``).
- ``"cosine"``: 1 - cosine similarity (scipy's ``"cosine"``; rsatoolbox has no such RDM).
- ``"mahalanobis"``: (x_i - x_j) P (x_i - x_j)ᵀ / d with a noise precision P (rsatoolbox
  ``"mahalanobis"``, "squared mahalanobis"); without P it is ``"squared_euclidean"``.
- ``"crossnobis"``: the cross-validated squared Mahalanobis distance (Walther et al. 2016;
  rsatoolbox ``"crossnobis"``), from repeats [n_repeats >= 2, n, d]. Each repeat is a fold: the
  difference vector of the fold, δ_k = x_k,i - x_k,j, is multiplied with that of the mean of the
  other repeats, (mean_{l≠k} δ_l) P δ_kᵀ / d, and the folds are averaged. Noise independent across
  repeats cancels in expectation, so the estimate is unbiased (≈ 0 for identical patterns, and it
  can be negative) while the others grow with the noise. With one precision per repeat
  [n_repeats, d, d] the folds are the pairs k < l of repeats instead, each with the precision
  inv((Σ_k + Σ_l) / 2), Σ = inv(P), averaged over pairs (rsatoolbox's list-of-noises branch).

``remove_mean=True`` subtracts each pattern's mean over channels first (rsatoolbox's ``remove_mean``).

Comparisons (:data:`COMPARE_METHODS`, higher = more similar, all symmetric):

- ``"spearman"``, ``"pearson"``, ``"kendall"``: the RSA comparisons of :mod:`~alignscope.core.metrics.rsa`
  (one implementation). ``"kendall"`` is Kendall's τ_a there; **rsatoolbox's ``"kendall"`` is τ_b**.
- ``"corr"``, ``"tau-a"``, ``"tau-b"``, ``"rho-a"``, ``"cosine"``: rsatoolbox's names: Pearson r (= our
  ``"pearson"``), τ_a (= our ``"kendall"``), τ_b (scipy), ρ_a (Spearman without tie correction,
  12 Σ rank_a·rank_b / (N³ - N) after centring), and the uncentred cosine of the two RDM vectors.
- ``"cosine_cov"`` / ``"corr_cov"``: rsatoolbox's whitened comparisons (Diedrichsen et al. 2021,
  "whitened unbiased RDM cosine similarity"), for crossnobis RDMs: each RDM becomes the double-centred
  second-moment matrix G = -½ H D H and the cosine of the Gs is taken (``"corr_cov"`` centres the
  RDM vector first). This is rsatoolbox's default, i.i.d. pattern-noise weighting (``sigma_k=None``);
  a pattern covariance ``sigma_k`` is not offered.

Differences from rsatoolbox beyond names: an RDM whose comparison is undefined (constant for
correlations, all zero for cosines) raises InputError here, where rsatoolbox returns NaN or 0; NaN
entries in a user's RDM raise InputError (rsatoolbox reads them as missing pairs — the bootstrap in
:mod:`alignscope.core.brain` does, internally).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
import torch
from scipy import stats

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import MIN_SAMPLES, check_choice, check_features
from alignscope.core.metrics.rsa import _compare_rsa, kendall_tau_a
from alignscope.core.metrics.rsa import rdm as _rsa_rdm

RDM_METHODS = ("correlation", "euclidean", "squared_euclidean", "cosine", "mahalanobis", "crossnobis")
COMPARE_METHODS = (
    "spearman",
    "pearson",
    "kendall",
    "corr",
    "tau-a",
    "tau-b",
    "rho-a",
    "cosine",
    "cosine_cov",
    "corr_cov",
)
# Methods that read the RDM as a whole matrix (double centring), not as a bag of pairs.
_WHITENED = ("cosine_cov", "corr_cov")


# --- condensed <-> square --------------------------------------------------------------------------


def n_stimuli_from_pairs(n_pairs: int, name: str = "rdm") -> int:
    """The n with n(n-1)/2 == ``n_pairs``; InputError when ``n_pairs`` is not such a number."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs:
        raise InputError(
            f"{name} has {n_pairs} entries, which is not n(n-1)/2 for any n; pass the condensed "
            "upper triangle (i < j, row-major) of an n x n RDM"
        )
    return n


def square_rdm(condensed: Any) -> np.ndarray:
    """The symmetric [n, n] matrix of a condensed RDM [n(n-1)/2], with a zero diagonal.

    Example:
        >>> square_rdm(np.array([1.0, 2.0, 3.0]))
        array([[0., 1., 2.],
               [1., 0., 3.],
               [2., 3., 0.]])
    """
    values = np.asarray(condensed, dtype=np.float64)
    if values.ndim != 1:
        raise InputError(f"square_rdm takes one condensed RDM (1-D), got shape {values.shape}")
    n = n_stimuli_from_pairs(values.size)
    square = np.zeros((n, n))
    rows, cols = np.triu_indices(n, 1)
    square[rows, cols] = values
    square[cols, rows] = values
    return square


def condense_rdm(square: Any, name: str = "rdm") -> np.ndarray:
    """The condensed upper triangle (i < j, row-major) of a symmetric [n, n] RDM, float64."""
    matrix = np.asarray(square, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"{name} must be a square [n, n] matrix, got shape {matrix.shape}")
    if not np.allclose(matrix, matrix.T, rtol=1e-7, atol=1e-10, equal_nan=True):
        raise InputError(f"{name} is not symmetric; an RDM holds one dissimilarity per pair of stimuli")
    return matrix[np.triu_indices(matrix.shape[0], 1)]


def check_rdm(values: Any, name: str = "rdm") -> np.ndarray:
    """Validate one RDM, condensed [n(n-1)/2] or square [n, n]; return it condensed, float64.

    Raises:
        InputError: not 1-D / square, a length that is no n(n-1)/2, fewer than 3 stimuli, NaN or Inf.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2:
        array = condense_rdm(array, name)
    elif array.ndim != 1:
        raise InputError(f"{name} must be a condensed RDM [n(n-1)/2] or a square one [n, n], got shape {array.shape}")
    n = n_stimuli_from_pairs(array.size, name)
    if n < MIN_SAMPLES:
        raise InputError(f"{name} is over {n} stimuli; at least {MIN_SAMPLES} are needed to compare RDMs")
    if not np.isfinite(array).all():
        n_bad = int((~np.isfinite(array)).sum())
        raise InputError(
            f"{name} contains {n_bad} NaN or Inf dissimilarities; recompute it without missing data "
            "or drop the stimuli involved"
        )
    return array


def resample_rdm(rdms: np.ndarray, index: np.ndarray) -> np.ndarray:
    """RDMs [..., n(n-1)/2] over n stimuli -> RDMs [..., m(m-1)/2] over the stimuli ``index`` [m].

    ``index`` may repeat stimuli (a bootstrap resample): the pair of a stimulus with its own copy,
    whose dissimilarity would be a trivial 0, is NaN, as in rsatoolbox's ``subsample_pattern``
    (which also sorts the index; pass it sorted to get rsatoolbox's order).
    """
    n = n_stimuli_from_pairs(rdms.shape[-1])
    index = np.asarray(index, dtype=np.int64)
    rows, cols = np.triu_indices(index.size, 1)
    first, second = index[rows], index[cols]
    low, high = np.minimum(first, second), np.maximum(first, second)
    same = low == high
    pair = low * n - low * (low + 1) // 2 + high - low - 1
    out = rdms[..., np.where(same, 0, pair)].astype(np.float64, copy=True)
    out[..., same] = np.nan
    return out


# --- distances -------------------------------------------------------------------------------------


def _as_float64(data: Any, name: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        return data.detach().to(torch.float64).cpu().numpy()
    try:
        return np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a numeric torch tensor or numpy array, got {type(data).__name__}") from error


def _check_measurements(data: Any, name: str, method: str) -> np.ndarray:
    """[n, d] or [n_repeats, n, d] -> float64 numpy, validated (finite, >= 3 stimuli, >= 1 channel)."""
    array = _as_float64(data, name)
    if array.ndim == 2:
        return check_features(torch.from_numpy(array), name).numpy()
    if array.ndim != 3:
        raise InputError(
            f"{name} must be features [n_stimuli, n_channels] or repeats [n_repeats, n_stimuli, "
            f"n_channels], got shape {array.shape}"
        )
    n_repeats, n_stimuli, n_channels = array.shape
    if method == "crossnobis" and n_repeats < 2:
        raise InputError(
            f"{name} has {n_repeats} repeat; crossnobis needs at least 2 independent repeats "
            "[n_repeats, n_stimuli, n_channels] (use 'mahalanobis' for a single measurement)"
        )
    if n_repeats == 0 or n_channels == 0:
        raise InputError(f"{name} is empty (shape {array.shape})")
    if n_stimuli < MIN_SAMPLES:
        raise InputError(f"{name} has {n_stimuli} stimuli; at least {MIN_SAMPLES} are needed")
    if not np.isfinite(array).all():
        n_bad = int((~np.isfinite(array)).sum())
        raise InputError(f"{name} contains {n_bad} NaN or Inf values; clean or drop those stimuli first")
    return array


def _check_matrix_stack(matrix: Any, n_channels: int, n_repeats: int | None, name: str) -> np.ndarray:
    array = _as_float64(matrix, name)
    shapes = [(n_channels, n_channels)] + ([(n_repeats, n_channels, n_channels)] if n_repeats else [])
    if array.shape not in shapes:
        raise InputError(
            f"{name} has shape {array.shape}; it must be {' or '.join(map(str, shapes))} "
            f"for data with {n_channels} channels"
        )
    if not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or Inf")
    if not np.allclose(array, np.swapaxes(array, -1, -2), rtol=1e-6, atol=1e-10):
        raise InputError(f"{name} is not symmetric")
    try:
        np.linalg.cholesky(array)
    except np.linalg.LinAlgError:
        raise InputError(
            f"{name} is not positive definite; estimate it with shrinkage (e.g. rsatoolbox.data."
            "noise.prec_from_residuals(..., method='shrinkage_diag'))"
        ) from None
    return array


def _noise_precision(
    noise_precision: Any, noise_covariance: Any, n_channels: int, n_repeats: int | None
) -> np.ndarray | None:
    if noise_precision is not None and noise_covariance is not None:
        raise InputError("pass noise_precision or noise_covariance, not both")
    if noise_precision is not None:
        return _check_matrix_stack(noise_precision, n_channels, n_repeats, "noise_precision")
    if noise_covariance is not None:
        return np.linalg.inv(_check_matrix_stack(noise_covariance, n_channels, n_repeats, "noise_covariance"))
    return None


def _kernel_rdm(kernel: np.ndarray, n_channels: int) -> np.ndarray:
    """d_ij = K_ii + K_jj - K_ij - K_ji, divided by the number of channels, condensed."""
    diag = np.diag(kernel)
    full = diag[None, :] + diag[:, None] - kernel - kernel.T
    return full[np.triu_indices(kernel.shape[0], 1)] / n_channels


def compute_rdm(
    data: Any,
    method: str = "correlation",
    *,
    noise_precision: Any = None,
    noise_covariance: Any = None,
    remove_mean: bool = False,
    name: str = "data",
) -> np.ndarray:
    """Condensed RDM [n(n-1)/2] (i < j, row-major, float64) of n stimuli; a dissimilarity: 0 = identical.

    Args:
        data: features [n, d], or repeated measurements [n_repeats, n, d] (averaged over repeats for
            every method but ``"crossnobis"``, which needs them).
        method: one of :data:`RDM_METHODS` (see the module docstring for each definition).
        noise_precision: [d, d] precision matrix P for ``"mahalanobis"`` / ``"crossnobis"``, or
            [n_repeats, d, d], one per repeat, for ``"crossnobis"``; default identity.
        noise_covariance: the noise covariance instead (inverted here); not both.
        remove_mean: subtract each pattern's mean over channels first.

    Example:
        >>> compute_rdm(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]), "euclidean")
        array([5.        , 1.        , 4.24264069])
    """
    check_choice(method, RDM_METHODS, "rdm method")
    array = _check_measurements(data, name, method)
    if method == "crossnobis":
        if array.ndim != 3:
            raise InputError(
                f"crossnobis needs repeated measurements [n_repeats, n_stimuli, n_channels] of "
                f"{name}, got shape {array.shape}"
            )
        precision = _noise_precision(noise_precision, noise_covariance, array.shape[2], array.shape[0])
        return _crossnobis(array, precision, remove_mean)
    patterns = array.mean(axis=0) if array.ndim == 3 else array
    precision = _noise_precision(noise_precision, noise_covariance, patterns.shape[1], None)
    if precision is not None and method != "mahalanobis":
        raise InputError(f"a noise precision / covariance applies to 'mahalanobis' and 'crossnobis', not {method!r}")
    if remove_mean:
        patterns = patterns - patterns.mean(axis=1, keepdims=True)
    n_channels = patterns.shape[1]
    if method in ("correlation", "euclidean"):
        return _rsa_rdm(torch.from_numpy(np.ascontiguousarray(patterns)), method, name)
    if method == "cosine":
        norms = np.linalg.norm(patterns, axis=1)
        if (norms == 0).any():
            raise InputError(
                f"{name}: stimulus {int(np.flatnonzero(norms == 0)[0])} has an all-zero pattern, "
                "which has no cosine; use 'euclidean'"
            )
        unit = patterns / norms[:, None]
        return (1.0 - unit @ unit.T)[np.triu_indices(patterns.shape[0], 1)]
    weighted = patterns if precision is None else patterns @ precision
    return _kernel_rdm(weighted @ patterns.T, n_channels)


def _crossnobis(repeats: np.ndarray, precision: np.ndarray | None, remove_mean: bool) -> np.ndarray:
    n_repeats, _, n_channels = repeats.shape
    if remove_mean:  # rsatoolbox removes the mean of the fold averages; per repeat is the same (linear)
        repeats = repeats - repeats.mean(axis=2, keepdims=True)
    folds = []
    if precision is None or precision.ndim == 2:
        total = repeats.sum(axis=0)
        for fold in range(n_repeats):
            train = (total - repeats[fold]) / (n_repeats - 1)
            weighted = train if precision is None else train @ precision
            folds.append(_kernel_rdm(weighted @ repeats[fold].T, n_channels))
    else:
        covariances = np.linalg.inv(precision)
        for first in range(n_repeats):
            for second in range(first + 1, n_repeats):
                pair_precision = np.linalg.inv((covariances[first] + covariances[second]) / 2)
                folds.append(_kernel_rdm(repeats[first] @ pair_precision @ repeats[second].T, n_channels))
    return np.mean(folds, axis=0)


# --- comparisons -----------------------------------------------------------------------------------


def _whitened(vectors: np.ndarray, keep: np.ndarray, centre: bool) -> np.ndarray:
    """rsatoolbox's ``_cov_weighting`` (sigma_k=None): kept RDM entries [U, n_kept] -> [U, n_kept + n].

    All pairs kept: the double-centred G = -½ H D H as (√2 · off-diagonal, diagonal). Some pairs missing
    (bootstrap copies): rsatoolbox's weighted least-squares removal of the row/column effects.
    """
    if centre:
        vectors = vectors - vectors.mean(axis=1, keepdims=True)
    n_stimuli = n_stimuli_from_pairs(keep.size)
    n_kept = vectors.shape[1]
    rows, cols = np.triu_indices(n_stimuli, 1)
    if keep.all():
        out = np.empty((vectors.shape[0], n_kept + n_stimuli))
        for unit, vector in enumerate(vectors):  # one n x n matrix at a time keeps memory at O(n²)
            second_moment = np.zeros((n_stimuli, n_stimuli))
            second_moment[rows, cols] = second_moment[cols, rows] = -0.5 * vector
            row_means = second_moment.mean(axis=1, keepdims=True)
            centred = second_moment - row_means - row_means.T + row_means.mean()
            out[unit] = np.r_[np.sqrt(2) * centred[rows, cols], np.diag(centred)]
        return out
    rows, cols = rows[keep], cols[keep]
    entry = np.arange(n_kept)
    stim = np.arange(n_stimuli)
    # sumI: each kept pair (i, j) loads on stimuli i and j; each diagonal entry (k, k) on k.
    indicator = scipy.sparse.csr_matrix(
        (np.ones(2 * n_kept + n_stimuli), (np.r_[entry, entry, n_kept + stim], np.r_[rows, cols, stim])),
        shape=(n_kept + n_stimuli, n_stimuli),
    )
    weights = np.r_[np.full(n_kept, 0.5), np.ones(n_stimuli)]
    weighted = scipy.sparse.diags(weights) @ indicator
    extended = -0.5 * np.c_[vectors, np.zeros((vectors.shape[0], n_stimuli))]
    normal = (indicator.T @ weighted).toarray()
    effects = np.linalg.solve(normal, (extended @ indicator).T)  # [n, U]
    extended = extended - (weighted @ effects).T
    extended[:, :n_kept] *= np.sqrt(2)
    return extended


def _cosine_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(first, axis=-1) * np.linalg.norm(second, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, (first * second).sum(axis=-1) / norms, np.nan)


def _compare_many(model: np.ndarray, data: np.ndarray, method: str) -> np.ndarray:
    """Compare one RDM [P] with each of U RDMs [U, P]; NaN entries (same positions in all) are dropped.

    Returns [U] similarities, NaN where the comparison is undefined (a constant or all-zero RDM, fewer
    than 3 pairs left).
    """
    data = np.atleast_2d(data)
    keep = ~np.isnan(model)
    if keep.sum() < 3:
        return np.full(data.shape[0], np.nan)
    model_kept, data_kept = model[keep], data[:, keep]
    if method in _WHITENED:
        whitened = _whitened(np.vstack([model_kept, data_kept]), keep, centre=method == "corr_cov")
        return _cosine_rows(whitened[:1], whitened[1:])
    if method == "cosine":
        return _cosine_rows(model_kept[None, :], data_kept)
    if method in ("spearman", "rho-a"):
        model_kept = stats.rankdata(model_kept)
        data_kept = stats.rankdata(data_kept, axis=1)
    if method == "rho-a":
        n_pairs = model_kept.size
        centred = data_kept - data_kept.mean(axis=1, keepdims=True)
        return 12 * (centred @ (model_kept - model_kept.mean())) / (n_pairs**3 - n_pairs)
    out = np.empty(data.shape[0])
    constant_model = np.ptp(model_kept) == 0
    for unit, row in enumerate(data_kept):
        if constant_model or np.ptp(row) == 0:
            out[unit] = np.nan
        elif method in ("kendall", "tau-a"):
            out[unit] = kendall_tau_a(model_kept, row)
        elif method == "tau-b":
            out[unit] = float(stats.kendalltau(model_kept, row).statistic)
        else:  # spearman (on ranks), pearson, corr
            out[unit] = _compare_rsa(model_kept, row, compare="pearson")
    return out


def compare_rdms(
    rdm_a: Any, rdm_b: Any, method: str = "spearman", *, name_a: str = "rdm_a", name_b: str = "rdm_b"
) -> float:
    """Similarity of two RDMs over the same stimuli in the same order; higher = more similar, symmetric.

    Args:
        rdm_a, rdm_b: condensed [n(n-1)/2] or square [n, n] RDMs.
        method: one of :data:`COMPARE_METHODS`; in [-1, 1] for all.

    Example:
        >>> rdm = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 7.0])
        >>> round(compare_rdms(rdm, 2 * rdm + 1, "pearson"), 12), compare_rdms(rdm, rdm ** 2, "spearman")
        (1.0, 1.0)
    """
    check_choice(method, COMPARE_METHODS, "compare method")
    vector_a, vector_b = check_rdm(rdm_a, name_a), check_rdm(rdm_b, name_b)
    if vector_a.size != vector_b.size:
        raise InputError(
            f"{name_a} is over {n_stimuli_from_pairs(vector_a.size)} stimuli but {name_b} over "
            f"{n_stimuli_from_pairs(vector_b.size)}; both must hold the same stimuli in the same "
            "order"
        )
    value = float(_compare_many(vector_a, vector_b, method)[0])
    if not np.isfinite(value):
        which = name_a if np.ptp(vector_a) == 0 or not vector_a.any() else name_b
        raise InputError(f"{method} is undefined here: {which} has all dissimilarities equal (or zero)")
    return float(np.clip(value, -1.0, 1.0))


__all__ = [
    "COMPARE_METHODS",
    "RDM_METHODS",
    "check_rdm",
    "compare_rdms",
    "compute_rdm",
    "condense_rdm",
    "n_stimuli_from_pairs",
    "resample_rdm",
    "square_rdm",
]
