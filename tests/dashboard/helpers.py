"""Helpers for the dashboard tests: run a page through AppTest until its background jobs are done,
read its URL, and make tampered links."""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from alignscope.dashboard.selection import QUERY_KEYS

ROOT = Path(__file__).resolve().parents[2]
# Small and fast: every AppTest run uses these unless it tests something else.
FAST_QUERY = {"n": "120", "perm": "20", "boot": "5"}


class SettlingAppTest(AppTest):
    """An AppTest whose every run (also through a widget's ``.run()``) waits for the background jobs the
    run started and runs again, until a run starts nothing new: what a user sees once the page has
    filled in."""

    settle = True
    _settling = False

    def _run(self, widget_state=None, timeout: float | None = None) -> AppTest:
        finished = finished_jobs()
        result = super()._run(widget_state, timeout)
        if self._settling or not self.settle:
            return result
        self._settling = True
        try:
            for _ in range(10):
                wait_for_jobs()
                # a job that finished after the run drew its progress (even one done before this check)
                # changes what the page shows: run again until a run leaves every job as it found it
                now = finished_jobs()
                if now == finished:
                    break
                finished = now
                # a rerun stays on the page the run finished on, as in a browser (a page the script
                # switched to with st.switch_page), not the one a test's switch_page() asked for before
                self._page_hash = ""
                result = super().run(timeout=timeout)  # a rerun with the widgets as they are now
        finally:
            self._settling = False
        return result


def finished_jobs() -> frozenset[str]:
    """Keys of the engine's finished background jobs."""
    from alignscope.core.analysis.engine import default_engine

    runner = default_engine().runner
    return frozenset() if runner is None else frozenset(job.key for job in runner.jobs() if job.done)


def wait_for_jobs(timeout: float = 300.0) -> bool:
    """Wait until the engine's background jobs are done; True when there were any to wait for."""
    from alignscope.core.analysis.engine import default_engine

    runner = default_engine().runner
    if runner is None:
        return False
    pending = [job for job in runner.jobs() if not job.done]
    if not pending:
        return False
    if not runner.wait_idle(timeout):  # type: ignore[attr-defined]
        running = [job.label for job in runner.jobs() if not job.done]
        raise TimeoutError(f"jobs not done within {timeout:.0f} s (or queued meanwhile): {running}")
    return True


def run_page(
    page: str, query: dict[str, str] | None = None, *, fast: bool = True, timeout: float = 120, settle: bool = True
) -> AppTest:
    """Run page ``page`` (a name in :data:`alignscope.dashboard.pages.PAGES`) with ``query`` in the URL."""
    from alignscope.dashboard.pages import PAGE_BY_NAME

    app = SettlingAppTest(str(PAGE_BY_NAME[page].script), default_timeout=timeout)
    app.settle = settle
    for key, value in {**(FAST_QUERY if fast else {}), **(query or {})}.items():
        app.query_params[key] = value
    app.run()
    return app


def url_of(app: AppTest) -> dict[str, str]:
    """The query string the page left in the URL."""
    return {key: (value[-1] if isinstance(value, list) else value) for key, value in app.query_params.items()}


def no_exception(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]


def _garbage(rng: random.Random) -> str:
    alphabet = string.printable + "\x00\x7f…é😀/\\..%"
    pieces = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))),
        str(rng.choice([-1, 0, 10**30, 2**63, -(2**31)])),
        "../" * rng.randint(1, 5) + "etc/passwd",
        ",".join(rng.choice(["digits-cnn-s0", "", "x", "mutual_knn", ".."]) for _ in range(rng.randint(0, 20))),
        rng.choice(["nan", "inf", "-inf", "1e308", "0x10", " 5 ", "None", "[]", "{}", "r:0-5", "b:AAAA", "s:00"]),
        "a" * rng.randint(100, 30000),
    ]
    return rng.choice(pieces)


def random_tampered_query(seed: int) -> dict:
    rng = random.Random(seed)
    keys = list(QUERY_KEYS.values()) + ["", "x", "embed", "../k", "k\x00"]
    query: dict = {}
    for _ in range(rng.randint(1, 12)):
        key = rng.choice(keys)
        value = _garbage(rng)
        query[key] = [value, _garbage(rng)] if rng.random() < 0.2 else value
    if rng.random() < 0.1:
        query[rng.choice(keys)] = rng.choice([None, 5, 3.5, [], object()])
    return query


def unpacked(value):
    """Plotly's JSON packs arrays as ``{"dtype", "bdata", "shape"}`` (base64): unpacked to lists, recursively."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            shape = value.get("shape")  # a list, or "5, 5" (2-D)
            if isinstance(shape, str):
                shape = [int(size) for size in shape.split(",")]
            return array.reshape(shape).tolist() if shape else array.tolist()
        return {key: unpacked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unpacked(item) for item in value]
    return value


def plotly_figure(spec: str) -> dict:
    """A chart's figure from its JSON spec, arrays unpacked (see :func:`unpacked`)."""
    return unpacked(json.loads(spec))
