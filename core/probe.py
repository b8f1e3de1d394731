"""Task performance read out of representations: a cross-validated linear probe, per layer.

The probe is multinomial logistic regression (scikit-learn's ``LogisticRegression``, lbfgs, L2) on
standardised features (``StandardScaler`` fitted on each training fold only), scored by top-1 accuracy
on the held-out fold of a stratified, shuffled k-fold split. The regularisation is fixed (``C = 1``)
rather than tuned by an inner cross-validation: one fixed, moderate penalty on standardised features
keeps probes of different layers and models comparable and costs one fit per fold; what a tuned ``C``
would add is mostly a few points on tiny or very wide layers.

Every layer of one call is probed on the same folds, so per-layer accuracies differ only in the
features. The same ``seed`` gives the same folds and the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

from alignscope.core.errors import InputError

PROBE_C = 1.0  # inverse L2 strength (scikit-learn's ``C``) on standardised features
PROBE_MAX_ITER = 1000

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class ProbeResult:
    """How well a linear read-out of one layer predicts the labels.

    Attributes:
        accuracy: mean held-out top-1 accuracy over the folds, in [0, 1]; higher is better.
        accuracy_std_over_folds: standard deviation of the fold accuracies (population, ``ddof=0``).
        chance: the majority-class rate, what always guessing the commonest label scores.
        n_folds: folds of the stratified split.
        n_classes: distinct labels.
        n_samples: samples probed.
        fold_accuracies: held-out accuracy of each fold, in fold order.
    """

    accuracy: float
    accuracy_std_over_folds: float
    chance: float
    n_folds: int
    n_classes: int
    n_samples: int
    fold_accuracies: tuple[float, ...]


def linear_probe(
    feats: ArrayLike, labels: Sequence | ArrayLike, *, n_folds: int = 5, seed: int = 0, c: float = PROBE_C
) -> ProbeResult:
    """Cross-validated accuracy of multinomial logistic regression from ``feats`` to ``labels``.

    Args:
        feats: ``[n_samples, dim]`` features of one layer (any real dtype; standardised inside each fold).
        labels: ``[n_samples]`` class labels of the same samples in the same order (ints or strings).
        n_folds: folds of the stratified split; every class needs at least this many samples.
        seed: shuffles the samples before they are cut into folds.
        c: inverse L2 regularisation strength (scikit-learn's ``C``).

    Returns:
        A :class:`ProbeResult`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> labels = np.repeat([0, 1], 50)
        >>> feats = rng.normal(size=(100, 3)) + 4.0 * labels[:, None]
        >>> result = linear_probe(feats, labels)
        >>> round(result.accuracy, 2), result.chance, result.n_classes, result.n_folds
        (1.0, 0.5, 2, 5)
    """
    return probe_layers([feats], labels, n_folds=n_folds, seed=seed, c=c)[0]


def probe_layers(
    layers: Sequence[ArrayLike],
    labels: Sequence | ArrayLike,
    *,
    n_folds: int = 5,
    seed: int = 0,
    c: float = PROBE_C,
) -> list[ProbeResult]:
    """:func:`linear_probe` for each ``[n_samples, dim_l]`` layer, all on the same folds.

    Returns:
        One :class:`ProbeResult` per layer, in order.
    """
    targets = _encode_labels(labels)
    folds = stratified_folds(targets, n_folds=n_folds, seed=seed)
    counts = np.bincount(targets)
    chance = float(counts.max() / len(targets))
    results = []
    for layer_index, layer in enumerate(layers):
        feats = _check_feats(layer, len(targets), layer_index)
        # A probe is many small fits: BLAS threads on matrices this size cost more than they gain (5-10x
        # slower on a busy 2-core machine), and one thread gives the same numbers on every core count.
        with threadpool_limits(limits=1):
            fold_accuracies = tuple(_fit_and_score(feats, targets, train, test, c) for train, test in folds)
        results.append(
            ProbeResult(
                accuracy=float(np.mean(fold_accuracies)),
                accuracy_std_over_folds=float(np.std(fold_accuracies)),
                chance=chance,
                n_folds=n_folds,
                n_classes=len(counts),
                n_samples=len(targets),
                fold_accuracies=fold_accuracies,
            )
        )
    return results


def stratified_folds(
    labels: Sequence | ArrayLike, *, n_folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(train_indices, test_indices)`` pairs the probe uses: stratified, shuffled with ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    targets = _encode_labels(labels)
    if n_folds < 2:
        raise InputError(f"n_folds must be at least 2, got {n_folds}")
    counts = np.bincount(targets)
    if len(counts) < 2:
        raise InputError("the labels hold a single class; a probe needs at least two")
    if counts.min() < n_folds:
        raise InputError(
            f"the rarest class has {counts.min()} samples but n_folds is {n_folds}; every class needs at "
            f"least one sample per fold: lower n_folds or probe more samples"
        )
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(targets), 1)), targets))


def _fit_and_score(feats: np.ndarray, targets: np.ndarray, train: np.ndarray, test: np.ndarray, c: float) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # lbfgs fits the multinomial (softmax) loss whenever there are more than two classes.
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=PROBE_MAX_ITER))
    probe.fit(feats[train], targets[train])
    return float(np.mean(probe.predict(feats[test]) == targets[test]))


def _encode_labels(labels: Sequence | ArrayLike) -> np.ndarray:
    values = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if values.ndim != 1:
        raise InputError(f"labels must be one label per sample, shape [n_samples], got shape {list(values.shape)}")
    if len(values) == 0:
        raise InputError("no labels: a probe needs labelled samples")
    _, targets = np.unique(values, return_inverse=True)
    return targets.reshape(-1)


def _check_feats(layer: ArrayLike, n_samples: int, layer_index: int) -> np.ndarray:
    feats = layer.detach().cpu().double().numpy() if isinstance(layer, torch.Tensor) else np.asarray(layer, float)
    if feats.ndim != 2:
        raise InputError(f"layer {layer_index}: features must be [n_samples, dim], got shape {list(feats.shape)}")
    if len(feats) != n_samples:
        raise InputError(
            f"layer {layer_index} has {len(feats)} rows but labels has {n_samples}; both must hold the same "
            f"samples in the same order"
        )
    if feats.shape[1] == 0:
        raise InputError(f"layer {layer_index}: features have no columns (shape {list(feats.shape)})")
    if not np.isfinite(feats).all():
        raise InputError(f"layer {layer_index}: features hold NaN or Inf")
    return feats
