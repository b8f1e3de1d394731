"""Representational similarity on the engine: a model layer's RDM as a view, and every layer of a model
scored against a stored recording (brain data) with the noise ceiling and a bootstrap over stimuli
(and subjects), in rsatoolbox's conventions (:mod:`alignscope.core.brain`).

* :class:`RdmRequest` -> :class:`RdmView`: the square RDM of one layer, rows ordered by label (stable,
  then by the subset's order) so class structure shows as blocks.
* :class:`RsaRequest` -> :class:`RsaProfile`: :func:`alignscope.core.brain.score_shared` for each layer
  on the samples the model view and the recording share (the recording's RDMs built once for all
  layers), plus the recording's mean RDM for display.
  The recording's sha256 is part of the request (filled in once features are cached), so a replaced
  recording is never served an old score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import Request
from alignscope.core.analysis.results import register_result_type
from alignscope.core.brain import BrainScore, prepare_shared_data, score_prepared
from alignscope.core.errors import InputError
from alignscope.core.metrics._checks import check_choice
from alignscope.core.metrics.rdm import COMPARE_METHODS, RDM_METHODS, compute_rdm, square_rdm

MODEL_RDM_METHODS = ("correlation", "euclidean", "squared_euclidean", "cosine")  # no repeats in a model
MAX_RDM_VIEW = 2000  # stimuli an RDM view draws (n² cells)


def label_order(labels: tuple[str, ...] | None, n: int) -> np.ndarray:
    """Row order that groups equal labels (numeric labels by value), stable within a label."""
    if labels is None:
        return np.arange(n)
    keys = [(0, float(label), "") if _is_number(label) else (1, 0.0, str(label)) for label in labels]
    return np.asarray(sorted(range(n), key=lambda i: keys[i]), dtype=np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class RdmRequest(Request):
    """The RDM of ``model``'s layer ``layer`` (negative: from the end) by ``method``."""

    kind: ClassVar[str] = "rdm"
    model: str
    dataset: str
    n: int
    seed: int = 0
    layer: int = -1
    method: str = "correlation"

    def __post_init__(self) -> None:
        check_choice(self.method, MODEL_RDM_METHODS, "model RDM method")

    def feature_models(self) -> tuple[str, ...]:
        return (self.model,)

    def describe(self) -> str:
        return f"{self.method} RDM of {self.model} layer {self.layer}"


@dataclass(frozen=True)
class RdmView:
    """Attributes: ``values`` float32 [n, n] in ``order`` (rows of the view's subset); ``labels`` and
    ``sample_ids`` in that order (labels None for an unlabelled dataset)."""

    model: str
    dataset: str
    layer: int
    layer_name: str
    method: str
    values: np.ndarray
    order: np.ndarray
    sample_ids: tuple[str, ...]
    labels: tuple[str, ...] | None


def compute_rdm_view(request: RdmRequest, view: ViewFeatures) -> RdmView:
    if view.n_samples > MAX_RDM_VIEW:
        raise InputError(f"an RDM view draws at most {MAX_RDM_VIEW} stimuli ({view.n_samples}² cells asked); lower n")
    order = label_order(view.labels, view.n_samples)
    feats = np.asarray(view.layer(request.layer), dtype=np.float64)[order]
    square = square_rdm(compute_rdm(feats, request.method, name=view.model)).astype(np.float32)
    labels = None if view.labels is None else tuple(view.labels[i] for i in order)
    return RdmView(
        request.model,
        request.dataset,
        request.layer,
        view.layer_names[request.layer],
        request.method,
        square,
        order,
        tuple(view.sample_ids[i] for i in order),
        labels,
    )


@dataclass(frozen=True)
class RsaRequest(Request):
    """Every layer of ``model`` against the stored recording ``recording`` of ``dataset``."""

    kind: ClassVar[str] = "rsa"
    result_version: ClassVar[int] = 2  # 2: the best layer's bootstrap support
    model: str
    recording: str
    dataset: str
    n: int
    seed: int = 0
    model_rdm: str = "correlation"
    data_rdm: str = "correlation"
    method: str = "spearman"
    bootstrap: int = 100
    recording_digest: str = ""

    def __post_init__(self) -> None:
        check_choice(self.model_rdm, MODEL_RDM_METHODS, "model RDM method")
        check_choice(self.data_rdm, RDM_METHODS, "data RDM method")
        check_choice(self.method, COMPARE_METHODS, "RDM comparison method")
        if self.bootstrap < 0 or self.bootstrap == 1:
            raise InputError(f"bootstrap must be 0 (no interval) or at least 2 resamples, got {self.bootstrap}")

    def feature_models(self) -> tuple[str, ...]:
        return (self.model,)

    def with_cached_features(self) -> RsaRequest:
        from alignscope.core.recordings import load_recording

        recording = load_recording(self.recording)
        if recording.dataset != self.dataset:
            raise InputError(f"recording {self.recording!r} is of dataset {recording.dataset!r}, not {self.dataset!r}")
        recording.check_dataset_unchanged()
        return dataclasses.replace(self, recording_digest=recording.digest)

    def describe(self) -> str:
        return f"RSA of every layer of {self.model} against {self.recording} ({self.method})"


@dataclass(frozen=True)
class RsaProfile:
    """Attributes: ``scores[l]`` the :class:`BrainScore` of layer l (all share the noise ceiling);
    ``data_rdm_view`` float32 [n_shared, n_shared], the recording's mean RDM over units, rows in
    ``order`` (empty above :data:`MAX_RDM_VIEW` stimuli);
    ``labels`` in that order; ``n_shared`` stimuli the model view and the recording share;
    ``best_support``: the share of bootstrap resamples in which ``best_layer`` scores highest (None without
    them), how surely it is the best rather than a draw of the samples (:func:`best_layer_support`)."""

    model: str
    recording: str
    dataset: str
    layer_names: tuple[str, ...]
    scores: tuple[BrainScore, ...]
    best_layer: int
    n_shared: int
    n_recording: int
    model_rdm: str
    data_rdm: str
    method: str
    data_rdm_view: np.ndarray
    order: np.ndarray
    labels: tuple[str, ...] | None
    best_support: float | None = None

    def overlap_note(self) -> str:
        """Why fewer recorded stimuli were scored than recorded ("" when all were): the model's seeded subset
        of the dataset (``n``) holds only some of them."""
        if self.n_shared >= self.n_recording:
            return ""
        return (
            f"only {self.n_shared} of the {self.n_recording} recorded stimuli are in the model's subset of "
            f"{self.dataset} (n draws from the whole dataset); leave n out (the whole dataset) to score every one"
        )

    def best_words(self) -> str:
        """What the best layer's mark means: its bootstrap support, and whether any layer's interval excludes 0."""
        best = self.scores[self.best_layer]
        words = f"best layer: {self.layer_names[self.best_layer]}"
        if not best.n_boot:
            return words + " (no bootstrap: how surely it is the best is not measured)."
        if self.best_support is None:
            words += " (some layers dropped bootstrap resamples, so the layers' resamples do not line up: how surely it is the best is not measured)"
        else:
            words += f", the best in {self.best_support:.0%} of the {best.n_boot} bootstrap resamples"
        if all(not score.ci_low > 0 for score in self.scores):
            return (
                words
                + f"; every layer's {best.confidence:.0%} interval includes 0: none is shown to relate to the data."
            )
        if not best.ci_low > 0:
            return words + f"; its {best.confidence:.0%} interval includes 0."
        return words + "."


def best_layer_support(scores: Sequence[BrainScore], best: int) -> float | None:
    """Share of the bootstrap resamples in which layer ``best`` scores highest of all. Every layer draws the
    same resamples (one seed, the same stimuli and units), so resample b is one draw of the data for all;
    None without a bootstrap, or where some layer dropped resamples (they no longer line up).

    Example:
        >>> from alignscope.core.brain import BrainScore
        >>> def layer(values):
        ...     return BrainScore(0.0, 0.0, 0.0, 0.0, 0.0, 9, 1, "spearman", n_boot=4, bootstrap_values=np.array(values))
        >>> best_layer_support([layer([0.1, 0.5, 0.2, 0.3]), layer([0.2, 0.1, 0.4, 0.1])], 1)
        0.5
    """
    if any(not score.n_boot or score.n_failed or score.bootstrap_values.size == 0 for score in scores):
        return None
    stacked = np.stack([score.bootstrap_values for score in scores])  # [layers, resamples]
    return float((np.argmax(stacked, axis=0) == best).mean())


for _type in (RdmView, RsaProfile, BrainScore):
    register_result_type(_type)


def compute_rsa(
    request: RsaRequest, view: ViewFeatures, progress: Callable[[int, int], None] | None = None
) -> RsaProfile:
    from alignscope.core.recordings import load_recording

    recording = load_recording(request.recording)
    if recording.digest != request.recording_digest:
        raise InputError(f"recording {request.recording!r} changed while this was computed; run it again")
    if request.data_rdm == "crossnobis" and recording.measurements.ndim == 3 and recording.over == "subjects":
        # it was read as one subject's repeats: the subjects' ceiling gone, without a word
        raise InputError(
            f"crossnobis needs repeated measurements of one subject, but {request.recording!r} is "
            f"[subjects, stimuli, channels] ({recording.describe()}); upload it again with --over repeats if its "
            "first axis is repeats, or as [subjects, repeats, stimuli, channels]"
        )
    # the recording's RDMs over the shared samples are the same for every layer: built once
    shared_data = prepare_shared_data(
        view.sample_ids, recording.measurements, recording.sample_ids, data_rdm=request.data_rdm, over=recording.over
    )
    scores = []
    for layer in range(len(view.values)):
        scores.append(
            score_prepared(
                view.values[layer],
                shared_data,
                model_rdm=request.model_rdm,
                method=request.method,
                over=recording.over,
                n_boot=request.bootstrap,
                seed=request.seed,
            )
        )
        if progress is not None:
            progress(layer + 1, len(view.values))
    shared = shared_data.shared
    mean_rdm = shared_data.rdms.mean(axis=0)
    labels = None if view.labels is None else tuple(view.labels[i] for i in shared.model_index)
    order = label_order(labels, len(shared.ids))
    shown = (
        square_rdm(mean_rdm)[np.ix_(order, order)].astype(np.float32)
        if len(order) <= MAX_RDM_VIEW
        else np.zeros((0, 0), np.float32)
    )
    values = [score.value for score in scores]
    best = int(np.nanargmax(values))
    return RsaProfile(
        request.model,
        request.recording,
        request.dataset,
        view.layer_names,
        tuple(scores),
        best,
        len(shared.ids),
        len(recording.sample_ids),
        request.model_rdm,
        request.data_rdm,
        request.method,
        shown,
        order,
        None if labels is None else tuple(labels[i] for i in order),
        best_layer_support(scores, best),
    )
