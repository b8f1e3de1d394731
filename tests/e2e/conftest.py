"""Browser-test fixtures: one streamlit server per session on a free port, with its own cache dir
pre-filled with the default's digits features, and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests.e2e.server import (
    CHROMIUM,
    TIMEOUT_MS,
    fill_cache,
    free_port,
    launch_browser,
    start_server,
    stop_server,
    wait_healthy,
)

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


def _require_chromium() -> None:
    """Skip locally without Debian's chromium; in CI (which installs it) its absence is a failure."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) for browser tests"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def e2e_cache(tmp_path_factory: pytest.TempPathFactory, trained_models_dir: Path) -> Path:
    _require_chromium()
    cache_dir = tmp_path_factory.mktemp("e2e-cache")
    fill_cache(cache_dir, trained_models_dir)
    return cache_dir


REDUCED_MAP_POINTS = 150


@contextlib.contextmanager
def running_server(cache_dir: Path, log_dir: Path):
    """A fresh ``streamlit run dashboard/app.py`` on a free port, healthy; its base URL."""
    port = free_port()
    log_path = log_dir / f"streamlit-{port}.log"
    process = start_server(cache_dir, port, log_path)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, process, log_path=log_path)
        yield base_url
    finally:
        stop_server(process)


@pytest.fixture(scope="session")
def server(e2e_cache: Path, tmp_path_factory: pytest.TempPathFactory, browser):
    """Base URL of a running server whose entry point has run once (see test_first_request_...)."""
    with running_server(e2e_cache, tmp_path_factory.mktemp("e2e-logs")) as base_url:
        context = browser.new_context()
        first = context.new_page()
        first.goto(base_url)
        first.get_by_role("heading", name="Compare two models", exact=True).wait_for(timeout=TIMEOUT_MS)
        context.close()
        yield base_url


@pytest.fixture
def fresh_server(e2e_cache: Path, tmp_path: Path):
    """A server nobody has visited yet."""
    with running_server(e2e_cache, tmp_path) as base_url:
        yield base_url


@pytest.fixture
def reduced_server(e2e_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A server whose maps send at most REDUCED_MAP_POINTS points to the browser (as 100,000-sample maps do
    with the default budget): they draw a layer over the density and select on the server."""
    monkeypatch.setenv("ALIGNSCOPE_MAP_POINTS", str(REDUCED_MAP_POINTS))
    with running_server(e2e_cache, tmp_path) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
