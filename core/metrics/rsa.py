"""Representational similarity analysis (Kriegeskorte et al. 2008).

Each input becomes a representational dissimilarity matrix (RDM) over the n samples — 1 - Pearson
correlation between samples' feature vectors, or Euclidean distance — and the upper triangles of the
two RDMs are compared by Spearman's ρ, Kendall's τ_a or Pearson's r. Memory is O(n²); use n of a few
thousand at most.

Degenerate inputs: ``rdm="correlation"`` needs every row to vary across its features (a constant row
has no correlation) and raises InputError otherwise; an RDM whose entries are all equal has no rank
order and raises InputError.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, as_tensor, check_choice
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register

RDM_METHODS = ("correlation", "euclidean")
COMPARE_METHODS = ("spearman", "kendall", "pearson")


def rdm(feats: torch.Tensor, method: str = "correlation", name: str = "feats") -> np.ndarray:
    """Condensed upper triangle (i < j, row-major) of the sample × sample dissimilarity matrix, float64."""
    check_choice(method, RDM_METHODS, "rdm")
    feats64 = feats.to(torch.float64)
    n = feats64.shape[0]
    if method == "correlation":
        centred = feats64 - feats64.mean(dim=1, keepdim=True)
        norms = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
        if bool((norms == 0).any()):
            bad = int(torch.nonzero(norms.flatten() == 0)[0])
            raise InputError(
                f"{name}: sample {bad} is constant across features, so its correlation distance is undefined; "
                "use the euclidean RDM"
            )
        unit = centred / norms
        full = 1.0 - unit @ unit.T
    else:
        sq = (feats64 * feats64).sum(dim=1)
        full = torch.sqrt((sq[:, None] + sq[None, :] - 2 * feats64 @ feats64.T).clamp_min(0.0))
    rows, cols = torch.triu_indices(n, n, offset=1, device=feats.device)
    return full[rows, cols].cpu().numpy()


def kendall_tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ_a = (concordant - discordant) / (N(N-1)/2): ties count as neither, no tie correction.

    Computed from scipy's O(N log N) τ_b: τ_a = τ_b × sqrt((N0 - T_x)(N0 - T_y)) / N0.
    """
    n_pairs = x.size * (x.size - 1) / 2

    def tied(values: np.ndarray) -> float:
        _, counts = np.unique(values, return_counts=True)
        return float((counts * (counts - 1) / 2).sum())

    tau_b = stats.kendalltau(x, y, variant="b").statistic
    return float(tau_b * np.sqrt((n_pairs - tied(x)) * (n_pairs - tied(y))) / n_pairs)


def rsa(
    feats_a: Any,
    feats_b: Any,
    *,
    rdm_method: str = "correlation",
    compare: str = "spearman",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """RSA score: correlation between the two inputs' RDMs, in [-1, 1]; higher is better; symmetric.

    Example:
        >>> import torch
        >>> feats = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
        >>> rsa(feats, 3 * feats + 2)
        1.0
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    params = {"rdm_method": rdm_method, "compare": compare}
    return _compare_rsa(
        _prepare_rsa(tensor_a, name=name_a, **params), _prepare_rsa(tensor_b, name=name_b, **params), compare=compare
    )


# Each layer's RDM is computed (and ranked) once; ``layer_matrix`` and ``rsa`` share this path.


def _prepare_rsa(
    feats: Any, *, rdm_method: str = "correlation", compare: str = "spearman", name: str = "feats", **_: Any
) -> np.ndarray:
    """A layer's RDM, as average ranks for Spearman (Spearman's ρ is Pearson's r of the ranks)."""
    check_choice(compare, COMPARE_METHODS, "compare")
    values = rdm(as_tensor(feats, name), rdm_method, name)
    if np.ptp(values) == 0:
        raise InputError(f"the RDM of {name} has all entries equal; it cannot be ranked")
    return stats.rankdata(values) if compare == "spearman" else values


def _compare_rsa(state_a: np.ndarray, state_b: np.ndarray, *, compare: str = "spearman", **_: Any) -> float:
    if compare == "kendall":
        return kendall_tau_a(state_a, state_b)
    return float(np.corrcoef(state_a, state_b)[0, 1])


register(
    MetricSpec(
        name="rsa",
        family="rsa",
        fn=rsa,
        higher_is_better=True,
        symmetric=True,
        value_range=(-1.0, 1.0),
        invariances=("isotropic_scale", "permutation"),
        params=(
            ParamSpec("rdm_method", "correlation", kind="str", choices=RDM_METHODS, help="dissimilarity"),
            ParamSpec("compare", "spearman", kind="str", choices=COMPARE_METHODS, help="RDM comparison"),
        ),
        prepare=_prepare_rsa,
        compare=_compare_rsa,
        reference="Kriegeskorte et al. 2008, Representational similarity analysis",
        summary="rank correlation between the two sample-by-sample dissimilarity matrices",
    )
)
