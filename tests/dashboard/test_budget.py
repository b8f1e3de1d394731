"""A link or a widget starts only bounded work by itself; above the budget it shows the estimate and a
button. Measured as the CPU time the started jobs actually spent, not only as their estimates."""

from __future__ import annotations

import pytest

from tests.dashboard.helpers import no_exception, random_tampered_query, run_page, wait_for_jobs

pytestmark = pytest.mark.usefixtures("dashboard_cache")
PAGES = ("compare", "many_models", "sweeps", "projections", "neighbours", "rsa")


def _jobs():
    from alignscope.core.analysis.engine import default_engine

    runner = default_engine().runner
    return {} if runner is None else {job.key: job for job in runner.jobs()}


def _started_by(action) -> list:
    before = set(_jobs())
    app = action()
    wait_for_jobs()
    return app, [job for key, job in _jobs().items() if key not in before]


def test_the_expensive_link_shows_its_estimate_and_a_button_and_computes_only_the_scores():
    """/compare?n=1797&perm=5000&boot=2000 used to start about an hour of CPU work with no click."""
    from alignscope.core.settings import get_settings

    query = {"n": "1797", "perm": "5000", "boot": "2000"}
    app, started = _started_by(lambda: run_page("compare", query, fast=False))
    no_exception(app)
    assert all(job.cpu_seconds <= get_settings().auto_budget_seconds for job in started)
    assert sum(job.cpu_seconds for job in started) <= get_settings().auto_budget_seconds
    assert not any("5000 permutations" in job.label for job in started)
    assert app.metric  # the headline scores are there at once
    compute = [b for b in app.button if b.key == "compute-compare-gate"]
    assert compute and compute[0].label.startswith("Compute (~")
    assert any("takes" in m.value and "of CPU here" in m.value for m in app.markdown)


@pytest.mark.parametrize("seed", range(10))
def test_no_tampered_link_runs_more_than_the_budget_before_a_click(seed, monkeypatch):
    from alignscope.core.settings import get_settings

    budget = 2.0
    monkeypatch.setenv("ALIGNSCOPE_AUTO_BUDGET_S", str(budget))
    get_settings.cache_clear()
    try:
        query = {k: v if isinstance(v, str) else str(v) for k, v in random_tampered_query(100 + seed).items()}
        query = {k: v[:300] for k, v in query.items() if k and "\x00" not in k}
        # big but valid statistics settings on top, so there is something to refuse
        query = {**query, "perm": str(1000 * (seed % 5)), "boot": str(500 * (seed % 3)), "n": str(200 + 150 * seed)}
        page = PAGES[seed % len(PAGES)]
        # settled: the reruns that follow finished jobs are part of what a link does by itself
        app, started = _started_by(lambda: run_page(page, query, fast=False))
        no_exception(app)
        spent = sum(job.cpu_seconds for job in started)
        assert sum(job.estimate_seconds for job in started) <= budget + 1e-9
        assert spent <= budget, [(job.label, job.estimate_seconds, job.cpu_seconds) for job in started]
    finally:
        get_settings.cache_clear()
