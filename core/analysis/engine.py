"""The engine: a frozen request in, a typed result out — from the result store, or computed as a job.

``Engine.run(request)`` computes in the foreground (the CLI, the Python API, tests) and stores the
result; ``Engine.request(request, start=...)`` looks the result up and, when asked to, starts it as a
background job (the dashboard), answering at once with an :class:`Outcome`. Both go through
:meth:`Engine.prepare`, which normalises the request (``n`` to the dataset's size, ``-1`` to the last
layer), finds the features it reads, and derives its store key from the request and their cache keys.

Data flow: page → Selection → request → engine → result (store) → figure → page.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import alignscope.core.analysis.cost as cost
from alignscope.core.analysis.compatibility import CompatibilityRequest
from alignscope.core.analysis.convergence import FamilyMatrixRequest, UnitMatchingRequest
from alignscope.core.analysis.differences import DifferenceRequest
from alignscope.core.analysis.features import (
    FeaturePlan,
    ViewFeatures,
    effective_n,
    extract_for_plan,
    load_view,
    plan_features,
)
from alignscope.core.analysis.identification import IdentificationRequest
from alignscope.core.analysis.jobs import Job, LocalRunner, Progress, Runner, callback
from alignscope.core.analysis.probes import ProbeRequest
from alignscope.core.analysis.requests import (
    AlignedProjectionRequest,
    ExtractRequest,
    GramRequest,
    MatrixRequest,
    ModelMatrixRequest,
    NeighbourRequest,
    PairRequest,
    ProjectionRequest,
    Request,
    SweepRequest,
    parse_layers,
)
from alignscope.core.analysis.rsa import RdmRequest, RsaRequest
from alignscope.core.analysis.store import ResultStore, result_key
from alignscope.core.analysis.trends import TrendRequest
from alignscope.core.analysis.worker import ProcessWorker, shared_worker
from alignscope.core.cache import FeatureCache
from alignscope.core.errors import AlignscopeError, FeaturesGone, InputError, retryable
from alignscope.core.metrics.registry import get_metric
from alignscope.core.settings import Settings, get_settings

OUTCOME_STATES = ("ready", "queued", "running", "failed", "cancelled", "needs_features", "needs_click")


@dataclass(frozen=True)
class Prepared:
    """A normalised request, the feature plans it reads, and its store key (None until all are cached)."""

    request: Any
    plans: tuple[FeaturePlan, ...]
    key: str | None
    label: str

    @property
    def missing(self) -> tuple[FeaturePlan, ...]:
        return tuple(plan for plan in self.plans if not plan.cached)


@dataclass(frozen=True)
class Outcome:
    """Where a request stands. ``state`` is one of :data:`OUTCOME_STATES`; ``result`` is set when ready,
    ``job`` while queued / running, ``missing`` when features must be extracted first, ``estimate_seconds``
    for what starting it would cost."""

    state: str
    prepared: Prepared
    result: Any = None
    job: Job | None = None
    estimate_seconds: float = 0.0
    error: str | None = None
    retryable: bool = True  # when failed: could running it again end otherwise (errors.retryable)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def key(self) -> str | None:
        return self.prepared.key


@dataclass
class Engine:
    """Requests → results, through the result store and a job runner (see the module docstring)."""

    settings: Settings = field(default_factory=get_settings)
    runner: Runner | None = None
    store: ResultStore | None = None
    cache: FeatureCache | None = None
    umap_warm: bool = False
    worker: ProcessWorker | None = None
    """Where background jobs that hold the GIL (UMAP) run, so they cannot stall the server (None: on
    the runner's threads like every other job)."""

    def __post_init__(self) -> None:
        self.store = self.store or ResultStore(settings=self.settings)
        self.cache = self.cache or FeatureCache(settings=self.settings)
        self._memory: dict[str, Any] = {}
        self._memory_lock = threading.Lock()

    # -- preparation -------------------------------------------------------------------------------

    def prepare(self, request: Request) -> Prepared:
        """Normalise ``request`` and find its features and store key (cheap: sidecar reads only)."""
        models = request.feature_models()
        dataset = request.dataset
        n = effective_n(dataset, request.n)
        request = request.replace(n=n)
        plans = tuple(plan_features(model, dataset, n, request.seed, self.cache) for model in dict.fromkeys(models))
        by_model = {plan.model: plan for plan in plans}
        if all(plan.cached for plan in plans):
            request = _resolve_layers(request, by_model).with_cached_features()
            key = result_key(request.to_json(), [by_model[m].cached_key for m in models])  # type: ignore[misc]
        else:
            key = None
        return Prepared(request, plans, key, describe(request))

    def estimate(self, prepared: Prepared) -> float:
        """CPU-seconds the request would take here (features assumed cached)."""
        return float(_ESTIMATES[type(prepared.request)](self, prepared))

    # -- looking up and starting -------------------------------------------------------------------

    def cached(self, prepared: Prepared) -> Any | None:
        """The stored result, or None (memoised in this process by key)."""
        if prepared.key is None:
            return None
        with self._memory_lock:
            if prepared.key in self._memory:
                return self._memory[prepared.key]
        assert self.store is not None
        result = self.store.get(prepared.key)
        if result is not None:
            with self._memory_lock:
                if len(self._memory) > 256:
                    self._memory.clear()
                self._memory[prepared.key] = result
        return result

    def request(self, request: Request, *, start: bool = False) -> Outcome:
        """Where ``request`` stands, starting it in the background when ``start`` (never blocks on work)."""
        try:
            prepared = self.prepare(request)
        except AlignscopeError as error:
            failed = Prepared(request, (), None, describe(request))
            return Outcome("failed", failed, error=str(error), retryable=retryable(error))
        if prepared.missing:
            estimate = sum(plan.estimate_seconds for plan in prepared.missing)
            return Outcome("needs_features", prepared, estimate_seconds=estimate)
        result = self.cached(prepared)
        if result is not None:
            return Outcome("ready", prepared, result=result)
        runner = self._runner()
        assert prepared.key is not None
        job = runner.get(prepared.key)
        if job is not None and job.state == "done" and job.result is not None:
            return Outcome("ready", prepared, result=job.result, job=job)
        if job is not None and job.state in ("queued", "running"):
            return Outcome(job.state, prepared, job=job, estimate_seconds=job.estimate_seconds)
        estimate = self.estimate(prepared)
        if job is not None and job.state in ("failed", "cancelled") and not start:
            return Outcome(
                job.state, prepared, job=job, estimate_seconds=estimate, error=job.error, retryable=job.retryable
            )
        if not start:
            return Outcome("needs_click", prepared, estimate_seconds=estimate)
        compute = self._compute_in_worker if self.worker is not None and holds_gil(prepared.request) else None
        job = runner.submit(
            prepared.key,
            functools.partial(self._stored_or, compute or self._compute_and_store, prepared),
            label=prepared.label,
            estimate_seconds=estimate,
        )
        return Outcome(job.state, prepared, job=job, estimate_seconds=estimate)

    def run(self, request: Request, progress: Progress | None = None) -> Any:
        """The result, from the store or computed here and now (features must be cached, see :meth:`extract`)."""
        return self.run_prepared(self.prepare(request), progress)

    def run_prepared(self, prepared: Prepared, progress: Progress | None = None) -> Any:
        """:meth:`run` for a request already prepared (a batch run prepares every cell up front)."""
        if prepared.missing:
            names = ", ".join(f"{p.model} on {p.dataset}" for p in prepared.missing)
            raise InputError(f"features of {names} are not cached yet; extract them first")
        result = self.cached(prepared)
        if result is not None:
            return result
        return self._compute_and_store(prepared, progress)

    def run_extracting(
        self,
        request: Request,
        extract: Callable[[FeaturePlan], object],
        progress_for: Callable[[Prepared], Progress | None] = lambda prepared: None,
    ) -> Any:
        """:meth:`run` after ``extract`` has stored every feature the request misses (the foreground's way:
        the CLI, the Python API, batch runs). Features found damaged when read (their checksum fails, or
        the file went meanwhile) were dropped by the cache: they are extracted again, once. ``progress_for``
        gives the progress of the computation once it is prepared (e.g. a bar named by its label)."""
        return self.run_extracting_prepared(request, extract, progress_for)[0]

    def run_extracting_prepared(
        self,
        request: Request,
        extract: Callable[[FeaturePlan], object],
        progress_for: Callable[[Prepared], Progress | None] = lambda prepared: None,
    ) -> tuple[Any, Prepared]:
        """:meth:`run_extracting`'s result and the Prepared it ran (its key and the features it read)."""
        for attempt in (1, 2):
            prepared = self.prepare(request)
            if prepared.missing:  # prepared again once they are cached: the key names the features read
                for plan in prepared.missing:
                    extract(plan)
                prepared = self.prepare(request)
            progress = progress_for(prepared)
            try:
                return self.run_prepared(prepared, progress), prepared
            except FeaturesGone:
                if attempt == 2:
                    raise
            finally:
                if progress is not None:
                    progress.close()
        raise AssertionError("unreachable")

    def extract(
        self, plans: tuple[FeaturePlan, ...], *, start: bool = True, encoders: Callable[[str], Any] | None = None
    ) -> Job:
        """Extract the features of ``plans`` as one background job (one after another, with progress)."""
        key = hashlib.sha256("|".join(sorted(p.full_key + p.subset_key for p in plans)).encode()).hexdigest()[:32]
        total = sum(plan.extract_n for plan in plans) or 1

        def work(progress: Progress) -> tuple[str, ...]:
            keys, done = [], 0
            for plan in plans:
                progress.stage(f"{plan.model} on {plan.dataset}: {plan.extract_n} samples", plan.extract_n / total)
                encoder = encoders(plan.model) if encoders is not None else None
                keys.append(extract_for_plan(plan, progress=progress.update, encoder=encoder, cache=self.cache))
                done += plan.extract_n
            return tuple(keys)

        label = "features of " + ", ".join(f"{p.model} on {p.dataset}" for p in plans)
        estimate = sum(plan.estimate_seconds for plan in plans)
        return self._runner().submit(key, work, label=label, estimate_seconds=estimate)

    def _runner(self) -> Runner:
        if self.runner is None:
            self.runner = LocalRunner(workers=self.settings.workers)
        return self.runner

    # -- computing ---------------------------------------------------------------------------------

    def views(self, prepared: Prepared) -> dict[str, ViewFeatures]:
        return {plan.model: load_view(plan, self.cache) for plan in prepared.plans}

    def _stored_or(
        self, compute: Callable[[Prepared, Progress | None], Any], prepared: Prepared, progress: Progress | None = None
    ) -> Any:
        """A job as it starts: the result another job stored while it queued (the layer matrix a best-pair
        search computed for itself), else ``compute``."""
        result = self.cached(prepared)
        return result if result is not None else compute(prepared, progress)

    def _compute_and_store(self, prepared: Prepared, progress: Progress | None = None) -> Any:
        started = time.perf_counter()
        result = _COMPUTE[type(prepared.request)](self, prepared, progress)
        assert self.store is not None and prepared.key is not None
        feature_keys = [plan.cached_key or "" for plan in prepared.plans]
        self.store.put(
            prepared.key,
            prepared.request.to_json(),
            feature_keys,
            result,  # type: ignore[arg-type]
            kind=prepared.request.kind,
            label=prepared.label,
            seconds=time.perf_counter() - started,
        )
        with self._memory_lock:
            self._memory[prepared.key] = result
        return result

    def _compute_in_worker(self, prepared: Prepared, progress: Progress | None = None) -> Any:
        """:meth:`_compute_and_store` in the worker process; the result is read back from the store."""
        assert self.worker is not None and self.store is not None and prepared.key is not None
        self.worker.call(compute_stored, (self.settings, prepared), progress, prepared.label)
        result = self.cached(prepared)
        if result is None:
            raise AlignscopeError(f"{prepared.label}: the worker process ended without storing a result")
        return result

    def sub_result(self, request: Request, progress: Progress | None = None) -> Any:
        """A part of a larger job (a layer matrix of a model matrix or of a best-pair search), from the
        store or computed now (and stored, so the next job that needs it reads it)."""
        return self.run(request, progress)


def compute_stored(settings: Settings, prepared: Prepared, progress: Progress | None) -> None:
    """Compute ``prepared`` into the result store of ``settings`` (what the worker process runs)."""
    Engine(settings=settings).run_prepared(prepared, progress)


def holds_gil(request: Request) -> bool:
    """Whether computing ``request`` holds the GIL for long stretches: UMAP (numba's compiled code and
    its compiler), which the dashboard therefore runs in its worker process."""
    return isinstance(request, AlignedProjectionRequest) or (
        isinstance(request, ProjectionRequest) and request.method == "umap"
    )


def _resolve_layers(request: Any, plans: dict[str, FeaturePlan]) -> Any:
    """-1 (last) and other negative layer indices become the actual indices; out of range is an error."""
    changes: dict[str, Any] = {}
    for field_name, model_field in (("layer", "model"), ("layer_a", "model_a"), ("layer_b", "model_b")):
        if hasattr(request, field_name):
            plan = plans[getattr(request, model_field)]
            changes[field_name] = plan.resolve_layer(getattr(request, field_name))
    if isinstance(request, PairRequest):
        pair = parse_layers(request.layers)
        if pair is not None:
            i = plans[request.model_a].resolve_layer(pair[0])
            j = plans[request.model_b].resolve_layer(pair[1])
            changes["layers"] = f"{i},{j}"
    return dataclasses.replace(request, **changes) if changes else request


def describe(request: Any) -> str:
    """One line for people: what the request computes (a request may say it itself: ``describe()``)."""
    if isinstance(request, Request) and request.describe():
        return request.describe()
    if isinstance(request, PairRequest):
        where = "best layer pair" if request.layers == "all" else f"layers {request.layers}"
        stats = [f"{request.permutations} permutations"] * bool(request.permutations) + [
            f"{request.bootstrap} bootstrap resamples"
        ] * bool(request.bootstrap)
        return f"{request.metric}, {request.model_a} vs {request.model_b}, {where}" + (
            f" ({', '.join(stats)})" if stats else ""
        )
    if isinstance(request, MatrixRequest):
        return f"{request.metric} for every layer pair of {request.model_a} and {request.model_b}"
    if isinstance(request, SweepRequest):
        return f"{request.metric} against {request.sweep}, {request.model_a} vs {request.model_b}"
    if isinstance(request, ModelMatrixRequest):
        return f"{request.metric} between {len(request.models)} models"
    if isinstance(request, GramRequest):
        return f"GRAM volume of {len(request.models)} models"
    if isinstance(request, ProjectionRequest):
        return f"{request.method.upper()} of {request.model}"
    if isinstance(request, AlignedProjectionRequest):
        return f"aligned UMAP of {request.model_a} and {request.model_b}"
    if isinstance(request, NeighbourRequest):
        return f"k-NN overlap (k={request.k}) of {request.model_a} and {request.model_b}"
    if isinstance(request, ExtractRequest):
        return f"features of {request.model} on {request.dataset}"
    if isinstance(request, TrendRequest):
        return f"{request.metric} of {len(request.models)} models against {request.property}"
    if isinstance(request, ProbeRequest):
        return f"linear probe of every layer of {request.model} on {request.dataset}'s labels"
    if isinstance(request, DifferenceRequest):
        return f"{request.metric}: {request.model_a} vs {request.model_b}, each against {request.reference}"
    return type(request).__name__


# --------------------------------------------------------------------------------------------------
# Dispatch: request type -> compute, estimate
# --------------------------------------------------------------------------------------------------


def _pair_views(engine: Engine, prepared: Prepared) -> tuple[ViewFeatures, ViewFeatures]:
    views = engine.views(prepared)
    request = prepared.request
    return views[request.model_a], views[request.model_b]


def _compute_pair(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.scorer import score_pair

    def stored_matrix(request: MatrixRequest, _: object) -> Any:  # its progress fills the stage set for it
        return engine.sub_result(request, progress)

    return score_pair(prepared.request, *_pair_views(engine, prepared), progress=progress, matrix_of=stored_matrix)


def _compute_matrix(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.scorer import layer_matrix_of

    return layer_matrix_of(prepared.request, *_pair_views(engine, prepared), progress=callback(progress))


def _compute_sweep(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.sweeps import run_sweep

    return run_sweep(
        prepared.request, *_pair_views(engine, prepared), progress=callback(progress), matrix_of=engine.sub_result
    )


def _compute_model_matrix(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.families import model_matrix

    views = engine.views(prepared)
    request = prepared.request
    return model_matrix(request, [views[m] for m in request.models], engine.sub_result, progress=callback(progress))


def _compute_gram(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.families import gram_volume_of

    views = engine.views(prepared)
    return gram_volume_of(prepared.request, [views[m] for m in prepared.request.models], progress=callback(progress))


def _compute_projection(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.maps import project

    request = prepared.request
    result = project(request, engine.views(prepared)[request.model], progress=callback(progress))
    if request.method == "umap":
        engine.umap_warm = True
    return result


def _compute_aligned(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.maps import project_aligned

    result = project_aligned(prepared.request, *_pair_views(engine, prepared), progress=callback(progress))
    engine.umap_warm = True
    return result


def _compute_neighbours(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.maps import neighbour_overlap

    return neighbour_overlap(prepared.request, *_pair_views(engine, prepared), progress=callback(progress))


def _compute_trend(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.trends import compute_trend

    return compute_trend(prepared.request, engine.views(prepared), engine.sub_result, progress=callback(progress))


def _compute_difference(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.differences import compute_difference

    return compute_difference(prepared.request, engine.views(prepared), engine.sub_result)


def _compute_probes(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.probes import compute_probes

    request = prepared.request
    result = compute_probes(request, engine.views(prepared)[request.model], progress=callback(progress))
    result.keep(engine.settings)
    return result


def _compute_identification(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.identification import compute_identification

    counts = {plan.model: len(plan.layer_names) for plan in prepared.plans}
    return compute_identification(prepared.request, counts, engine.sub_result, progress=callback(progress))


def _compute_unit_matching(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.convergence import compute_unit_matching

    return compute_unit_matching(prepared.request, engine.views(prepared))


def _compute_family_matrix(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.convergence import compute_family_matrix

    return compute_family_matrix(prepared.request, engine.views(prepared), engine.sub_result, callback(progress))


def _compute_compatibility(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.compatibility import compute_compatibility

    return compute_compatibility(prepared.request, engine.views(prepared))


def _compute_rdm(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.rsa import compute_rdm_view

    return compute_rdm_view(prepared.request, engine.views(prepared)[prepared.request.model])


def _compute_rsa(engine: Engine, prepared: Prepared, progress: Progress | None) -> Any:
    from alignscope.core.analysis.rsa import compute_rsa

    return compute_rsa(prepared.request, engine.views(prepared)[prepared.request.model], callback(progress))


_COMPUTE: dict[type, Callable[[Engine, Prepared, Progress | None], Any]] = {
    PairRequest: _compute_pair,
    MatrixRequest: _compute_matrix,
    SweepRequest: _compute_sweep,
    ModelMatrixRequest: _compute_model_matrix,
    GramRequest: _compute_gram,
    ProjectionRequest: _compute_projection,
    AlignedProjectionRequest: _compute_aligned,
    NeighbourRequest: _compute_neighbours,
    TrendRequest: _compute_trend,
    DifferenceRequest: _compute_difference,
    ProbeRequest: _compute_probes,
    IdentificationRequest: _compute_identification,
    UnitMatchingRequest: _compute_unit_matching,
    FamilyMatrixRequest: _compute_family_matrix,
    CompatibilityRequest: _compute_compatibility,
    RdmRequest: _compute_rdm,
    RsaRequest: _compute_rsa,
}


def _dims(prepared: Prepared, model: str, layer: int | None = None) -> tuple[int, ...]:
    plan = next(p for p in prepared.plans if p.model == model)
    dims = plan.dims or (1024,)
    return dims if layer is None else (dims[layer if 0 <= layer < len(dims) else -1],)


def _estimate_pair(engine: Engine, prepared: Prepared) -> float:
    request: PairRequest = prepared.request
    pair = parse_layers(request.layers)
    dims_a, dims_b = _dims(prepared, request.model_a), _dims(prepared, request.model_b)
    search, permutations = pair is None, request.permutations
    if pair is not None:
        dims_a, dims_b = (dims_a[pair[0]],), (dims_b[pair[1]],)
    else:
        searched = _stored(engine, request.matrix_request())
        if searched is not None:  # the search is done: what is left is the best pair's chance and interval
            i, j = searched.best_index
            dims_a, dims_b, search, permutations = (dims_a[i],), (dims_b[j],), False, 0
    return cost.pair_seconds(
        request.metric,
        request.n,
        dims_a,
        dims_b,
        dict(request.params),
        search=search,
        permutations=permutations,
        bootstrap=request.bootstrap,
    )


def _stored(engine: Engine, request: Request) -> Any | None:
    """``request``'s stored result (a part a larger job will read instead of computing), or None."""
    try:
        return engine.cached(engine.prepare(request))
    except AlignscopeError:
        return None


def _estimate_matrix(engine: Engine, prepared: Prepared) -> float:
    request: MatrixRequest = prepared.request
    return cost.matrix_seconds(
        request.metric,
        request.n,
        _dims(prepared, request.model_a),
        _dims(prepared, request.model_b),
        dict(request.params),
        request.permutations,
    )


def _estimate_sweep(engine: Engine, prepared: Prepared) -> float:
    request: SweepRequest = prepared.request
    d_a = _dims(prepared, request.model_a, request.layer_a)[0]
    d_b = _dims(prepared, request.model_b, request.layer_b)[0]
    params = dict(request.params)
    if request.sweep == "k" and "k" in params:
        from alignscope.core.analysis.sweeps import default_ks

        points = [{**params, "k": k} for k in default_ks(request.metric, request.n)]
    else:
        count = len(_dims(prepared, request.model_a)) if request.sweep == "depth" else 10
        points = [params] * count
    total = cost.REQUEST_OVERHEAD_SECONDS + sum(
        cost.metric_seconds(request.metric, request.n, d_a, d_b, point)
        + cost.chance_seconds(request.metric, request.n, d_a, d_b, point, cost.CHANCE_SHUFFLES)
        for point in points
    )
    if request.sweep == "depth" and _stored(engine, request.matrix_request()) is None:
        total += cost.matrix_seconds(
            request.metric, request.n, _dims(prepared, request.model_a), _dims(prepared, request.model_b), params, 0
        )
    return total


def _estimate_identification(engine: Engine, prepared: Prepared) -> float:
    request: IdentificationRequest = prepared.request
    return sum(
        cost.matrix_seconds(metric, request.n, _dims(prepared, a), _dims(prepared, b), dict(params), 0)
        for _, metric, params in request.metrics
        for a in request.models
        for b in request.models
        if a != b
    )


def _estimate_unit_matching(engine: Engine, prepared: Prepared) -> float:
    """One unit correlation [d, d] per pair and net, and one Hungarian matching (d³) per unordered pair."""
    from alignscope.core.unit_activations import MAX_POSITIONS

    request: UnitMatchingRequest = prepared.request
    d = max(_dims(prepared, m, request.layer_index)[0] for m in request.models)
    nets = len(request.models)
    rows = request.n * (MAX_POSITIONS if request.positions else 1)
    flops = (nets * nets) * (2.0 * rows * d * d) + nets * (nets - 1) / 2 * 50.0 * d**3
    if request.reads_the_model:  # each net runs over the samples again (digits CNNs: ~0.1 ms per sample)
        return 2.0 * cost.REQUEST_OVERHEAD_SECONDS * nets + 1e-4 * request.n * nets + cost.seconds(flops)
    return cost.REQUEST_OVERHEAD_SECONDS + cost.seconds(flops)


def _estimate_family_matrix(engine: Engine, prepared: Prepared) -> float:
    request: FamilyMatrixRequest = prepared.request
    params = dict(request.params)
    return sum(
        cost.matrix_seconds(
            request.metric, request.n, _dims(prepared, p.model_a), _dims(prepared, p.model_b), params, 0
        )
        for p in request.pair_requests()
    )


def _estimate_compatibility(engine: Engine, prepared: Prepared) -> float:
    """Three rankings of the gallery for every query (n_q × n_g × d each, plus the sort) and the bootstrap."""
    request: CompatibilityRequest = prepared.request
    d = max(
        _dims(prepared, request.old_model, request.layer_old)[0],
        _dims(prepared, request.new_model, request.layer_new)[0],
    )
    n_q = request.query_fraction * request.n
    n_g = request.n - n_q
    flops = 3 * (2.0 * n_q * n_g * d + 30.0 * n_q * n_g) + request.bootstrap * 3 * n_q * 4
    return cost.REQUEST_OVERHEAD_SECONDS + cost.seconds(flops)


def _estimate_rsa(engine: Engine, prepared: Prepared) -> float:
    """Per layer: the model RDM (n² d) and, per bootstrap resample, the resampled RDMs ranked and compared."""
    from alignscope.core.recordings import recording_size

    request: RsaRequest = prepared.request
    n, dims = min(request.n, recording_size(request.recording) or request.n), _dims(prepared, request.model)
    per_layer = [
        2.0 * n * n * d + request.bootstrap * 80.0 * n * n for d in dims
    ]  # measured: ~3 s at n=200, 5 layers, 50 resamples
    return cost.REQUEST_OVERHEAD_SECONDS + cost.seconds(sum(per_layer), len(dims) * request.bootstrap)


def _estimate_model_matrix(engine: Engine, prepared: Prepared) -> float:
    request: ModelMatrixRequest = prepared.request
    params = dict(request.params)
    symmetric = get_metric(request.metric).symmetric_for(params)
    total = 0.0
    for i, model_i in enumerate(request.models):
        for j, model_j in enumerate(request.models):
            if j < i and symmetric:  # mirrored from (j, i)
                continue
            if request.relative_depth is None:
                if _stored(engine, request.matrix_request(model_i, model_j)) is not None:
                    continue
                total += cost.matrix_seconds(
                    request.metric, request.n, _dims(prepared, model_i), _dims(prepared, model_j), params, 0
                )
            else:
                total += cost.metric_seconds(
                    request.metric, request.n, max(_dims(prepared, model_i)), max(_dims(prepared, model_j)), params
                )
    return total


def _estimate_gram(engine: Engine, prepared: Prepared) -> float:
    request: GramRequest = prepared.request
    width = max(max(_dims(prepared, m)) for m in request.models)
    return cost.seconds(30.0 * request.n * width * len(request.models) ** 2, 21)


def _estimate_projection(engine: Engine, prepared: Prepared) -> float:
    request: ProjectionRequest = prepared.request
    d = _dims(prepared, request.model, request.layer)[0]
    if request.method == "pca":
        return cost.seconds(2.0 * request.n * d * min(request.n, d) + 10.0 * min(request.n, d) ** 3)
    return cost.umap_seconds(request.n, d, _umap_warm(engine))


def _umap_warm(engine: Engine) -> bool:
    """Whether a UMAP job would find umap compiled (or compiling already: its cost is being paid)."""
    return engine.umap_warm or (engine.worker is not None and engine.worker.state != "cold")


def _estimate_aligned(engine: Engine, prepared: Prepared) -> float:
    request: AlignedProjectionRequest = prepared.request
    d = max(_dims(prepared, request.model_a, request.layer_a)[0], _dims(prepared, request.model_b, request.layer_b)[0])
    return 2.5 * cost.umap_seconds(request.n, d, _umap_warm(engine))


def _estimate_neighbours(engine: Engine, prepared: Prepared) -> float:
    request: NeighbourRequest = prepared.request
    d = _dims(prepared, request.model_a, request.layer_a)[0] + _dims(prepared, request.model_b, request.layer_b)[0]
    return cost.seconds(2.0 * request.n * request.n * d + 8.0 * request.n * request.n)


def _estimate_trend(engine: Engine, prepared: Prepared) -> float:
    request = prepared.request
    params = dict(request.params)
    symmetric = get_metric(request.metric).symmetric_for(params)
    total = cost.REQUEST_OVERHEAD_SECONDS
    pair_dims, seen = [], set()
    for model in request.models:
        for reference in request.references_of(model):
            dims_a, dims_b = _dims(prepared, model), _dims(prepared, reference)
            pair_dims.append((max(dims_a), max(dims_b)))
            if request.relative_depth is None and not (symmetric and (reference, model) in seen):
                total += cost.matrix_seconds(request.metric, request.n, dims_a, dims_b, params, 0)
            seen.add((model, reference))
    state_dims = [max(_dims(prepared, model)) for model in request.feature_models()]
    return total + request.bootstrap * cost.shared_resample_seconds(
        request.metric, request.n, state_dims, pair_dims, params
    )


def _estimate_difference(engine: Engine, prepared: Prepared) -> float:
    """The layer search of each pair (when ``best``), then every resample scores both pairs on the same
    rows, the reference's state shared by the two (the widest layers stand for the ones picked)."""
    request: DifferenceRequest = prepared.request
    params = dict(request.params)
    total = cost.REQUEST_OVERHEAD_SECONDS
    dims_x = _dims(prepared, request.reference)
    dims_a, dims_b = _dims(prepared, request.model_a), _dims(prepared, request.model_b)
    if request.layers == "best":
        for dims in (dims_a, dims_b):
            total += cost.matrix_seconds(request.metric, request.n, dims, dims_x, params, 0)
    d_a, d_b, d_x = max(dims_a), max(dims_b), max(dims_x)
    per_resample = cost.shared_resample_seconds(
        request.metric, request.n, (d_a, d_b, d_x), ((d_a, d_x), (d_b, d_x)), params
    )
    return total + (1 + request.bootstrap) * per_resample


_ESTIMATES: dict[type, Callable[[Engine, Prepared], float]] = {
    PairRequest: _estimate_pair,
    MatrixRequest: _estimate_matrix,
    SweepRequest: _estimate_sweep,
    ModelMatrixRequest: _estimate_model_matrix,
    GramRequest: _estimate_gram,
    ProjectionRequest: _estimate_projection,
    AlignedProjectionRequest: _estimate_aligned,
    NeighbourRequest: _estimate_neighbours,
    TrendRequest: _estimate_trend,
    DifferenceRequest: _estimate_difference,
    ProbeRequest: lambda engine, prepared: cost.probe_seconds(
        prepared.request.n, _dims(prepared, prepared.request.model)
    ),
    IdentificationRequest: _estimate_identification,
    UnitMatchingRequest: _estimate_unit_matching,
    FamilyMatrixRequest: _estimate_family_matrix,
    CompatibilityRequest: _estimate_compatibility,
    RdmRequest: lambda engine, prepared: (
        cost.REQUEST_OVERHEAD_SECONDS
        + cost.seconds(3.0 * prepared.request.n**2 * _dims(prepared, prepared.request.model, prepared.request.layer)[0])
    ),
    RsaRequest: _estimate_rsa,
}


@functools.lru_cache(maxsize=4)
def _default_engine(cache_dir: str) -> Engine:
    return Engine(worker=shared_worker())


def default_engine() -> Engine:
    """The process-wide engine for the current cache dir (shared by every browser session)."""
    return _default_engine(str(get_settings().cache_dir))


def prefetch_default(engine: Engine | None = None) -> Job | None:
    """Extract, as one background job, every feature of the embedded default not cached yet (the
    quick start's server starts it, so the first screen does not wait for all of it). None if complete."""
    from alignscope.core.defaults import DEFAULT_JOBS

    engine = engine or default_engine()
    plans = []
    for model, dataset in DEFAULT_JOBS:
        plan = plan_features(model, dataset, 10**9, 0, engine.cache)
        if not plan.cached:
            plans.append(plan)
    return engine.extract(tuple(plans)) if plans else None
