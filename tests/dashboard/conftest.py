"""Dashboard fixtures: one session-wide cache with the digits CNNs' features, computed once.

AppTest runs pages in this process, so the cache dir is set in the environment for the whole session
(and Streamlit's in-process caches are cleared, so no value computed against another dir is served).
"""

from __future__ import annotations

from pathlib import Path

import pytest

DIGITS_MODELS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
# Small and fast: every AppTest run uses these unless it tests something else.
FAST_QUERY = {"n": "120", "perm": "20", "boot": "5"}


@pytest.fixture(scope="session")
def dashboard_cache(tmp_path_factory: pytest.TempPathFactory, trained_models_dir: Path):
    """ALIGNSCOPE_CACHE_DIR for the session, holding the three digits CNNs and their digits features."""
    import streamlit as st

    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.settings import get_settings

    root = tmp_path_factory.mktemp("dashboard-cache")
    models = root / "models"
    models.mkdir()
    for path in trained_models_dir.iterdir():
        if path.suffix in (".safetensors", ".json"):
            (models / path.name).write_bytes(path.read_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_CACHE_DIR", str(root))
        get_settings.cache_clear()
        st.cache_data.clear()
        st.cache_resource.clear()
        digits = load_dataset("digits")
        cache = FeatureCache()
        for model in DIGITS_MODELS:
            cache.get_or_extract(model, digits)
        yield root
        get_settings.cache_clear()
        st.cache_data.clear()
        st.cache_resource.clear()


def run_page(page: str, query: dict[str, str] | None = None, *, fast: bool = True, timeout: float = 60):
    """Run ``dashboard/views/<page>.py`` once with ``query`` (over the fast defaults) in the URL."""
    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[2]
    app = AppTest.from_file(str(root / "dashboard" / "views" / f"{page}.py"), default_timeout=timeout)
    for key, value in {**(FAST_QUERY if fast else {}), **(query or {})}.items():
        app.query_params[key] = value
    app.run()
    return app


def url_of(app) -> dict[str, str]:
    """The query string the page left in the URL."""
    return {key: (value[-1] if isinstance(value, list) else value) for key, value in app.query_params.items()}


def no_exception(app) -> None:
    assert not app.exception, [e.value for e in app.exception]
