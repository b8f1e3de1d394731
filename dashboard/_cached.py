"""The only place with ``st.cache_data`` / ``st.cache_resource`` wrappers around ``core``.

Cached functions are keyed by plain strings and ints, never by objects: loaded models and datasets
are shared resources (``st.cache_resource``); features, scores and tables are data (``st.cache_data``).
Feature functions also take the feature cache keys as arguments, so replacing an upload under the
same name (a new key) can never serve stale numbers.

Features come from the on-disk :class:`core.cache.FeatureCache`. Small datasets (up to
:data:`FULL_EXTRACT_LIMIT` samples, and quick to extract) are extracted whole, so every n and seed afterwards is a row
selection of one cache entry; bigger ones are extracted for the requested subset only.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import streamlit as st

from alignscope.core.cache import FeatureCache, feature_key
from alignscope.core.datasets import Dataset, load_dataset
from alignscope.core.errors import AlignscopeError, InputError
from alignscope.core.devices import effective_dtype
from alignscope.core.models import get_model_spec, load_model
from alignscope.core.settings import get_settings

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


# --------------------------------------------------------------------------------------------------
# Registries, datasets, models
# --------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def bootstrap_registries(cache_dir: str) -> list[str]:
    """Register persisted uploads and hub models once per cache dir (the arg keys the cache)."""
    from alignscope.core.uploads import load_user_registry

    return load_user_registry()


def ensure_registries() -> None:
    bootstrap_registries(str(get_settings().cache_dir))


@st.cache_resource(show_spinner=False, max_entries=8)
def dataset(name: str, revision: str | None) -> Dataset:
    """The full registered dataset (shared, read-only); ``revision`` keys re-uploads."""
    return load_dataset(name)


def full_dataset(name: str) -> Dataset:
    from alignscope.core.datasets import get_dataset_spec

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
    from alignscope.core.datasets import get_dataset_spec, list_datasets

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
        f"Pick a dataset with {spec.modality} ({', '.join(fitting) or 'none registered'}) or "
        f"{_article(data_spec.modality.split('-')[0])} model."
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
    return effective_dtype(spec.dtype, get_settings().device)


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
    whole = len(full) <= FULL_EXTRACT_LIMIT and _estimate(model, len(full)) <= FULL_EXTRACT_SECONDS
    extract_n = len(full) if whole else len(sub)
    return FeaturePlan(model, dataset_name, len(sub), seed, full_key, subset_key, cached, extract_n,
                       0.0 if cached else _estimate(model, extract_n))  # fmt: skip


def is_file_read(model: str) -> bool:
    """True for models whose "extraction" only reads stored values (uploaded representations)."""
    return get_model_spec(model).kind == "representation"


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
    from alignscope.core.analysis.requests import metric_params as params_for

    return dict(params_for(metric, k=k))


# --------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=128)
def layer_scores(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, metric: str, k: int,
                 key_a: str, key_b: str) -> dict:  # fmt: skip
    """Every layer pair: ``{"values" [La, Lb], "best_index", "best_value", "names_a", "names_b"}``."""
    from alignscope.core.metrics.layers import layer_matrix

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
    from alignscope.core.metrics.registry import compute, get_metric
    from alignscope.core.stats import chance_level

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
    from alignscope.core.stats import permutation_test

    a, b = _pair(model_a, model_b, dataset_name, n, seed, layer_a, layer_b)
    return permutation_test(metric, a, b, n_permutations=permutations, seed=seed, **metric_params(metric, k)).p_value


@st.cache_data(show_spinner=False, max_entries=256)
def interval(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, metric: str, k: int,
             layer_a: int, layer_b: int, bootstrap: int, key_a: str, key_b: str) -> tuple[float, float]:  # fmt: skip
    from alignscope.core.stats import bootstrap_ci

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



# --------------------------------------------------------------------------------------------------
# Many models
# --------------------------------------------------------------------------------------------------


def depth_layer(relative_depth: float, n_layers: int) -> int:
    """The layer at a relative depth in [0, 1] (0 = first, 1 = last), rounded to the nearest."""
    return int(round(relative_depth * (n_layers - 1)))


@st.cache_data(show_spinner=False, max_entries=64)
def model_matrix(models: tuple[str, ...], dataset_name: str, n: int, seed: int, metric: str, k: int,
                 relative_depth: float | None, keys: tuple[str, ...]) -> dict:  # fmt: skip
    """``{"values" [m, m], "layers": [[i, j] per cell]}``: the best layer pair per model pair, or the
    layers at one relative depth. ``keys`` (feature cache keys) only key the cache."""
    from alignscope.core.metrics.registry import compute, get_metric

    spec = get_metric(metric)
    count = len(models)
    values = np.full((count, count), np.nan)
    layers = [[None] * count for _ in range(count)]
    for i, model_i in enumerate(models):
        for j, model_j in enumerate(models):
            if j < i and spec.symmetric:
                values[i, j], layers[i][j] = values[j, i], layers[j][i][::-1]
                continue
            if relative_depth is None:
                result = layer_scores(model_i, model_j, dataset_name, n, seed, metric, k, keys[i], keys[j])
                values[i, j], layers[i][j] = result["best_value"], list(result["best_index"])
            else:
                feats_i = features_for(model_i, dataset_name, n, seed)["values"]
                feats_j = features_for(model_j, dataset_name, n, seed)["values"]
                li, lj = depth_layer(relative_depth, len(feats_i)), depth_layer(relative_depth, len(feats_j))
                values[i, j] = compute(metric, feats_i[li], feats_j[lj], name_a=model_i, name_b=model_j,
                                       **metric_params(metric, k))  # fmt: skip
                layers[i][j] = [li, lj]
    return {"values": values, "layers": layers, "higher_is_better": spec.higher_is_better}


def cluster_order(values: np.ndarray, higher_is_better: bool) -> list[int]:
    """Leaf order of average-linkage clustering on the symmetrised score (optimal leaf ordering)."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    count = values.shape[0]
    if count < 3 or not np.isfinite(values).all():
        return list(range(count))
    sym = (values + values.T) / 2
    distance = (sym.max() - sym) if higher_is_better else (sym - sym.min())
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(np.clip(distance, 0.0, None), checks=False)
    tree = linkage(condensed, method="average")
    return [int(i) for i in leaves_list(optimal_leaf_ordering(tree, condensed))]


@st.cache_data(show_spinner=False, max_entries=32)
def gram(models: tuple[str, ...], dataset_name: str, n: int, seed: int, relative_depth: float,
         keys: tuple[str, ...]) -> dict:  # fmt: skip
    """GRAM volume of the set at one relative depth, or why it is not defined.

    ``{"volume", "chance", "chance_std", "layers", "widths", "problem"}``; chance = the volume with each
    model's rows shuffled independently (10 shuffles).
    """
    import torch

    try:
        from alignscope.core.metrics.gram import gram_volume
    except ImportError:
        return {"problem": "GRAM is not available in this version of core.metrics.", "widths": [], "layers": []}
    chosen, widths = [], []
    for model in models:
        values = features_for(model, dataset_name, n, seed)["values"]
        layer = depth_layer(relative_depth, len(values))
        chosen.append((layer, values[layer]))
        widths.append(int(values[layer].shape[1]))
    layers = [layer for layer, _ in chosen]
    if len(set(widths)) > 1:
        return {
            "problem": (
                "GRAM measures the volume spanned by each sample's embeddings in one shared space, so all "
                f"models must have the same width; at this depth the widths are {dict(zip(models, widths))}. "
                "Nothing is projected to a common width, since that would invent the very correspondence being "
                "measured. Pick models of equal width (or a depth where they agree), e.g. towers of one "
                "contrastive model."
            ),
            "widths": widths,
            "layers": layers,
        }
    mats = [torch.as_tensor(values) for _, values in chosen]
    volume = gram_volume(*mats)
    generator = torch.Generator().manual_seed(seed)
    null = []
    for _ in range(10):
        shuffled = [mats[0]] + [m[torch.randperm(m.shape[0], generator=generator)] for m in mats[1:]]
        null.append(gram_volume(*shuffled))
    return {"volume": volume, "chance": float(np.mean(null)), "chance_std": float(np.std(null, ddof=1)),
            "layers": layers, "widths": widths, "problem": None}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------------

SWEEP_TITLES = {
    "k": "neighbours k (count)",
    "n": "samples n (count)",
    "prefix": "Matryoshka prefix length (leading feature dimensions)",
    "depth": "relative depth of A's layer (0 = first, 1 = last)",
}


def _geometric(low: int, high: int, count: int = 9) -> list[int]:
    if high <= low:
        return [max(1, high)]
    return sorted({int(round(v)) for v in np.geomspace(low, high, count)})


@st.cache_data(show_spinner=False, max_entries=64)
def sweep(kind: str, model_a: str, model_b: str, dataset_name: str, n: int, seed: int, metric: str, k: int,
          layer_a: int, layer_b: int, key_a: str, key_b: str) -> dict:  # fmt: skip
    """Score against k, n, prefix length or layer depth, with the chance level (mean and sd over 10
    shuffled correspondences; the analytic level where the metric has one) at every point.

    Returns ``{"x", "values", "chance", "chance_std", "chance_analytic", "series", "note"}``.
    """
    import torch

    from alignscope.core.metrics.registry import compute, get_metric
    from alignscope.core.stats import chance_level

    spec = get_metric(metric)
    feats_a = features_for(model_a, dataset_name, n, seed)["values"]
    feats_b = features_for(model_b, dataset_name, n, seed)["values"]
    a = feats_a[resolve_layer(layer_a, len(feats_a))]
    b = feats_b[resolve_layer(layer_b, len(feats_b))]
    params = metric_params(metric, k)
    points: list[tuple[float, np.ndarray, np.ndarray, dict]] = []
    series: dict[str, list[float]] = {}
    note = ""
    if kind == "k":
        if "k" not in spec.param_names:
            raise InputError(f"{metric} has no k; a k sweep needs a k-NN metric (mutual_knn, cknna, …)")
        low = 2 if any(p.name == "k" and (p.low or 1) >= 2 for p in spec.params) else 1
        # k -> n - 1 makes every neighbour set the whole dataset (score = chance = 1): stop at n / 2.
        for value in _geometric(low, max(low, min(a.shape[0] // 2, 1000))):
            points.append((value, a, b, {**params, "k": value}))
    elif kind == "n":
        order = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed)).numpy()
        smallest = max(params.get("k", 1) + 2, 10)
        for value in _geometric(min(smallest, a.shape[0]), a.shape[0]):
            rows = np.sort(order[:value])
            points.append((value, a[rows], b[rows], params))
        note = "Nested subsets: each smaller set is contained in the larger ones."
    elif kind == "prefix":
        width = min(a.shape[1], b.shape[1])
        # from m = 2: at m = 1 every cosine is ±1 and k-NN lists are all ties (see core prefix_sweep)
        for value in _geometric(min(2, width), width, 10):
            points.append((value, a[:, :value], b[:, :value], params))
        note = (f"Both representations truncated to their first m dimensions (widths {a.shape[1]} and "
                f"{b.shape[1]}); meaningful for Matryoshka-trained embeddings, whose leading dimensions carry "
                "the most information.")  # fmt: skip
    elif kind == "depth":
        count_a, count_b = len(feats_a), len(feats_b)
        best = []
        for i in range(count_a):
            depth = i / max(1, count_a - 1)
            j = depth_layer(depth, count_b)
            points.append((depth, feats_a[i], feats_b[j], params))
        matrix = layer_scores(model_a, model_b, dataset_name, n, seed, metric, k, key_a, key_b)["values"]
        best = matrix.max(axis=1) if spec.higher_is_better else matrix.min(axis=1)
        series["best layer of B"] = [float(v) for v in best]
        note = "Layer i of A against the layer of B at the same relative depth; dotted: the best layer of B."
    else:
        raise InputError(f"unknown sweep {kind!r}; choose k, n, prefix or depth")
    x, values, chance, chance_std, analytic = [], [], [], [], []
    for value, left, right, point_params in points:
        x.append(value)
        values.append(compute(metric, left, right, name_a=model_a, name_b=model_b, **point_params))
        level = chance_level(metric, left, right, n_shuffles=10, seed=seed, **point_params)
        chance.append(level.empirical)
        chance_std.append(level.empirical_std)
        analytic.append(np.nan if level.analytic is None else level.analytic)
    return {"x": x, "values": values, "chance": chance, "chance_std": chance_std, "chance_analytic": analytic,
            "series": series, "note": note, "x_title": SWEEP_TITLES[kind]}  # fmt: skip


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


# ==================================================================================================
# Projections and neighbours (this section belongs to the Projections and Neighbours pages)
# ==================================================================================================
# Layers are passed as resolved indices and features by their cache keys, so the same view always hits
# the same entry. UMAP runs take ``_progress`` (not hashed: a leading underscore) for epoch progress;
# it is a plain callable that never calls Streamlit, so a cached run replays nothing.

_FULL_SELECTION = "_alignscope_full_selection"


def layer_features(model: str, dataset_name: str, n: int, seed: int, layer: int) -> np.ndarray:
    """``[n, d]`` features of one layer (index resolved as on every page: -1 = last)."""
    feats = features_for(model, dataset_name, n, seed)
    return feats["values"][resolve_layer(layer, len(feats["values"]))]


@st.cache_data(show_spinner=False, max_entries=64)
def pca_projection(model: str, dataset_name: str, n: int, seed: int, layer: int, key: str) -> dict:
    """``{"coords": [n, 2], "explained": [2]}`` (explained-variance ratios of the two components)."""
    from alignscope.core.projection import pca

    data = layer_features(model, dataset_name, n, seed, layer)
    result = pca(data, n_components=min(2, data.shape[1]))
    coords = result.coords if result.coords.shape[1] == 2 else np.column_stack([result.coords, np.zeros(len(data))])
    explained = list(result.explained_variance_ratio) + [0.0] * (2 - len(result.explained_variance_ratio))
    return {"coords": coords, "explained": [float(v) for v in explained]}


@st.cache_resource(show_spinner=False)
def umap_warm_up() -> float:
    """Import umap and JIT-compile it once per process (seconds it took)."""
    from alignscope.core.projection import warm_up

    return warm_up()


@st.cache_data(show_spinner=False, max_entries=32)
def umap_projection(model: str, dataset_name: str, n: int, seed: int, layer: int, key: str, n_neighbors: int,
                    min_dist: float, _progress: Callable[[int, int], None] | None = None) -> np.ndarray:  # fmt: skip
    """``[n, 2]`` UMAP (cosine, seeded with the Selection's seed)."""
    from alignscope.core.projection import umap_2d

    umap_warm_up()
    data = layer_features(model, dataset_name, n, seed, layer)
    return umap_2d(data, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, progress=_progress)


@st.cache_data(show_spinner=False, max_entries=32)
def aligned_umap_projection(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, layer_a: int,
                            layer_b: int, key_a: str, key_b: str, alignment: float, n_neighbors: int,
                            min_dist: float, _progress: Callable[[int, int], None] | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(coords_a, coords_b), each ``[n, 2]``: aligned UMAP with the identity relation between A and B."""
    from alignscope.core.projection import aligned_umap_2d

    umap_warm_up()
    data_a = layer_features(model_a, dataset_name, n, seed, layer_a)
    data_b = layer_features(model_b, dataset_name, n, seed, layer_b)
    return aligned_umap_2d(data_a, data_b, alignment_regularisation=alignment, n_neighbors=n_neighbors,
                           min_dist=min_dist, seed=seed, progress=_progress)  # fmt: skip


@st.cache_data(show_spinner=False, max_entries=64)
def neighbour_overlap(model_a: str, model_b: str, dataset_name: str, n: int, seed: int, k: int, layer_a: int,
                      layer_b: int, key_a: str, key_b: str) -> dict:  # fmt: skip
    """Per-sample k-NN overlap in the original spaces (cosine, self excluded).

    ``{"idx_a", "idx_b": int64 [n, k], "overlap": float64 [n], "score": mean overlap (= mutual k-NN),
    "chance": k / (n - 1), "rollup": [{"label", "mean overlap", "std error", "samples"}] (by label)}``.
    """
    import pandas as pd

    from alignscope.core.metrics.knn import mutual_knn_chance
    from alignscope.core.neighbors import knn_indices, per_sample_overlap

    data_a = layer_features(model_a, dataset_name, n, seed, layer_a)
    data_b = layer_features(model_b, dataset_name, n, seed, layer_b)
    if not 1 <= k <= len(data_a) - 1:
        raise InputError(f"k must lie in [1, {len(data_a) - 1}] for n={len(data_a)}, got {k}")
    idx_a, idx_b = knn_indices(data_a, k), knn_indices(data_b, k)
    overlap = per_sample_overlap(idx_a, idx_b).numpy()
    labels = features_for(model_a, dataset_name, n, seed)["labels"]
    rollup: list[dict] = []
    if labels is not None:
        frame = pd.DataFrame({"label": labels, "overlap": overlap})
        grouped = frame.groupby("label", sort=False)["overlap"].agg(["mean", "sem", "count"])
        ordered = sorted(grouped.index, key=lambda t: (len(t), t) if str(t).isdigit() else (10**9, str(t)))
        rollup = [{"label": label, "mean overlap": float(grouped.loc[label, "mean"]),
                   "std error": float(np.nan_to_num(grouped.loc[label, "sem"])),
                   "samples": int(grouped.loc[label, "count"])} for label in ordered]  # fmt: skip
    return {
        "idx_a": idx_a.numpy(),
        "idx_b": idx_b.numpy(),
        "overlap": overlap,
        "score": float(overlap.mean()),
        "chance": mutual_knn_chance(len(data_a), k=k),
        "rollup": rollup,
    }


def subset_dataset(dataset_name: str, n: int, seed: int) -> Dataset:
    """The samples of a view, in the order of :func:`features_for` (texts / images / labels)."""
    return _subset(dataset_name, n, seed)[1]


def selected_samples(selected: tuple[str, ...]) -> tuple[str, ...]:
    """The Selection's sample ids, or this session's longer selection when the URL holds its first part.

    Links keep at most ``MAX_SELECTED`` ids; a box selection may hold more, and within the session all of
    them are highlighted.
    """
    full = st.session_state.get(_FULL_SELECTION, ())
    if selected and len(full) > len(selected) and tuple(full[: len(selected)]) == tuple(selected):
        return tuple(full)
    return tuple(selected)


def select_samples(sample_ids: list[str] | tuple[str, ...]) -> None:
    """Make ``sample_ids`` the selection: all of them in this session, the first ``MAX_SELECTED`` in the URL."""
    from alignscope.dashboard.state import MAX_SELECTED, update_selection

    ids = tuple(dict.fromkeys(sample_ids))
    st.session_state[_FULL_SELECTION] = ids
    update_selection(selected=ids[:MAX_SELECTED])
