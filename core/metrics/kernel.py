"""Centred kernel alignment (CKA): linear (biased HSIC), debiased (unbiased HSIC) and RBF.

- ``linear_cka``: Kornblith et al. 2019, HSIC with the centring matrix H: <HKH, HLH> / (‖HKH‖ ‖HLH‖).
- ``debiased_cka``: the same with the unbiased HSIC estimator of Song et al. 2012 (eq. 5), as in
  platonic-rep's ``unbiased_cka`` (without its +1e-6). Independent data gives ≈ 0 instead of a
  positive value that depends on n and d.
- ``rbf_cka``: Gaussian kernel exp(-‖x_i - x_j‖² / 2σ²) with σ = ``sigma_factor`` × the median
  pairwise distance of each representation; biased HSIC unless ``debiased=True``.

Linear kernels use the feature-space form (d × d cross-covariances) when both widths are below n, and
the n × n Gram form otherwise; both are exact. Everything is accumulated in float64.

Degenerate inputs: a representation with zero variance (all rows identical) raises InputError, since
its kernel is zero after centring; if the unbiased self-term of a non-constant input is <= 0 (possible
for tiny n), ``debiased_cka`` returns 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, as_tensor, centered64, check_positive, present
from alignscope.core.metrics.registry import MetricSpec, ParamSpec, register
from alignscope.core.metrics.self_gram import self_gram

KORNBLITH_REF = "Kornblith et al. 2019, Similarity of Neural Network Representations Revisited"
SONG_REF = "Song et al. 2012 (JMLR 13), unbiased HSIC eq. 5; debiased CKA as in Nguyen et al. 2021"
# Layer matrices keep one n x n float64 Gram per layer up to this n, and use features above it.
GRAM_MAX_SAMPLES = 2048
RBF_MAX_SAMPLES = 16384


def _require_variance(centred: torch.Tensor, name: str) -> None:
    if float(centred.abs().max()) == 0.0:
        raise InputError(f"{name} has zero variance (all rows identical); CKA is undefined for it")


def center_gram(gram: torch.Tensor) -> torch.Tensor:
    """H K H for a symmetric [n, n] kernel."""
    gram = gram - gram.mean(dim=0, keepdim=True)
    return gram - gram.mean(dim=1, keepdim=True)


def u_center_gram(gram: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """U-centred kernel (Székely & Rizzo 2014): <U(K), U(L)> / (n(n-3)) is the unbiased HSIC of Song
    et al. 2012. Zero diagonal; rows and columns sum to zero. ``gram`` must be symmetric."""
    n = gram.shape[0]
    centred = gram if inplace else gram.clone()
    centred.fill_diagonal_(0.0)
    row_sums = centred.sum(dim=1)
    total = float(row_sums.sum())
    scaled = row_sums / (n - 2)
    centred.sub_(scaled[:, None]).sub_(scaled[None, :]).add_(total / ((n - 1) * (n - 2)))
    centred.fill_diagonal_(0.0)
    return centred


@dataclass(frozen=True)
class KernelState:
    """One layer, prepared once: either a unit-norm flattened (u-)centred Gram matrix, or centred
    float64 features with what the Gram-free unbiased formula needs (squared row norms, self-term)."""

    gram_unit: torch.Tensor | None = None
    centred: torch.Tensor | None = None
    row_norms2: torch.Tensor | None = None
    self_hsic: float = 0.0


def _unbiased_feature_terms(centred: torch.Tensor) -> torch.Tensor:
    return (centred * centred).sum(dim=1)


def _unbiased_cross(
    centred_a: torch.Tensor, norms_a: torch.Tensor, centred_b: torch.Tensor, norms_b: torch.Tensor
) -> float:
    """n(n-3) × unbiased HSIC of the linear kernels of two centred feature matrices, without n × n.

    For centred features K̃ = AAᵀ - diag(α): tr(K̃L̃) = ‖AᵀB‖² - α·β, 1ᵀK̃1 = -Σα, K̃1 = -α.
    """
    n = centred_a.shape[0]
    cross_cov = centred_a.T @ centred_b
    trace = (cross_cov * cross_cov).sum() - torch.dot(norms_a, norms_b)
    value = trace + norms_a.sum() * norms_b.sum() / ((n - 1) * (n - 2)) - 2 * torch.dot(norms_a, norms_b) / (n - 2)
    return float(value)


def _use_gram(n_samples: int, *widths: int) -> bool:
    return max(widths) >= n_samples


# --- linear CKA (biased) ---------------------------------------------------------------------------


def _prepare_linear(feats: Any, *, name: str = "feats", gram: bool | None = None, **_: Any) -> KernelState:
    feats = as_tensor(feats, name)  # validated by the caller
    centred = centered64(feats)
    _require_variance(centred, name)
    if gram is None:
        gram = feats.shape[0] <= GRAM_MAX_SAMPLES
    if gram:
        kernel = self_gram(centred).flatten()
        norm = float(torch.linalg.vector_norm(kernel))
        return KernelState(gram_unit=kernel.div_(norm), self_hsic=norm**2)
    cov = centred.T @ centred
    return KernelState(centred=centred, self_hsic=float((cov * cov).sum()))


def _compare_linear(state_a: KernelState, state_b: KernelState, **_: Any) -> float:
    if state_a.gram_unit is not None:
        return float(torch.dot(state_a.gram_unit, present(state_b.gram_unit)))
    cross_cov = present(state_a.centred).T @ present(state_b.centred)
    return float((cross_cov * cross_cov).sum()) / float(np.sqrt(state_a.self_hsic * state_b.self_hsic))


def linear_cka(feats_a: Any, feats_b: Any, *, name_a: str = "feats_a", name_b: str = "feats_b") -> float:
    """Linear CKA with the biased HSIC, in [0, 1]; higher is better; symmetric.

    Invariant to orthogonal transforms, isotropic scaling and translation of either input.

    Example:
        >>> import torch
        >>> feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
        >>> round(linear_cka(feats, 3 * feats + 1), 12)
        1.0
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    gram = _use_gram(tensor_a.shape[0], tensor_a.shape[1], tensor_b.shape[1])
    state_a = _prepare_linear(tensor_a, name=name_a, gram=gram)
    state_b = _prepare_linear(tensor_b, name=name_b, gram=gram)
    return _compare_linear(state_a, state_b)


# --- debiased CKA ----------------------------------------------------------------------------------


def _prepare_debiased(feats: Any, *, name: str = "feats", gram: bool | None = None, **_: Any) -> KernelState:
    feats = as_tensor(feats, name)  # validated by the caller
    if feats.shape[0] < 4:
        raise InputError(f"{name} has {feats.shape[0]} rows; the unbiased HSIC needs at least 4 samples")
    centred = centered64(feats)
    _require_variance(centred, name)
    if gram is None:
        gram = feats.shape[0] <= GRAM_MAX_SAMPLES
    if gram:
        kernel = u_center_gram(self_gram(centred), inplace=True).flatten()
        self_term = float(torch.dot(kernel, kernel))
        if self_term > 0:
            kernel.div_(np.sqrt(self_term))
        return KernelState(gram_unit=kernel, self_hsic=self_term)
    norms = _unbiased_feature_terms(centred)
    return KernelState(centred=centred, row_norms2=norms, self_hsic=_unbiased_cross(centred, norms, centred, norms))


def _compare_debiased(state_a: KernelState, state_b: KernelState, **_: Any) -> float:
    if state_a.self_hsic <= 0 or state_b.self_hsic <= 0:
        return 0.0
    if state_a.gram_unit is not None:
        return float(torch.dot(state_a.gram_unit, present(state_b.gram_unit)))
    cross = _unbiased_cross(
        present(state_a.centred), present(state_a.row_norms2), present(state_b.centred), present(state_b.row_norms2)
    )
    return cross / float(np.sqrt(state_a.self_hsic * state_b.self_hsic))


def debiased_cka(feats_a: Any, feats_b: Any, *, name_a: str = "feats_a", name_b: str = "feats_b") -> float:
    """Linear CKA with the unbiased HSIC (Song et al. 2012); ≈ 0 for independent data, 1 at identity.

    Can be slightly negative. Needs n >= 4. Symmetric; same invariances as :func:`linear_cka`.
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b, min_samples=4)
    gram = _use_gram(tensor_a.shape[0], tensor_a.shape[1], tensor_b.shape[1])
    state_a = _prepare_debiased(tensor_a, name=name_a, gram=gram)
    state_b = _prepare_debiased(tensor_b, name=name_b, gram=gram)
    return _compare_debiased(state_a, state_b)


# --- RBF CKA ---------------------------------------------------------------------------------------


def rbf_gram(feats: torch.Tensor, sigma_factor: float = 1.0, name: str = "feats") -> torch.Tensor:
    """exp(-‖x_i - x_j‖² / 2σ²) with σ = sigma_factor × median off-diagonal distance; float64 [n, n]."""
    feats64 = centered64(feats)
    sq_norms = (feats64 * feats64).sum(dim=1)
    sq_dist = (sq_norms[:, None] + sq_norms[None, :] - 2 * self_gram(feats64)).clamp_min(0.0)
    sq_dist.fill_diagonal_(0.0)
    n = feats.shape[0]
    upper = torch.triu_indices(n, n, offset=1, device=feats.device)
    median_dist = float(torch.sqrt(torch.median(sq_dist[upper[0], upper[1]])))
    if median_dist == 0.0:
        raise InputError(f"{name}: the median pairwise distance is 0 (mostly identical rows); RBF CKA is undefined")
    sigma = sigma_factor * median_dist
    return torch.exp(-sq_dist / (2 * sigma**2))


def _prepare_rbf(
    feats: Any, *, sigma_factor: float = 1.0, debiased: bool = False, name: str = "feats", **_: Any
) -> KernelState:
    feats = as_tensor(feats, name)  # validated by the caller
    if debiased and feats.shape[0] < 4:
        raise InputError(f"{name} has {feats.shape[0]} rows; the unbiased HSIC needs at least 4 samples")
    if feats.shape[0] > RBF_MAX_SAMPLES:
        raise InputError(
            f"rbf_cka holds n x n kernels; {name} has {feats.shape[0]} rows (limit {RBF_MAX_SAMPLES}); subsample"
        )
    sigma_factor = check_positive(sigma_factor, "sigma_factor")
    kernel = rbf_gram(feats, sigma_factor, name)
    kernel = (u_center_gram(kernel) if debiased else center_gram(kernel)).flatten()
    self_term = float(torch.dot(kernel, kernel))
    unit = kernel / np.sqrt(self_term) if self_term > 0 else torch.zeros_like(kernel)
    return KernelState(gram_unit=unit, self_hsic=self_term)


def _compare_rbf(state_a: KernelState, state_b: KernelState, **_: Any) -> float:
    if state_a.self_hsic <= 0 or state_b.self_hsic <= 0:
        return 0.0
    return float(torch.dot(present(state_a.gram_unit), present(state_b.gram_unit)))


def rbf_cka(
    feats_a: Any,
    feats_b: Any,
    *,
    sigma_factor: float = 1.0,
    debiased: bool = False,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
) -> float:
    """CKA with Gaussian kernels, bandwidth σ = sigma_factor × median pairwise distance (per input).

    O(n²) memory; limited to n <= 16384. In [0, 1] when biased; higher is better; symmetric.
    """
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    state_a = _prepare_rbf(tensor_a, sigma_factor=sigma_factor, debiased=debiased, name=name_a)
    state_b = _prepare_rbf(tensor_b, sigma_factor=sigma_factor, debiased=debiased, name=name_b)
    return _compare_rbf(state_a, state_b)


def _compare_all_grams(states_a: list[KernelState], states_b: list[KernelState], **_: Any) -> np.ndarray | None:
    """All pairs as one product of stacked unit-norm Gram vectors [La, n²] @ [n², Lb]."""
    if any(state.gram_unit is None for state in states_a + states_b):
        return None
    stack_a = torch.stack([present(s.gram_unit) for s in states_a])
    values = (stack_a @ torch.stack([present(s.gram_unit) for s in states_b]).T).cpu()
    degenerate_a = torch.tensor([s.self_hsic <= 0 for s in states_a])
    degenerate_b = torch.tensor([s.self_hsic <= 0 for s in states_b])
    values[degenerate_a[:, None] | degenerate_b[None, :]] = 0.0
    return values.numpy()


def _permute_kernel(state: KernelState, perm: torch.Tensor) -> KernelState:
    perm = torch.as_tensor(perm).long()
    if state.gram_unit is not None:
        n = perm.numel()
        gram = state.gram_unit.view(n, n)[perm][:, perm].flatten()
        return KernelState(gram_unit=gram, self_hsic=state.self_hsic)
    norms = None if state.row_norms2 is None else state.row_norms2[perm]
    return KernelState(centred=present(state.centred)[perm], row_norms2=norms, self_hsic=state.self_hsic)


_KERNEL_INVARIANCES = ("orthogonal", "isotropic_scale", "translation", "permutation")

register(
    MetricSpec(
        name="linear_cka",
        family="kernel",
        fn=linear_cka,
        higher_is_better=True,
        symmetric=True,
        value_range=(0.0, 1.0),
        invariances=_KERNEL_INVARIANCES,
        reference=KORNBLITH_REF,
        summary="linear centred kernel alignment with the biased HSIC",
        prepare=_prepare_linear,
        compare=_compare_linear,
        permute=_permute_kernel,
        compare_all=_compare_all_grams,
    )
)
register(
    MetricSpec(
        name="debiased_cka",
        family="kernel",
        fn=debiased_cka,
        higher_is_better=True,
        symmetric=True,
        value_range=(-1.0, 1.0),
        invariances=_KERNEL_INVARIANCES,
        reference=SONG_REF,
        summary="linear CKA with the unbiased HSIC estimator (≈ 0 for independent data)",
        prepare=_prepare_debiased,
        compare=_compare_debiased,
        permute=_permute_kernel,
        compare_all=_compare_all_grams,
    )
)
register(
    MetricSpec(
        name="rbf_cka",
        family="kernel",
        fn=rbf_cka,
        higher_is_better=True,
        symmetric=True,
        value_range=(-1.0, 1.0),
        invariances=_KERNEL_INVARIANCES,
        params=(
            ParamSpec("sigma_factor", 1.0, low=1e-6, high=1e6, help="σ as a multiple of the median distance"),
            ParamSpec("debiased", False, kind="bool", help="use the unbiased HSIC"),
        ),
        reference=KORNBLITH_REF + " (RBF kernel, σ from the median distance)",
        summary="CKA with Gaussian kernels at a median-distance bandwidth",
        prepare=_prepare_rbf,
        compare=_compare_rbf,
        permute=_permute_kernel,
        compare_all=_compare_all_grams,
    )
)
