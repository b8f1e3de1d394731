"""Jobs: work that runs in the background with progress, an ETA and cancel, behind a small interface.

A :class:`Runner` takes a unit of work — ``work(progress) -> result`` — under a key (the result's
store key) and returns a :class:`Job`. Submitting a key that is already queued or running returns the
same job, so two browser tabs asking for one result share one computation. The work reports progress
through :class:`Progress`; a cancelled job stops at its next report (:class:`JobCancelled`).

:class:`LocalRunner` runs jobs on worker threads in this process (one by default: on a small machine,
two heavy jobs at once only thrash). A cluster runner implements the same three methods. The CLI does
not use a runner: it computes in the foreground (:meth:`alignscope.core.analysis.engine.Engine.run`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from alignscope.core.devices import default_threads
from alignscope.core.errors import AlignscopeError, retryable

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


class JobCancelled(AlignscopeError):
    """Raised inside a job's work when it was cancelled; the job ends as ``cancelled``."""


class Progress:
    """Progress of one job: ``update(done, total)`` from the work; fraction and ETA for viewers.

    ``update`` raises :class:`JobCancelled` once the job has been cancelled, so work stops at the next
    report. Stages may be weighted: ``stage(name, weight)`` starts a stage that takes ``weight`` of the
    whole (the fractions of all stages add up to 1).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self.started = time.monotonic()
        self.fraction = 0.0
        self.message = ""
        self._stage_start = 0.0
        self._stage_weight = 1.0

    def stage(self, message: str, weight: float) -> None:
        """Begin a stage worth ``weight`` (0..1) of the job; later updates fill that share."""
        with self._lock:
            self._stage_start = min(1.0, self.fraction)
            self._stage_weight = max(0.0, min(weight, 1.0 - self._stage_start))
            self.message = message
        self.check()

    def update(self, done: float, total: float, message: str | None = None) -> None:
        with self._lock:
            share = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
            self.fraction = max(self.fraction, self._stage_start + self._stage_weight * share)
            if message is not None:
                self.message = message
        self.check()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise JobCancelled("cancelled")

    def cancel(self) -> None:
        self._cancelled.set()

    def close(self) -> None:
        """Release what shows this progress (a terminal bar in the CLI); nothing here."""

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def eta_seconds(self) -> float | None:
        """Seconds left, extrapolated from the time so far (None before there is anything to go on)."""
        elapsed = time.monotonic() - self.started
        if self.fraction <= 0.02 or elapsed < 0.5:
            return None
        return elapsed * (1.0 - self.fraction) / self.fraction


def callback(progress: Progress | None) -> Callable[[int, int], None] | None:
    """``progress.update`` as a plain ``(done, total)`` callback (None stays None)."""
    return None if progress is None else progress.update


@dataclass
class Job:
    """One unit of background work and its outcome.

    Attributes:
        key: the result's store key (also the job's identity).
        label: what it computes, for people ("mutual_knn permutation test, 200 shuffles").
        estimate_seconds: the cost estimate it was started with.
        state: one of :data:`JOB_STATES`.
        error: the message of the error that ended it (state ``failed``); ``retryable`` False when that
            error was the input's (``errors.retryable``): the same request fails again.
        cpu_seconds: CPU time the process spent while the job ran, all threads (BLAS and torch work on
            threads of their own); an upper bound on the job's own when other work overlaps.
    """

    key: str
    label: str
    estimate_seconds: float
    progress: Progress
    state: str = "queued"
    error: str | None = None
    retryable: bool = True
    result: Any = None
    submitted: float = 0.0
    finished: float | None = None
    cpu_seconds: float = 0.0
    _future: Future | None = None

    def cancel(self) -> None:
        self.progress.cancel()
        if self._future is not None and self._future.cancel():
            self.state = "cancelled"
            self.finished = time.monotonic()

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds; True when the job has ended (any final state)."""
        if self._future is None:
            return self.done
        try:
            self._future.result(timeout=timeout)
        except Exception:  # noqa: BLE001 - the outcome is recorded on the job itself
            pass
        return self.done

    @property
    def done(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        return 1.0 if self.state == "done" else self.progress.fraction


class Runner(Protocol):
    """Where jobs run: this process (:class:`LocalRunner`) or a cluster."""

    def submit(self, key: str, work: Callable[[Progress], Any], *, label: str, estimate_seconds: float) -> Job: ...

    def get(self, key: str) -> Job | None: ...

    def jobs(self) -> list[Job]: ...


class LocalRunner:
    """Jobs on ``workers`` threads of this process; finished jobs are kept (for their outcome) up to
    ``keep_finished`` of them."""

    def __init__(self, workers: int = 1, keep_finished: int = 200) -> None:
        # each job thread starts on the process's torch thread count (see core.devices.PROCESS_THREADS)
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="alignscope-job", initializer=default_threads
        )
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep_finished = keep_finished

    def submit(self, key: str, work: Callable[[Progress], Any], *, label: str, estimate_seconds: float) -> Job:
        with self._lock:
            existing = self._jobs.get(key)
            if existing is not None and existing.state in ("queued", "running"):
                return existing
            job = Job(key, label, estimate_seconds, Progress(), submitted=time.monotonic())
            self._jobs[key] = job
            self._forget_old()
            job._future = self._pool.submit(self._run, job, work)
            return job

    def _run(self, job: Job, work: Callable[[Progress], Any]) -> None:
        if job.progress.cancelled:
            job.state, job.finished = "cancelled", time.monotonic()
            return
        job.state = "running"
        job.progress.started = time.monotonic()
        cpu_start = time.process_time()
        try:
            job.result = work(job.progress)
            job.state = "done"
        except JobCancelled:
            job.state = "cancelled"
        except AlignscopeError as error:
            job.state, job.error = "failed", str(error)
            job.retryable = retryable(error)
        except Exception as error:  # noqa: BLE001 - a bug must end the job, not the worker thread
            job.state, job.error = "failed", f"unexpected {type(error).__name__}: {error}"
        finally:
            job.cpu_seconds = time.process_time() - cpu_start
            job.finished = time.monotonic()

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.done]
        for job in sorted(finished, key=lambda j: j.finished or 0.0)[: max(0, len(finished) - self._keep_finished)]:
            self._jobs.pop(job.key, None)

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running (tests, benchmarks); True when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in self.jobs():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not job.wait(left):
                return False
        return all(job.done for job in self.jobs())

    def shutdown(self) -> None:
        for job in self.jobs():
            job.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
