"""Shape metrics: orthogonal Procrustes similarity and cross-validated ridge predictivity.

- ``procrustes``: both inputs centred and scaled to unit Frobenius norm; similarity = max over
  orthogonal Q of <A, B Q> = ‖AᵀB‖_* (nuclear norm), in [0, 1]. Different widths are handled by
  zero-padding the narrower one (Williams et al. 2021, netrep). The Procrustes distance is
  sqrt(2 - 2·similarity).
- ``ridge_r2``: R² of predicting B from A (``direction="a_to_b"``) or A from B with ridge regression,
  out of fold over ``n_folds`` seeded folds. Asymmetric by nature.
"""

from __future__ import annotations

from typing import Any

import torch

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, as_tensor, centered64, check_choice, check_positive
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register


def _unit_frobenius(centred: torch.Tensor, name: str) -> torch.Tensor:
    norm = torch.linalg.matrix_norm(centred)
    if float(norm) == 0.0:
        raise InputError(f"{name} has zero variance (all rows identical); Procrustes is undefined for it")
    return centred / norm


def procrustes(feats_a: Any, feats_b: Any, *, name_a: str = "feats_a", name_b: str = "feats_b") -> float:
    """Orthogonal Procrustes similarity ‖ÃᵀB̃‖_* of centred, unit-Frobenius inputs, in [0, 1].

    Higher is better; symmetric; invariant to rotation, isotropic scale and translation.

    Example:
        >>> import torch
        >>> feats = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
        >>> q = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))[0]
        >>> round(procrustes(feats, 2 * feats @ q + 1), 10)
        1.0
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    return _compare_procrustes(_prepare_procrustes(tensor_a, name=name_a), _prepare_procrustes(tensor_b, name=name_b))


def _prepare_procrustes(feats: Any, *, name: str = "feats", **_: Any) -> torch.Tensor:
    """A factor F [n, min(n, d)] of the centred unit-Frobenius features X̃ with F Fᵀ = X̃ X̃ᵀ.

    ‖ÃᵀB̃‖_* depends on the inputs only through their Gram matrices, so any such factor gives the same
    value: X̃ itself when d <= n, else U·S of its thin SVD (n columns instead of d).
    """
    unit = _unit_frobenius(centered64(as_tensor(feats, name)), name)
    if unit.shape[1] <= unit.shape[0]:
        return unit
    u, s, _ = torch.linalg.svd(unit, full_matrices=False)
    return u * s


def _compare_procrustes(factor_a: torch.Tensor, factor_b: torch.Tensor, **_: Any) -> float:
    return float(torch.linalg.svdvals(factor_a.T @ factor_b).sum().clamp(0.0, 1.0))


def _ridge_fit_predict(x_train, y_train, x_test, alpha: float, input_eps: float | None = None) -> torch.Tensor:
    """Ridge (or, at alpha = 0, minimum-norm least squares) fitted on train rows, predicting test rows.

    ``input_eps``: the relative precision the inputs were measured in (float32 features: 1.2e-7, even
    when computed here in float64). At alpha = 0, directions whose singular value is below
    ``input_eps · max(n, d)`` of the largest are rounding noise of the inputs, not data: inverting them
    fits that noise (features from float32 nets, d > n: R² −0.67 instead of −0.44), so they are dropped
    — the rank rule of LAPACK's least squares on data of that precision.
    """
    x_mean, y_mean = x_train.mean(0, keepdim=True), y_train.mean(0, keepdim=True)
    x_c, y_c = x_train - x_mean, y_train - y_mean
    lam = alpha * float((x_c * x_c).sum()) / x_c.shape[1]  # scale-free: relative to the mean eigenvalue
    n_train, dim = x_c.shape
    if lam <= 0:
        # Ordinary least squares: the minimum-norm solution through the pseudo-inverse, which stays
        # defined (and accurate) when features are collinear or outnumber the samples.
        eps = input_eps if input_eps is not None else torch.finfo(x_c.dtype).eps
        weights = torch.linalg.pinv(x_c, rtol=eps * max(n_train, dim)) @ y_c
    elif dim <= n_train:
        gram = x_c.T @ x_c + lam * torch.eye(dim, dtype=x_c.dtype, device=x_c.device)
        weights = torch.linalg.solve(gram, x_c.T @ y_c)
    else:  # dual form
        gram = x_c @ x_c.T + lam * torch.eye(n_train, dtype=x_c.dtype, device=x_c.device)
        weights = x_c.T @ torch.linalg.solve(gram, y_c)
    return (x_test - x_mean) @ weights + y_mean


def kfold_indices(n_samples: int, n_folds: int, seed: int, sample_ids: Any = None) -> list[torch.Tensor]:
    """Seeded random partition of range(n_samples) into ``n_folds`` near-equal folds.

    ``sample_ids`` [n] (a bootstrap resample's original indices) keeps every copy of a sample in one
    fold, so a copy is never fitted in train and scored in test.
    """
    generator = torch.Generator().manual_seed(int(seed))
    if sample_ids is None:
        return list(torch.tensor_split(torch.randperm(n_samples, generator=generator), n_folds))
    groups, members = _groups(sample_ids, n_samples)
    fold_of_group = torch.empty(len(groups), dtype=torch.long)
    for fold, chunk in enumerate(torch.tensor_split(torch.randperm(len(groups), generator=generator), n_folds)):
        fold_of_group[chunk] = fold
    fold_of_sample = fold_of_group[members]
    return [torch.nonzero(fold_of_sample == fold).flatten() for fold in range(n_folds)]


def _groups(sample_ids: Any, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct ids, for every row the position of its id among them); one id per row required."""
    ids = torch.as_tensor(sample_ids).flatten().cpu().long()
    if ids.numel() != n_samples:
        raise InputError(f"sample_ids has {ids.numel()} entries for {n_samples} rows; give one id per row")
    return torch.unique(ids, return_inverse=True)


def ridge_r2(
    feats_a: Any,
    feats_b: Any,
    *,
    direction: str = "a_to_b",
    alpha: float = 1e-2,
    n_folds: int = 5,
    seed: int = 0,
    sample_ids: Any = None,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """Out-of-fold R² of ridge regression from one input to the other, pooled over targets.

    ``sample_ids`` (bootstrap): copies of one sample stay in one fold (see :func:`kfold_indices`).

    R² = 1 - Σ‖Y - Ŷ‖² / Σ‖Y - ȳ_train‖² over all folds and target columns, so high-variance targets
    count more. At most 1; can be negative. ``alpha`` is relative to the mean eigenvalue of the train
    inputs' covariance, which makes the score invariant to isotropic scaling. Zero-variance targets give
    an InputError.
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    check_choice(direction, ("a_to_b", "b_to_a"), "direction")
    alpha = check_positive(alpha, "alpha", allow_zero=True)
    n_samples = tensor_a.shape[0]
    if not 2 <= int(n_folds) <= n_samples // 2:
        raise InputError(f"n_folds must be in [2, n/2 = {n_samples // 2}], got {n_folds}")
    x, y = (tensor_a, tensor_b) if direction == "a_to_b" else (tensor_b, tensor_a)
    input_eps = torch.finfo(x.dtype).eps  # the precision the features were measured in
    x, y = x.to(torch.float64), y.to(torch.float64)
    residual = total = 0.0
    folds = [fold.to(x.device) for fold in kfold_indices(n_samples, int(n_folds), seed, sample_ids)]
    if any(fold.numel() == 0 for fold in folds):
        raise InputError(f"{n_samples} rows hold too few distinct samples for {n_folds} folds")
    for index, test in enumerate(folds):
        train = torch.cat([fold for other, fold in enumerate(folds) if other != index])
        prediction = _ridge_fit_predict(x[train], y[train], x[test], alpha, input_eps)
        residual += float(((y[test] - prediction) ** 2).sum())
        total += float(((y[test] - y[train].mean(0, keepdim=True)) ** 2).sum())
    if total == 0.0:
        target = name_b if direction == "a_to_b" else name_a
        raise InputError(f"{target} has zero variance; R² is undefined")
    return 1.0 - residual / total


register(
    MetricSpec(
        name="procrustes",
        family="geometry",
        fn=procrustes,
        higher_is_better=True,
        symmetric=True,
        value_range=(0.0, 1.0),
        invariances=("orthogonal", "isotropic_scale", "translation", "permutation"),
        prepare=_prepare_procrustes,
        compare=_compare_procrustes,
        reference="Williams et al. 2021, Generalized Shape Metrics on Neural Representations (netrep)",
        summary="nuclear norm of the cross-covariance of centred, unit-norm inputs (1 = same shape)",
    )
)
register(
    MetricSpec(
        name="ridge_r2",
        family="geometry",
        fn=ridge_r2,
        higher_is_better=True,
        symmetric=False,
        value_range=(float("-inf"), 1.0),
        invariances=("orthogonal", "isotropic_scale", "translation", "permutation"),
        params=(
            ParamSpec("direction", "a_to_b", kind="str", choices=("a_to_b", "b_to_a"), help="which predicts which"),
            ParamSpec("alpha", 1e-2, low=0.0, high=1e6, help="ridge penalty relative to the mean eigenvalue"),
            ParamSpec("n_folds", 5, kind="int", low=2, high=100, help="cross-validation folds"),
            ParamSpec("seed", 0, kind="int", low=0, help="fold assignment"),
        ),
        reference="Yamins et al. 2014 / Schrimpf et al. 2018 (Brain-Score) linear predictivity",
        summary="cross-validated R² of a ridge map from one representation to the other",
        randomized=True,
        takes_sample_ids=True,
    )
)
