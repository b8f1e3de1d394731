"""Canonical correlation analysis: mean CCA, SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018).

All three go through the thin SVD of each centred input, A_c = U S Vᵀ, never through an inverted
covariance, so they are deterministic and stable when d > n or when features are collinear: directions
with singular value below ``1e-10 × s_max`` are dropped (rank truncation). With ridge ``reg`` > 0, CCA
maximises corr subject to uᵀ(AᵀA + λI)u = 1, λ = reg × mean(s²); in the SVD basis that multiplies each
direction by s / sqrt(s² + λ). ``reg = 0`` is textbook CCA.

When d_a + d_b >= n - 1, unregularised CCA finds perfect correlations in any data (it overfits): use
``svcca`` or ``reg`` > 0 there. Zero-variance inputs raise InputError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, as_tensor, centered64, check_positive, present
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register

RANK_TOL = 1e-10


def _svd_basis(centred: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of centred features with numerically-zero directions dropped."""
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    if float(s[0]) == 0.0:
        raise InputError(f"{name} has zero variance (all rows identical); CCA is undefined for it")
    keep = s > RANK_TOL * s[0]
    return u[:, keep], s[keep], vh[keep]


# Each layer is prepared once (its SVD basis, whitened for ``reg``); a pair costs one small SVD. The
# public functions and ``layer_matrix`` share this one path.


@dataclass(frozen=True)
class CCAState:
    """One input in its SVD basis: whitened basis [n, r], the whitening scale [r], and for PWCCA ``s`` [r]
    and ``vh`` [r, d] (uᵀA_c = diag(s)·vh gives the projections onto A's units without keeping A_c)."""

    basis: torch.Tensor
    scale: torch.Tensor
    s: torch.Tensor | None = None
    vh: torch.Tensor | None = None


def _svd_reduce(centred: torch.Tensor, keep_variance: float, n_components: int | None, name: str) -> torch.Tensor:
    u, s, _ = _svd_basis(centred, name)
    if n_components is not None:
        if n_components > s.numel():
            raise InputError(f"{name} has rank {s.numel()}; n_components={n_components} is too many")
        n_keep = n_components
    else:
        explained = torch.cumsum(s * s, 0) / (s * s).sum()
        n_keep = int(torch.searchsorted(explained, torch.tensor(keep_variance, dtype=explained.dtype))) + 1
        n_keep = min(n_keep, s.numel())
    return u[:, :n_keep] * s[:n_keep]


def _prepare_cca(
    feats: Any, *, reg: float = 0.0, name: str = "feats", reduce: dict | None = None, keep_units: bool = False, **_: Any
) -> CCAState:
    centred = centered64(as_tensor(feats, name))
    if reduce is not None:  # SVCCA: CCA of the top singular directions (u·s), whose own SVD is (u, s)
        centred = _svd_reduce(centred, reduce["keep_variance"], reduce["n_components"], name)
    u, s, vh = _svd_basis(centred, name)
    scale = torch.ones_like(s) if reg == 0 else s / torch.sqrt(s * s + reg * float((s * s).mean()))
    return CCAState(u * scale, scale, s, vh) if keep_units else CCAState(u * scale, scale)


def _prepare_pwcca(feats: Any, **params: Any) -> CCAState:
    return _prepare_cca(feats, keep_units=True, **params)


def _prepare_svcca(
    feats: Any,
    *,
    keep_variance: float = 0.99,
    n_components: int | None = None,
    reg: float = 0.0,
    name: str = "feats",
    **_: Any,
) -> CCAState:
    return _prepare_cca(
        feats, reg=reg, name=name, reduce={"keep_variance": float(keep_variance), "n_components": n_components}
    )


def _pair_cca(state_a: CCAState, state_b: CCAState) -> tuple[torch.Tensor, torch.Tensor]:
    """(canonical correlations, rotation of A's basis onto its canonical variates)."""
    p, rho, _ = torch.linalg.svd(state_a.basis.T @ state_b.basis, full_matrices=False)
    n_dirs = min(state_a.basis.shape[1], state_b.basis.shape[1])
    return rho[:n_dirs].clamp(0.0, 1.0), p[:, :n_dirs]


def _compare_mean_cca(state_a: CCAState, state_b: CCAState, **_: Any) -> float:
    return float(_pair_cca(state_a, state_b)[0].mean())


def _compare_pwcca(state_a: CCAState, state_b: CCAState, **_: Any) -> float:
    rho, rotation = _pair_cca(state_a, state_b)
    # variates = basis_a @ rotation, unit-normed; basis_a = u·scale and uᵀA_c = diag(s)·vh
    scaled = rotation * state_a.scale[:, None]
    norms = torch.linalg.vector_norm(scaled, dim=0)
    weights = ((scaled * present(state_a.s)[:, None]).T @ present(state_a.vh)).abs().sum(dim=1) / norms
    return float((weights * rho).sum() / weights.sum())


# --- public functions ------------------------------------------------------------------------------


def canonical_correlations(
    feats_a: Any, feats_b: Any, *, reg: float = 0.0, name_a: str = "feats_a", name_b: str = "feats_b"
) -> torch.Tensor:
    """Canonical correlations, float64 [min(rank_a, rank_b)], sorted descending, in [0, 1]."""
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    reg = check_positive(reg, "reg", allow_zero=True)
    return _pair_cca(_prepare_cca(tensor_a, reg=reg, name=name_a), _prepare_cca(tensor_b, reg=reg, name=name_b))[0]


def mean_cca(
    feats_a: Any, feats_b: Any, *, reg: float = 0.0, name_a: str = "feats_a", name_b: str = "feats_b"
) -> float:
    """Mean canonical correlation, in [0, 1]; higher is better; symmetric.

    Invariant to any invertible linear map of either input (with ``reg = 0``) and to translation.

    Example:
        >>> import torch
        >>> feats = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
        >>> round(mean_cca(feats, feats @ torch.tensor([[2.0, 1, 0], [0, 1, 0], [0, 0, 5]])), 10)
        1.0
    """
    return float(canonical_correlations(feats_a, feats_b, reg=reg, name_a=name_a, name_b=name_b).mean())


def svcca(
    feats_a: Any,
    feats_b: Any,
    *,
    keep_variance: float = 0.99,
    n_components: int | None = None,
    reg: float = 0.0,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """SVCCA: keep the top singular directions of each input (``keep_variance`` of the variance, or a
    fixed ``n_components``), then mean CCA correlation. In [0, 1]; higher is better; symmetric."""
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    if not 0.0 < float(keep_variance) <= 1.0:
        raise InputError(f"keep_variance must be in (0, 1], got {keep_variance!r}")
    if n_components is not None and int(n_components) < 1:
        raise InputError(f"n_components must be >= 1, got {n_components!r}")
    reg = check_positive(reg, "reg", allow_zero=True)
    prepared = [
        _prepare_svcca(tensor, keep_variance=keep_variance, n_components=n_components, reg=reg, name=name)
        for tensor, name in ((tensor_a, name_a), (tensor_b, name_b))
    ]
    return _compare_mean_cca(prepared[0], prepared[1])


def pwcca(feats_a: Any, feats_b: Any, *, reg: float = 0.0, name_a: str = "feats_a", name_b: str = "feats_b") -> float:
    """Projection-weighted CCA (Morcos et al. 2018): Σ α_i ρ_i / Σ α_i with α_i = Σ_j |⟨h_i, a_j⟩|,
    h_i the unit-norm i-th canonical variate of A and a_j the j-th centred unit of A.

    Weights come from A, so it is not symmetric. In [0, 1]; higher is better.
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    reg = check_positive(reg, "reg", allow_zero=True)
    return _compare_pwcca(_prepare_pwcca(tensor_a, reg=reg, name=name_a), _prepare_cca(tensor_b, reg=reg, name=name_b))


_REG = ParamSpec("reg", 0.0, low=0.0, high=1e6, help="ridge, as a multiple of the mean eigenvalue")


def cca_degenerate(n_samples: int, d_a: int, d_b: int, params: dict[str, Any]) -> str | None:
    """With d_a + d_b >= n - 1 features (and no ridge), the two spans fill the centred sample space and
    the canonical correlations are all 1 whatever the data: CCA then measures nothing.

    Example:
        >>> cca_degenerate(500, 1280, 10, {"reg": 0.0}) is not None, cca_degenerate(500, 64, 64, {"reg": 0.0})
        (True, None)
    """
    if float(params.get("reg", 0.0)) > 0:
        return None
    rank_a, rank_b = min(d_a, n_samples - 1), min(d_b, n_samples - 1)
    if rank_a + rank_b >= n_samples - 1:
        return (
            f"CCA is degenerate here: {d_a} + {d_b} features for {n_samples} samples, so every canonical "
            "correlation is 1 whatever the data; use more samples, svcca, or a ridge (reg > 0)"
        )
    return None


_CCA_INVARIANCES = ("orthogonal", "isotropic_scale", "translation", "permutation", "invertible_linear", "unit_scale")

register(
    MetricSpec(
        name="mean_cca",
        family="cca",
        fn=mean_cca,
        higher_is_better=True,
        symmetric=True,
        value_range=(0.0, 1.0),
        invariances=_CCA_INVARIANCES,
        params=(_REG,),
        prepare=_prepare_cca,
        compare=_compare_mean_cca,
        degenerate=cca_degenerate,
        reference="Hotelling 1936; as used in Raghu et al. 2017 (SVCCA)",
        summary="mean canonical correlation (overfits when d_a + d_b approaches n; use svcca or reg)",
    )
)
register(
    MetricSpec(
        name="svcca",
        family="cca",
        fn=svcca,
        higher_is_better=True,
        symmetric=True,
        value_range=(0.0, 1.0),
        invariances=("orthogonal", "isotropic_scale", "translation", "permutation"),
        params=(
            ParamSpec("keep_variance", 0.99, low=1e-6, high=1.0, help="variance kept by the SVD step"),
            ParamSpec("n_components", None, kind="int_or_none", low=1, help="fixed number of SVD directions"),
            _REG,
        ),
        prepare=_prepare_svcca,
        compare=_compare_mean_cca,
        reference="Raghu et al. 2017, SVCCA (NeurIPS)",
        summary="mean CCA correlation after keeping each input's top singular directions",
    )
)
register(
    MetricSpec(
        name="pwcca",
        family="cca",
        fn=pwcca,
        higher_is_better=True,
        symmetric=False,
        value_range=(0.0, 1.0),
        # the weights sum over A's units, so rotating A changes them; B may be rotated freely
        invariances=("isotropic_scale", "translation", "permutation"),
        params=(_REG,),
        prepare=_prepare_pwcca,
        compare=_compare_pwcca,
        degenerate=cca_degenerate,
        reference="Morcos et al. 2018, Insights on representational similarity (PWCCA)",
        summary="CCA correlations weighted by how much of A each canonical direction explains",
    )
)
