"""Is A more aligned to X than B is? The paired difference d = score(A, X) − score(B, X) on the same
samples, as an engine request (the statistics are :func:`alignscope.core.comparisons.score_difference`).

Layers: ``"last"`` (each model's last layer), ``"depth:0.5"`` (the layer at that relative depth in each
model), or ``"best"`` — each pair at its best layer pair, chosen on the same n samples the difference is
tested on. That choice is part of what is compared ("A at its best against B at its best") but it is not
re-made inside the bootstrap, so with many layers the interval is somewhat too narrow; fix the layers in
advance (depth or last) for a confirmatory test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import MatrixRequest, Params, Request, parse_layer_choice
from alignscope.core.analysis.results import LayerMatrix, register_result_type
from alignscope.core.analysis.sweeps import depth_layer
from alignscope.core.comparisons import DIFFERENCE_METHODS, ScoreDifference, score_difference
from alignscope.core.errors import InputError

register_result_type(ScoreDifference)


@dataclass(frozen=True)
class DifferenceRequest(Request):
    """score(model_a, reference) − score(model_b, reference) with ``bootstrap`` paired resamples."""

    kind: ClassVar[str] = "difference"
    result_version: ClassVar[int] = 2  # 2: GRAM volume's auto test is its sign flip
    model_a: str
    model_b: str
    reference: str
    dataset: str
    n: int
    seed: int = 0
    metric: str = "mutual_knn"
    params: Params = ()
    layers: str = "best"
    bootstrap: int = 1000
    method: str = "auto"

    def __post_init__(self) -> None:
        if parse_layer_choice(self.layers) == "best":  # "all", score's word, is the same request
            object.__setattr__(self, "layers", "best")
        if self.method not in DIFFERENCE_METHODS:
            raise InputError(f"method must be one of {', '.join(DIFFERENCE_METHODS)}, got {self.method!r}")
        if len({self.model_a, self.model_b, self.reference}) < 3:
            raise InputError("a difference needs three different models: A and B, each against the reference")

    def feature_models(self) -> tuple[str, ...]:
        return (self.model_a, self.model_b, self.reference)


@register_result_type
@dataclass(frozen=True)
class Difference:
    """A paired difference with the layers behind each score.

    Attributes:
        layers_a: (layer of A, layer of the reference) behind score_a; ``layers_b`` likewise for B.
        test: the interval and p-value (:class:`ScoreDifference`: ``difference``, ``ci_low``,
            ``ci_high``, ``p_value``, ``method``).
    """

    model_a: str
    model_b: str
    reference: str
    dataset: str
    layers: str
    layers_a: tuple[int, int]
    layers_b: tuple[int, int]
    layer_names_a: tuple[str, str]
    layer_names_b: tuple[str, str]
    test: ScoreDifference

    @property
    def selection_note(self) -> str:
        """What the interval leaves out when each model's pair was searched ("" for pairs fixed in advance)."""
        if parse_layer_choice(self.layers) != "best":
            return ""
        return (
            f"Each model's layer pair was chosen as its best against {self.reference} on these same samples; the "
            "interval and p hold those pairs fixed (the search is not redone in each resample), so a difference "
            "between two close-call bests reads surer than it is. A fixed depth (or the last layers) tests pairs chosen in "
            "advance."
        )


def _layers_of(
    request: DifferenceRequest,
    model: ViewFeatures,
    reference: ViewFeatures,
    matrix: Callable[[MatrixRequest], LayerMatrix],
) -> tuple[int, int]:
    choice = parse_layer_choice(request.layers)
    if choice == "last":
        return len(model.values) - 1, len(reference.values) - 1
    if choice == "best":
        scored = matrix(
            MatrixRequest(
                model.model, reference.model, request.dataset, request.n, request.seed, request.metric, request.params
            )
        )
        i, j = scored.best_index
        return int(i), int(j)
    assert isinstance(choice, float)
    return depth_layer(choice, len(model.values)), depth_layer(choice, len(reference.values))


def compute_difference(
    request: DifferenceRequest, views: dict[str, ViewFeatures], matrix: Callable[[MatrixRequest], LayerMatrix]
) -> Difference:
    """The difference a request asks for (``matrix`` gives a pair's layer matrix, for ``layers="best"``)."""
    view_a, view_b, view_x = views[request.model_a], views[request.model_b], views[request.reference]
    i_a, j_a = _layers_of(request, view_a, view_x, matrix)
    i_b, j_b = _layers_of(request, view_b, view_x, matrix)
    test = score_difference(
        request.metric,
        view_a.values[i_a],
        view_b.values[i_b],
        view_x.values[j_a],
        feats_x_for_b=view_x.values[j_b],
        n_boot=request.bootstrap,
        method=request.method,
        seed=request.seed,
        name_a=request.model_a,
        name_b=request.model_b,
        name_x=request.reference,
        metric_params=dict(request.params),
    )
    return Difference(
        request.model_a,
        request.model_b,
        request.reference,
        request.dataset,
        request.layers,
        (i_a, j_a),
        (i_b, j_b),
        (view_a.layer_names[i_a], view_x.layer_names[j_a]),
        (view_b.layer_names[i_b], view_x.layer_names[j_b]),
        test,
    )
