"""Convergent learning on the engine (Li et al. 2016): a family of nets of one architecture trained from
different seeds, compared unit by unit and layer by layer, aggregated over every seed pair.

* :class:`UnitMatchingRequest` -> :class:`~alignscope.core.convergent.FamilyMatchingCurves`: the sorted
  one-to-one and semi-matching curves of one layer with the within-network baseline beside them, mean ± sd
  over the seed pairs (two nets are a family of one pair).
* :class:`FamilyMatrixRequest` -> :class:`~alignscope.core.convergent.FamilyLayerMatrices`: a metric's
  layer × layer matrix, mean ± sd over the seed pairs; each pair's matrix is the engine's
  :class:`MatrixRequest` (stored, shared with Compare, Many models and layer identification).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import MatrixRequest, Params, Request
from alignscope.core.analysis.results import LayerMatrix, register_result_type
from alignscope.core.convergent import (
    DEFAULT_THRESHOLDS,
    CurveBand,
    FamilyLayerMatrices,
    FamilyMatchingCurves,
    family_matching_curves,
    seed_pairs,
    stack_family_matrices,
)
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import get_metric
from alignscope.core.unit_activations import ACTIVATIONS

for _type in (CurveBand, FamilyMatchingCurves, FamilyLayerMatrices):
    register_result_type(_type)


def _check_family_models(models: tuple[str, ...]) -> None:
    if len(models) < 2 or len(set(models)) != len(models):
        raise InputError("a family needs at least two different nets of one architecture (e.g. three seeds)")


@dataclass(frozen=True)
class UnitMatchingRequest(Request):
    """Matching curves of layer ``layer_index`` (0-based; negative counts from the end) of every net in
    ``models``. ``positions``: conv units over images × spatial positions (Li et al.), not averaged over
    positions; ``activation``: ``"output"`` (the hooked output, as cached) or ``"relu"`` (after a ReLU),
    see :mod:`alignscope.core.unit_activations`."""

    kind: ClassVar[str] = "unit-matching"
    models: tuple[str, ...]
    dataset: str
    n: int
    seed: int = 0
    layer_index: int = 0
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    positions: bool = False
    activation: str = "output"

    def __post_init__(self) -> None:
        _check_family_models(self.models)
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def reads_the_model(self) -> bool:
        """Spatial positions or post-activations are not in the feature cache: the nets run again."""
        return self.positions or self.activation != "output"

    def feature_models(self) -> tuple[str, ...]:
        return self.models

    def describe(self) -> str:
        where = " over images × positions" if self.positions else ""
        after = " after ReLU" if self.activation == "relu" else ""
        return f"unit matching of layer {self.layer_index}{after}{where} over {len(self.models)} nets"


@dataclass(frozen=True)
class FamilyMatrixRequest(Request):
    """``metric``'s layer × layer matrix over the seed pairs of ``models`` (unordered pairs when symmetric)."""

    kind: ClassVar[str] = "family-matrix"
    result_version: ClassVar[int] = 2  # 2: a symmetric metric's mean and sd take each seed pair both ways round
    models: tuple[str, ...]
    dataset: str
    n: int
    seed: int = 0
    metric: str = "linear_cka"
    params: Params = ()

    def __post_init__(self) -> None:
        _check_family_models(self.models)

    def feature_models(self) -> tuple[str, ...]:
        return self.models

    def describe(self) -> str:
        return f"{self.metric} layer matrices over the seed pairs of {len(self.models)} nets"

    def pair_requests(self) -> tuple[MatrixRequest, ...]:
        """The layer matrix of each seed pair, in the order of ``seed_pairs``."""
        pairs = seed_pairs(len(self.models), symmetric=get_metric(self.metric).symmetric_for(dict(self.params)))
        return tuple(
            MatrixRequest(self.models[a], self.models[b], self.dataset, self.n, self.seed, self.metric, self.params)
            for a, b in pairs
        )


def _same_depth(views: Mapping[str, ViewFeatures], models: tuple[str, ...]) -> int:
    depths = {m: len(views[m].layer_names) for m in models}
    if len(set(depths.values())) != 1:
        shown = ", ".join(f"{m}: {d}" for m, d in depths.items())
        raise InputError(f"the nets of a family need the same number of layers (one architecture; {shown})")
    return depths[models[0]]


def compute_unit_matching(request: UnitMatchingRequest, views: Mapping[str, ViewFeatures]) -> FamilyMatchingCurves:
    """:func:`family_matching_curves` on the cached features of the request's layer, or on unit
    activations read from the nets again (spatial positions, post-activation)."""
    depth = _same_depth(views, request.models)
    if not -depth <= request.layer_index < depth:
        raise InputError(f"layer {request.layer_index} is out of range: the nets have {depth} layers (0..{depth - 1})")
    if not request.reads_the_model:
        nets = [list(views[m].values) for m in request.models]
        return family_matching_curves(nets, request.layer_index, thresholds=request.thresholds)
    index = request.layer_index % depth
    layers = [_read_units(request, views[m], index) for m in request.models]
    curves = family_matching_curves([[layer] for layer in layers], 0, thresholds=request.thresholds)
    return dataclasses.replace(curves, layer_index=index)


def _read_units(request: UnitMatchingRequest, view: ViewFeatures, index: int) -> np.ndarray:
    """One net's unit activations of layer ``index`` on the view's samples (in the view's order)."""
    from alignscope.core.analysis.features import full_dataset
    from alignscope.core.models import load_model
    from alignscope.core.unit_activations import unit_activations

    subset = full_dataset(request.dataset).subset(view.n_samples, request.seed)
    if tuple(subset.sample_ids) != tuple(view.sample_ids):
        raise InputError("the samples changed since the features were cached; extract them again")
    encoder = load_model(view.model, device="cpu")
    return unit_activations(
        encoder, subset, index, positions=request.positions, activation=request.activation, seed=request.seed
    )


def compute_family_matrix(
    request: FamilyMatrixRequest,
    views: Mapping[str, ViewFeatures],
    matrix: Callable[[MatrixRequest], LayerMatrix],
    progress: Callable[[int, int], None] | None = None,
) -> FamilyLayerMatrices:
    """Each seed pair's stored layer matrix, stacked: ``values`` [n_pairs, L, L], mean and sd over pairs."""
    _same_depth(views, request.models)
    parts = request.pair_requests()
    matrices, params = [], dict(request.params)
    problems: list[str] = []
    for done, part in enumerate(parts, start=1):
        scored = matrix(part)
        matrices.append(scored.values)
        problems += [problem for _, _, problem in scored.problems]
        params = dict(scored.params)
        if progress is not None:
            progress(done, len(parts))
    if problems and not any(np.isfinite(values).any() for values in matrices):  # NaN everywhere is no result
        raise InputError(f"no layer pair of any seed pair can be scored: {problems[0]}")
    return stack_family_matrices(request.metric, params, matrices, len(request.models))
