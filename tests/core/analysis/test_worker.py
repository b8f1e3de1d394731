"""The worker process for GIL-bound jobs (UMAP): the dashboard's process never runs umap itself, the maps
are the ones computed in the foreground, and a cancelled job or a killed worker leaves a usable engine
and nothing half-stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from alignscope.core.analysis.engine import holds_gil
from alignscope.core.analysis.requests import AlignedProjectionRequest, ProjectionRequest

UMAP = ProjectionRequest("digits-cnn-s0", "digits", 60, seed=3, method="umap")

# run as a script file, as Streamlit runs the app script: spawning must not run its top level again
_SERVER_LIKE = """
import json, os, sys
with open(os.environ["RAN_TOP_LEVEL"], "a") as log:
    log.write(f"{os.getpid()}\\n")
if __name__ == "__main__":
    from alignscope.core.analysis.engine import default_engine
    from alignscope.core.analysis.requests import ProjectionRequest
    engine = default_engine()
    outcome = engine.request(ProjectionRequest("digits-cnn-s0", "digits", 60, seed=3, method="umap"), start=True)
    outcome.job.wait(600)
    print(json.dumps({
        "state": outcome.job.state,
        "error": outcome.job.error,
        "coords": None if outcome.job.result is None else outcome.job.result.coords.tolist(),
        "umap_here": "umap" in sys.modules,
        "numba_here": "numba" in sys.modules,
        "worker_pid": engine.worker.pid,
    }))
"""


def test_only_umap_requests_hold_the_gil():
    assert holds_gil(UMAP)
    assert holds_gil(AlignedProjectionRequest("digits-cnn-s0", "digits-cnn-s1", "digits", 60))
    assert not holds_gil(UMAP.replace(method="pca"))


@pytest.mark.slow
def test_the_dashboards_engine_computes_umap_in_its_worker_and_never_imports_umap(engine, tmp_path):
    """A process like the dashboard's server (the default engine, a background job) gets the same map as
    the foreground computation, while umap and numba are never imported into it, and the worker does not
    run the server's main script."""
    script, ran = tmp_path / "server_like.py", tmp_path / "ran.txt"
    script.write_text(_SERVER_LIKE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "RAN_TOP_LEVEL": str(ran)}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900, check=True
    )
    reported = json.loads(done.stdout.strip().splitlines()[-1])
    assert reported["state"] == "done", reported["error"]
    assert reported["umap_here"] is False and reported["numba_here"] is False
    assert reported["worker_pid"] not in (None, os.getpid())
    assert len(ran.read_text().split()) == 1  # the script's top level ran once: in the server, not the worker
    assert np.asarray(reported["coords"]).shape == (60, 2)
    np.testing.assert_allclose(np.asarray(reported["coords"]), _in_this_process(engine, UMAP), atol=1e-4)
    np.testing.assert_array_equal(engine.run(UMAP).coords, np.asarray(reported["coords"]))  # stored, not redone


def _in_this_process(engine, request):
    """The map computed here and now by the function the worker calls (not read from the store)."""
    from alignscope.core.analysis.maps import project

    prepared = engine.prepare(request)
    return project(prepared.request, engine.views(prepared)[request.model]).coords


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def worker(engine):
    """A worker process of the test's own, for ``engine`` (stopped after the test)."""
    from alignscope.core.analysis.worker import ProcessWorker

    engine.worker = ProcessWorker()
    yield engine.worker
    engine.worker.stop()


@pytest.mark.slow
def test_a_killed_worker_fails_its_job_stores_nothing_and_the_next_job_gets_a_new_worker(engine, worker):
    request = ProjectionRequest("digits-cnn-s1", "digits", 1797, seed=5, method="umap")
    outcome = engine.request(request, start=True)
    job = outcome.job
    assert _wait_for(lambda: worker.pid is not None, 60)
    first_pid = worker.pid
    os.kill(first_pid, signal.SIGKILL)
    assert job.wait(120)
    assert job.state == "failed"
    assert "worker process stopped" in job.error and "exit code -9" in job.error
    assert engine.store.get(outcome.prepared.key) is None

    retried = engine.request(request, start=True)
    assert retried.job is not job and retried.job.wait(600)
    assert retried.job.state == "done", retried.job.error
    assert worker.pid != first_pid and worker.state == "warm"
    assert retried.job.result.coords.shape == (1797, 2)
    assert np.isfinite(retried.job.result.coords).all()


@pytest.mark.slow
def test_a_cancelled_job_stops_in_the_worker_which_then_serves_the_next_job(engine, worker):
    long_job = ProjectionRequest("digits-cnn-s2", "digits", 1797, seed=6, method="umap")
    outcome = engine.request(long_job, start=True)
    job = outcome.job
    # cancelled once it reports epochs from the worker (after the warm-up and the neighbour graph)
    assert _wait_for(lambda: job.progress.fraction > 0.0 or job.done, 600), "no progress from the worker"
    job.cancel()
    assert job.wait(120)
    assert job.state == "cancelled"
    assert engine.store.get(outcome.prepared.key) is None
    pid = worker.pid

    short = engine.request(UMAP, start=True)
    assert short.job.wait(300) and short.job.state == "done", short.job.error
    assert worker.pid == pid  # the same worker, still warm
    np.testing.assert_allclose(short.job.result.coords, _in_this_process(engine, UMAP), atol=1e-4)


@pytest.mark.slow
def test_an_error_of_the_input_in_the_worker_keeps_its_type_and_is_not_offered_again(engine, worker):
    """The worker sent back only the message: every failure there became a plain AlignscopeError, which
    the dashboard offers to try again, though the same request fails the same way."""
    request = UMAP.replace(n_neighbors=1)  # refused by UMAP's own check, in the worker
    outcome = engine.request(request, start=True)
    assert outcome.job.wait(300) and outcome.job.state == "failed"
    assert "n_neighbors must be at least 2" in outcome.job.error and not outcome.job.retryable
    assert engine.store.get(outcome.prepared.key) is None and worker.state == "warm"


@pytest.mark.slow
def test_a_job_waiting_for_the_busy_worker_can_be_cancelled_before_its_turn(engine, worker):
    from alignscope.core.analysis.engine import Engine

    running = engine.request(ProjectionRequest("digits-cnn-s0", "digits", 1797, seed=7, method="umap"), start=True)
    assert _wait_for(lambda: running.job.progress.fraction > 0.0 or running.job.done, 600)
    waiting = Engine(worker=worker).request(UMAP.replace(seed=8), start=True)  # another engine, same worker
    waiting.job.cancel()
    assert waiting.job.wait(60) and waiting.job.state == "cancelled"
    assert not running.job.done  # it ended while the other still held the worker, not after its turn
    assert running.job.wait(600) and running.job.state == "done", running.job.error


def test_a_umap_computed_in_this_process_counts_as_warm_even_before_the_worker_starts():
    from alignscope.core.analysis.engine import Engine, _umap_warm
    from alignscope.core.analysis.worker import ProcessWorker

    assert not _umap_warm(Engine(worker=ProcessWorker()))  # not started: the first job pays the compile
    assert _umap_warm(Engine(worker=ProcessWorker(), umap_warm=True))  # compiled here already (CLI, API)
    assert _umap_warm(Engine(umap_warm=True)) and not _umap_warm(Engine())


def _ignores_its_cancel(marker: str, progress) -> None:
    """A job with no progress step to stop at (like umap's AlignedUMAP fit): it never looks at ``progress``."""
    Path(marker).write_text("started")
    time.sleep(600)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_a_job_that_ignores_its_cancel_is_killed_with_its_worker_and_a_new_worker_starts(worker, tmp_path):
    from alignscope.core.analysis.jobs import JobCancelled, Progress

    worker.cancel_grace = 0.5
    marker, progress, outcome = tmp_path / "started", Progress(), []

    def run() -> None:
        try:
            worker.call(_ignores_its_cancel, (str(marker),), progress, "a test job")
            outcome.append("returned")
        except JobCancelled:
            outcome.append("cancelled")

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    assert _wait_for(marker.exists, 600), "the worker never started the job"
    first = worker.pid
    progress.cancel()
    caller.join(120)  # the job itself would run for 600 s
    assert not caller.is_alive() and outcome == ["cancelled"]
    assert not _alive(first)
    assert worker.pid not in (None, first)  # a fresh worker is already warming up for the next job
