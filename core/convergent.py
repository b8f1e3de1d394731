"""Convergent learning (Li et al. 2016) and the layer-identification check (Kornblith et al. 2019).

Three views of a family of networks trained from different seeds:

* :func:`matching_curves`: unit matching between two nets as curves. Each unit's |Pearson correlation|
  with its partner, sorted in descending order, for the one-to-one (bipartite, Hungarian) matching and
  the semi-matching (each unit of A to its best unit of B), next to the *within-network baseline*: each
  unit's best |correlation| with another unit of its own net. Li et al.'s key comparison: a unit whose
  best match in the other net is about as good as its best match in its own net is "learned reliably".
  Correlations and matchings are :func:`alignscope.core.metrics.matching.unit_correlation` and
  :func:`~alignscope.core.metrics.matching.match_correlations` (a constant unit correlates 0 with all).
* :func:`family_layer_matrices` / :func:`family_matching_curves`: mean ± sd of layer × layer matrices of
  any registered metric, and of the matching curves, over all seed pairs.
* :func:`identify_layers`: Kornblith et al. 2019, Table 2: how often a metric's best match for layer i
  of one net is layer i of another net of the family.

Seed pairs: a symmetric metric is computed once per unordered pair {a, b}, a < b; an asymmetric one for
every ordered pair (a, b), a ≠ b. Standard deviations are over those pairs with ddof = 1 (NaN when there
is a single pair).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations, permutations
from typing import Any

import numpy as np

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import check_features
from alignscope.core.metrics.layers import layer_matrix
from alignscope.core.metrics.matching import UnitMatching, match_correlations, unit_correlation
from alignscope.core.metrics.registry import get_metric

DEFAULT_THRESHOLDS = (0.5, 0.7, 0.9)


# --- one pair of nets: matching curves -------------------------------------------------------------


@dataclass(frozen=True)
class MatchingCurves:
    """Unit-matching curves of one layer of net A against the same layer of net B (all sorted descending).

    Attributes:
        one_to_one: float64 [min(d_a, d_b)]: |corr| of the pairs of the one-to-one (Hungarian) matching.
        semi: float64 [d_a]: each A unit's best |corr| with any B unit.
        within_a: float64 [d_a]: each A unit's best |corr| with another A unit (itself excluded).
        within_b: float64 [d_b]: the same within B.
        fraction_above: {threshold t: fraction of A units whose best B match has |corr| > t}.
        within_fraction_above: {t: fraction of A units whose best other A unit has |corr| > t}.
        one_to_one_matching, semi_matching: the pairs themselves (:class:`UnitMatching`).
    """

    one_to_one: np.ndarray
    semi: np.ndarray
    within_a: np.ndarray
    within_b: np.ndarray
    fraction_above: dict[float, float]
    within_fraction_above: dict[float, float]
    one_to_one_matching: UnitMatching = field(repr=False)
    semi_matching: UnitMatching = field(repr=False)


def _thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    checked = tuple(float(t) for t in thresholds)
    if not checked or not all(0.0 <= t <= 1.0 for t in checked):
        raise InputError(f"thresholds must be one or more numbers in [0, 1] (|correlation|), got {thresholds!r}")
    return checked


def _fractions(curve: np.ndarray, thresholds: tuple[float, ...]) -> dict[float, float]:
    return {t: float(np.mean(curve > t)) for t in thresholds}


def within_curve(feats: Any, *, name: str = "feats") -> np.ndarray:
    """float64 [d]: each unit's best |corr| with another unit of the same features, sorted descending.

    Example:
        >>> import torch
        >>> base = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
        >>> within_curve(torch.cat([base, base[:, :1]], dim=1)).round(6).tolist()[:2]  # units 0 and 2 are copies
        [1.0, 1.0]
    """
    tensor = check_features(feats, name)
    if tensor.shape[1] < 2:
        raise InputError(f"{name} has {tensor.shape[1]} unit; the within-network baseline needs at least 2")
    corr = np.abs(unit_correlation(tensor, tensor, name_a=name, name_b=name))
    np.fill_diagonal(corr, -np.inf)
    return np.sort(corr.max(axis=1))[::-1]


def matching_curves(
    feats_a: Any,
    feats_b: Any,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> MatchingCurves:
    """Li et al.'s matching curves and within-network baselines for one layer of two nets.

    Args:
        feats_a: [n, d_a] unit activations of net A (rows: samples; spatial positions may be rows too).
        feats_b: [n, d_b] of net B, the same samples in the same order.
        thresholds: |corr| levels for ``fraction_above`` (strictly above).

    Example:
        >>> import torch
        >>> feats = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
        >>> curves = matching_curves(feats, feats[:, [2, 0, 1]], thresholds=(0.9,))
        >>> curves.one_to_one.round(6).tolist(), curves.fraction_above
        ([1.0, 1.0, 1.0], {0.9: 1.0})
    """
    levels = _thresholds(thresholds)
    corr = unit_correlation(feats_a, feats_b, name_a=name_a, name_b=name_b)
    one_to_one = match_correlations(corr, mode="one_to_one")
    semi = match_correlations(corr, mode="semi")
    within_a, within_b = within_curve(feats_a, name=name_a), within_curve(feats_b, name=name_b)
    return MatchingCurves(
        one_to_one=one_to_one.curve,
        semi=semi.curve,
        within_a=within_a,
        within_b=within_b,
        fraction_above=_fractions(semi.curve, levels),
        within_fraction_above=_fractions(within_a, levels),
        one_to_one_matching=one_to_one,
        semi_matching=semi,
    )


# --- a family of nets ------------------------------------------------------------------------------


def _check_family(nets: Sequence[Sequence[Any]]) -> int:
    """The common number of layers of ``nets`` (at least two nets, each a non-empty list of layers)."""
    if len(nets) < 2:
        raise InputError(f"a family needs at least 2 nets (seeds) to form a pair; got {len(nets)}")
    depths = [len(layers) for layers in nets]
    if min(depths) == 0 or len(set(depths)) != 1:
        raise InputError(f"every net must have the same number of layers (one architecture); got {depths}")
    return depths[0]


def seed_pairs(n_nets: int, *, symmetric: bool) -> tuple[tuple[int, int], ...]:
    """Unordered pairs (a < b) for a symmetric comparison, else all ordered pairs (a ≠ b)."""
    return tuple(combinations(range(n_nets), 2) if symmetric else permutations(range(n_nets), 2))


def std_over_first_axis(values: np.ndarray) -> np.ndarray:
    """sd over axis 0 with ddof = 1; NaN where there is a single entry."""
    if values.shape[0] < 2:
        return np.full(values.shape[1:], np.nan)
    return values.std(axis=0, ddof=1)


@dataclass(frozen=True)
class FamilyLayerMatrices:
    """A metric's layer × layer matrices over the seed pairs of a family.

    Attributes:
        metric: the metric name; params: its resolved parameters.
        values: float64 [n_pairs, L, L]; ``values[p, i, j]`` = metric(layer i of net a, layer j of net b)
            for ``(a, b) = pairs[p]``.
        mean, std: float64 [L, L] over the pairs (std ddof = 1; NaN for a single pair). For a symmetric
            metric both are over the pairs' (M + Mᵀ) / 2: layer i of one seed against layer j of the other,
            whichever seed has the lower index, so ``mean`` is symmetric (M alone read
            (conv1, conv2) and (conv2, conv1) differently by up to 0.2 on three digits CNNs).
        pairs: the (a, b) net indices (unordered for a symmetric metric, see the module docstring).
        higher_is_better, symmetric: from the metric's spec.
    """

    metric: str
    params: dict[str, Any]
    values: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    higher_is_better: bool
    symmetric: bool

    def ordered(self) -> dict[tuple[int, int], np.ndarray]:
        """{(a, b): [L, L]} for every ordered pair; a symmetric metric's (b, a) is (a, b) transposed."""
        matrices = {}
        for (a, b), matrix in zip(self.pairs, self.values):
            matrices[(a, b)] = matrix
            if self.symmetric:
                matrices[(b, a)] = matrix.T
        return matrices


def family_layer_matrices(nets: Sequence[Sequence[Any]], metric: str, **params: Any) -> FamilyLayerMatrices:
    """Mean ± sd over seed pairs of ``metric``'s layer × layer matrix (:func:`layer_matrix` per pair).

    Args:
        nets: one entry per net (seed), each a list of L layer features [n, d_l], the same n samples in
            the same order in every net.
        metric: a registered metric name; **params: its parameters.

    Example:
        >>> import torch
        >>> nets = [[torch.randn(30, 4, generator=torch.Generator().manual_seed(10 * s + l)) for l in range(2)]
        ...         for s in range(3)]
        >>> family = family_layer_matrices(nets, "linear_cka")
        >>> family.values.shape, family.pairs
        ((3, 2, 2), ((0, 1), (0, 2), (1, 2)))
    """
    _check_family(nets)
    spec = get_metric(metric)
    pairs = seed_pairs(len(nets), symmetric=spec.symmetric_for(params))
    matrices, resolved = [], spec.resolve_params(params)
    for a, b in pairs:
        names_a = [f"net {a} layer {i}" for i in range(len(nets[a]))]
        names_b = [f"net {b} layer {j}" for j in range(len(nets[b]))]
        result = layer_matrix(nets[a], nets[b], metric, names_a=names_a, names_b=names_b, **params)
        matrices.append(result.values)
        resolved = result.params
    return stack_family_matrices(metric, resolved, matrices, len(nets))


def stack_family_matrices(
    metric: str, params: dict[str, Any], matrices: Sequence[np.ndarray], n_nets: int
) -> FamilyLayerMatrices:
    """:class:`FamilyLayerMatrices` from one [L, L] matrix per seed pair of ``n_nets`` nets, in the order
    of :func:`seed_pairs`."""
    spec = get_metric(metric)
    values = np.stack([np.asarray(m, dtype=np.float64) for m in matrices])
    both_ways = (values + values.transpose(0, 2, 1)) / 2 if spec.symmetric_for(params) else values
    return FamilyLayerMatrices(
        metric=metric,
        params=dict(params),
        values=values,
        mean=both_ways.mean(axis=0),
        std=std_over_first_axis(both_ways),
        pairs=seed_pairs(n_nets, symmetric=spec.symmetric_for(params)),
        higher_is_better=spec.higher_is_better,
        symmetric=spec.symmetric_for(params),
    )


@dataclass(frozen=True)
class CurveBand:
    """Curves of different lengths on one axis, with their mean and sd.

    Attributes:
        grid: float64 [n_points] in [0, 1]: a unit's rank on its curve as a fraction, (rank − 1) / (m − 1)
            for a curve of m units (0 = best matched unit, 1 = worst).
        curves: float64 [n_curves, n_points], each curve linearly interpolated onto ``grid``.
        mean, std: float64 [n_points] (std ddof = 1; NaN for a single curve).
    """

    grid: np.ndarray
    curves: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_curves(self) -> int:
        return int(self.curves.shape[0])


def curve_band(curves: Sequence[np.ndarray], n_points: int | None = None) -> CurveBand:
    """Put curves of lengths m_c on the common axis u = (rank − 1) / (m_c − 1) and average them.

    ``n_points`` defaults to the shortest curve's length, so curves of one length (one architecture)
    are kept exactly (their points are the grid points) and longer curves are read at the shorter
    curve's rank fractions by linear interpolation, never extrapolated. A curve of one unit is constant.

    Example:
        >>> band = curve_band([np.array([1.0, 0.5, 0.0]), np.array([1.0, 0.0])])
        >>> band.grid.tolist(), band.mean.tolist()
        ([0.0, 1.0], [1.0, 0.0])
    """
    if not curves:
        raise InputError("curve_band needs at least one curve")
    arrays = [np.asarray(curve, dtype=np.float64).reshape(-1) for curve in curves]
    if min(array.size for array in arrays) == 0:
        raise InputError("every curve needs at least one point")
    points = min(array.size for array in arrays) if n_points is None else int(n_points)
    if points < 1:
        raise InputError(f"n_points must be at least 1, got {n_points!r}")
    grid = np.linspace(0.0, 1.0, points) if points > 1 else np.zeros(1)
    resampled = np.stack(
        [
            np.interp(grid, np.linspace(0.0, 1.0, array.size), array) if array.size > 1 else np.full(points, array[0])
            for array in arrays
        ]
    )
    return CurveBand(grid=grid, curves=resampled, mean=resampled.mean(axis=0), std=std_over_first_axis(resampled))


@dataclass(frozen=True)
class FamilyMatchingCurves:
    """Matching curves of one layer over a family of nets.

    Attributes:
        layer_index: the layer compared (the same index in every net).
        one_to_one: one curve per unordered seed pair (the bipartite matching is symmetric).
        semi: one curve per ordered seed pair (a's units to their best unit of b).
        within: one within-network baseline curve per net.
        fraction_above_mean, fraction_above_std: {t: mean, sd over the ordered pairs of the fraction of
            units whose best match in the other net has |corr| > t}.
        within_fraction_above_mean, within_fraction_above_std: the same for the best other unit of the
            unit's own net, over nets.
        n_nets: nets in the family.
        n_rows: the samples each correlation is over (images, or images × positions).
    """

    layer_index: int
    one_to_one: CurveBand
    semi: CurveBand
    within: CurveBand
    fraction_above_mean: dict[float, float]
    fraction_above_std: dict[float, float]
    within_fraction_above_mean: dict[float, float]
    within_fraction_above_std: dict[float, float]
    n_nets: int
    n_rows: int = 0


def _fraction_stats(curves: Sequence[np.ndarray], levels: tuple[float, ...]):
    table = np.array([[np.mean(curve > t) for t in levels] for curve in curves], dtype=np.float64)
    std = std_over_first_axis(table)
    return ({t: float(v) for t, v in zip(levels, table.mean(axis=0))}, {t: float(v) for t, v in zip(levels, std)})


def family_matching_curves(
    nets: Sequence[Sequence[Any]],
    layer_index: int,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    n_points: int | None = None,
) -> FamilyMatchingCurves:
    """Mean ± sd over seed pairs of the matching curves of layer ``layer_index`` (see :func:`matching_curves`).

    Each unordered pair's correlation matrix is computed once; it gives the one-to-one curve and both
    semi-matching curves (a → b and b → a). Curves go through :func:`curve_band` (``n_points``).
    """
    n_layers = _check_family(nets)
    if (
        isinstance(layer_index, bool)
        or not isinstance(layer_index, (int, np.integer))
        or not (-n_layers <= layer_index < n_layers)
    ):
        raise InputError(f"layer_index must be an integer in [0, {n_layers - 1}], got {layer_index!r}")
    index = int(layer_index) % n_layers
    levels = _thresholds(thresholds)
    layers = [check_features(net[index], f"net {s} layer {index}") for s, net in enumerate(nets)]
    one_to_one, semi = [], []
    for a, b in combinations(range(len(layers)), 2):
        corr = unit_correlation(layers[a], layers[b], name_a=f"net {a} layer {index}", name_b=f"net {b} layer {index}")
        one_to_one.append(match_correlations(corr, mode="one_to_one").curve)
        semi.append(match_correlations(corr, mode="semi").curve)
        semi.append(match_correlations(corr.T, mode="semi").curve)
    within = [within_curve(feats, name=f"net {s} layer {index}") for s, feats in enumerate(layers)]
    fraction_mean, fraction_std = _fraction_stats(semi, levels)
    within_mean, within_std = _fraction_stats(within, levels)
    return FamilyMatchingCurves(
        layer_index=index,
        one_to_one=curve_band(one_to_one, n_points),
        semi=curve_band(semi, n_points),
        within=curve_band(within, n_points),
        fraction_above_mean=fraction_mean,
        fraction_above_std=fraction_std,
        within_fraction_above_mean=within_mean,
        within_fraction_above_std=within_std,
        n_nets=len(nets),
        n_rows=int(layers[0].shape[0]),
    )


# --- layer identification (Kornblith et al. 2019, Table 2) -----------------------------------------


@dataclass(frozen=True)
class LayerIdentification:
    """How often each metric's best match for layer i of one net is layer i of another.

    Attributes:
        accuracy: {metric: hits / (n_ordered_pairs · n_layers)}.
        per_layer: {metric: float64 [L], the accuracy for each layer i of the querying net}.
        n_layers, n_nets, n_ordered_pairs: the trials are every layer of every ordered pair (a, b), a ≠ b.
        chance: 1 / n_layers, the accuracy of a metric that ranks layers at random.
    """

    accuracy: dict[str, float]
    per_layer: dict[str, np.ndarray]
    n_layers: int
    n_nets: int
    n_ordered_pairs: int

    @property
    def chance(self) -> float:
        return 1.0 / self.n_layers


def identification_hits(matrices: Mapping[tuple[Any, Any], np.ndarray], *, higher_is_better: bool) -> np.ndarray:
    """float64 [L]: per layer i, the fraction of matrices whose best column in row i is column i.

    ``matrices`` maps each ordered pair (a, b) to the [L, L] scores of layer i of a against layer j of
    b. Ties go to the lower layer index (``np.argmax``), so a metric that scores every layer alike
    always picks layer 0 and averages exactly 1 / L; NaN scores never win (a row of NaN is a miss).
    """
    if not matrices:
        raise InputError("no layer matrices to identify layers from")
    hits = None
    for matrix in matrices.values():
        scores = np.asarray(matrix, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
            raise InputError(f"layer identification needs square [L, L] matrices, got shape {scores.shape}")
        oriented = scores if higher_is_better else -scores
        oriented = np.where(np.isnan(oriented), -np.inf, oriented)
        best = np.argmax(oriented, axis=1)
        found = (best == np.arange(scores.shape[0])) & np.isfinite(oriented.max(axis=1))
        hits = found.astype(np.float64) if hits is None else hits + found
    assert hits is not None
    return hits / len(matrices)


def identify_layers(
    nets: Sequence[Sequence[Any]],
    metrics: Sequence[str],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> LayerIdentification:
    """Kornblith et al.'s sanity check: does each metric find the corresponding layer of another seed?

    For every ordered pair of nets (a, b), a ≠ b, and every layer i of a, the metric's best layer j of
    b (the maximum, or the minimum when lower is better) is a hit when j = i.

    Args:
        nets: a family of nets of one architecture from different seeds, each a list of L layer
            features [n, d_l] on the same samples.
        metrics: registered metric names.
        params: optional {metric: {parameter: value}}.

    Example:
        >>> import torch
        >>> generator = torch.Generator().manual_seed(0)
        >>> signals = [torch.randn(60, 5, generator=generator) for _ in range(3)]
        >>> nets = [[s + 0.3 * torch.randn(60, 5, generator=generator) for s in signals] for _ in range(3)]
        >>> result = identify_layers(nets, ["linear_cka"])
        >>> result.accuracy, result.per_layer["linear_cka"].tolist()
        ({'linear_cka': 1.0}, [1.0, 1.0, 1.0])
    """
    n_layers = _check_family(nets)
    if not metrics:
        raise InputError("give at least one metric to identify layers with")
    options = dict(params or {})
    accuracy, per_layer = {}, {}
    n_ordered = len(nets) * (len(nets) - 1)
    for metric in metrics:
        family = family_layer_matrices(nets, metric, **dict(options.get(metric, {})))
        by_layer = identification_hits(family.ordered(), higher_is_better=family.higher_is_better)
        per_layer[metric] = by_layer
        accuracy[metric] = float(by_layer.mean())
    return LayerIdentification(
        accuracy=accuracy, per_layer=per_layer, n_layers=n_layers, n_nets=len(nets), n_ordered_pairs=n_ordered
    )


__all__ = [
    "CurveBand",
    "FamilyLayerMatrices",
    "FamilyMatchingCurves",
    "LayerIdentification",
    "MatchingCurves",
    "curve_band",
    "family_layer_matrices",
    "family_matching_curves",
    "identification_hits",
    "identify_layers",
    "matching_curves",
    "seed_pairs",
    "within_curve",
]
