"""A child process for the jobs that hold the GIL: UMAP maps (numba-compiled code and its compiler).

The dashboard's server runs every browser session's script, its event loop and its job threads in one
interpreter. Torch, BLAS and faiss release the GIL while they work; numba's compiled code and numba's
compiler do not, so a UMAP job — or umap's first compile, ~45 s — on a thread of the server stalled
every session and the health endpoint for seconds at a time. Such jobs run here instead: one long-lived
child process (spawned, so it shares no locks or threads with the server), which imports and compiles
umap once when it starts (:func:`alignscope.core.projection.warm_up`; umap's layout code is not cached on
disk, so only a process that stays up keeps it) and then computes one job at a time.

Protocol, over a private :func:`multiprocessing.Pipe` (tuples of plain values and the frozen requests
the parent built; nothing read from disk or from users is unpickled):

* parent → child: ``("job", function, args)`` (``function(*args, progress)`` is a module-level function,
  sent by name), ``("cancel",)``
* child → parent: ``("warm", seconds)`` once, then per job ``("progress", done, total)`` …, ending with
  ``("done",)`` (the function stored its result, e.g. in the result store), ``("failed", message)`` or
  ``("cancelled",)``.

A worker that dies (killed, out of memory) fails the job it was running with a message; the next job
starts a new one. A job that does not stop within :data:`CANCEL_GRACE_SECONDS` of its cancel is killed
with its worker, so a cancelled map never holds the worker for the rest of its fit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from alignscope.core.analysis.jobs import JobCancelled, Progress
from alignscope.core.errors import AlignscopeError, rebuilt

WORKER_STATES = ("cold", "warming", "warm")
POLL_SECONDS = 0.2  # how often a waiting job thread looks at its own cancel flag and the child's liveness
# a job still running this long after its cancel (one with no progress steps to stop at, such as umap's
# AlignedUMAP fit) is stopped by killing the worker; a new one starts warming up at once
CANCEL_GRACE_SECONDS = 5.0


class _PipeProgress(Progress):
    """Progress inside the child: each update goes to the parent, and a cancel from it stops the job."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self._conn = conn

    def update(self, done: float, total: float, message: str | None = None) -> None:
        while self._conn.poll():
            if self._conn.recv()[0] == "cancel":
                self.cancel()
        self.check()
        self._conn.send(("progress", float(done), float(total)))


def _serve(conn: Connection) -> None:
    """The child's main loop: warm up, then compute jobs until the parent closes the pipe."""
    import torch

    from alignscope.core.projection import warm_up

    torch.set_num_threads(1)  # seeded UMAP is single-threaded; the server's own jobs keep the other cores
    try:
        seconds = warm_up()
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first job compiles instead
        seconds = -1.0
    conn.send(("warm", seconds))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if message[0] != "job":
            continue  # a cancel that arrived after its job had ended
        _, function, args = message
        try:
            function(*args, _PipeProgress(conn))
            reply: tuple[Any, ...] = ("done",)
        except JobCancelled:
            reply = ("cancelled",)
        except AlignscopeError as error:
            reply = ("failed", str(error), type(error).__name__)
        except Exception as error:  # noqa: BLE001 - a bug fails the job, not the worker
            reply = ("failed", f"unexpected {type(error).__name__}: {error}", AlignscopeError.__name__)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


@contextlib.contextmanager
def _plain_main() -> Iterator[None]:
    """A plain ``__main__`` while the child is spawned. Spawning re-imports the parent's main file in the
    child, and in a Streamlit server that is the app script (Streamlit puts it in ``sys.modules``), which
    would run the whole dashboard inside the worker before it starts."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class ProcessWorker:
    """The parent's handle on the child: start it (it warms up), and compute one job at a time in it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one job at a time (held while a job runs)
        self._start_lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._warm = False
        self.cancel_grace = CANCEL_GRACE_SECONDS

    def start(self) -> None:
        """Spawn the child if none is running (it starts compiling umap at once); returns immediately."""
        with self._start_lock:
            if self._process is not None and self._process.is_alive():
                return
            context = multiprocessing.get_context("spawn")
            parent_end, child_end = context.Pipe(duplex=True)
            process = context.Process(target=_serve, args=(child_end,), name="alignscope-worker", daemon=True)
            with _plain_main():
                process.start()
            child_end.close()
            self._process, self._conn, self._warm = process, parent_end, False

    @property
    def state(self) -> str:
        """``"cold"`` (not started), ``"warming"`` (starting, compiling umap) or ``"warm"``."""
        process = self._process  # read once: a replaced worker sets it to None from a job thread
        if process is None or not process.is_alive():
            return "cold"
        if not self._warm and self._conn is not None and self._lock.acquire(blocking=False):
            try:  # between jobs only: a running job's thread reads the pipe itself
                self._drain_warm()
            finally:
                self._lock.release()
        return "warm" if self._warm else "warming"

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def _drain_warm(self) -> None:
        """Read a pending ``("warm", …)`` (the only message the child sends between jobs)."""
        assert self._conn is not None
        try:
            while self._conn.poll():
                if self._conn.recv()[0] == "warm":
                    self._warm = True
        except (EOFError, OSError):
            pass

    def call(self, function: Callable[..., None], args: tuple, progress: Progress | None, label: str) -> None:
        """``function(*args, progress)`` in the child (``function`` module-level; it stores what it
        computes); blocks the calling thread (without the GIL) until it returns, relaying progress. Raises
        :class:`JobCancelled` when ``progress`` is cancelled, :class:`AlignscopeError` when the call fails or
        the child dies (``label`` names the work in that message)."""
        while not self._lock.acquire(timeout=POLL_SECONDS):  # another job runs: wait, but stay cancellable
            if progress is not None and progress.cancelled:
                raise JobCancelled("cancelled")
        try:
            if progress is not None and progress.cancelled:
                raise JobCancelled("cancelled")
            self.start()
            assert self._conn is not None
            conn, process = self._conn, self._process
            try:
                conn.send(("job", function, args))
                self._relay(conn, process, progress)
            except (EOFError, OSError) as error:  # the child died, or stop() closed the pipe
                process.join(timeout=5)
                raise AlignscopeError(
                    f"the map worker process stopped while computing {label} "
                    f"(exit code {process.exitcode}); try again, or with fewer samples"
                ) from error
        finally:
            self._lock.release()

    def _relay(self, conn: Connection, process: Any, progress: Progress | None) -> None:
        cancel_sent: float | None = None
        while True:
            if progress is not None and progress.cancelled and cancel_sent is None:
                conn.send(("cancel",))
                cancel_sent = time.monotonic()
            if not conn.poll(POLL_SECONDS):
                if not process.is_alive():
                    raise EOFError("the worker process is gone")
                if cancel_sent is not None and time.monotonic() - cancel_sent > self.cancel_grace:
                    self._replace(process)
                    raise JobCancelled("cancelled")
                continue
            message = conn.recv()
            kind = message[0]
            if kind == "warm":
                self._warm = True
            elif kind == "progress" and progress is not None and not progress.cancelled:
                try:
                    progress.update(message[1], message[2])
                except JobCancelled:
                    pass  # sent to the child on the next pass; its answer ends the job
            elif kind == "done":
                return
            elif kind == "cancelled":
                raise JobCancelled("cancelled")
            elif kind == "failed":  # the child's error, of its own type (an InputError is not retried)
                raise rebuilt(message[2], message[1])

    def _replace(self, process: Any) -> None:
        """Kill ``process`` (a job that ignored its cancel) and start a new worker in its place."""
        with self._start_lock:
            replaced = self._process is process  # else stop() ran meanwhile: no new worker after a stop
            if replaced:
                conn, self._process, self._conn, self._warm = self._conn, None, None, False
                if conn is not None:
                    conn.close()
        process.kill()
        process.join(5)
        if replaced:
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the pipe (the child exits at its next read) and wait for it; kill it after ``timeout``."""
        with self._start_lock:
            process, conn = self._process, self._conn
            self._process, self._conn, self._warm = None, None, False
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)


_SHARED = ProcessWorker()


def shared_worker() -> ProcessWorker:
    """The one worker of this process (every engine and cache dir share it: one umap compile)."""
    return _SHARED


def wait_warm(worker: ProcessWorker, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``worker`` to finish warming up (tests, benchmarks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.state == "warm":
            return True
        time.sleep(0.2)
    return worker.state == "warm"
