"""Per-sample views of a model pair: 2-D projections (PCA, UMAP, aligned UMAP) and k-NN overlaps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import AlignedProjectionRequest, NeighbourRequest, ProjectionRequest
from alignscope.core.analysis.results import AlignedProjection, LabelRollup, Neighbours, Projection
from alignscope.core.analysis.scorer import check_same_samples, resolve_layer
from alignscope.core.errors import InputError
from alignscope.core.projection import MIN_UMAP_SAMPLES, aligned_umap_2d, pca, umap_2d


def project(
    request: ProjectionRequest, view: ViewFeatures, progress: Callable[[int, int], None] | None = None
) -> Projection:
    """PCA (exact, instant) or UMAP (cosine, seeded with the request's seed) of one layer."""
    layer = resolve_layer(request.layer, len(view.values), view.model)
    data = view.values[layer]
    if request.method == "pca":
        result = pca(data, n_components=min(2, data.shape[1]))
        coords = result.coords
        ratios = [float(v) for v in result.explained_variance_ratio]
        if coords.shape[1] == 1:  # a one-wide layer: a zero second axis
            coords = np.column_stack([coords, np.zeros(len(data))])
            ratios.append(0.0)
        return Projection("pca", request.model, request.dataset, layer, coords, tuple(ratios))
    check_umap_size(len(data))
    coords = umap_2d(
        data, n_neighbors=request.n_neighbors, min_dist=request.min_dist, seed=request.seed, progress=progress
    )
    return Projection("umap", request.model, request.dataset, layer, coords)


def check_umap_size(n_samples: int) -> None:
    """UMAP of a handful of points is not a map of anything: refuse below a sensible size."""
    if n_samples < MIN_UMAP_SAMPLES:
        raise InputError(
            f"UMAP needs at least {MIN_UMAP_SAMPLES} samples to lay out neighbourhoods, and this view has "
            f"{n_samples}; use PCA, or more samples"
        )


def project_aligned(
    request: AlignedProjectionRequest,
    view_a: ViewFeatures,
    view_b: ViewFeatures,
    progress: Callable[[int, int], None] | None = None,
) -> AlignedProjection:
    check_same_samples(view_a, view_b)
    layer_a = resolve_layer(request.layer_a, len(view_a.values), view_a.model)
    layer_b = resolve_layer(request.layer_b, len(view_b.values), view_b.model)
    check_umap_size(view_a.n_samples)
    coords_a, coords_b = aligned_umap_2d(
        view_a.values[layer_a],
        view_b.values[layer_b],
        alignment_regularisation=request.alignment,
        n_neighbors=request.n_neighbors,
        min_dist=request.min_dist,
        seed=request.seed,
        progress=progress,
    )
    return AlignedProjection(request.model_a, request.model_b, request.dataset, layer_a, layer_b, coords_a, coords_b)


def _label_order(label: str) -> tuple[int, str]:
    return (len(label), label) if label.isdigit() else (10**9, label)


def label_rollup(overlap: np.ndarray, labels: tuple[str, ...] | None) -> tuple[LabelRollup, ...]:
    """Mean overlap (and its standard error) per label, labels in natural order (digits numerically)."""
    if labels is None:
        return ()
    groups: dict[str, list[float]] = {}
    for label, value in zip(labels, overlap.tolist()):
        groups.setdefault(str(label), []).append(value)
    out = []
    for label in sorted(groups, key=_label_order):
        values = np.asarray(groups[label])
        sem = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
        out.append(LabelRollup(label, float(values.mean()), sem, int(values.size)))
    return tuple(out)


def neighbour_overlap(
    request: NeighbourRequest,
    view_a: ViewFeatures,
    view_b: ViewFeatures,
    progress: Callable[[int, int], None] | None = None,
) -> Neighbours:
    """Per-sample k-NN overlap in the two original spaces (cosine, self excluded)."""
    from alignscope.core.metrics.knn import mutual_knn_chance
    from alignscope.core.neighbors import knn_indices, per_sample_overlap

    check_same_samples(view_a, view_b)
    layer_a = resolve_layer(request.layer_a, len(view_a.values), view_a.model)
    layer_b = resolve_layer(request.layer_b, len(view_b.values), view_b.model)
    n = view_a.n_samples
    if not 1 <= request.k <= n - 1:
        raise InputError(f"k must lie in [1, {n - 1}] for n={n}, got {request.k}")
    idx_a = knn_indices(view_a.values[layer_a], request.k)
    if progress is not None:
        progress(1, 2)
    idx_b = knn_indices(view_b.values[layer_b], request.k)
    overlap = per_sample_overlap(idx_a, idx_b).numpy()
    if progress is not None:
        progress(2, 2)
    return Neighbours(
        model_a=request.model_a,
        model_b=request.model_b,
        dataset=request.dataset,
        n_samples=n,
        layer_a=layer_a,
        layer_b=layer_b,
        k=request.k,
        idx_a=idx_a.numpy(),
        idx_b=idx_b.numpy(),
        overlap=overlap,
        score=float(overlap.mean()),
        chance=float(mutual_knn_chance(n, k=request.k)),
        rollup=label_rollup(overlap, view_a.labels),
    )
