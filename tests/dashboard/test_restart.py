"""Results live in the result store on disk: a restarted server shows a UMAP computed before at once."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.dashboard.helpers import no_exception, run_page
from tests.dashboard.test_projections_page import maps_view

pytestmark = pytest.mark.usefixtures("dashboard_cache")

UMAP_VIEW = {"n": "60", "proj": "umap", "seed": "4"}


def _forget_everything_in_memory() -> None:
    """What a server restart loses: the engine (its runner and memo), loaded views, Streamlit's caches."""
    import streamlit as st

    from alignscope.core.analysis import engine
    from alignscope.core.analysis.features import LOADED_VIEWS
    from alignscope.dashboard.views import projections

    runner = engine.default_engine().runner
    if runner is not None:
        runner.shutdown()  # type: ignore[attr-defined]
    engine._default_engine.cache_clear()
    LOADED_VIEWS.clear()
    projections._MAPS_CONTENT.clear()  # the maps' view files by name, kept per view
    st.cache_data.clear()
    st.cache_resource.clear()


def test_a_restarted_server_shows_a_umap_computed_before_without_computing_it_again(dashboard_cache):
    from alignscope.core.analysis.engine import default_engine
    from alignscope.core.analysis.requests import ProjectionRequest

    first = run_page("projections", UMAP_VIEW, timeout=300)
    no_exception(first)
    drawn = maps_view(first).figure_jsons
    _forget_everything_in_memory()
    again = run_page("projections", UMAP_VIEW, settle=False)  # no waiting: whatever is shown is there at once
    no_exception(again)
    assert default_engine().runner is None or not any(
        job.label.startswith("UMAP") for job in default_engine().runner.jobs()
    )  # nothing was recomputed
    assert maps_view(again).figure_jsons == drawn
    assert not any("Showing PCA while" in i.value for i in again.info)
    # and a fresh process (another server, or the CLI) reads the same result from the store
    code = (
        "from alignscope.core.analysis.engine import Engine\n"
        "from alignscope.core.analysis.requests import ProjectionRequest\n"
        "o = Engine().request(ProjectionRequest('digits-cnn-s0', 'digits', 60, 4, -1, 'umap'))\n"
        "import json; print(o.state, json.dumps(o.result.coords[:2].tolist()))\n"
    )
    import os

    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ALIGNSCOPE_CACHE_DIR": str(dashboard_cache)},
    )
    assert done.returncode == 0, done.stderr
    state, _, coords = done.stdout.strip().partition(" ")
    assert state == "ready"
    stored = default_engine().run(ProjectionRequest("digits-cnn-s0", "digits", 60, 4, -1, "umap"))
    assert np.allclose(json.loads(coords), stored.coords[:2])
