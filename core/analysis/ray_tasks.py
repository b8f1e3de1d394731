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

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignscope.core.analysis.requests import Request
from alignscope.core.errors import InputError
from alignscope.core.settings import Settings

MAX_RETRIES = 2  # a task whose worker dies runs again, up to this many times


@dataclass(frozen=True)
class RayOptions:
    """Where the tasks go: ``address`` None starts a local Ray with ``num_cpus`` workers."""

    address: str | None = None
    num_cpus: int | None = None


def _worker_settings(cache_dir: str) -> Settings:
    """This worker's settings for a task of the driver whose cache is ``cache_dir``, with that cache's user
    models and datasets registered. A worker outlives its task and may serve a driver with another cache, so
    the directory comes from the task, not from the worker's environment; the process-wide settings follow
    it, as everything below the task (uploads, trained nets) reads them."""
    from alignscope.core.settings import get_settings
    from alignscope.core.uploads import sync_user_registry

    if get_settings().cache_dir != Path(cache_dir):
        os.environ["ALIGNSCOPE_CACHE_DIR"] = cache_dir
        get_settings.cache_clear()
    settings = get_settings()
    sync_user_registry(settings)
    return settings


def _compute_cell(request: Request, cache_dir: str) -> str | None:
    """Runs in a Ray worker: the cell's result into the store; its key, or None when it was stored."""
    import torch

    from alignscope.core.analysis.engine import Engine

    torch.set_num_threads(1)
    engine = Engine(settings=_worker_settings(cache_dir))
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

    cache = FeatureCache(settings=_worker_settings(cache_dir))
    dataset = load_dataset(job.dataset, n=job.n, seed=job.seed)
    features, result = cache.get_or_extract(
        job.model, dataset, device=job.device, batch_size=job.batch_size, pooling=job.pooling
    )
    return result.key, result.hit, features.n_samples, features.n_layers, result.seconds


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a cluster address nothing answers at (Ray itself retries for minutes, silently): ``host:port``
    or ``ray://host:port``, whose port must accept a connection within ``timeout`` seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address!r}: give local, auto, or a cluster's HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise InputError(
            f"cannot reach a Ray cluster at {address} ({error.strerror or error}): check the head node's address "
            "and port (`ray status` on the head prints them)"
        ) from None


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
    if options.address not in (None, "auto"):
        check_reachable(options.address)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                address=options.address,
                num_cpus=options.num_cpus if options.address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except ConnectionError:  # "auto" with no `ray start` here
            raise InputError(
                "--ray auto found no running Ray cluster on this machine: start one with `ray start --head`, "
                "give the cluster's HOST:PORT, or use --ray local for a Ray instance of this run's own"
            ) from None
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
