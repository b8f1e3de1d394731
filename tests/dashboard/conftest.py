"""Dashboard fixtures: one session-wide cache with the digits CNNs' features, computed once.

AppTest runs pages in this process, so the cache dir is set in the environment for the whole session
(and Streamlit's in-process caches are cleared, so no value computed against another dir is served).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

DIGITS_MODELS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")


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


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def no_deprecated_streamlit_call():
    """Every test of a page fails when Streamlit logs a deprecation meanwhile: an API past its removal
    date is gone in the next Streamlit, and the page with it (the log is the only sign: not shown in the
    browser, and Streamlit's loggers do not propagate to pytest's)."""
    logger = logging.getLogger("streamlit.deprecation_util")
    recorder = _Recorder()
    logger.addHandler(recorder)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
    assert not recorder.messages, recorder.messages
