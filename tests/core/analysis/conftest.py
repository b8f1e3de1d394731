"""The engine over the three digits CNNs (``digits-cnn-s0/1/2``), their digits features cached."""

from __future__ import annotations

import pytest

DIGITS_NETS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")


@pytest.fixture
def engine(warm_cache_dir):
    """A fresh :class:`Engine` on the test's cache dir, with the digits CNNs' features extracted."""
    from alignscope.core.analysis.engine import Engine
    from alignscope.core.datasets import load_dataset

    engine = Engine()
    for model in DIGITS_NETS:
        engine.cache.get_or_extract(model, load_dataset("digits"))
    return engine
