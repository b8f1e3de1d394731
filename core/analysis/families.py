"""Many models at once: the model × model matrix of one metric (clustered) and the GRAM volume of a set."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import GramRequest, MatrixRequest, ModelMatrixRequest
from alignscope.core.analysis.results import GramVolume, LayerMatrix, ModelMatrix
from alignscope.core.analysis.scorer import CHANCE_SHUFFLES, check_same_samples
from alignscope.core.analysis.sweeps import depth_layer
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import compute, get_metric


def cluster_order(values: np.ndarray, higher_is_better: bool) -> tuple[int, ...]:
    """Leaf order of average-linkage clustering on the symmetrised score (optimal leaf ordering).

    Example:
        >>> scores = np.array([[1.0, 0.1, 0.9], [0.1, 1.0, 0.2], [0.9, 0.2, 1.0]])
        >>> cluster_order(scores, higher_is_better=True) in ((0, 2, 1), (1, 2, 0), (1, 0, 2), (2, 0, 1))
        True
    """
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    count = values.shape[0]
    if count < 3 or not np.isfinite(values).all():
        return tuple(range(count))
    sym = (values + values.T) / 2
    distance = (sym.max() - sym) if higher_is_better else (sym - sym.min())
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(np.clip(distance, 0.0, None), checks=False)
    tree = linkage(condensed, method="average")
    return tuple(int(i) for i in leaves_list(optimal_leaf_ordering(tree, condensed)))


def model_matrix(
    request: ModelMatrixRequest,
    views: Sequence[ViewFeatures],
    layer_matrix: Callable[[MatrixRequest], LayerMatrix],
    progress: Callable[[int, int], None] | None = None,
) -> ModelMatrix:
    """Cell (i, j): model i as A against model j as B — the best layer pair of their layer matrix
    (``layer_matrix`` computes or fetches it), or the layers at ``relative_depth``. Symmetric metrics
    fill the lower triangle from the upper one."""
    spec = get_metric(request.metric)
    symmetric = spec.symmetric_for(dict(request.params))
    count = len(request.models)
    values = np.full((count, count), np.nan)
    chance = np.full((count, count), np.nan)
    search_chance = np.full((count, count), np.nan)
    layers = np.zeros((count, count, 2), dtype=np.int64)
    params = dict(request.params)
    closed = spec.exact_chance(views[0].n_samples, params)
    done, total = 0, count * count
    for i, model_i in enumerate(request.models):
        for j, model_j in enumerate(request.models):
            if j < i and symmetric:
                values[i, j], layers[i, j], chance[i, j] = values[j, i], layers[j, i][::-1], chance[j, i]
                search_chance[i, j] = search_chance[j, i]
            elif request.relative_depth is None:
                result = layer_matrix(request.matrix_request(model_i, model_j))
                values[i, j], layers[i, j] = result.best_value, result.best_index
                if result.chance is not None:
                    chance[i, j] = result.chance[result.best_index]
                if result.best_chance is not None:
                    search_chance[i, j] = result.best_chance
            else:
                check_same_samples(views[i], views[j])
                li = depth_layer(request.relative_depth, len(views[i].values))
                lj = depth_layer(request.relative_depth, len(views[j].values))
                values[i, j] = compute(
                    request.metric, views[i].values[li], views[j].values[lj], name_a=model_i, name_b=model_j, **params
                )
                layers[i, j] = (li, lj)
                chance[i, j] = math.nan if closed is None else closed
            done += 1
            if progress is not None:
                progress(done, total)
    return ModelMatrix(
        metric=request.metric,
        models=tuple(request.models),
        dataset=request.dataset,
        n_samples=views[0].n_samples,
        values=values,
        layers=layers,
        order=cluster_order(values, spec.higher_is_better),
        higher_is_better=spec.higher_is_better,
        relative_depth=request.relative_depth,
        params=spec.resolve_params(params),
        chance=chance,
        search_chance=search_chance if request.relative_depth is None and np.isfinite(search_chance).any() else None,
    )


def gram_volume_of(
    request: GramRequest, views: Sequence[ViewFeatures], progress: Callable[[int, int], None] | None = None
) -> GramVolume:
    """GRAM volume of the set at one relative depth, or why it is not defined; chance = the volume with
    each model's rows but the first shuffled independently (:data:`CHANCE_SHUFFLES` shuffles)."""
    from alignscope.core.metrics.gram import gram_volume

    for view in views[1:]:
        check_same_samples(views[0], view)
    layers = tuple(depth_layer(request.relative_depth, len(view.values)) for view in views)
    chosen = [view.values[layer] for view, layer in zip(views, layers)]
    widths = tuple(int(values.shape[1]) for values in chosen)
    common = GramVolume(tuple(request.models), request.dataset, views[0].n_samples, layers, widths)
    if len(set(widths)) > 1:
        problem = (
            "GRAM measures the volume spanned by each sample's embeddings in one shared space, so all models "
            f"must have the same width; at this depth the widths are {dict(zip(request.models, widths))}. "
            "Nothing is projected to a common width, since that would invent the very correspondence being "
            "measured. Pick models of equal width (or a depth where they agree), e.g. towers of one "
            "contrastive model."
        )
        return dataclasses.replace(common, problem=problem)
    mats = [torch.as_tensor(values) for values in chosen]
    try:
        volume = gram_volume(*mats)
    except InputError as error:
        return dataclasses.replace(common, problem=str(error))
    generator = torch.Generator().manual_seed(request.seed)
    null = []
    for index in range(CHANCE_SHUFFLES):
        shuffled = [mats[0]] + [m[torch.randperm(m.shape[0], generator=generator)] for m in mats[1:]]
        null.append(gram_volume(*shuffled))
        if progress is not None:
            progress(index + 1, CHANCE_SHUFFLES)
    return dataclasses.replace(
        common, volume=float(volume), chance=float(np.mean(null)), chance_std=float(np.std(null, ddof=1))
    )
