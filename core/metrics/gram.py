"""GRAM: volume of the parallelotope spanned by several models' embeddings of the same sample.

For sample i and representations A_1..A_m (m >= 2) of the *same width* d — GRAM (Cicchetti et al.
2025) assumes embeddings that live in one shared space, such as the towers of a contrastive model —
the vectors are L2-normalised, G = V Vᵀ (m × m) and the volume is sqrt(det G). Two unit vectors at angle
θ give |sin θ|. 0 means the embeddings coincide (perfect alignment); 1 means mutually orthogonal, so
lower is better. Inputs of different widths are rejected: independent models' coordinates are not
comparable, and any projection to a common width would invent the correspondence being measured.
A zero row is treated as a zero vector (volume 0); ``volume`` is computed in float64.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import check_features
from alignscope.core.metrics.registry import MetricSpec, register


def gram_volume_per_sample(*feats: Any, names: tuple[str, ...] | None = None) -> torch.Tensor:
    """Per-sample GRAM volume, float64 [n], in [0, 1].

    Example:
        >>> import math, torch
        >>> a = torch.tensor([[1.0, 0.0]] * 3)
        >>> b = torch.tensor([[math.cos(0.5), math.sin(0.5)]] * 3)
        >>> round(float(gram_volume_per_sample(a, b)[0]), 6) == round(math.sin(0.5), 6)
        True
    """
    if len(feats) < 2:
        raise InputError(f"GRAM needs at least 2 representations, got {len(feats)}")
    names = names or tuple(f"feats_{i}" for i in range(len(feats)))
    tensors = [check_features(x, name, min_samples=1) for x, name in zip(feats, names)]
    first = tensors[0]
    for tensor, name in zip(tensors[1:], names[1:]):
        if tensor.shape[0] != first.shape[0]:
            raise InputError(
                f"{names[0]} has {first.shape[0]} rows but {name} has {tensor.shape[0]}; "
                "both must hold the same samples in the same order"
            )
        if tensor.shape[1] != first.shape[1]:
            raise InputError(
                f"GRAM needs embeddings in one shared space, but {names[0]} has width {first.shape[1]} "
                f"and {name} has width {tensor.shape[1]}; compare same-width towers (e.g. CLIP image/text)"
            )
    vectors = torch.stack([F.normalize(t.to(torch.float64).to(first.device), dim=1) for t in tensors], dim=1)
    gram = vectors @ vectors.transpose(1, 2)  # [n, m, m]
    return torch.sqrt(torch.linalg.det(gram).clamp_min(0.0))


def gram_volume(feats_a: Any, feats_b: Any, *more: Any, name_a: str = "feats_a", name_b: str = "feats_b") -> float:
    """Mean GRAM volume over samples for 2 or more same-width representations; lower is better."""
    names = (name_a, name_b) + tuple(f"feats_{i + 2}" for i in range(len(more)))
    return float(gram_volume_per_sample(feats_a, feats_b, *more, names=names).mean())


def _per_sample(feats_a: Any, feats_b: Any, **_: Any) -> torch.Tensor:
    return gram_volume_per_sample(feats_a, feats_b)


register(
    MetricSpec(
        name="gram_volume",
        family="gram",
        fn=gram_volume,
        higher_is_better=False,
        symmetric=True,
        value_range=(0.0, 1.0),
        invariances=("isotropic_scale",),
        reference="Cicchetti et al. 2025, Gramian Multimodal Representation Learning and Alignment (ICLR)",
        summary="mean volume spanned by the normalised embeddings of each sample (0 = identical)",
        per_sample=_per_sample,
        requires_equal_dims=True,
        extra={"independent_per_sample": True},  # a sample's volume reads its own rows only
    )
)
