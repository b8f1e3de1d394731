"""Task performance measured here: a cross-validated linear probe of every layer of a model on a
labelled dataset, as an engine request. Its best layer's accuracy becomes the model's property
``probe_accuracy[<dataset>]`` (see :mod:`alignscope.core.properties`), so "alignment against task
performance" needs no number from elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import Request
from alignscope.core.analysis.results import register_result_type
from alignscope.core.errors import InputError
from alignscope.core.models import ModelProperty
from alignscope.core.probe import ProbeResult, probe_layers
from alignscope.core.settings import Settings

register_result_type(ProbeResult)


def probe_property_name(dataset: str) -> str:
    """The property a probe on ``dataset`` sets, e.g. ``probe_accuracy[digits]``."""
    return f"probe_accuracy[{dataset}]"


@dataclass(frozen=True)
class ProbeRequest(Request):
    """A ``n_folds``-fold logistic-regression probe of every layer of ``model`` on ``dataset``'s labels."""

    kind: ClassVar[str] = "probe"
    model: str
    dataset: str
    n: int
    seed: int = 0
    n_folds: int = 5

    def feature_models(self) -> tuple[str, ...]:
        return (self.model,)


@register_result_type
@dataclass(frozen=True)
class LayerProbes:
    """One :class:`ProbeResult` per layer of ``model``, in layer order; ``best_layer`` the most accurate."""

    model: str
    dataset: str
    layer_names: tuple[str, ...]
    layers: tuple[ProbeResult, ...]

    @property
    def best_layer(self) -> int:
        return max(range(len(self.layers)), key=lambda index: self.layers[index].accuracy)

    def as_property(self) -> ModelProperty:
        best = self.layers[self.best_layer]
        source = (
            f"measured here: {best.n_folds}-fold logistic-regression probe on {best.n_samples} samples, "
            f"best of {len(self.layers)} layers ({self.layer_names[self.best_layer]}); chance {best.chance:.3f}"
        )
        return ModelProperty(probe_property_name(self.dataset), best.accuracy, "fraction", source)

    def keep(self, settings: Settings | None = None) -> None:
        """Keep :meth:`as_property` as the model's measured property; called for a probe read back from the
        store too, so the property is always the last probe shown."""
        from alignscope.core.properties import record_measured

        record_measured(self.model, self.as_property(), settings)


def compute_probes(
    request: ProbeRequest, view: ViewFeatures, progress: Callable[[int, int], None] | None = None
) -> LayerProbes:
    """Probe every layer (the same folds for all) and return the per-layer accuracies."""
    if view.labels is None:
        raise InputError(f"dataset {request.dataset!r} has no labels, so there is nothing to probe")
    results = []
    for index, layer in enumerate(view.values):
        results.extend(probe_layers([layer], list(view.labels), n_folds=request.n_folds, seed=request.seed))
        if progress is not None:
            progress(index + 1, len(view.values))
    return LayerProbes(request.model, request.dataset, view.layer_names, tuple(results))
