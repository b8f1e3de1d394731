"""Which features a view reads, whether they are cached, and loading them as the view's rows.

A view is (model, dataset, ``n``, ``seed``): the seeded nested subset of ``n`` samples. Small datasets
(up to :data:`FULL_EXTRACT_LIMIT` samples, and quick to extract) are extracted whole, so every n and
seed afterwards is a row selection of one cache entry; bigger ones are extracted for the subset only.
Planning is cheap: it reads at most two sidecars and never loads a model or a tensor file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alignscope.core.cache import FeatureCache, feature_key
from alignscope.core.datasets import Dataset, get_dataset_spec, load_dataset
from alignscope.core.devices import effective_dtype
from alignscope.core.errors import FeaturesGone, InputError
from alignscope.core.memo import Lru
from alignscope.core.models import get_model_spec, list_models
from alignscope.core.settings import get_settings
from alignscope.core.sources import FACTORIES

FULL_EXTRACT_LIMIT = 5000
# ...and only when that is quick: a slow model (EfficientNet on 1,797 digits) extracts just the subset asked for.
FULL_EXTRACT_SECONDS = 60.0
# Rough seconds per sample on a laptop CPU when this model has never been extracted here.
_SECONDS_PER_SAMPLE = {
    "torch-hooks": 0.01,
    "hf-text": 0.05,
    "hf-vision": 0.15,
    "clip-text": 0.05,
    "clip-image": 0.15,
    "embedding": 0.04,
    "representation": 0.0001,
}
_LOAD_SECONDS = {"torch-hooks": 3.0, "hf-text": 5.0, "hf-vision": 8.0, "embedding": 5.0}


@functools.lru_cache(maxsize=16)
def _load_full(name: str, revision: str | None, source: str) -> Dataset:
    return load_dataset(name)


def full_dataset(name: str) -> Dataset:
    """The whole registered dataset, loaded once per process (keyed by its revision and source)."""
    spec = get_dataset_spec(name)
    return _load_full(name, spec.revision, spec.source)


def view_dataset(name: str, n: int, seed: int) -> Dataset:
    """The samples of a view: the seeded subset of ``min(n, size)`` samples, in dataset order (made once per
    process and dataset revision: a page run asks for it several times)."""
    spec = get_dataset_spec(name)
    return _view(name, spec.revision, spec.source, n, seed)


@functools.lru_cache(maxsize=16)
def _view(name: str, revision: str | None, source: str, n: int, seed: int) -> Dataset:
    full = _load_full(name, revision, source)
    return full.subset(min(n, len(full)), seed)


def effective_n(name: str, n: int) -> int:
    return min(n, len(full_dataset(name)))


@dataclass(frozen=True)
class FeaturePlan:
    """Where a model's features for one view come from.

    Attributes:
        full_key, subset_key: cache keys of the whole dataset's entry and of the subset's.
        cached_key: whichever of the two is on disk (the whole dataset first), else None.
        extract_n: samples an extraction would encode (the whole dataset when that is quick).
        estimate_seconds: seconds that extraction would take here (0 when cached).
        layer_names, dims: the cached entry's layers and their widths (empty when not cached).
    """

    model: str
    dataset: str
    n: int
    seed: int
    full_key: str
    subset_key: str
    cached_key: str | None
    extract_n: int
    estimate_seconds: float
    layer_names: tuple[str, ...] = ()
    dims: tuple[int, ...] = ()

    @property
    def cached(self) -> bool:
        return self.cached_key is not None

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    def resolve_layer(self, index: int) -> int:
        """-1 = last; an index the model does not have is an InputError naming the valid range."""
        count = self.n_layers
        if not -count <= index < count:
            raise InputError(f"{self.model!r} has layers 0..{count - 1}; layer {index} does not exist")
        return index % count


def extraction_estimate(model: str, n_samples: int, cache: FeatureCache | None = None) -> float:
    """Seconds to extract ``n_samples`` (see :func:`extraction_cost`)."""
    load, per_sample = extraction_cost(model, cache)
    return load + per_sample * n_samples


def extraction_cost(model: str, cache: FeatureCache | None = None) -> tuple[float, float]:
    """(seconds to load, seconds per sample) of an extraction: the per-sample cost is this machine's past
    throughput for the model, else the slowest model of the same weights source and loader extracted here
    (the three seeds of one recipe, a text variant), else its factory's guess, else its loader kind's."""
    spec = get_model_spec(model)
    rates = (cache or FeatureCache()).throughputs()
    rate = rates.get(model)
    if rate is None:
        siblings = [
            rates[other.name]
            for other in list_models()
            if other.source == spec.source and other.kind == spec.kind and other.name in rates
        ]
        rate = max(siblings) if siblings else None
    if rate is None and spec.source in FACTORIES:
        rate = FACTORIES.get(spec.source).seconds_per_sample
    per_sample = rate if rate is not None else _SECONDS_PER_SAMPLE.get(spec.kind, 0.1)
    return _LOAD_SECONDS.get(spec.kind, 2.0), per_sample


def plan_features(model: str, dataset: str, n: int, seed: int, cache: FeatureCache | None = None) -> FeaturePlan:
    """Cheap: at most two sidecar reads (none for a sidecar already read); never loads a model or a tensor file."""
    cache = cache or FeatureCache()
    spec = get_model_spec(model)
    full = full_dataset(dataset)
    sub = view_dataset(dataset, n, seed)
    dtype = effective_dtype(spec.dtype, get_settings().device)
    full_key = feature_key(spec, full, dtype=dtype)
    subset_key = full_key if len(sub) == len(full) else feature_key(spec, sub, dtype=dtype)
    for key in dict.fromkeys((full_key, subset_key)):
        layout = cache.layout(key)
        if layout is not None and cache.tensor_path(key).exists():
            return FeaturePlan(
                model, dataset, len(sub), seed, full_key, subset_key, key, 0, 0.0, layout.layer_names, layout.widths
            )
    load, per_sample = extraction_cost(model, cache)  # one read of this machine's rates
    whole = len(full) <= FULL_EXTRACT_LIMIT and load + per_sample * len(full) <= FULL_EXTRACT_SECONDS
    extract_n = len(full) if whole else len(sub)
    estimate = load + per_sample * extract_n
    return FeaturePlan(model, dataset, len(sub), seed, full_key, subset_key, None, extract_n, estimate)


@dataclass(frozen=True, eq=False)
class ViewFeatures:
    """One model's features for one view: ``values[l]`` is float32 ``[n, d_l]``, rows in the view's
    sample order (``sample_ids``); ``cache_key`` names the feature cache entry they were read from."""

    model: str
    dataset: str
    layer_names: tuple[str, ...]
    values: tuple[np.ndarray, ...]
    sample_ids: tuple[str, ...]
    labels: tuple[str, ...] | None
    cache_key: str

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    def layer(self, index: int) -> np.ndarray:
        return self.values[index]


# the views loaded lately, shared by every caller in the process (features are read-only)
LOADED_VIEWS: Lru[ViewFeatures] = Lru(capacity=12)


def load_view(plan: FeaturePlan, cache: FeatureCache | None = None) -> ViewFeatures:
    """The features of a planned view from the feature cache (InputError when not cached yet)."""
    if plan.cached_key is None:
        raise InputError(
            f"features of {plan.model!r} on {plan.dataset!r} (n={plan.n}) are not cached yet; compute them first"
        )
    cached_key = plan.cached_key
    return LOADED_VIEWS.get((cached_key, plan.n, plan.seed), lambda: _read_view(plan, cached_key, cache))


def _read_view(plan: FeaturePlan, key: str, cache: FeatureCache | None) -> ViewFeatures:
    cache = cache or FeatureCache()
    entry = cache.get(key)
    if entry is None:
        raise FeaturesGone(
            f"the cached features of {plan.model!r} on {plan.dataset!r} were damaged on disk or removed meanwhile "
            "(a damaged file is dropped, never served); compute them again"
        )
    sub = view_dataset(plan.dataset, plan.n, plan.seed)
    if key != plan.subset_key or tuple(entry.sample_ids) != sub.sample_ids:
        position = {sample_id: i for i, sample_id in enumerate(entry.sample_ids)}
        missing = [s for s in sub.sample_ids if s not in position]
        if missing:
            raise InputError(f"the cached features of {plan.model!r} lack samples {missing[:3]}; compute them again")
        entry = entry.take([position[sample_id] for sample_id in sub.sample_ids])
    return ViewFeatures(
        plan.model,
        plan.dataset,
        tuple(entry.layer_names),
        tuple(v.numpy() for v in entry.values),
        tuple(sub.sample_ids),
        None if sub.labels is None else tuple(sub.labels),
        key,
    )


def extract_for_plan(
    plan: FeaturePlan,
    *,
    progress: Callable[[int, int], None] | None = None,
    encoder: object | None = None,
    cache: FeatureCache | None = None,
    device: str | None = None,
) -> str:
    """Compute and store the features a plan needs; returns the cache key they were stored under."""
    cache = cache or FeatureCache()
    full = full_dataset(plan.dataset)
    target = full if plan.extract_n == len(full) else full.subset(plan.n, plan.seed)
    _, result = cache.get_or_extract(
        get_model_spec(plan.model), target, progress=progress, encoder=encoder, device=device
    )
    return result.key


def modality_problem(model: str, dataset: str) -> str | None:
    """A sentence explaining why ``model`` cannot encode ``dataset``, or None when it can."""
    from alignscope.core.datasets import list_datasets

    spec = get_model_spec(model)
    data_spec = get_dataset_spec(dataset)
    bound_to = spec.option("dataset") if spec.kind == "representation" else None
    if bound_to is not None and bound_to != dataset:
        return (
            f"{model!r} is a precomputed representation of dataset {bound_to!r}; it has no rows for "
            f"{dataset!r}. Pick dataset {bound_to!r} or another model."
        )
    if data_spec.supports(spec.modality):
        if spec.modality == "text" and spec.text_index > 1:
            held = full_dataset(dataset).n_texts
            if spec.text_index > held:
                return (
                    f"{model!r} encodes text {spec.text_index} of each sample, but dataset {dataset!r} holds "
                    f"{held} text(s) per sample. Pick a dataset with several captions (captions) or another model."
                )
        return None
    fitting = [d.name for d in list_datasets(spec.modality)]
    kind = data_spec.modality.split("-")[0]
    article = "an" if kind[:1] in "aeiou" else "a"
    return (
        f"{model!r} encodes {spec.modality}, but dataset {dataset!r} holds {data_spec.modality} samples. "
        f"Pick a dataset with {spec.modality} ({', '.join(fitting) or 'none registered'}) or {article} {kind} model."
    )
