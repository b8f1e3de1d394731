"""Chance levels, permutation tests, bootstrap intervals and sweeps for any registered metric.

Every random step takes a ``seed`` and draws from its own ``torch.Generator``, so the same inputs and
seed give bit-identical results.

Null model: the *sample correspondence* is shuffled — rows of ``feats_b`` are permuted — which keeps
each space's geometry and destroys only the pairing. Metrics with a split form (k-NN family, CKNNA,
kernel family) permute the prepared state (neighbour lists, Gram matrices) instead of recomputing it.

Bootstrap and k-NN metrics: resampling with replacement puts copies of one sample in the data, and a
copy is trivially its own nearest neighbour in both spaces, which would inflate every k-NN score. For
metrics that take them (``spec.takes_sample_ids``) the resampled original indices are passed as
``sample_ids``: copies of the query sample are excluded from its neighbour list exactly like the sample
itself (other copies remain ordinary neighbours), and the cross-validated metrics (ridge R², retrieval)
keep all copies of a sample on one side of every train/test split, so no copy is fitted and then scored.

Bootstrap and every other metric: copies still inflate most scores (a resample of n rows holds about
0.63·n distinct samples, and CKA, CCA, Procrustes and RSA all read fewer samples as more alignment:
independent Gaussians at n = 200, d = 128 give debiased CKA ≈ 0.00 but a resampled mean of 0.39). A raw
percentile interval then misses its own estimate. The default interval is therefore *re-centred*: the
percentiles of the bootstrap scores shifted by their resampling bias, mean(θ*) − θ̂, i.e. the percentile
interval moved so that the bootstrap distribution is centred on the estimate. It is an interval for
E[θ̂] at this n (the quantity the estimate reports, finite-sample bias included), not a bias-corrected
estimate 2θ̂ − mean(θ*) and not Efron's z₀-adjusted "BC" interval; it keeps the bootstrap spread and
is as symmetric as that spread is. ``method="percentile"`` gives the raw interval.

A resample the metric cannot score (e.g. too few distinct samples left for a cross-validation split,
or a NaN) is dropped and counted (``BootstrapResult.n_failed``); more than half dropped is an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alignscope.core.devices import torch_threads
from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import _check_inputs
from alignscope.core.metrics.registry import MetricSpec, get_metric

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)`` after each shuffle or resample (a job's progress; it may raise to cancel)."""


def merged_params(params: dict[str, Any], metric_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The metric's parameters: ``**params`` and ``metric_params`` (the way to pass a metric its own
    ``seed``, which as a keyword would be the shuffles' seed)."""
    both = set(params) & set(metric_params or {})
    if both:
        raise TypeError(f"parameters given twice: {sorted(both)}")
    return {**params, **(metric_params or {})}


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


# The most shuffles, resamples or sign flips one call draws: a p-value resolved to 1e-6. Beyond it a
# run takes days and its null array alone runs to gigabytes (1e11 permutations asked for 745 GiB).
MAX_RESAMPLES = 1_000_000


def at_floor(p: float | None, floor: float | None) -> bool:
    """Whether ``p`` is its test's floor, the smallest p it can give (1/(P+1) for P shuffles): no shuffle
    or resample scored as well, so the p says "at most" rather than "equal to". Rounding allowed.

    Example:
        >>> at_floor(1 / 201, 1 / 201), at_floor(0.02, 1 / 201), at_floor(None, 0.01)
        (True, False, False)
    """
    return p is not None and floor is not None and p <= floor * (1 + 1e-9)


def _count(value: Any, name: str, low: int = 1) -> int:
    """``value`` as an int in [low, MAX_RESAMPLES], else an InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    if int(value) > MAX_RESAMPLES:
        raise InputError(f"{name} must be at most {MAX_RESAMPLES:,}, got {int(value):,}")
    return int(value)


class _Scorer:
    """Computes one metric on (A, B[perm]) repeatedly, reusing prepared per-input work if it can."""

    def __init__(
        self,
        spec: MetricSpec,
        feats_a: torch.Tensor,
        feats_b: torch.Tensor,
        params: dict[str, Any],
        name_a: str,
        name_b: str,
    ) -> None:
        self.spec, self.params = spec, params
        self.feats_a, self.feats_b = feats_a, feats_b
        self.name_a, self.name_b = name_a, name_b
        self.split = spec.prepare is not None and spec.compare is not None and spec.permute is not None
        if spec.prepare is not None and self.split:
            self.state_a = spec.prepare(feats_a, name=name_a, **params)
            self.state_b = spec.prepare(feats_b, name=name_b, **params)

    def observed(self) -> float:
        if self.split and self.spec.compare is not None:
            return float(self.spec.compare(self.state_a, self.state_b, **self.params))
        return float(self.spec.fn(self.feats_a, self.feats_b, name_a=self.name_a, name_b=self.name_b, **self.params))

    def shuffled(self, perm: torch.Tensor) -> float:
        if self.split and self.spec.compare is not None and self.spec.permute is not None:
            return float(self.spec.compare(self.state_a, self.spec.permute(self.state_b, perm), **self.params))
        return float(
            self.spec.fn(
                self.feats_a,
                self.feats_b[perm.to(self.feats_b.device)],
                name_a=self.name_a,
                name_b=self.name_b,
                **self.params,
            )
        )


# Up to this n, the many small products of a resampling loop run fastest on one CPU thread: several
# threads per op thrash on a busy machine (measured 3-10x slower on 2 shared cores at n = 500).
SINGLE_THREAD_MAX_SAMPLES = 4096


@contextlib.contextmanager
def _loop_threads(n_samples: int, device: torch.device) -> Iterator[None]:
    if device.type != "cpu" or n_samples > SINGLE_THREAD_MAX_SAMPLES:
        yield
        return
    with torch_threads(1):
        yield


def _null_values(
    scorer: _Scorer, n_samples: int, n_permutations: int, seed: int, progress: ProgressCallback | None = None
) -> np.ndarray:
    generator = _generator(seed)
    null = np.empty(n_permutations, dtype=np.float64)
    with _loop_threads(n_samples, scorer.feats_a.device):
        for index in range(n_permutations):
            null[index] = scorer.shuffled(torch.randperm(n_samples, generator=generator))
            if progress is not None:
                progress(index + 1, n_permutations)
    return null


# --- chance level ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChanceLevel:
    """Score expected without alignment.

    Attributes:
        analytic: closed form for random neighbour sets (k-NN family), else None.
        empirical: mean score over ``n_shuffles`` shuffled correspondences, or None without data.
        empirical_std: standard deviation of those scores.
    """

    metric: str
    n_samples: int
    analytic: float | None
    empirical: float | None
    empirical_std: float | None
    n_shuffles: int

    @property
    def value(self) -> float | None:
        """The empirical level when measured, else the analytic one."""
        return self.empirical if self.empirical is not None else self.analytic


def chance_level(
    metric: str,
    feats_a: Any = None,
    feats_b: Any = None,
    *,
    n_samples: int | None = None,
    n_shuffles: int = 20,
    seed: int = 0,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    progress: ProgressCallback | None = None,
    metric_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> ChanceLevel:
    """Analytic and empirical chance level of ``metric``.

    Args:
        metric: registered metric name.
        feats_a, feats_b: data for the empirical level (shuffled correspondence); optional.
        n_samples: n for the analytic level when no data is given.
        n_shuffles: shuffles averaged for the empirical level.

    Example:
        >>> round(chance_level("mutual_knn", n_samples=1001, k=10).analytic, 4)
        0.01
    """
    spec = get_metric(metric)
    resolved = spec.resolve_params(merged_params(params, metric_params))
    empirical = empirical_std = None
    if feats_a is not None and feats_b is not None:
        tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
        n_samples = tensor_a.shape[0]
        n_shuffles = _count(n_shuffles, "n_shuffles")
        scorer = _Scorer(spec, tensor_a, tensor_b, resolved, name_a, name_b)
        null = _null_values(scorer, n_samples, n_shuffles, seed, progress)
        empirical, empirical_std = float(null.mean()), float(null.std(ddof=1)) if n_shuffles > 1 else 0.0
    elif n_samples is None:
        raise InputError("chance_level needs feats_a and feats_b, or n_samples for the analytic level")
    analytic = spec.chance(int(n_samples), **resolved) if spec.chance is not None else None
    return ChanceLevel(
        metric, int(n_samples), analytic, empirical, empirical_std, n_shuffles if empirical is not None else 0
    )


# --- permutation test ------------------------------------------------------------------------------

TIE_TOLERANCE = 1e-12  # relative: a shuffle whose score equals the observed one up to rounding is a tie


def at_least(values: Any, reference: Any) -> np.ndarray:
    """``values >= reference`` where equal up to rounding counts as equal (both oriented so that larger is
    more extreme; broadcast). A discrete score (mutual k-NN: a count over n·k) is summed in another order
    for a shuffle than for the observed pairing, so a tie came out 0.0192 against 0.019200000000000002 and
    was not counted: p too small."""
    reference = np.asarray(reference, dtype=np.float64)
    return np.asarray(values) >= reference - TIE_TOLERANCE * np.maximum(1.0, np.abs(reference))


@dataclass(frozen=True)
class PermutationResult:
    """Observed score, the null distribution from shuffled correspondences, and the p-value
    (1 + #null at least as good as observed) / (1 + n_permutations)."""

    metric: str
    observed: float
    null_values: np.ndarray
    p_value: float
    higher_is_better: bool

    @property
    def n_permutations(self) -> int:
        return int(self.null_values.size)


def permutation_test(
    metric: str,
    feats_a: Any,
    feats_b: Any,
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    progress: ProgressCallback | None = None,
    metric_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> PermutationResult:
    """One-sided permutation test of "A and B are aligned beyond chance" for ``metric``.

    The rows of B are shuffled ``n_permutations`` times (seeded); the p-value uses the +1 correction,
    so it is never 0.
    """
    spec = get_metric(metric)
    resolved = spec.resolve_params(merged_params(params, metric_params))
    n_permutations = _count(n_permutations, "n_permutations")
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    scorer = _Scorer(spec, tensor_a, tensor_b, resolved, name_a, name_b)
    observed = scorer.observed()
    null = _null_values(scorer, tensor_a.shape[0], n_permutations, seed, progress)
    extreme = at_least(null, observed) if spec.higher_is_better else at_least(-null, -observed)
    p_value = (1.0 + float(extreme.sum())) / (1.0 + n_permutations)
    return PermutationResult(metric, observed, null, p_value, spec.higher_is_better)


# --- bootstrap -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap interval over samples.

    Attributes:
        values: the resampled scores [n_boot - n_failed] (resamples the metric could not score dropped).
        bias: mean(values) − estimate, the resampling bias (removed from the interval when
            ``method == "recentred"``).
        n_failed: resamples dropped because the metric raised or gave NaN on them.
    """

    metric: str
    estimate: float
    low: float
    high: float
    confidence: float
    values: np.ndarray
    bias: float = 0.0
    method: str = "recentred"
    n_failed: int = 0


BOOTSTRAP_METHODS = ("recentred", "percentile")


def bootstrap_ci(
    metric: str,
    feats_a: Any,
    feats_b: Any,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "recentred",
    name_a: str = "feats_a",
    name_b: str = "feats_b",
    progress: ProgressCallback | None = None,
    metric_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> BootstrapResult:
    """Bootstrap confidence interval of ``metric`` over samples (seeded).

    Samples are drawn with replacement, the same rows for A and B. For k-NN metrics, copies of the
    query sample are excluded from its neighbours. ``method="recentred"`` (default) reads the
    percentiles of the bootstrap scores shifted by their bias; ``"percentile"`` reads them raw (see the
    module docstring for why copies bias the raw interval). The interval is clipped to the metric's range.
    """
    spec = get_metric(metric)
    resolved = spec.resolve_params(merged_params(params, metric_params))
    n_boot = _count(n_boot, "n_boot", low=2)
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    if method not in BOOTSTRAP_METHODS:
        raise InputError(f"bootstrap method must be one of {', '.join(BOOTSTRAP_METHODS)}, got {method!r}")
    tensor_a, tensor_b = _check_inputs(feats_a, feats_b, name_a=name_a, name_b=name_b)
    n_samples = tensor_a.shape[0]
    estimate = float(spec.fn(tensor_a, tensor_b, name_a=name_a, name_b=name_b, **resolved))
    generator = _generator(seed)
    with _loop_threads(n_samples, tensor_a.device):
        values, problems = _bootstrap_values(
            spec, tensor_a, tensor_b, resolved, n_boot, generator, name_a, name_b, progress
        )
    n_failed = n_boot - values.size
    if values.size < 2 or n_failed > n_boot / 2:
        reason = f" (e.g. {problems[0]})" if problems else ""
        raise InputError(
            f"{metric}: {n_failed} of {n_boot} bootstrap resamples could not be scored{reason}; "
            f"n = {n_samples} is too small for a bootstrap of this metric"
        )
    alpha = (1.0 - float(confidence)) / 2.0
    bias = float(values.mean() - estimate)
    shifted = values - bias if method == "recentred" else values
    low, high = np.clip(np.quantile(shifted, [alpha, 1.0 - alpha]), *spec.value_range)
    return BootstrapResult(metric, estimate, float(low), float(high), float(confidence), values, bias, method, n_failed)


def _bootstrap_values(spec, tensor_a, tensor_b, resolved, n_boot, generator, name_a, name_b, progress=None):
    """(finite resampled scores, messages of the resamples that could not be scored)."""
    n_samples = tensor_a.shape[0]
    values, problems = [], []
    for index in range(n_boot):
        if progress is not None and index:
            progress(index, n_boot)
        rows = torch.randint(0, n_samples, (n_samples,), generator=generator)
        extra = {"sample_ids": rows} if spec.takes_sample_ids else {}
        device_rows = rows.to(tensor_a.device)
        try:
            value = float(
                spec.fn(tensor_a[device_rows], tensor_b[device_rows], name_a=name_a, name_b=name_b, **resolved, **extra)
            )
        except InputError as error:  # e.g. too few distinct samples in this resample for the CV split
            problems.append(str(error))
            continue
        if np.isfinite(value):
            values.append(value)
        else:
            problems.append("the score was NaN")
    if progress is not None:
        progress(n_boot, n_boot)
    return np.asarray(values, dtype=np.float64), problems


__all__ = [
    "at_floor",
    "BootstrapResult",
    "ChanceLevel",
    "PermutationResult",
    "bootstrap_ci",
    "chance_level",
    "permutation_test",
]
