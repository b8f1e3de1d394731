"""The only place with ``st.cache_data`` / ``st.cache_resource`` wrappers around ``core``.

Cached functions are keyed by plain strings and ints, never by objects: loaded models and datasets
are shared resources (``st.cache_resource``); features, scores and tables are data (``st.cache_data``).
Feature functions also take the feature cache keys as arguments, so replacing an upload under the
same name (a new key) can never serve stale numbers.

Features come from the on-disk :class:`core.cache.FeatureCache`. Small datasets (up to
:data:`FULL_EXTRACT_LIMIT` samples) are extracted whole, so every n and seed afterwards is a row
selection of one cache entry; bigger ones are extracted for the requested subset only.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import streamlit as st

from core.cache import FeatureCache, feature_key
from core.datasets import Dataset, load_dataset
from core.errors import AlignscopeError, InputError
from core.models import get_model_spec, load_model, resolve_device, resolve_dtype
from core.settings import get_settings

FULL_EXTRACT_LIMIT = 5000
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


# --------------------------------------------------------------------------------------------------
# Registries, datasets, models
# --------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def bootstrap_registries(cache_dir: str) -> list[str]:
    """Register persisted uploads and hub models once per cache dir (the arg keys the cache)."""
    from core.uploads import load_user_registry

    return load_user_registry()


def ensure_registries() -> None:
    bootstrap_registries(str(get_settings().cache_dir))


@st.cache_resource(show_spinner=False, max_entries=8)
def dataset(name: str, revision: str | None) -> Dataset:
    """The full registered dataset (shared, read-only); ``revision`` keys re-uploads."""
    return load_dataset(name)


def full_dataset(name: str) -> Dataset:
    from core.datasets import get_dataset_spec

    return dataset(name, get_dataset_spec(name).revision)


@st.cache_data(show_spinner=False, max_entries=64)
def dataset_size(name: str) -> int | None:
    """Samples in registered dataset ``name``, or None when it cannot be loaded."""
    try:
        return full_dataset(name).n_total
    except AlignscopeError:
        return None


@st.cache_resource(show_spinner=False, max_entries=4)
def encoder(model: str, fingerprint: str):
    """A loaded model, shared by every session (``fingerprint`` keys a changed spec)."""
    return load_model(model, device=get_settings().device)


def modality_problem(model: str, dataset_name: str) -> str | None:
    """A sentence explaining why ``model`` cannot encode ``dataset_name``, or None when it can."""
    from core.datasets import get_dataset_spec, list_datasets

    spec = get_model_spec(model)
    data_spec = get_dataset_spec(dataset_name)
    bound_to = spec.option("dataset") if spec.kind == "representation" else None
    if bound_to is not None and bound_to != dataset_name:
        return (
            f"{model!r} is a precomputed representation of dataset {bound_to!r}; it has no rows for "
            f"{dataset_name!r}. Pick dataset {bound_to!r} or another model."
        )
    if data_spec.supports(spec.modality):
        return None
    fitting = [d.name for d in list_datasets(spec.modality)]
    return (
        f"{model!r} encodes {spec.modality}, but dataset {dataset_name!r} holds {data_spec.modality} samples. "
        f"Pick a dataset with {spec.modality} ({', '.join(fitting) or 'none registered'}) or a "
        f"{data_spec.modality.split('-')[0]} model."
    )


# --------------------------------------------------------------------------------------------------
# Feature plan: what is cached, what would be computed, how long it would take
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeaturePlan:
    """Where a model's features for (dataset, n, seed) come from.

    ``full_key`` / ``subset_key``: cache keys of the whole dataset and of the subset; ``cached`` says
    whether one of them is on disk; ``extract_n``: samples an extraction would encode.
    """

    model: str
    dataset: str
    n: int
    seed: int
    full_key: str
    subset_key: str
    cached: bool
    extract_n: int
    estimate_seconds: float


def _effective_dtype(spec) -> str:
    device = resolve_device(get_settings().device)
    return str(resolve_dtype(spec.dtype, device)).removeprefix("torch.")


def _subset(name: str, n: int, seed: int) -> tuple[Dataset, Dataset]:
    full = full_dataset(name)
    return full, full.subset(min(n, len(full)), seed)


def _estimate(model: str, n: int) -> float:
    """Seconds to extract n samples: this machine's past throughput for the model, else a guess."""
    spec = get_model_spec(model)
    cache = FeatureCache()
    rates = []
    for key in cache.keys()[:500]:
        sidecar = cache.read_sidecar(key) or {}
        if sidecar.get("model_name") == model and sidecar.get("meta", {}).get("seconds"):
            shapes = sidecar.get("shapes") or [[0]]
            if shapes[0] and shapes[0][0]:
                rates.append(float(sidecar["meta"]["seconds"]) / shapes[0][0])
    per_sample = statistics.median(rates) if rates else _SECONDS_PER_SAMPLE.get(spec.kind, 0.1)
    return _LOAD_SECONDS.get(spec.kind, 2.0) + per_sample * n


def feature_plan(model: str, dataset_name: str, n: int, seed: int) -> FeaturePlan:
    """Cheap (sidecar lookups only): never loads a model or a tensor file."""
    spec = get_model_spec(model)
    full, sub = _subset(dataset_name, n, seed)
    dtype = _effective_dtype(spec)
    full_key = feature_key(spec, full, dtype=dtype)
    subset_key = feature_key(spec, sub, dtype=dtype)
    cache = FeatureCache()
    cached = any(
        cache.read_sidecar(key) is not None and cache.tensor_path(key).exists() for key in (full_key, subset_key)
    )
    extract_n = len(full) if len(full) <= FULL_EXTRACT_LIMIT else len(sub)
    return FeaturePlan(model, dataset_name, len(sub), seed, full_key, subset_key, cached, extract_n,
                       0.0 if cached else _estimate(model, extract_n))  # fmt: skip


def extract(plan: FeaturePlan, progress: Callable[[int, int], None] | None = None) -> None:
    """Compute and store the features a plan needs (the only function here that may run a model)."""
    spec = get_model_spec(plan.model)
    full, sub = _subset(plan.dataset, plan.n, plan.seed)
    target = full if plan.extract_n == len(full) else sub
    loaded = encoder(plan.model, str(spec.fingerprint()))
    FeatureCache().get_or_extract(spec, target, progress=progress, encoder=loaded)


# --------------------------------------------------------------------------------------------------
# Features (from the disk cache only)
# --------------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def features(model: str, dataset_name: str, n: int, seed: int, full_key: str, subset_key: str) -> dict:
    """``{"layer_names", "values": [np.float32 [n, d]], "sample_ids", "labels", "cache_key"}``.

    Raises InputError when neither cache entry exists: pages extract first, after asking.
    """
    full, sub = _subset(dataset_name, n, seed)
    cache = FeatureCache()
    cached = cache.get(full_key)
    key = full_key
    if cached is not None:
        position = {sample_id: i for i, sample_id in enumerate(cached.sample_ids)}
        cached = cached.take([position[sample_id] for sample_id in sub.sample_ids])
    else:
        cached, key = cache.get(subset_key), subset_key
    if cached is None:
        raise InputError(f"features of {model!r} on {dataset_name!r} (n={n}) are not cached yet; compute them first")
    return {
        "layer_names": list(cached.layer_names),
        "values": [v.numpy() for v in cached.values],
        "sample_ids": list(sub.sample_ids),
        "labels": None if sub.labels is None else list(sub.labels),
        "cache_key": key,
    }


def features_for(model: str, dataset_name: str, n: int, seed: int) -> dict:
    plan = feature_plan(model, dataset_name, n, seed)
    return features(model, dataset_name, plan.n, seed, plan.full_key, plan.subset_key)


def resolve_layer(index: int, n_layers: int) -> int:
    """-1 = last; out-of-range indices are clamped (pages warn)."""
    if -n_layers <= index < n_layers:
        return index % n_layers
    return n_layers - 1


def metric_params(metric: str, k: int) -> dict:
    """The page's k, passed only to metrics that take one (and clamped to their bounds)."""
    from core.metrics.registry import get_metric

    spec = get_metric(metric)
    params = {}
    for param in spec.params:
        if param.name == "k":
            low = int(param.low) if param.low is not None else 1
            params["k"] = max(k, low)
    return params


# --------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=128)
def layer_scores(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, metric: str, k: int,
                 key_a: str, key_b: str) -> dict:  # fmt: skip
    """Every layer pair: ``{"values" [La, Lb], "best_index", "best_value", "names_a", "names_b"}``."""
    from core.metrics.layers import layer_matrix

    feats_a = features_for(model_a, dataset_name, n, seed)
    feats_b = features_for(model_b, dataset_name, n, seed)
    names_a = [f"{model_a}:{name}" for name in feats_a["layer_names"]]
    names_b = [f"{model_b}:{name}" for name in feats_b["layer_names"]]
    result = layer_matrix(feats_a["values"], feats_b["values"], metric, names_a=names_a, names_b=names_b,
                          **metric_params(metric, k))  # fmt: skip
    return {
        "values": result.values,
        "best_index": result.best_index,
        "best_value": result.best_value,
        "names_a": feats_a["layer_names"],
        "names_b": feats_b["layer_names"],
        "params": result.params,
    }


def _pair(model_a, model_b, dataset_name, n, seed, layer_a, layer_b):
    feats_a = features_for(model_a, dataset_name, n, seed)
    feats_b = features_for(model_b, dataset_name, n, seed)
    return (
        feats_a["values"][resolve_layer(layer_a, len(feats_a["values"]))],
        feats_b["values"][resolve_layer(layer_b, len(feats_b["values"]))],
    )


@st.cache_data(show_spinner=False, max_entries=256)
def score_and_chance(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, metric: str, k: int,
                     layer_a: int, layer_b: int, key_a: str, key_b: str) -> dict:  # fmt: skip
    """``{"score", "chance", "chance_analytic", "chance_std", "higher_is_better"}`` (20 shuffles)."""
    from core.metrics.registry import compute, get_metric
    from core.stats import chance_level

    a, b = _pair(model_a, model_b, dataset_name, n, seed, layer_a, layer_b)
    params = metric_params(metric, k)
    score = compute(metric, a, b, name_a=model_a, name_b=model_b, **params)
    chance = chance_level(metric, a, b, n_shuffles=20, seed=seed, **params)
    return {
        "score": score,
        "chance": chance.value,
        "chance_analytic": chance.analytic,
        "chance_std": chance.empirical_std,
        "higher_is_better": get_metric(metric).higher_is_better,
    }


@st.cache_data(show_spinner=False, max_entries=256)
def p_value(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, metric: str, k: int,
            layer_a: int, layer_b: int, permutations: int, key_a: str, key_b: str) -> float:  # fmt: skip
    from core.stats import permutation_test

    a, b = _pair(model_a, model_b, dataset_name, n, seed, layer_a, layer_b)
    return permutation_test(metric, a, b, n_permutations=permutations, seed=seed, **metric_params(metric, k)).p_value


@st.cache_data(show_spinner=False, max_entries=256)
def interval(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, metric: str, k: int,
             layer_a: int, layer_b: int, bootstrap: int, key_a: str, key_b: str) -> tuple[float, float]:  # fmt: skip
    from core.stats import bootstrap_ci

    a, b = _pair(model_a, model_b, dataset_name, n, seed, layer_a, layer_b)
    result = bootstrap_ci(metric, a, b, n_boot=bootstrap, seed=seed, **metric_params(metric, k))
    return result.low, result.high


# --------------------------------------------------------------------------------------------------
# Result card
# --------------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    versions = {}
    for package in ("alignscope", "torch", "numpy", "scipy", "streamlit", "plotly", "transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def show_error(error: Exception) -> None:
    """Every AlignscopeError is shown with its own words, never as a traceback."""
    st.error(str(error), icon=":material/error:")

