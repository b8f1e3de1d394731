"""A batch run's cells on a Ray cluster: each cell is one Ray task that computes its engine request and
puts the result in the shared result store; the driver then reads every cell from the store.

The workers must see the same cache directory as the driver (one machine, or a shared filesystem) and
have Alignscope installed. ``address=None`` starts a local Ray instance with ``num_cpus`` workers; any
other address joins that cluster (``"auto"``: the one ``ray start`` launched here). Each task uses one
torch thread, so ``num_cpus`` tasks fill ``num_cpus`` cores without oversubscribing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alignscope.core.analysis.requests import Request
from alignscope.core.errors import InputError


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


def run_cells_on_ray(
    requests: Sequence[Request],
    cache_dir: Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    on_done: Callable[[int], Any] | None = None,
) -> int:
    """Compute ``requests`` as Ray tasks (their features must be cached); ``on_done(i)`` after cell i.
    Returns how many cells a worker computed (the others were already stored)."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'alignscope[cluster]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(_compute_cell)
        pending = {task.remote(request, str(cache_dir)): index for index, request in enumerate(requests)}
        computed = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    computed += ray.get(ref) is not None
                except ray.exceptions.RayTaskError as error:  # the cell's own error, not Ray's frames
                    cause = error.cause if isinstance(error.cause, Exception) else error
                    raise InputError(f"cell {index + 1} failed on Ray: {cause}") from None
                if on_done is not None:
                    on_done(index)
        return computed
    finally:
        if started_here:
            ray.shutdown()
