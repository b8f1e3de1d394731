"""Unit matching between two networks (Li et al. 2016, Convergent Learning).

The Pearson correlation between every unit of A and every unit of B over the samples is computed; units
are then matched one-to-one (Hungarian algorithm on |corr|, ``scipy.optimize.linear_sum_assignment``,
min(d_a, d_b) pairs) or semi-matched (each unit of A to its best partner in B, repeats allowed). The
scores are the mean |corr| of the matched pairs; :func:`match_units` also returns the pairs, their
signed correlations and the sorted curve.

A unit with zero variance has no correlation; it is given correlation 0 with every unit (documented
choice, so constant units count as unmatched rather than raising).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from alignscope.core.metrics._checks import _check_inputs, centered64, check_choice
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register


def unit_correlation(feats_a: Any, feats_b: Any, *, name_a: str = "feats_a", name_b: str = "feats_b") -> np.ndarray:
    """Pearson correlation between units: float64 [d_a, d_b]; 0 where a unit is constant."""
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    centred_a, centred_b = centered64(tensor_a), centered64(tensor_b)
    norm_a = torch.linalg.vector_norm(centred_a, dim=0)
    norm_b = torch.linalg.vector_norm(centred_b, dim=0)
    unit_a = centred_a / torch.where(norm_a > 0, norm_a, torch.ones_like(norm_a))
    unit_b = centred_b / torch.where(norm_b > 0, norm_b, torch.ones_like(norm_b))
    return (unit_a.T @ unit_b).clamp(-1.0, 1.0).cpu().numpy()


@dataclass(frozen=True)
class UnitMatching:
    """Matched unit pairs.

    Attributes:
        units_a, units_b: int arrays [m] of matched unit indices.
        correlations: signed correlation of each pair [m].
        mean_abs_correlation: mean |corr| over the pairs.
        curve: |corr| of the pairs sorted in descending order (Li et al.'s matching curve).
        mode: ``"one_to_one"`` or ``"semi"``.
    """

    units_a: np.ndarray
    units_b: np.ndarray
    correlations: np.ndarray
    mean_abs_correlation: float
    curve: np.ndarray
    mode: str


def match_units(
    feats_a: Any, feats_b: Any, *, mode: str = "one_to_one", name_a: str = "feats_a", name_b: str = "feats_b"
) -> UnitMatching:
    """Match units of A to units of B by |correlation|."""
    return match_correlations(unit_correlation(feats_a, feats_b, name_a=name_a, name_b=name_b), mode=mode)


def match_correlations(corr: np.ndarray, *, mode: str = "one_to_one") -> UnitMatching:
    """Match the rows of a unit correlation matrix [d_a, d_b] to its columns by |correlation|.

    The step of :func:`match_units` after the correlations, for callers that already hold them
    (:mod:`alignscope.core.convergent` matches one matrix both ways).
    """
    check_choice(mode, ("one_to_one", "semi"), "mode")
    corr = np.asarray(corr, dtype=np.float64)
    if mode == "one_to_one":
        rows, cols = linear_sum_assignment(np.abs(corr), maximize=True)
    else:
        rows = np.arange(corr.shape[0])
        cols = np.argmax(np.abs(corr), axis=1)  # first best on ties: deterministic
    matched = corr[rows, cols]
    curve = np.sort(np.abs(matched))[::-1]
    return UnitMatching(rows, cols, matched, float(np.abs(matched).mean()), curve, mode)


def unit_match(
    feats_a: Any, feats_b: Any, *, mode: str = "one_to_one", name_a: str = "feats_a", name_b: str = "feats_b"
) -> float:
    """Mean |corr| of matched units, in [0, 1]; higher is better. One-to-one is symmetric; semi is not.

    Example:
        >>> import torch
        >>> feats = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
        >>> round(unit_match(feats, -2 * feats[:, [2, 0, 3, 1]] + 1), 12)
        1.0
    """
    return match_units(feats_a, feats_b, mode=mode, name_a=name_a, name_b=name_b).mean_abs_correlation


register(
    MetricSpec(
        name="unit_match",
        family="matching",
        fn=unit_match,
        higher_is_better=True,
        symmetric=True,
        asymmetric_when=(("mode", "semi"),),
        value_range=(0.0, 1.0),
        invariances=("isotropic_scale", "translation", "permutation", "unit_scale"),
        params=(ParamSpec("mode", "one_to_one", kind="str", choices=("one_to_one", "semi"), help="matching"),),
        reference="Li et al. 2016, Convergent Learning: Do different neural networks learn the same representations?",
        summary="mean |correlation| of units matched one-to-one (Hungarian) or to their best partner",
    )
)
