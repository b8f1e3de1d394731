"""Model-vs-data RSA for precomputed recordings (brain data), in rsatoolbox's conventions.

The data are RDMs [n_units, n_pairs] over the same n stimuli as the model RDM (condensed, i < j,
row-major; see :mod:`alignscope.core.metrics.rdm`), one row per *unit*: a subject, or — for a single
subject — a repeat (``over="repeats"``). :func:`rdms_from_measurements` computes them from response
patterns. The score is rsatoolbox's fixed-model evaluation: the mean over units of
``compare(model_rdm, unit_rdm)``.

Noise ceiling (:func:`noise_ceiling`, rsatoolbox ``boot_noise_ceiling``): the RDMs are *pooled* the
way the comparison method asks (rsatoolbox ``pool_rdm``: ranks averaged for the rank methods, z-scored
RDMs averaged for ``pearson``/``corr``/``corr_cov``, RMS-normalised RDMs averaged for the cosines).
Upper bound: the mean over units of compare(pool of all units, unit) — the unit itself is in the pool,
so no model can beat it on average (for the rank methods, approximately). Lower bound: the same with the unit left out of the pool, the score
a model equal to the other units' consensus gets. Over repeats of one subject the bounds are computed the
same way but bound the prediction of *this subject's single-repeat RDMs*; the result says so
(``over="repeats"``) and its score is the mean over the same single-repeat RDMs, so the two stay on one
scale.

Bootstrap (:func:`brain_score`, rsatoolbox ``bootstrap_sample``): stimuli are drawn with replacement,
the same ones for the model and every data RDM, and sorted; the dissimilarity of a stimulus with its
own copy (a trivial 0 in every RDM) is dropped, as rsatoolbox's ``subsample_pattern`` does, so copies do
not inflate the resampled scores and the interval is the plain percentile one (not the re-centred
default of :mod:`alignscope.core.stats`). Units are drawn with replacement too, where there are
at least two. A resample the method cannot score (fewer than 3 distinct pairs, a constant RDM) is
dropped and counted. The noise ceiling is that of the full data; it is not resampled.

Data covering only part of a dataset's samples: :func:`score_shared` matches model and data by sample
id and scores the shared ids in the data's order.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import MIN_SAMPLES, check_choice
from alignscope.core.metrics.rdm import (
    COMPARE_METHODS,
    RDM_METHODS,
    _as_float64,
    _compare_many,
    check_rdm,
    compute_rdm,
    n_stimuli_from_pairs,
    resample_rdm,
)
from alignscope.core.stats import _count, _generator

OVER = ("subjects", "repeats")
RESAMPLE = ("auto", "stimuli", "subjects", "both")
DATA_KINDS = ("measurements", "rdms")
_RANK_POOLED = ("spearman", "rho-a", "kendall", "tau-a", "tau-b")
_ZSCORE_POOLED = ("pearson", "corr", "corr_cov")


# --- data RDMs -------------------------------------------------------------------------------------


def rdms_from_measurements(
    measurements: Any,
    method: str = "correlation",
    *,
    over: str = "subjects",
    noise_precision: Any = None,
    noise_covariance: Any = None,
    remove_mean: bool = False,
    name: str = "data",
) -> np.ndarray:
    """One RDM per unit, [n_units, n_pairs], from response patterns with stimuli on axis -2.

    Shapes: [n, d] -> one RDM; [n_units, n, d] -> one RDM per subject (or per repeat, ``over="repeats"``);
    for ``method="crossnobis"``, [n_repeats, n, d] -> one RDM (one subject) and
    [n_subjects, n_repeats, n, d] -> one per subject. Other methods given 4-D data average each subject's
    repeats first (rsatoolbox averages observations of one pattern). The noise precision / covariance
    and ``remove_mean`` are passed to :func:`~alignscope.core.metrics.rdm.compute_rdm` for every unit.
    """
    check_choice(over, OVER, "over")
    check_choice(method, RDM_METHODS, "rdm method")
    array = _as_float64(measurements, name)
    kwargs = {"noise_precision": noise_precision, "noise_covariance": noise_covariance, "remove_mean": remove_mean}
    if array.ndim == 2 or (array.ndim == 3 and method == "crossnobis"):
        return compute_rdm(array, method, name=name, **kwargs)[None, :]
    if array.ndim == 4 and over == "repeats":
        raise InputError(
            f"{name} has shape {array.shape}, [n_subjects, n_repeats, n, d]; over='repeats' "
            "takes one subject's repeats [n_repeats, n, d]"
        )
    if array.ndim not in (3, 4):
        raise InputError(
            f"{name} must be [n, d], [n_units, n, d] or [n_subjects, n_repeats, n, d] with stimuli "
            f"on axis -2, got shape {array.shape}"
        )
    unit_name = "subject" if over == "subjects" else "repeat"
    return np.stack(
        [compute_rdm(unit, method, name=f"{name} {unit_name} {index}", **kwargs) for index, unit in enumerate(array)]
    )


def _check_rdm_stack(rdms: Any, name: str) -> np.ndarray:
    if isinstance(rdms, torch.Tensor):
        rdms = rdms.detach().cpu().numpy()
    array = np.asarray(rdms, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise InputError(
            f"{name} must be condensed RDMs [n_units, n_pairs] (or one RDM [n_pairs]), got shape {array.shape}"
        )
    for index, row in enumerate(array):
        check_rdm(row, f"{name} row {index}")
    return array


def _pool(rdms: np.ndarray, method: str) -> np.ndarray:
    """rsatoolbox's ``pool_rdm``: the one RDM [n_pairs] that best represents ``rdms`` under ``method``."""
    if method in _RANK_POOLED:
        return stats.rankdata(rdms, axis=1).mean(axis=0)
    if method in _ZSCORE_POOLED:
        centred = rdms - rdms.mean(axis=1, keepdims=True)
        pooled = (centred / centred.std(axis=1, keepdims=True)).mean(axis=0)
        return pooled - pooled.min()
    return (rdms / np.sqrt((rdms**2).mean(axis=1, keepdims=True))).mean(axis=0)  # cosine, cosine_cov


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """The bootstrap's many small LAPACK calls (whitened comparisons) run fastest on one BLAS thread: several
    threads per 100 x 100 solve spin and thrash on a busy machine (measured 30-200x slower on 2 shared cores).
    threadpoolctl is used where installed; without it BLAS keeps its own setting."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _unit_label(over: str, index: int) -> str:
    return f"{'subject' if over == 'subjects' else 'repeat'} {index}"


# --- noise ceiling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseCeiling:
    """Lower and upper bound on the mean score any model can reach against these data RDMs.

    Attributes:
        low: mean over units of compare(pool of the *other* units, unit) (leave-one-out).
        high: mean over units of compare(pool of all units, unit).
        method: the comparison method (the pooling follows it).
        over: ``"subjects"``, or ``"repeats"`` when the units are repeats of one subject.
        n_units: how many subjects (or repeats) the bounds are over.
        low_per_unit, high_per_unit: the per-unit terms [n_units] of the two means.
    """

    low: float
    high: float
    method: str
    over: str
    n_units: int
    low_per_unit: np.ndarray = field(repr=False, compare=False)
    high_per_unit: np.ndarray = field(repr=False, compare=False)


def noise_ceiling(data_rdms: Any, method: str = "spearman", *, over: str = "subjects") -> NoiseCeiling:
    """rsatoolbox's noise ceiling (``boot_noise_ceiling`` with leave-one-out) of RDMs [n_units, n_pairs].

    Example:
        >>> rng = np.random.default_rng(0)
        >>> truth = rng.random(45)
        >>> ceiling = noise_ceiling(truth + 0.3 * rng.random((6, 45)), "pearson")
        >>> bool(ceiling.low < ceiling.high <= 1.0)
        True
    """
    check_choice(method, COMPARE_METHODS, "compare method")
    check_choice(over, OVER, "over")
    rdms = _check_rdm_stack(data_rdms, "data_rdms")
    n_units = rdms.shape[0]
    if n_units < 2:
        raise InputError(
            f"a noise ceiling needs the RDMs of at least 2 {over}, got {n_units}; with one subject, "
            "pass one RDM per repeat and over='repeats'"
        )
    pooled_all = _pool(rdms, method)
    high = np.empty(n_units)
    low = np.empty(n_units)
    for unit in range(n_units):
        others = np.delete(rdms, unit, axis=0)
        low[unit] = _compare_many(_pool(others, method), rdms[unit], method)[0]
        high[unit] = _compare_many(pooled_all, rdms[unit], method)[0]
    bad = np.flatnonzero(~np.isfinite(low) | ~np.isfinite(high))
    if bad.size:
        raise InputError(
            f"{method} is undefined for {_unit_label(over, int(bad[0]))}'s RDM (all dissimilarities "
            "equal, or all zero); drop that unit"
        )
    return NoiseCeiling(float(low.mean()), float(high.mean()), method, over, n_units, low, high)


# --- score with bootstrap interval -----------------------------------------------------------------


@dataclass(frozen=True)
class BrainScore:
    """A model RDM scored against data RDMs, with a bootstrap interval and the noise ceiling.

    Attributes:
        value: mean over units of compare(model RDM, unit RDM); higher is better.
        ci_low, ci_high: percentile bootstrap interval of ``value`` at ``confidence``.
        noise_ceiling_low, noise_ceiling_high: the :class:`NoiseCeiling` bounds; NaN with one unit.
        n_stimuli: stimuli in the RDMs.
        n_subjects: subjects (1 when the units are repeats of one subject).
        n_repeats: repeats, where known: the units when ``over="repeats"``, else the repeats inside each
            subject's RDM (crossnobis folds, or averaged) when :func:`score_shared` saw them; else None.
        method: the comparison method.
        ceiling_over: ``"subjects"``, ``"repeats"``, or ``"none"`` (one RDM: no ceiling).
        resampled: what the bootstrap drew, e.g. ``"stimuli and subjects"``.
        per_unit: compare(model, unit) for each unit [n_units].
        bootstrap_values: the scored resamples [n_boot - n_failed].
        n_failed: resamples dropped (too few distinct stimuli, a constant RDM).
        note: one sentence on what the ceiling and interval are over.
    """

    value: float
    ci_low: float
    ci_high: float
    noise_ceiling_low: float
    noise_ceiling_high: float
    n_stimuli: int
    n_subjects: int
    method: str
    n_repeats: int | None = None
    ceiling_over: str = "subjects"
    resampled: str = "stimuli and subjects"
    confidence: float = 0.95
    n_boot: int = 0
    n_failed: int = 0
    seed: int = 0
    note: str = ""
    per_unit: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    bootstrap_values: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)


def brain_score(
    model_rdm: Any,
    data_rdms: Any,
    *,
    method: str = "spearman",
    over: str = "subjects",
    n_boot: int = 1000,
    confidence: float = 0.95,
    resample: str = "auto",
    seed: int = 0,
) -> BrainScore:
    """Score a model RDM against data RDMs, with a seeded bootstrap interval and the noise ceiling.

    Args:
        model_rdm: condensed [n_pairs] (or square [n, n]) model RDM.
        data_rdms: [n_units, n_pairs] data RDMs over the same stimuli in the same order, or one [n_pairs].
        method: comparison, one of :data:`~alignscope.core.metrics.rdm.COMPARE_METHODS`.
        over: what the rows of ``data_rdms`` are: ``"subjects"``, or ``"repeats"`` of one subject.
        n_boot: bootstrap resamples: 0 for no interval (NaN bounds), else at least 2.
        resample: ``"stimuli"``, ``"subjects"`` (the rows of ``data_rdms``, repeats if ``over="repeats"``),
            ``"both"``, or ``"auto"``: both where there are at least 2 rows, else stimuli.
        seed: the same seed gives the same interval.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> truth = rng.random(45)
        >>> score = brain_score(truth, truth + 0.5 * rng.random((4, 45)), n_boot=50)
        >>> bool(score.ci_low <= score.value <= score.ci_high), score.n_stimuli, score.n_subjects
        (True, 10, 4)
    """
    check_choice(method, COMPARE_METHODS, "compare method")
    check_choice(over, OVER, "over")
    check_choice(resample, RESAMPLE, "resample")
    n_boot = _count(n_boot, "n_boot", low=0)
    if n_boot == 1:
        raise InputError("n_boot must be 0 (no interval) or at least 2: one resample has no spread")
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    generator = _generator(seed)
    model = check_rdm(model_rdm, "model_rdm")
    rdms = _check_rdm_stack(data_rdms, "data_rdms")
    n_stimuli, n_units = n_stimuli_from_pairs(model.size), rdms.shape[0]
    if rdms.shape[1] != model.size:
        raise InputError(
            f"model_rdm is over {n_stimuli} stimuli but data_rdms over "
            f"{n_stimuli_from_pairs(rdms.shape[1])}; both must hold the same stimuli in the same "
            "order (score_shared matches them by sample id)"
        )
    per_unit = _compare_many(model, rdms, method)
    bad = np.flatnonzero(~np.isfinite(per_unit))
    if bad.size:
        which = "model_rdm" if np.ptp(model) == 0 or not model.any() else f"{_unit_label(over, int(bad[0]))}'s RDM"
        raise InputError(f"{method} is undefined for {which}: all its dissimilarities are equal (or zero)")
    if resample == "auto":
        resample = "both" if n_units >= 2 else "stimuli"
    if resample in ("subjects", "both") and n_units < 2 and n_boot:
        raise InputError(f"resample={resample!r} needs at least 2 {over}; data_rdms has one RDM")
    draw_stimuli, draw_units = resample in ("stimuli", "both"), resample in ("subjects", "both")
    if n_boot:
        with _one_blas_thread():
            boot = np.asarray(_bootstrap_values(model, rdms, method, n_boot, draw_stimuli, draw_units, generator))
        n_failed = n_boot - boot.size
        if boot.size < 2 or n_failed > n_boot / 2:
            raise InputError(
                f"{n_failed} of {n_boot} bootstrap resamples could not be scored (too few distinct stimuli "
                f"or a constant RDM); {n_stimuli} stimuli are too few for a bootstrap"
            )
        alpha = (1.0 - float(confidence)) / 2.0
        ci_low, ci_high = np.quantile(boot, [alpha, 1.0 - alpha])
    else:  # no interval asked for
        boot, n_failed, ci_low, ci_high = np.empty(0), 0, float("nan"), float("nan")
        draw_stimuli = draw_units = False
    if n_units >= 2:
        ceiling = noise_ceiling(rdms, method, over=over)
        ceiling_low, ceiling_high, ceiling_over = ceiling.low, ceiling.high, over
        note = (
            f"noise ceiling over {n_units} subjects (leave-one-subject-out lower bound)"
            if over == "subjects"
            else f"noise ceiling over {n_units} repeats of one subject, not over subjects: it bounds the prediction "
            "of this subject's single-repeat RDMs, and the score is the mean over those same RDMs"
        )
    else:
        ceiling_low = ceiling_high = float("nan")
        ceiling_over = "none"
        note = "one data RDM: no noise ceiling (it needs at least 2 subjects, or one RDM per repeat)"
    unit_word = over if draw_units else ""
    resampled = " and ".join(word for word in ("stimuli" if draw_stimuli else "", unit_word) if word)
    return BrainScore(
        value=float(per_unit.mean()),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        noise_ceiling_low=ceiling_low,
        noise_ceiling_high=ceiling_high,
        n_stimuli=n_stimuli,
        n_subjects=n_units if over == "subjects" else 1,
        method=method,
        n_repeats=n_units if over == "repeats" else None,
        ceiling_over=ceiling_over,
        resampled=resampled,
        confidence=float(confidence),
        n_boot=n_boot,
        n_failed=n_failed,
        seed=int(seed),
        note=note,
        per_unit=per_unit,
        bootstrap_values=boot,
    )


def _bootstrap_values(
    model: np.ndarray,
    rdms: np.ndarray,
    method: str,
    n_boot: int,
    draw_stimuli: bool,
    draw_units: bool,
    generator: torch.Generator,
) -> list[float]:
    """The scores of the resamples that could be scored (the others are left out)."""
    n_stimuli, n_units = n_stimuli_from_pairs(model.size), rdms.shape[0]
    values = []
    for _ in range(n_boot):
        stimuli = np.arange(n_stimuli)
        if draw_stimuli:  # sorted, as rsatoolbox's subsample_pattern orders them
            stimuli = np.sort(torch.randint(0, n_stimuli, (n_stimuli,), generator=generator).numpy())
        units = np.arange(n_units)
        if draw_units:
            units = torch.randint(0, n_units, (n_units,), generator=generator).numpy()
        scores = _compare_many(resample_rdm(model, stimuli), resample_rdm(rdms[units], stimuli), method)
        if np.isfinite(scores).all():
            values.append(float(scores.mean()))
    return values


# --- data over a subset of the samples -------------------------------------------------------------


@dataclass(frozen=True)
class SharedSamples:
    """The sample ids two sources share, in the data's order, and where each source holds them.

    Attributes:
        ids: the shared ids, ordered as in the data.
        model_index, data_index: row of each shared id in the model features / the data [n_shared].
        n_model, n_data: how many samples each source covers.
    """

    ids: tuple[Hashable, ...]
    model_index: np.ndarray = field(compare=False)
    data_index: np.ndarray = field(compare=False)
    n_model: int
    n_data: int


def _id_list(ids: Any, name: str) -> list[Hashable]:
    values = ids.tolist() if isinstance(ids, (np.ndarray, torch.Tensor)) else list(ids)
    seen: dict[Hashable, int] = {}
    for position, value in enumerate(values):
        try:
            earlier = seen.setdefault(value, position)
        except TypeError:
            raise InputError(f"{name}[{position}] is {value!r}, which cannot be a sample id; use str or int") from None
        if earlier != position:
            raise InputError(
                f"{name} holds sample id {value!r} twice (positions {earlier} and {position}); "
                "each sample must appear once"
            )
    return values


def shared_samples(
    model_ids: Sequence[Hashable], data_ids: Sequence[Hashable], *, min_shared: int = MIN_SAMPLES
) -> SharedSamples:
    """Match two id lists; the shared ids in the data's order.

    Raises:
        InputError: duplicate ids, or fewer than ``min_shared`` shared ids (the message gives the counts).

    Example:
        >>> shared = shared_samples(["a", "b", "c", "d"], ["d", "x", "b", "a"])
        >>> shared.ids, shared.model_index.tolist(), shared.data_index.tolist()
        (('d', 'b', 'a'), [3, 1, 0], [0, 2, 3])
    """
    model_list, data_list = _id_list(model_ids, "model_ids"), _id_list(data_ids, "data_ids")
    model_row = {value: row for row, value in enumerate(model_list)}
    data_index = [row for row, value in enumerate(data_list) if value in model_row]
    if len(data_index) < min_shared:
        hint = ""
        if model_list and data_list and type(model_list[0]) is not type(data_list[0]):
            hint = f"; the model ids are {type(model_list[0]).__name__} but the data ids {type(data_list[0]).__name__}"
        raise InputError(
            f"the model covers {len(model_list)} samples and the data {len(data_list)}, but only "
            f"{len(data_index)} sample ids are shared; at least {min_shared} are "
            f"needed{hint}"
        )
    ids = tuple(data_list[row] for row in data_index)
    return SharedSamples(
        ids,
        np.asarray([model_row[value] for value in ids], dtype=np.int64),
        np.asarray(data_index, dtype=np.int64),
        len(model_list),
        len(data_list),
    )


def score_shared(
    model_feats: Any,
    model_ids: Sequence[Hashable],
    data: Any,
    data_ids: Sequence[Hashable],
    *,
    data_kind: str = "measurements",
    model_rdm: str = "correlation",
    data_rdm: str = "correlation",
    method: str = "spearman",
    over: str = "subjects",
    noise_precision: Any = None,
    noise_covariance: Any = None,
    remove_mean: bool = False,
    n_boot: int = 1000,
    confidence: float = 0.95,
    resample: str = "auto",
    seed: int = 0,
) -> BrainScore:
    """:func:`brain_score` on the samples the model and the data share, in the data's order.

    Args:
        model_feats: [n_model, d] model features, rows in the order of ``model_ids``.
        model_ids: [n_model] sample ids of those rows.
        data: ``data_kind="measurements"``: responses with stimuli on axis -2 (shapes as
            :func:`rdms_from_measurements` takes them); ``"rdms"``: condensed RDMs [n_units, n_pairs] or
            [n_pairs] over the data's samples.
        data_ids: [n_data] sample ids along the data's stimulus axis.
        model_rdm, data_rdm: distances for the model's and the data's RDMs; ``noise_precision`` /
            ``noise_covariance`` / ``remove_mean`` apply to the data's only.
        method, over, n_boot, confidence, resample, seed: as for :func:`brain_score`.
    """
    feats = _as_float64(model_feats, "model_feats")
    model_list = _id_list(model_ids, "model_ids")
    if feats.ndim != 2 or feats.shape[0] != len(model_list):
        raise InputError(
            f"model_feats has shape {feats.shape} but there are {len(model_list)} model_ids; "
            "it must be [n_model, d] with one row per id"
        )
    shared_data = prepare_shared_data(
        model_list,
        data,
        data_ids,
        data_kind=data_kind,
        data_rdm=data_rdm,
        over=over,
        noise_precision=noise_precision,
        noise_covariance=noise_covariance,
        remove_mean=remove_mean,
    )
    return score_prepared(
        feats,
        shared_data,
        model_rdm=model_rdm,
        method=method,
        over=over,
        n_boot=n_boot,
        confidence=confidence,
        resample=resample,
        seed=seed,
    )


@dataclass(frozen=True)
class SharedData:
    """The data side of :func:`score_shared`, built once for every layer of a model.

    Attributes:
        shared: the samples the model and the data share, in the data's order.
        rdms: condensed data RDMs [n_units, n_pairs] over those samples.
        n_repeats: repeats behind each RDM (4-D or crossnobis measurements), else None.
    """

    shared: SharedSamples
    rdms: np.ndarray
    n_repeats: int | None


def prepare_shared_data(
    model_ids: Sequence[Hashable],
    data: Any,
    data_ids: Sequence[Hashable],
    *,
    data_kind: str = "measurements",
    data_rdm: str = "correlation",
    over: str = "subjects",
    noise_precision: Any = None,
    noise_covariance: Any = None,
    remove_mean: bool = False,
) -> SharedData:
    """The data RDMs over the samples shared with ``model_ids`` (arguments as for :func:`score_shared`)."""
    check_choice(data_kind, DATA_KINDS, "data_kind")
    model_list = _id_list(model_ids, "model_ids")
    data_list = _id_list(data_ids, "data_ids")
    array = _as_float64(data, "data")
    if data_kind == "rdms":
        n_data = n_stimuli_from_pairs(array.shape[-1] if array.ndim else 0, "data")
    else:
        n_data = array.shape[-2] if array.ndim >= 2 else 0
    if n_data != len(data_list):
        raise InputError(
            f"data holds {n_data} samples but there are {len(data_list)} data_ids; the data's "
            "stimulus axis (-2 for measurements) must have one entry per id"
        )
    shared = shared_samples(model_list, data_list)
    n_repeats = None
    if data_kind == "rdms":
        rdms = resample_rdm(np.atleast_2d(array), shared.data_index)
    else:
        rdms = rdms_from_measurements(
            np.take(array, shared.data_index, axis=-2),
            data_rdm,
            over=over,
            noise_precision=noise_precision,
            noise_covariance=noise_covariance,
            remove_mean=remove_mean,
        )
        if array.ndim == 4 or (array.ndim == 3 and data_rdm == "crossnobis"):
            n_repeats = array.shape[-3]
    return SharedData(shared, rdms, n_repeats)


def score_prepared(
    model_feats: Any,
    shared_data: SharedData,
    *,
    model_rdm: str = "correlation",
    method: str = "spearman",
    over: str = "subjects",
    n_boot: int = 1000,
    confidence: float = 0.95,
    resample: str = "auto",
    seed: int = 0,
) -> BrainScore:
    """:func:`brain_score` of one layer [n_model, d] (rows in the ids' order given to
    :func:`prepare_shared_data`) against data RDMs built once."""
    feats = _as_float64(model_feats, "model_feats")
    model = compute_rdm(feats[shared_data.shared.model_index], model_rdm, name="model_feats")
    score = brain_score(
        model,
        shared_data.rdms,
        method=method,
        over=over,
        n_boot=n_boot,
        confidence=confidence,
        resample=resample,
        seed=seed,
    )
    return score if shared_data.n_repeats is None else dataclasses.replace(score, n_repeats=shared_data.n_repeats)


__all__ = [
    "BrainScore",
    "NoiseCeiling",
    "SharedData",
    "SharedSamples",
    "brain_score",
    "noise_ceiling",
    "prepare_shared_data",
    "rdms_from_measurements",
    "score_prepared",
    "score_shared",
    "shared_samples",
]
