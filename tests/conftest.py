"""Shared fixtures: every test gets its own cache directory; the numba cache is shared and persistent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# umap's JIT output survives across runs (and CI runs on the same machine): the first fit costs ~45 s.
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "cache" / "numba"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _use_cache_dir(monkeypatch: pytest.MonkeyPatch, path: Path) -> Path:
    from alignscope.core.settings import get_settings

    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(path))
    get_settings.cache_clear()
    return path


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh, empty ALIGNSCOPE_CACHE_DIR for this test."""
    from alignscope.core.settings import get_settings

    yield _use_cache_dir(monkeypatch, tmp_path / "cache")
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def trained_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One session-wide folder with the digits CNNs trained once (seconds), shared by tests that copy it."""
    from alignscope.core import digits_nets
    from alignscope.core.settings import Settings

    root = tmp_path_factory.mktemp("trained")
    settings = Settings(cache_dir=root)
    for seed in (0, 1, 2):
        digits_nets.load_or_train(seed, settings)
    return settings.models_dir


@pytest.fixture
def warm_cache_dir(cache_dir: Path, trained_models_dir: Path) -> Path:
    """Like ``cache_dir`` but with the digits CNNs already trained (linked, not retrained)."""
    models = cache_dir / "models"
    models.mkdir(parents=True)
    for path in trained_models_dir.iterdir():
        if path.suffix in (".safetensors", ".json"):
            (models / path.name).write_bytes(path.read_bytes())
    return cache_dir


@pytest.fixture(scope="session")
def local_ray():
    """One real local Ray instance (2 CPUs) for the session's Ray tests; Alignscope's Ray paths use an
    instance that is already running and leave it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
