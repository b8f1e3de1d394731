"""Work on a Ray cluster: a batch run's cells and feature extractions, one Ray task each, writing into
the same content-addressed stores the local path uses (the result store, the feature cache), so the
driver then reads everything from disk and a rerun finds what the workers finished.

The workers must see the same cache directory as the driver (one machine, or a shared filesystem) and
have Alignscope installed. ``address=None`` starts a local Ray instance with ``num_cpus`` workers; any
other address joins that cluster (``"auto"``: the one ``ray start`` launched here). A cell task uses one
torch thread, so ``num_cpus`` tasks fill ``num_cpus`` cores without oversubscribing them; an extraction
task asks for one GPU when the cluster has GPUs. A task that fails is retried (``max_retries``); what a
killed worker half-wrote is never served (every write is atomic, see :mod:`alignscope.core.files`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignscope.core.analysis.requests import Request
from alignscope.core.errors import InputError

MAX_RETRIES = 2  # a task whose worker dies runs again, up to this many times


@dataclass(frozen=True)
class RayOptions:
    """Where the tasks go: ``address`` None starts a local Ray with ``num_cpus`` workers."""

    address: str | None = None
    num_cpus: int | None = None


def _compute_cell(request: Request, cache_dir: str) -> str | None:
    """Runs in a Ray worker: the cell's result into the store; its key, or None when it was stored."""
    import torch

    from alignscope.core.analysis.engine import Engine
    from alignscope.core.settings import Settings

    torch.set_num_threads(1)
    engine = Engine(settings=Settings(cache_dir=Path(cache_dir)))
    prepared = engine.prepare(request)
    if engine.cached(prepared) is not None:
        return None
    engine.run(request)
    return prepared.key


@dataclass(frozen=True)
class ExtractJob:
    """One (model, dataset) extraction, as ``alignscope extract`` runs it."""

    model: str
    dataset: str
    n: int | None = None
    seed: int = 0
    batch_size: int = 64
    pooling: str | None = None
    device: str | None = None


def _extract(job: ExtractJob, cache_dir: str) -> tuple[str, bool, int, int, float]:
    """Runs in a Ray worker: (cache key, hit, samples, layers, seconds) of one extraction."""
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.settings import Settings

    cache = FeatureCache(settings=Settings(cache_dir=Path(cache_dir)))
    dataset = load_dataset(job.dataset, n=job.n, seed=job.seed)
    features, result = cache.get_or_extract(
        job.model, dataset, device=job.device, batch_size=job.batch_size, pooling=job.pooling
    )
    return result.key, result.hit, features.n_samples, features.n_layers, result.seconds


def run_on_ray(
    function: Callable[..., Any],
    items: Sequence[Any],
    cache_dir: Path,
    options: RayOptions,
    *,
    gpus_if_any: bool = False,
    on_done: Callable[[int, Any], Any] | None = None,
) -> list[Any]:
    """``function(item, cache_dir)`` for every item as Ray tasks; results in item order. ``on_done(i,
    result)`` as each finishes. A task's own error is an InputError naming the item, without Ray's frames."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'alignscope[cluster]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=options.address,
            num_cpus=options.num_cpus if options.address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        gpus = 1 if gpus_if_any and ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES)(function)
        pending = {task.remote(item, str(cache_dir)): index for index, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    results[index] = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    cause = error.cause if isinstance(error.cause, Exception) else error
                    raise InputError(f"task {index + 1} ({items[index]}) failed on Ray: {cause}") from None
                except ray.exceptions.RayError as error:  # the worker died every time (killed, out of memory)
                    raise InputError(
                        f"task {index + 1} ({items[index]}) failed on Ray after {MAX_RETRIES} retries: "
                        f"{type(error).__name__}. Nothing it half-wrote is served; run again to resume."
                    ) from None
                if on_done is not None:
                    on_done(index, results[index])
        return results
    finally:
        if started_here:
            ray.shutdown()


def run_cells_on_ray(
    requests: Sequence[Request], cache_dir: Path, options: RayOptions, on_done: Callable[[int], Any] | None = None
) -> int:
    """Compute ``requests`` as Ray tasks (their features must be cached); how many a worker computed."""
    results = run_on_ray(
        _compute_cell, requests, cache_dir, options, on_done=None if on_done is None else lambda i, _: on_done(i)
    )
    return sum(result is not None for result in results)


def extract_on_ray(
    jobs: Sequence[ExtractJob],
    cache_dir: Path,
    options: RayOptions,
    on_done: Callable[[int, tuple], Any] | None = None,
) -> list[tuple[str, bool, int, int, float]]:
    """Extract ``jobs`` as Ray tasks (one GPU each when the cluster has GPUs) into the feature cache."""
    return run_on_ray(_extract, jobs, cache_dir, options, gpus_if_any=True, on_done=on_done)
