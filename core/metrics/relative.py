"""Relative representations (Moschella et al. 2023).

Each sample is re-described by its cosine similarities to a set of anchor samples (the same anchors in
both spaces), which removes any rotation or rescaling of the space; the two spaces are then compared
through those descriptions: the mean over samples of the cosine between sample i's relative vector in A
and in B. Anchors are given by the user (``anchors``, sample indices) or drawn at random with ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register


def choose_anchors(n_samples: int, n_anchors: int, seed: int = 0) -> torch.Tensor:
    """``n_anchors`` distinct sample indices drawn with ``seed``, sorted."""
    if not 1 <= int(n_anchors) <= n_samples:
        raise InputError(f"n_anchors must be in [1, {n_samples}], got {n_anchors}")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.sort(torch.randperm(n_samples, generator=generator)[: int(n_anchors)]).values


def relative_representation(feats: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every sample to every anchor sample: float64 [n, n_anchors]."""
    unit = F.normalize(feats.to(torch.float64), dim=1)
    return unit @ unit[anchors].T


def relative_similarity(
    feats_a: Any,
    feats_b: Any,
    *,
    n_anchors: int = 64,
    anchors: Sequence[int] | None = None,
    seed: int = 0,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """Mean cosine between each sample's relative representations in A and B, in [-1, 1].

    Args:
        n_anchors: number of random anchors (ignored when ``anchors`` is given); capped at n.
        anchors: explicit anchor sample indices.
        seed: seed of the random anchor draw.
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    n_samples = tensor_a.shape[0]
    if anchors is None:
        anchor_index = choose_anchors(n_samples, min(int(n_anchors), n_samples), seed)
    else:
        anchor_index = torch.as_tensor(list(anchors), dtype=torch.long)
        if anchor_index.numel() == 0 or int(anchor_index.min()) < 0 or int(anchor_index.max()) >= n_samples:
            raise InputError(f"anchors must be non-empty sample indices in [0, {n_samples - 1}]")
    anchor_index = anchor_index.to(tensor_a.device)
    rel_a = relative_representation(tensor_a, anchor_index)
    rel_b = relative_representation(tensor_b, anchor_index)
    return float(F.cosine_similarity(rel_a, rel_b, dim=1).mean())


register(
    MetricSpec(
        name="relative",
        family="relative",
        fn=relative_similarity,
        higher_is_better=True,
        symmetric=True,
        value_range=(-1.0, 1.0),
        invariances=("orthogonal", "isotropic_scale", "permutation"),
        params=(
            ParamSpec("n_anchors", 64, kind="int", low=1, help="random anchors (capped at n)"),
            ParamSpec("seed", 0, kind="int", low=0, help="anchor draw"),
        ),
        reference="Moschella et al. 2023, Relative representations enable zero-shot latent space communication",
        summary="mean cosine between samples' similarity profiles to shared anchor samples",
        randomized=True,
    )
)
