"""A feature file damaged on disk after the page planned it: never served, and the page goes straight to
what an uncached view shows (its Compute button), saying why."""

from __future__ import annotations

import shutil

import pytest

from tests.dashboard.helpers import no_exception, run_page


@pytest.fixture
def damaged_s2(dashboard_cache, tmp_path, monkeypatch):
    """A copy of the session's cache whose digits-cnn-s2 features on digits have bytes flipped mid-file."""
    import streamlit as st

    from alignscope.core.analysis.features import LOADED_VIEWS, plan_features
    from alignscope.core.cache import FeatureCache
    from alignscope.core.settings import get_settings

    root = tmp_path / "cache"
    shutil.copytree(dashboard_cache, root)
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(root))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    LOADED_VIEWS.clear()
    plan = plan_features("digits-cnn-s2", "digits", 120, 0)
    assert plan.cached_key is not None
    path = FeatureCache().tensor_path(plan.cached_key)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(255 - b for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))
    yield plan
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    LOADED_VIEWS.clear()


def test_a_damaged_feature_file_is_dropped_and_its_compute_button_shown_at_once(damaged_s2):
    from alignscope.core.analysis.features import plan_features

    query = {"a": "digits-cnn-s2", "b": "digits-cnn-s1", "perm": "0", "boot": "0"}
    app = run_page("compare", query, settle=False)
    no_exception(app)
    assert not app.error, [e.value for e in app.error]
    assert any("damaged" in w.value and "digits-cnn-s2" in w.value for w in app.warning)
    assert any(b.label == "Compute features" for b in app.button)
    assert not plan_features("digits-cnn-s2", "digits", 120, 0).cached  # dropped, so never served
