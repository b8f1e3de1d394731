"""Statistics for comparisons: is A more aligned to X than B is, and is the best cell of a layer search real?

Paired difference (:func:`score_difference`): d = score(A, X) − score(B, X) for three feature matrices
over the same n samples in the same order (A first, so asymmetric metrics read "A against X").

- Paired bootstrap: each resample draws n rows with replacement and uses the *same* rows for A, B and X;
  metrics that take them get the resampled indices as ``sample_ids``, so copies are handled exactly as
  in :func:`alignscope.core.stats.bootstrap_ci`. The interval is the re-centred percentile interval of
  d* (percentiles of d* − (mean(d*) − d̂); see :mod:`alignscope.core.stats` for why copies make the raw
  one miss). The p-value for d = 0 inverts that interval: with s_b = d*_b − (mean(d*) − d̂),

      p_bootstrap = min(1, 2 · (1 + min(#{s_b ≤ 0}, #{s_b ≥ 0})) / (1 + B)),

  the smallest 1 − confidence at which the equal-tailed re-centred interval would still reach 0 (+1
  correction, so never 0). ``p_bootstrap < 1 − confidence`` implies the reported interval excludes 0.
- Paired sign-flip test, for metrics with per-sample values (``spec.per_sample``): D_i = s_i(A, X) −
  s_i(B, X); each flip swaps A's and B's contribution of a random subset of samples (D_i → −D_i), and

      p_sign_flip = (1 + #{flips f : |mean(f ⊙ D)| ≥ |mean(D)|}) / (1 + n_flips),

  two-sided, near-ties (within 1e-9 · mean|D|) counted as extreme. It is exact when the D_i are
  independent given the data-generating process and symmetric under the null — true when a sample's value
  depends on its own rows only (GRAM volume). It is *not* exact for the k-NN metrics: a sample's overlap
  depends on its neighbours' rows, so neighbouring D_i are positively correlated and the flips understate
  the variance of mean(D) (measured, no true difference, 200 data sets, n = 100, k = 10: mutual k-NN
  rejects 13.5 % of the time at the 5 % level; ``tests/core/test_comparisons.py`` pins it). The paired
  bootstrap errs the other way for k-NN metrics (4 % at 5 %, 9 % at 20 % in one simulation; 0 % at 5 %
  and 4 % at 20 % in another, n = 150, X a nonlinear map of the latent A and B share, where the sd of d*
  was 1.7× the sd of d̂ over fresh data sets: resampled rows thin out the neighbourhoods), so it is valid
  but loses power there. ``method="auto"`` therefore uses
  the sign flip only when the metric's spec declares independent per-sample values
  (``spec.extra["independent_per_sample"]``) and the paired bootstrap otherwise; ``method="sign_flip"``
  forces it for any metric with per-sample values.

Layer search (:func:`max_stat_test`): one shuffle of the sample correspondence (the same permutation for
every layer of B, which keeps B's layers consistent with each other) scores the whole La × Lb matrix; with
a split form each layer is prepared once and only B's prepared states are permuted per shuffle. With
M_p the best cell of shuffle p (max, or min when lower is better) and o_c the observed value of cell c:

    p_raw[c]        = (1 + #{p : null_p[c] at least as good as o_c}) / (1 + P)   (stats.permutation_test)
    p_bonferroni[c] = min(1, La · Lb · p_raw[c])
    p_maxstat[c]    = (1 + #{p : M_p at least as good as o_c}) / (1 + P)          (``adjustment="max"``)

``p_maxstat`` is the Westfall–Young single-step max-T adjusted p-value; it controls the family-wise error
rate and uses the dependence between cells. Where the cells share one null distribution (k-NN metrics,
debiased CKA) it is mostly below Bonferroni, but that is not a theorem for max-T: it held for the best
cell in 96 % of simulated null searches (3 × 3 debiased CKA, P = 99) and in every planted example tried.
When the cells' nulls differ (biased linear CKA on layers of different widths or effective rank) the
widest null dominates M_p, and a real cell can get p = 1 where Bonferroni finds it. For that case
``adjustment="min_p"`` replaces each value by its cell's permutation p-value (ranked among the P + 1
matrices, the observed one included) and M_p by the smallest such p of shuffle p; then p_maxstat[c] ≤
p_bonferroni[c] always (Westfall & Young 1993, single-step min P). Its null is coarser: the smallest
adjusted p it can reach is about La · Lb / (P + 1), so it needs P ≫ La · Lb / α.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs, check_features
from alignscope.core.metrics.registry import MetricSpec, get_metric
from alignscope.core.stats import TIE_TOLERANCE, _count, _generator, _loop_threads, at_floor, at_least, merged_params

DIFFERENCE_METHODS = ("auto", "bootstrap", "sign_flip")
MAX_STAT_ADJUSTMENTS = ("max", "min_p")
# Sign flips are drawn in blocks of this many, so memory stays at block × n whatever n_flips is.
_FLIP_BLOCK = 1024


# --- paired difference -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreDifference:
    """d = score(A, X) − score(B, X) on the same samples, with a paired interval and test.

    Attributes:
        score_a, score_b: the two scores on all samples; ``difference`` = score_a − score_b.
        ci_low, ci_high: re-centred paired-bootstrap interval for d at ``confidence``, clipped to the
            range a difference of the metric can take.
        p_value: two-sided p for d = 0 from the test named by ``method`` (``"sign_flip"`` or
            ``"bootstrap"``); ``p_bootstrap`` and ``p_sign_flip`` are both given where computed.
        n_resamples: bootstrap resamples scored (behind the interval and ``p_bootstrap``); ``n_failed``
            resamples the metric could not score were dropped.
        n_flips: sign flips behind ``p_sign_flip`` (0 when not computed).
        bias: mean(d*) − d, the resampling bias removed from the interval.
        bootstrap_differences: d* of the scored resamples [n_resamples].
    """

    metric: str
    score_a: float
    score_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    n_samples: int
    n_resamples: int
    confidence: float
    higher_is_better: bool
    p_bootstrap: float
    p_sign_flip: float | None
    n_flips: int
    bias: float
    n_failed: int
    bootstrap_differences: np.ndarray

    @property
    def p_basis(self) -> str:
        """What p and the interval rest on, for a sentence (the sign-flip p counts flips, not resamples):
        ``"sign flip, 9999 flips; interval from 200 bootstrap resamples"`` or ``"paired bootstrap, 200
        resamples"``."""
        if self.method == "sign_flip":
            return f"sign flip, {self.n_flips} flips; interval from {self.n_resamples} bootstrap resamples"
        return f"paired bootstrap, {self.n_resamples} resamples"

    @property
    def p_floor(self) -> float:
        """The smallest p its test can give: 2 / (1 + resamples) for the bootstrap (two-sided, +1
        corrected), 1 / (1 + flips) for the sign flip."""
        if self.method == "sign_flip":
            return 1.0 / (1 + self.n_flips)
        return min(1.0, 2.0 / (1 + self.n_resamples))

    @property
    def caveat(self) -> str:
        """A warning where the test is not calibrated for the metric ("" otherwise): the sign flip forced on
        per-sample values that are not independent (k-NN metrics: a sample's value reads its neighbours')."""
        if self.method != "sign_flip" or get_metric(self.metric).extra.get("independent_per_sample", False):
            return ""
        return (
            f"{self.metric}'s per-sample values are not independent (a sample's value depends on its neighbours' "
            "rows), so the sign flip understates the spread of the difference and its p runs low (mutual k-NN: "
            "13.5 % false positives at the 5 % level); the paired bootstrap (method auto) is the calibrated test."
        )

    @property
    def p_text(self) -> str:
        """``"p = 0.0312"``, or ``"p ≤ 0.00995"`` at the floor (no resample or flip reached d = 0)."""
        if at_floor(self.p_value, self.p_floor):
            return f"p ≤ {self.p_floor:.3g}"
        return f"p = {self.p_value:.3g}"

    @property
    def a_is_better(self) -> bool:
        """A scores better than B (larger, or smaller when lower is better); says nothing of significance."""
        return self.difference > 0 if self.higher_is_better else self.difference < 0


class _PairedScorer:
    """score(A, X) and score(B, X) on one set of rows, preparing X once per row set when it can."""

    def __init__(
        self,
        spec: MetricSpec,
        feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        params: dict[str, Any],
        names: tuple[str, str, str],
    ) -> None:
        """``feats`` = (A, B, X for A, X for B); the two X are usually the same tensor (one layer of X)."""
        self.spec, self.params, self.feats, self.names = spec, params, feats, names
        self.one_x = feats[2] is feats[3]
        prepare = spec.prepare
        # copies must be handled in prepare too; a prepare that cannot take sample_ids goes through fn
        self.split = (
            prepare is not None
            and spec.compare is not None
            and (not spec.takes_sample_ids or "sample_ids" in inspect.signature(prepare).parameters)
        )

    def full(self) -> tuple[float, float]:
        """On all samples, through ``spec.fn`` (the same validation and value as ``compute``)."""
        (feats_a, feats_b, feats_x, feats_x_b), (name_a, name_b, name_x) = self.feats, self.names
        fn, params = self.spec.fn, self.params
        return (
            float(fn(feats_a, feats_x, name_a=name_a, name_b=name_x, **params)),
            float(fn(feats_b, feats_x_b, name_a=name_b, name_b=name_x, **params)),
        )

    def resampled(self, rows: torch.Tensor) -> tuple[float, float]:
        extra = {"sample_ids": rows} if self.spec.takes_sample_ids else {}
        device_rows = rows.to(self.feats[0].device)
        feats_a, feats_b = self.feats[0][device_rows], self.feats[1][device_rows]
        feats_x = self.feats[2][device_rows]
        feats_x_b = feats_x if self.one_x else self.feats[3][device_rows]
        name_a, name_b, name_x = self.names
        spec, params = self.spec, self.params

        def prepared(feats: torch.Tensor, name: str) -> Any:
            return spec.prepare(feats, name=name, **params, **extra)  # type: ignore[misc]

        state_x = prepared(feats_x, name_x) if self.split else None
        state_x_b = state_x if self.one_x or not self.split else prepared(feats_x_b, name_x)

        def score(feats: torch.Tensor, name: str, against: torch.Tensor, state_against: Any) -> float:
            if self.split:
                return float(spec.compare(prepared(feats, name), state_against, **params))  # type: ignore[misc]
            return float(spec.fn(feats, against, name_a=name, name_b=name_x, **params, **extra))

        return score(feats_a, name_a, feats_x, state_x), score(feats_b, name_b, feats_x_b, state_x_b)


def _paired_bootstrap(scorer: _PairedScorer, n_samples: int, n_boot: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """(finite d* of the resamples that could be scored, messages of those that could not)."""
    generator = _generator(seed)
    differences, problems = [], []
    for _ in range(n_boot):
        rows = torch.randint(0, n_samples, (n_samples,), generator=generator)
        try:
            score_a, score_b = scorer.resampled(rows)
        except InputError as error:  # e.g. a zero-variance resample, too few distinct samples
            problems.append(str(error))
            continue
        if np.isfinite(score_a) and np.isfinite(score_b):
            differences.append(score_a - score_b)
        else:
            problems.append("the score was NaN")
    return np.asarray(differences, dtype=np.float64), problems


def _sign_flip_p(per_sample_differences: torch.Tensor, n_flips: int, seed: int) -> float:
    """Two-sided Monte Carlo sign-flip p of mean(D) = 0, with the +1 correction."""
    differences = per_sample_differences.detach().to("cpu", torch.float64).flatten()
    n_samples = differences.numel()
    observed = float(differences.mean().abs())
    tolerance = 1e-9 * float(differences.abs().mean())  # flips that reproduce |mean| up to rounding
    generator = _generator(seed)
    total = float(differences.sum())
    extreme = 0
    for start in range(0, n_flips, _FLIP_BLOCK):
        size = min(_FLIP_BLOCK, n_flips - start)
        kept = torch.randint(0, 2, (size, n_samples), generator=generator, dtype=torch.float64)
        flipped = (2.0 * (kept @ differences) - total).abs_() / n_samples  # signs = 2·kept − 1
        extreme += int((flipped >= observed - tolerance).sum())
    return (1.0 + extreme) / (1.0 + n_flips)


def _choose_method(spec: MetricSpec, method: str) -> str:
    if method not in DIFFERENCE_METHODS:
        raise InputError(f"method must be one of {', '.join(DIFFERENCE_METHODS)}, got {method!r}")
    if method == "sign_flip" and spec.per_sample is None:
        raise InputError(
            f'{spec.name} has no per-sample values, so the sign-flip test does not apply; use method="bootstrap"'
        )
    if method == "auto":
        independent = spec.per_sample is not None and bool(spec.extra.get("independent_per_sample", False))
        return "sign_flip" if independent else "bootstrap"
    return method


def score_difference(
    metric: str,
    feats_a: Any,
    feats_b: Any,
    feats_x: Any,
    *,
    n_boot: int = 1000,
    n_flips: int = 9999,
    confidence: float = 0.95,
    method: str = "auto",
    seed: int = 0,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    name_x: str = "feats_x",
    feats_x_for_b: Any = None,
    metric_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> ScoreDifference:
    """Paired interval and two-sided test of d = score(A, X) − score(B, X) = 0 on the same samples.

    Args:
        metric: a registered metric name.
        feats_a, feats_b, feats_x: [n, d_a], [n, d_b], [n, d_x]: the same n samples in the same order
            (e.g. two vision encoders and one text encoder on one image-caption set).
        n_boot: paired bootstrap resamples (the interval, and ``p_bootstrap``).
        n_flips: sign flips for ``p_sign_flip`` (metrics with per-sample values only).
        confidence: interval level, in (0, 1).
        method: which test gives ``p_value``: ``"bootstrap"``, ``"sign_flip"`` (exact only for
            independent per-sample values; see the module docstring) or ``"auto"``.
        seed: the bootstrap draws from ``seed``, the sign flips from ``seed + 1``.
        feats_x_for_b: [n, d_x'] another layer of X for B's score (each model at its own best layer
            pair of X); by default B is scored against ``feats_x`` too.
        **params: the metric's parameters, validated against the registry.

    Returns:
        A :class:`ScoreDifference`.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(60, 4, generator=g)
        >>> a, b = x + 0.1 * torch.randn(60, 4, generator=g), torch.randn(60, 4, generator=g)
        >>> result = score_difference("linear_cka", a, b, x, n_boot=200)
        >>> result.method, result.ci_low > 0, result.p_value < 0.05
        ('bootstrap', True, True)
    """
    spec = get_metric(metric)
    resolved = spec.resolve_params(merged_params(params, metric_params))
    n_boot = _count(n_boot, "n_boot", low=2)
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    method = _choose_method(spec, method)
    tensor_x, tensor_a = _check_inputs(feats_x, feats_a, name_a=name_x, name_b=name_a)
    tensor_x, tensor_b = _check_inputs(tensor_x, feats_b, name_a=name_x, name_b=name_b)
    tensor_x_b = tensor_x
    if feats_x_for_b is not None:
        tensor_x_b, tensor_b = _check_inputs(feats_x_for_b, tensor_b, name_a=name_x, name_b=name_b)
    n_samples = tensor_x.shape[0]
    scorer = _PairedScorer(spec, (tensor_a, tensor_b, tensor_x, tensor_x_b), resolved, (name_a, name_b, name_x))
    with _loop_threads(n_samples, tensor_x.device):
        score_a, score_b = scorer.full()
        difference = score_a - score_b
        if not np.isfinite(difference):
            raise InputError(f"{metric} is undefined (NaN) for {name_a} or {name_b} against {name_x}")
        values, problems = _paired_bootstrap(scorer, n_samples, n_boot, seed)
        p_sign_flip, flips = None, 0
        if method == "sign_flip":
            flips = _count(n_flips, "n_flips")
            per_sample = spec.per_sample
            assert per_sample is not None  # _choose_method checked it
            per_sample_a = per_sample(tensor_a, tensor_x, name_a=name_a, name_b=name_x, **resolved)
            per_sample_b = per_sample(tensor_b, tensor_x_b, name_a=name_b, name_b=name_x, **resolved)
            per_sample_differences = torch.as_tensor(per_sample_a) - torch.as_tensor(per_sample_b)
            p_sign_flip = _sign_flip_p(per_sample_differences, flips, seed + 1)
    n_failed = n_boot - values.size
    if values.size < 2 or n_failed > n_boot / 2:
        reason = f" (e.g. {problems[0]})" if problems else ""
        raise InputError(
            f"{metric}: {n_failed} of {n_boot} paired bootstrap resamples could not be scored"
            f"{reason}; n = {n_samples} is too small for a bootstrap of this metric"
        )
    bias = float(values.mean() - difference)
    shifted = values - bias
    alpha = (1.0 - float(confidence)) / 2.0
    low, high = spec.value_range
    ci_low, ci_high = np.clip(np.quantile(shifted, [alpha, 1.0 - alpha]), low - high, high - low)
    tail = min(int((shifted <= 0).sum()), int((shifted >= 0).sum()))
    p_bootstrap = min(1.0, 2.0 * (1.0 + tail) / (1.0 + values.size))

    return ScoreDifference(
        metric=metric,
        score_a=score_a,
        score_b=score_b,
        difference=difference,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        p_value=p_sign_flip if p_sign_flip is not None else p_bootstrap,
        method=method,
        n_samples=n_samples,
        n_resamples=int(values.size),
        confidence=float(confidence),
        higher_is_better=spec.higher_is_better,
        p_bootstrap=p_bootstrap,
        p_sign_flip=p_sign_flip,
        n_flips=flips,
        bias=bias,
        n_failed=n_failed,
        bootstrap_differences=values,
    )


# --- family-wise correction of a layer search -----------------------------------------------------


@dataclass(frozen=True)
class MaxStatResult:
    """A layer matrix with family-wise corrected permutation p-values (see the module docstring).

    Attributes:
        observed: float64 [La, Lb], equal to ``layer_matrix(...).values``.
        best_index: (i, j) of the best observed cell (max, or min when lower is better).
        p_best_maxstat: ``p_cells_maxstat[best_index]``, the family-wise p of the layer search's answer.
        p_cells_maxstat: [La, Lb] Westfall–Young single-step adjusted p-values (``adjustment``).
        p_cells_raw: [La, Lb] per-cell permutation p-values from the same shuffles.
        p_cells_bonferroni: [La, Lb] min(1, pairs scored · p_cells_raw).
        null_max: [P] the best cell of each shuffled matrix (max, or min when lower is better).
        null_values: [P, La, Lb] every shuffled matrix.
        adjustment: ``"max"`` (best value per shuffle) or ``"min_p"`` (smallest per-cell p per shuffle).
    """

    metric: str
    observed: np.ndarray
    best_index: tuple[int, int]
    best_value: float
    p_best_maxstat: float
    p_cells_maxstat: np.ndarray
    p_cells_raw: np.ndarray
    p_cells_bonferroni: np.ndarray
    null_max: np.ndarray
    null_values: np.ndarray
    n_permutations: int
    higher_is_better: bool
    adjustment: str
    params: dict[str, Any]

    @property
    def p_best_raw(self) -> float:
        """The uncorrected permutation p of the best cell (anti-conservative after a search)."""
        return float(self.p_cells_raw[self.best_index])

    @property
    def p_best_bonferroni(self) -> float:
        return float(self.p_cells_bonferroni[self.best_index])


class _LayerScorer:
    """The La × Lb matrix on (A layers, B layers with rows reordered by ``perm``).

    Three paths, fastest first: permute B's prepared states (``spec.permute``); re-prepare B's layers on
    the shuffled rows (split form without ``permute``: A's layers are still prepared once); recompute
    ``spec.fn`` for every pair. With ``cells`` ([La, Lb] bool), only those pairs are scored, one by one
    (the others are NaN): a search where some pairs cannot be scored (GRAM volume across different widths).
    """

    def __init__(
        self,
        spec: MetricSpec,
        tensors_a: list[torch.Tensor],
        tensors_b: list[torch.Tensor],
        labels_a: list[str],
        labels_b: list[str],
        params: dict[str, Any],
        cells: np.ndarray | None = None,
    ) -> None:
        self.spec, self.params = spec, params
        self.tensors_a, self.tensors_b, self.labels_a, self.labels_b = tensors_a, tensors_b, labels_a, labels_b
        self.cells = cells
        self.split = spec.prepare is not None and spec.compare is not None and cells is None
        if self.split:
            self.states_a = [self._prepare(tensor, label) for tensor, label in zip(tensors_a, labels_a)]
            self.states_b = [self._prepare(tensor, label) for tensor, label in zip(tensors_b, labels_b)]

    def _prepare(self, tensor: torch.Tensor, label: str) -> Any:
        return self.spec.prepare(tensor, name=label, **self.params)  # type: ignore[misc]

    def _compare(self, states_b: list[Any]) -> np.ndarray:
        spec, params = self.spec, self.params
        batched = spec.compare_all(self.states_a, states_b, **params) if spec.compare_all is not None else None
        if batched is not None:
            return np.asarray(batched, dtype=np.float64)
        return np.array(
            [
                [spec.compare(state_a, state_b, **params) for state_b in states_b]  # type: ignore[misc]
                for state_a in self.states_a
            ],
            dtype=np.float64,
        )

    def matrix(self, perm: torch.Tensor | None = None) -> np.ndarray:
        spec, params = self.spec, self.params
        if self.split:
            if perm is None:
                return self._compare(self.states_b)
            if spec.permute is not None:
                return self._compare([spec.permute(state, perm) for state in self.states_b])
            return self._compare(
                [
                    self._prepare(tensor[perm.to(tensor.device)], label)
                    for tensor, label in zip(self.tensors_b, self.labels_b)
                ]
            )
        tensors_b = self.tensors_b if perm is None else [tensor[perm.to(tensor.device)] for tensor in self.tensors_b]
        if self.cells is not None:
            values = np.full(self.cells.shape, np.nan)
            for i, j in zip(*np.nonzero(self.cells)):
                values[i, j] = spec.fn(
                    self.tensors_a[i], tensors_b[j], name_a=self.labels_a[i], name_b=self.labels_b[j], **params
                )
            return values
        return np.array(
            [
                [
                    spec.fn(tensor_a, tensor_b, name_a=label_a, name_b=label_b, **params)
                    for tensor_b, label_b in zip(tensors_b, self.labels_b)
                ]
                for tensor_a, label_a in zip(self.tensors_a, self.labels_a)
            ],
            dtype=np.float64,
        )


def _min_p_adjusted(observed: np.ndarray, null: np.ndarray, p_raw: np.ndarray) -> np.ndarray:
    """Single-step min P: each of the P + 1 matrices gets per-cell p-values by its rank among all P + 1
    (larger is more extreme); a cell's adjusted p counts the shuffles whose smallest p is <= its raw p."""
    n_permutations = null.shape[0]
    stacked = np.concatenate([observed[None], null])  # [P + 1, cells]
    cell_p = np.full(stacked.shape, np.nan)
    for cell in range(stacked.shape[1]):
        column = stacked[:, cell]
        finite = np.isfinite(column)
        ordered, values = np.sort(column[finite]), column[finite]
        lowered = values - TIE_TOLERANCE * np.maximum(1.0, np.abs(values))  # ties up to rounding, as at_least
        cell_p[finite, cell] = (ordered.size - np.searchsorted(ordered, lowered, side="left")) / (n_permutations + 1.0)
    with np.errstate(invalid="ignore"):
        smallest = np.nanmin(np.where(np.isfinite(cell_p[1:]), cell_p[1:], np.inf), axis=1)  # [P]
    return (1.0 + (smallest[:, None] <= p_raw[None, :]).sum(axis=0)) / (1.0 + n_permutations)


def max_stat_test(
    layers_a: Sequence[Any],
    layers_b: Sequence[Any],
    metric: str,
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    adjustment: str = "max",
    progress: Callable[[int, int], None] | None = None,
    names_a: Sequence[str] | None = None,
    names_b: Sequence[str] | None = None,
    metric_params: Mapping[str, Any] | None = None,
    cells: np.ndarray | None = None,
    **params: Any,
) -> MaxStatResult:
    """Family-wise corrected permutation test of a search over all La × Lb layer pairs (or the ``cells``
    given, [La, Lb] bool: the others are left NaN, as pairs the metric cannot score).

    Each shuffle draws one permutation of the samples (``torch.randperm`` from ``seed``, the same sequence
    as :func:`alignscope.core.stats.permutation_test`), applies it to every layer of B and scores the whole
    matrix. Metrics without a split form recompute every pair per shuffle (slow).

    Args:
        layers_a: La feature matrices [n, d_i]; layers_b: Lb matrices [n, d_j], the same samples in order.
        metric: a registered metric name.
        n_permutations: shuffles P.
        adjustment: ``"max"`` (max-T) or ``"min_p"`` (never above Bonferroni); see the module docstring.
        progress: optional ``progress(done, total)``, called after each shuffle (total = P).
        names_a, names_b: optional layer labels for error messages.
        **params: the metric's parameters.

    Returns:
        A :class:`MaxStatResult`.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> layers_a = [torch.randn(40, 3, generator=g) for _ in range(2)]
        >>> layers_b = [torch.randn(40, 3, generator=g), layers_a[1] + 0.1 * torch.randn(40, 3, generator=g)]
        >>> result = max_stat_test(layers_a, layers_b, "linear_cka", n_permutations=99)
        >>> result.best_index, result.p_best_maxstat
        ((1, 1), 0.01)
    """
    spec = get_metric(metric)
    resolved = spec.resolve_params(merged_params(params, metric_params))
    n_permutations = _count(n_permutations, "n_permutations")
    if adjustment not in MAX_STAT_ADJUSTMENTS:
        raise InputError(f"adjustment must be one of {', '.join(MAX_STAT_ADJUSTMENTS)}, got {adjustment!r}")
    if len(layers_a) == 0 or len(layers_b) == 0:
        raise InputError(
            f"max_stat_test needs at least one layer on each side; got {len(layers_a)} and {len(layers_b)}"
        )
    labels_a = list(names_a) if names_a is not None else [f"A layer {i}" for i in range(len(layers_a))]
    labels_b = list(names_b) if names_b is not None else [f"B layer {j}" for j in range(len(layers_b))]
    tensors_a = [check_features(feats, label) for feats, label in zip(layers_a, labels_a)]
    device = tensors_a[0].device  # one device for every prepared state, as in layer_matrix
    tensors_a = [tensor.to(device) for tensor in tensors_a]
    tensors_b = [check_features(feats, label).to(device) for feats, label in zip(layers_b, labels_b)]
    n_samples = tensors_a[0].shape[0]
    for tensor, label in zip(tensors_a + tensors_b, labels_a + labels_b):
        if tensor.shape[0] != n_samples:
            raise InputError(
                f"{labels_a[0]} has {n_samples} rows but {label} has {tensor.shape[0]}; "
                "all layers must hold the same samples in the same order"
            )

    if cells is not None and np.shape(cells) != (len(layers_a), len(layers_b)):
        raise InputError(f"cells must be [{len(layers_a)}, {len(layers_b)}] booleans, got shape {np.shape(cells)}")
    scorer = _LayerScorer(spec, tensors_a, tensors_b, labels_a, labels_b, resolved, cells)
    observed = scorer.matrix()
    if np.isnan(observed).all():
        raise InputError(f"{metric} is undefined (NaN) for every layer pair; the features may be constant")
    generator = _generator(seed)
    null = np.empty((n_permutations,) + observed.shape, dtype=np.float64)
    with _loop_threads(n_samples, device):
        for index in range(n_permutations):
            null[index] = scorer.matrix(torch.randperm(n_samples, generator=generator))
            if progress is not None:
                progress(index + 1, n_permutations)

    # orient so that larger is better; NaN cells (undefined pairs) are never extreme and get p = NaN
    sign = 1.0 if spec.higher_is_better else -1.0
    oriented_obs, oriented_null = sign * observed.ravel(), sign * null.reshape(n_permutations, -1)
    with np.errstate(invalid="ignore"):
        oriented_max = np.nanmax(np.where(np.isnan(oriented_null), -np.inf, oriented_null), axis=1)
        p_raw = (1.0 + at_least(oriented_null, oriented_obs[None, :]).sum(axis=0)) / (1.0 + n_permutations)
        if adjustment == "max":
            p_adjusted = (1.0 + at_least(oriented_max[:, None], oriented_obs[None, :]).sum(axis=0)) / (
                1.0 + n_permutations
            )
        else:
            p_adjusted = _min_p_adjusted(oriented_obs, oriented_null, p_raw)
    undefined = np.isnan(oriented_obs)
    p_raw[undefined] = p_adjusted[undefined] = np.nan
    p_bonferroni = np.minimum(1.0, p_raw * int(np.isfinite(observed).sum()))  # the pairs searched
    best = np.unravel_index(int(np.nanargmax(oriented_obs)), observed.shape)
    best_index = (int(best[0]), int(best[1]))
    shape = observed.shape
    return MaxStatResult(
        metric=metric,
        observed=observed,
        best_index=best_index,
        best_value=float(observed[best_index]),
        p_best_maxstat=float(p_adjusted.reshape(shape)[best_index]),
        p_cells_maxstat=p_adjusted.reshape(shape),
        p_cells_raw=p_raw.reshape(shape),
        p_cells_bonferroni=p_bonferroni.reshape(shape),
        null_max=sign * oriented_max,
        null_values=null,
        n_permutations=n_permutations,
        higher_is_better=spec.higher_is_better,
        adjustment=adjustment,
        params=resolved,
    )


__all__ = [
    "DIFFERENCE_METHODS",
    "MAX_STAT_ADJUSTMENTS",
    "MaxStatResult",
    "ScoreDifference",
    "max_stat_test",
    "score_difference",
]
