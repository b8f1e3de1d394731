"""Generalised shape metrics (Williams et al. 2021, netrep ``LinearMetric``): true distances between
representations that interpolate between CCA (``alpha = 0``) and Procrustes (``alpha = 1``).

Definition, restated from netrep (``netrep/utils.py`` ``whiten``, ``netrep/metrics/linear.py``
``LinearMetric``, ahwillia/netrep @ 0186b8a) with one documented change of units:

1. Centre each input (``center_columns=True``) and scale it to unit Frobenius norm, Y = X_c / ‖X_c‖_F.
   netrep whitens X_c itself; the scaling is ours, see below.
2. Partially whiten: Y Z with Z = V diag(g) Vᵀ, where Yᵀ Y = V diag(λ) Vᵀ and
   g = alpha + (1 - alpha) / sqrt(max(λ, 1e-7)) (netrep ``eigval_tol = 1e-7``), then rescale Z so the
   total variance stays 1 (netrep ``preserve_variance=True``). In terms of singular values, Y's
   direction with singular value s becomes ∝ alpha·s + (1 - alpha): unchanged at alpha = 1, fully
   whitened (every direction unit variance, Z = (YᵀY)^(-1/2)) at alpha = 0.
3. Align by the best orthogonal map Q and score the aligned pair (netrep ``score_method``):
   ``"angular"``: θ = arccos(⟨Ã, B̃ Q⟩ / (‖Ã‖ ‖B̃‖)) = arccos(‖ÃᵀB̃‖_*), in [0, π/2];
   ``"euclidean"``: the root mean square over samples of ‖ã_i − b̃_i Q‖ with each input's training
   samples at unit RMS norm, = sqrt(2 − 2 cos θ) in [0, √2] in-sample (netrep's Frobenius
   ‖Ã − B̃ Q‖_F of the unit-norm inputs); on held-out rows it is divided by sqrt(n_test) so folds of
   different sizes compare.

Both are metrics (symmetric, zero for equivalent inputs, triangle inequality): a fixed map per input
followed by a minimum over an isometry group (Williams et al. 2021, Prop. 1). Different widths are
zero-padded to the wider one (netrep ``zero_pad=True``); padding changes nothing above, so the value
does not depend on how far an input is padded and the triangle inequality holds across widths too.

Invariant to translation, rotation / permutation of units and (our scaling, step 1) isotropic scale
for every alpha; at alpha = 0 to any invertible linear map. Relations (tested): alpha = 1 gives
arccos of the ``procrustes`` similarity (:mod:`core.metrics.geometry`); alpha = 0 gives
arccos(Σ ρ_i / sqrt(d_a d_b)) for full-rank inputs, ρ the canonical correlations, i.e.
arccos(mean CCA) for equal widths (netrep's principal-angle test).

Why step 1 differs from netrep: netrep whitens the raw scatter matrix XᵀX, so for 0 < alpha < 1 its
distance changes when an input is multiplied by a constant or when samples are duplicated (the mix of
alpha·s and 1 - alpha depends on the units of s), and its eigenvalue floor is absolute. On unit-norm
inputs our value equals netrep's exactly (``LinearMetric(alpha).fit_score(X_c/‖X_c‖, Y_c/‖Y_c‖)``); at
alpha = 0 and alpha = 1 the angular value equals netrep's on the raw inputs. We also rescale for
preserved variance with the true eigenvalues rather than the floored ones (netrep counts floored and
padded directions in its variance sum); that only matters when some eigenvalue is below the floor, and
only for ``"euclidean"``.

Held-out evaluation (:func:`fit_shape_alignment`, :func:`cross_validated_shape_distance`): centring,
scaling, whitening and rotation are fitted on training rows and applied unchanged to test rows, as
netrep's ``fit`` / ``score``. Where the training rows leave directions of an input's feature space
with eigenvalue below the floor (d >= n_train, or collinear features) the whitening and the rotation
are not determined there: those parts of the test rows count in the norms with the floor's whitening
gain (netrep's clipping) but are not aligned (netrep's full SVD aligns them arbitrarily). With
alpha < 1 they then dominate the held-out value; reduce the dimension (PCA) first, or use alpha = 1.
Each input is decomposed through the eigenvectors of the smaller of YᵀY and YYᵀ, as netrep's ``whiten``
(eigh of XᵀX); numerically, identical shapes give ~1e-8, not 0 (arccos near 1), as in netrep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, check_choice, check_features
from alignscope.core.metrics.geometry import kfold_indices
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register

EIGVAL_TOL = 1e-7  # netrep whiten(eigval_tol=1e-7); here relative to the unit total variance
SCORE_METHODS = ("angular", "euclidean")


def _check_alpha(alpha: Any) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError) as error:
        raise InputError(f"alpha must be a number in [0, 1], got {alpha!r}") from error
    if not 0.0 <= value <= 1.0:
        raise InputError(f"alpha must be in [0, 1] (0 = CCA, 1 = Procrustes), got {alpha!r}")
    return value


def _check_folds(n_folds: Any, n_samples: int, *, allow_zero: bool) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)):
        raise InputError(f"n_folds must be an integer, got {n_folds!r}")
    n_folds = int(n_folds)
    if allow_zero and n_folds == 0:
        return 0
    if not 2 <= n_folds <= n_samples // 2:
        zero = "0 (in-sample) or " if allow_zero else ""
        raise InputError(f"n_folds must be {zero}in [2, n/2 = {n_samples // 2}], got {n_folds}")
    return n_folds


# --- one input: the fitted centring, scaling and partial whitening ---------------------------------


@dataclass(frozen=True)
class _Whitening:
    """Partial whitening of one input, fitted on its training rows [n_train, d].

    ``factor`` [n_train, r] is the whitened training matrix at unit Frobenius norm, up to a rotation of
    its columns (enough for the alignment, which sees the inputs only through factorᵀ factor). A new
    row x maps to coordinates ((x - mean) @ basis) * gain on the ``resolved`` columns of ``factor``
    (eigenvalue above the floor; ``basis`` [d, r_resolved] orthonormal) plus a residual outside them
    whitened with ``null_gain``, the floor's gain. Units: the training rows come out with unit RMS norm.
    """

    mean: torch.Tensor
    basis: torch.Tensor
    gain: torch.Tensor
    null_gain: float
    factor: torch.Tensor
    resolved: torch.Tensor

    def transform(self, feats: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(coordinates [n, r_resolved], total squared norm of the whitened rows, residual included)."""
        centred = feats.to(torch.float64) - self.mean
        projected = centred @ self.basis
        coords = projected * self.gain
        residual = centred - projected @ self.basis.T
        sq_norm = float((coords * coords).sum()) + self.null_gain**2 * float((residual * residual).sum())
        return coords, sq_norm


def _fit_whitening(feats: torch.Tensor, alpha: float, name: str) -> _Whitening:
    feats64 = feats.to(torch.float64)
    n_rows, n_features = feats64.shape
    mean = feats64.mean(dim=0)
    centred = feats64 - mean
    total = float(torch.linalg.matrix_norm(centred))
    if total == 0.0:
        raise InputError(f"{name} has zero variance (all rows identical); the shape distance is undefined for it")
    unit = centred / total
    # eigh of the smaller of YᵀY [d, d] and YYᵀ [n, n] (several times faster than an SVD here). The
    # singular values are then measured as the norms of Y's projections onto the eigenvectors, which
    # are accurate to ~1e-16 even where sqrt(eigenvalue) is only accurate to ~1e-8; a floored direction
    # multiplies that error by 1 / sqrt(1e-7).
    if n_features <= n_rows:
        vectors = torch.linalg.eigh(unit.T @ unit)[1]
        projected = unit @ vectors  # Y V [n, d]: columns of norm s
        singular = torch.linalg.vector_norm(projected, dim=0)
    else:
        left = torch.linalg.eigh(unit @ unit.T)[1]
        weights = unit.T @ left  # Yᵀ U = V S [d, n]
        singular = torch.linalg.vector_norm(weights, dim=0)
        projected = left * singular  # U S: Y V up to a rotation of the columns
    eig = singular * singular  # eigenvalues of YᵀY, summing to 1
    gain = alpha + (1.0 - alpha) / torch.sqrt(eig.clamp(min=EIGVAL_TOL))
    null_gain = alpha + (1.0 - alpha) / math.sqrt(EIGVAL_TOL)
    preserve = 1.0 / float(torch.sqrt((eig * gain * gain).sum()))  # keeps the total variance at 1
    per_sample = math.sqrt(n_rows) / total  # unit Frobenius norm -> unit RMS row norm
    resolved = torch.nonzero(eig >= EIGVAL_TOL).flatten()
    if n_features <= n_rows:
        basis = vectors[:, resolved]
    else:
        basis = weights[:, resolved] / singular[resolved]  # V = YᵀU S⁻¹, with s >= sqrt(floor)
    return _Whitening(
        mean=mean,
        basis=basis,
        gain=gain[resolved] * (preserve * per_sample),
        null_gain=null_gain * preserve * per_sample,
        factor=projected * (gain * preserve),
        resolved=resolved,
    )


def _rotations(factor_a: torch.Tensor, factor_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P [r_a, k], Q [r_b, k]), k = min(r_a, r_b): factor_a P and factor_b Q are optimally aligned."""
    left, _, right_t = torch.linalg.svd(factor_a.T @ factor_b, full_matrices=False)
    return left, right_t.T


def _in_sample_score(factor_a: torch.Tensor, factor_b: torch.Tensor, score_method: str) -> float:
    cosine = float(torch.linalg.svdvals(factor_a.T @ factor_b).sum().clamp(0.0, 1.0))
    if score_method == "angular":
        return math.acos(cosine)
    return math.sqrt(max(2.0 - 2.0 * cosine, 0.0))


def _held_out_score(
    aligned_a: torch.Tensor, aligned_b: torch.Tensor, sq_norm_a: float, sq_norm_b: float, score_method: str
) -> float:
    cross = float((aligned_a * aligned_b).sum())
    if score_method == "angular":
        if sq_norm_a == 0.0 or sq_norm_b == 0.0:
            raise InputError("the held-out rows coincide with the training mean; the angle is undefined")
        return math.acos(min(max(cross / math.sqrt(sq_norm_a * sq_norm_b), -1.0), 1.0))
    return math.sqrt(max(sq_norm_a + sq_norm_b - 2.0 * cross, 0.0) / aligned_a.shape[0])


# --- the fitted form ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeAlignment:
    """Centring, scaling, partial whitening and rotation fitted on training rows of A and B.

    Attributes:
        alpha: 0 = CCA (full whitening) ... 1 = Procrustes (none).
        score_method: ``"angular"`` or ``"euclidean"``.
        n_features_a, n_features_b: the widths the alignment was fitted for.

    :meth:`score` evaluates the distance on any rows of the same two representations, e.g. held-out
    samples; on the training rows it equals :func:`shape_distance` of them.
    """

    alpha: float
    score_method: str
    n_features_a: int
    n_features_b: int
    _whitening_a: _Whitening = field(repr=False)
    _whitening_b: _Whitening = field(repr=False)
    _rotation_a: torch.Tensor = field(repr=False)
    _rotation_b: torch.Tensor = field(repr=False)

    def score(self, feats_a: Any, feats_b: Any, *, name_a: str = "feats_a", name_b: str = "feats_b") -> float:
        """The distance between ``feats_a`` [n, d_a] and ``feats_b`` [n, d_b] in the fitted alignment.

        Lower is better. Angular: in [0, π] (held-out rows can anti-align); euclidean: >= 0.
        """
        tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b, min_samples=1)
        for tensor, width, name in (
            (tensor_a, self.n_features_a, name_a),
            (tensor_b, self.n_features_b, name_b),
        ):
            if tensor.shape[1] != width:
                raise InputError(f"{name} has {tensor.shape[1]} features but the alignment was fitted on {width}")
        device = self._rotation_a.device
        coords_a, sq_norm_a = self._whitening_a.transform(tensor_a.to(device))
        coords_b, sq_norm_b = self._whitening_b.transform(tensor_b.to(device))
        aligned_a = coords_a @ self._rotation_a[self._whitening_a.resolved]
        aligned_b = coords_b @ self._rotation_b[self._whitening_b.resolved]
        return _held_out_score(aligned_a, aligned_b, sq_norm_a, sq_norm_b, self.score_method)


def fit_shape_alignment(
    train_a: Any,
    train_b: Any,
    alpha: float = 1.0,
    *,
    score_method: str = "angular",
    name_a: str = "train_a",
    name_b: str = "train_b",
) -> ShapeAlignment:
    """Fit the shape alignment of ``train_a`` [n, d_a] to ``train_b`` [n, d_b] (netrep ``fit``).

    Example:
        >>> import torch
        >>> feats = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
        >>> fitted = fit_shape_alignment(feats[:30], 2 * feats[:30].flip(1), alpha=0.5)
        >>> round(fitted.score(feats[30:], 2 * feats[30:].flip(1)), 6)
        0.0
    """
    tensor_a, tensor_b = _check_inputs(train_a, train_b, name_a=name_a, name_b=name_b)
    alpha = _check_alpha(alpha)
    check_choice(score_method, SCORE_METHODS, "score_method")
    whitening_a = _fit_whitening(tensor_a, alpha, name_a)
    whitening_b = _fit_whitening(tensor_b, alpha, name_b)
    rotation_a, rotation_b = _rotations(whitening_a.factor, whitening_b.factor)
    return ShapeAlignment(
        alpha, score_method, tensor_a.shape[1], tensor_b.shape[1], whitening_a, whitening_b, rotation_a, rotation_b
    )


# --- prepared states: per-input work done once (layer matrices, many-model matrices, nulls) --------


@dataclass(frozen=True)
class _HeldOutFold:
    """One fold of one input: its training factor, the whitened held-out rows on the factor's
    ``resolved`` columns, and their total squared norm (see :class:`_Whitening`)."""

    factor: torch.Tensor
    resolved: torch.Tensor
    coords: torch.Tensor
    sq_norm: float


@dataclass(frozen=True)
class ShapeState:
    """One input prepared for :func:`_compare_shape`: the in-sample whitened factor [n, r] (``n_folds = 0``)
    or one :class:`_HeldOutFold` per fold, with the features kept so a permutation can refit."""

    alpha: float
    n_folds: int
    seed: int
    factor: torch.Tensor | None = None
    folds: tuple[_HeldOutFold, ...] = ()
    feats: torch.Tensor | None = None


def _prepare_shape(
    feats: Any,
    *,
    alpha: float = 1.0,
    n_folds: int = 0,
    seed: int = 0,
    name: str = "feats",
    sample_ids: Any = None,
    **_: Any,
) -> ShapeState:
    tensor = check_features(feats, name)
    alpha = _check_alpha(alpha)
    n_folds = _check_folds(n_folds, tensor.shape[0], allow_zero=True)
    if n_folds == 0:
        return ShapeState(alpha, 0, int(seed), factor=_fit_whitening(tensor, alpha, name).factor)
    folds = [fold.to(tensor.device) for fold in kfold_indices(tensor.shape[0], n_folds, int(seed), sample_ids)]
    if any(fold.numel() == 0 for fold in folds):
        raise InputError(f"{tensor.shape[0]} rows hold too few distinct samples for {n_folds} folds")
    prepared = []
    for index, test in enumerate(folds):
        train = torch.cat([fold for other, fold in enumerate(folds) if other != index])
        whitening = _fit_whitening(tensor[train], alpha, f"{name} (training rows of fold {index})")
        coords, sq_norm = whitening.transform(tensor[test])
        prepared.append(_HeldOutFold(whitening.factor, whitening.resolved, coords, sq_norm))
    return ShapeState(alpha, n_folds, int(seed), folds=tuple(prepared), feats=tensor)


def _compare_shape(state_a: ShapeState, state_b: ShapeState, *, score_method: str = "angular", **_: Any) -> float:
    check_choice(score_method, SCORE_METHODS, "score_method")
    if (state_a.alpha, state_a.n_folds, state_a.seed) != (state_b.alpha, state_b.n_folds, state_b.seed):
        raise InputError("both inputs must be prepared with the same alpha, n_folds and seed")
    if state_a.factor is not None and state_b.factor is not None:
        return _in_sample_score(state_a.factor, state_b.factor, score_method)
    scores = []
    for fold_a, fold_b in zip(state_a.folds, state_b.folds, strict=True):
        rotation_a, rotation_b = _rotations(fold_a.factor, fold_b.factor)
        aligned_a = fold_a.coords @ rotation_a[fold_a.resolved]
        aligned_b = fold_b.coords @ rotation_b[fold_b.resolved]
        scores.append(_held_out_score(aligned_a, aligned_b, fold_a.sq_norm, fold_b.sq_norm, score_method))
    return float(np.mean(scores))


def _permute_shape(state: ShapeState, perm: Any) -> ShapeState:
    if state.factor is not None:
        return replace(state, factor=state.factor[torch.as_tensor(perm).to(state.factor.device)])
    assert state.feats is not None
    # Folds are positions, so permuting B's rows changes which B rows train each fold: refit.
    permuted = state.feats[torch.as_tensor(perm).to(state.feats.device)]
    return _prepare_shape(permuted, alpha=state.alpha, n_folds=state.n_folds, seed=state.seed)


# --- public functions --------------------------------------------------------------------------------


def shape_distance(
    feats_a: Any,
    feats_b: Any,
    *,
    alpha: float = 1.0,
    score_method: str = "angular",
    n_folds: int = 0,
    seed: int = 0,
    sample_ids: Any = None,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """Generalised shape distance between ``feats_a`` [n, d_a] and ``feats_b`` [n, d_b] (module docstring).

    Args:
        alpha: in [0, 1]; 0 = CCA (fully whitened), 1 = Procrustes (netrep's default).
        score_method: ``"angular"`` (radians, [0, π/2] in-sample) or ``"euclidean"`` ([0, √2] in-sample).
        n_folds: 0 = fit and score on all rows (netrep ``fit_score``); >= 2 = the mean held-out distance
            over seeded folds (:func:`cross_validated_shape_distance`).
        seed: fold assignment (unused in-sample).
        sample_ids: a bootstrap resample's original indices; keeps copies of a sample in one fold.

    Returns:
        The distance as a float; lower is more similar, 0 for inputs equal up to translation, rotation
        and scale (and any invertible linear map at alpha = 0).

    Example:
        >>> import torch
        >>> feats = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
        >>> mixed = feats @ torch.tensor([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 3, 1], [0, 0, 0, 1]])
        >>> round(shape_distance(feats, mixed, alpha=0.0), 6), shape_distance(feats, mixed, alpha=1.0) > 0.1
        (0.0, True)
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    check_choice(score_method, SCORE_METHODS, "score_method")
    params = {"alpha": alpha, "n_folds": n_folds, "seed": seed, "sample_ids": sample_ids}
    return _compare_shape(
        _prepare_shape(tensor_a, name=name_a, **params),
        _prepare_shape(tensor_b, name=name_b, **params),
        score_method=score_method,
    )


def cross_validated_shape_distance(
    feats_a: Any,
    feats_b: Any,
    *,
    alpha: float = 1.0,
    n_folds: int = 5,
    seed: int = 0,
    score_method: str = "angular",
    sample_ids: Any = None,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """Mean over ``n_folds`` seeded folds of the distance on the held-out fold, fitted on the others.

    The fold partition is :func:`core.metrics.geometry.kfold_indices` (the same as ``ridge_r2``), so the
    value is deterministic given ``seed``. As netrep with sklearn's ``cross_validate``: the per-fold
    ``score`` of a ``fit`` on the other folds, averaged. Unlike the in-sample value it is not inflated by
    fitting noise (at alpha = 0 with d >= n the in-sample distance is always 0). Symmetric in A and B.
    """
    tensor_a, _ = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    n_folds = _check_folds(n_folds, tensor_a.shape[0], allow_zero=False)
    return shape_distance(
        feats_a,
        feats_b,
        alpha=alpha,
        score_method=score_method,
        n_folds=n_folds,
        seed=seed,
        sample_ids=sample_ids,
        name_a=name_a,
        name_b=name_b,
    )


def pairwise_shape_distances(
    list_of_feats: Sequence[Any],
    alpha: float = 1.0,
    *,
    score_method: str = "angular",
    n_folds: int = 0,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Distance matrix [m, m] of m representations of the same n samples (widths may differ).

    Each input is whitened once (per fold); each pair costs one small SVD. Symmetric with a zero
    diagonal, in float64, ready for ``scipy.cluster.hierarchy.linkage(squareform(matrix))``. In-sample
    (``n_folds = 0``) it satisfies the triangle inequality.

    Example:
        >>> import torch
        >>> base = torch.randn(25, 3, generator=torch.Generator().manual_seed(0))
        >>> noise = torch.randn(25, 3, generator=torch.Generator().manual_seed(1))
        >>> matrix = pairwise_shape_distances([base, 3 * base.flip(1), noise], alpha=1.0)
        >>> matrix.shape, round(float(matrix[0, 1]), 6), bool(matrix[0, 2] > 0.1), bool((matrix == matrix.T).all())
        ((3, 3), 0.0, True, True)
    """
    if len(list_of_feats) < 2:
        raise InputError(f"pairwise_shape_distances needs at least two representations, got {len(list_of_feats)}")
    labels = list(names) if names is not None else [f"representation {i}" for i in range(len(list_of_feats))]
    if len(labels) != len(list_of_feats):
        raise InputError(f"{len(labels)} names for {len(list_of_feats)} representations")
    check_choice(score_method, SCORE_METHODS, "score_method")
    tensors = [check_features(feats, label) for feats, label in zip(list_of_feats, labels)]
    for tensor, label in zip(tensors, labels):
        if tensor.shape[0] != tensors[0].shape[0]:
            raise InputError(
                f"{labels[0]} has {tensors[0].shape[0]} rows but {label} has {tensor.shape[0]}; "
                "all must hold the same samples in the same order"
            )
    device = tensors[0].device
    states = [
        _prepare_shape(tensor.to(device), alpha=alpha, n_folds=n_folds, seed=seed, name=label)
        for tensor, label in zip(tensors, labels)
    ]
    matrix = np.zeros((len(states), len(states)), dtype=np.float64)
    for i in range(len(states)):
        for j in range(i + 1, len(states)):
            matrix[i, j] = matrix[j, i] = _compare_shape(states[i], states[j], score_method=score_method)
    return matrix


register(
    MetricSpec(
        name="shape_distance",
        family="shape",
        fn=shape_distance,
        higher_is_better=False,
        symmetric=True,
        # angular: [0, π/2] in-sample, [0, π] held-out; euclidean: [0, √2] in-sample, unbounded held-out
        value_range=(0.0, float("inf")),
        invariances=("orthogonal", "isotropic_scale", "translation", "permutation"),
        params=(
            ParamSpec("alpha", 1.0, low=0.0, high=1.0, help="0 = CCA (whitened), 1 = Procrustes"),
            ParamSpec(
                "score_method",
                "angular",
                kind="str",
                choices=SCORE_METHODS,
                help="angle (radians) or RMS per-sample distance after alignment",
            ),
            ParamSpec("n_folds", 0, kind="int", low=0, high=100, help="0 = in-sample; >= 2 = held-out folds"),
            ParamSpec("seed", 0, kind="int", low=0, help="fold assignment"),
        ),
        prepare=_prepare_shape,
        compare=_compare_shape,
        permute=_permute_shape,
        reference="Williams et al. 2021, Generalized Shape Metrics on Neural Representations (netrep LinearMetric)",
        summary="angle between partially whitened, optimally rotated inputs (a metric; 0 = same shape)",
        takes_sample_ids=True,
        randomized=True,
    )
)
