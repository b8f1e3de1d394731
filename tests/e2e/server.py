"""A real ``streamlit run`` server and a headless Debian Chromium, for the browser tests and for
``scripts/screenshots.py``.

The server gets its own ALIGNSCOPE_CACHE_DIR, filled with the embedded default's digits features before
it starts (the three digits CNNs on the digits dataset: what every page shows by default). Readiness is
polled on ``/_stcore/health``; pages are awaited on their own conditions, never on a fixed delay.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_MODELS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
# Every page of dashboard/app.py, by URL path, with the text its title shows.
PAGES = {
    "compare": "Compare two models",
    "many-models": "Many models",
    "sweeps": "Sweeps",
    "projections": "Projections",
    "neighbours": "Neighbours",
    "data-models": "Data & models",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ALIGNSCOPE_CACHE_DIR"] = str(cache_dir)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / "cache" / "numba"))  # umap's JIT output, kept across runs
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def fill_cache(cache_dir: Path, trained_models: Path | None = None) -> None:
    """Precompute the default's digits features into ``cache_dir`` with the real CLI.

    ``trained_models``: a folder of already trained digits CNNs to copy in (saves their training).
    """
    models = cache_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    if trained_models is not None:
        for path in trained_models.iterdir():
            if path.suffix in (".safetensors", ".json") and not (models / path.name).exists():
                shutil.copy2(path, models / path.name)
    command = [sys.executable, "-m", "alignscope.core.cli", "extract", "--dataset", "digits"]
    for model in DEFAULT_MODELS:
        command += ["--model", model]
    subprocess.run(command, cwd=ROOT, env=server_env(cache_dir), check=True, capture_output=True, timeout=900)


def start_server(cache_dir: Path, port: int, log_path: Path, extra_args: list[str] | None = None) -> subprocess.Popen:
    from alignscope.core.cli import streamlit_command

    command = [*streamlit_command(port, "127.0.0.1"), "--server.fileWatcherType", "none", *(extra_args or [])]
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process in stop_server
    process = subprocess.Popen(command, cwd=ROOT, env=server_env(cache_dir), stdout=log, stderr=subprocess.STDOUT)
    process.log_file = log  # type: ignore[attr-defined]
    return process


def wait_healthy(base_url: str, process: subprocess.Popen, *, timeout: float = 180.0, log_path: Path | None = None):
    """Poll ``/_stcore/health`` until it answers ``ok``; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"streamlit exited with code {process.returncode} before it was healthy:\n{log}")
        try:
            with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        # Poll, don't guess: a short pause between attempts, bounded by the deadline.
        process_wait(process, 0.2)
    raise TimeoutError(f"{base_url}/_stcore/health did not answer ok within {timeout:.0f} s")


def process_wait(process: subprocess.Popen, seconds: float) -> None:
    """Wait up to ``seconds`` for the process to exit (returns early if it does)."""
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    process.log_file.close()  # type: ignore[attr-defined]


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


# --------------------------------------------------------------------------------------------------
# Page helpers (Playwright sync API)
# --------------------------------------------------------------------------------------------------

# How long a browser test waits for anything (ms): long, for a slow 2-core CI box; E2E_TIMEOUT_MS overrides.
TIMEOUT_MS = int(os.environ.get("E2E_TIMEOUT_MS", "240000"))
APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def open_page(page, url: str, *, title: str, timeout: float = TIMEOUT_MS) -> None:
    """Go to ``url`` and wait until the page's title is shown and its script run has finished."""
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout)
    page.wait_for_selector(APP_IDLE, timeout=timeout)


# Nothing on the page is still taking its size after a run: lazily loaded elements show a skeleton until
# their code arrives, and images have no height until they load; either moves what is below it.
LAYOUT_SETTLED = """() => !document.querySelector('[data-testid="stSkeleton"]')
  && Array.from(document.images).every((image) => image.complete)"""


def wait_settled(page) -> None:
    """Wait until the script run is over and the page has its final layout (before a click on an element
    that a late layout change would move: Playwright aims a click at its first event only)."""
    page.wait_for_selector(APP_IDLE)
    page.wait_for_function(LAYOUT_SETTLED)


def maps_frame(page):
    """The Projections page's linked maps frame (dashboard/linked_maps.py) once both its maps are drawn: a
    Playwright frame, which the plot helpers below take in place of a page."""
    frame = page.wait_for_selector("iframe[title*='linked_maps']").content_frame()
    wait_plots(frame, 2)
    return frame


def wait_plots(page, count: int) -> None:
    """Wait until at least ``count`` plotly figures are drawn (Streamlit loads plotly lazily)."""
    page.wait_for_function(
        "(count) => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".filter(p => p._fullData && p._fullData.length).length >= count",
        arg=count,
    )


def plot_data(page, index: int) -> dict:
    """The first trace of the ``index``-th plotly figure on the page, as the browser holds it."""
    return page.evaluate(
        """(index) => {
            const plot = document.querySelectorAll('.js-plotly-plot')[index];
            const trace = plot.data[0];
            const sel = trace.selectedpoints;
            // Arrays arrive base64-packed in data; the full (decoded) trace has the point count.
            return {n: plot._fullData[0]._length, selectedpoints: sel ? Array.from(sel) : null, type: trace.type,
                    title: plot.layout.title && plot.layout.title.text};
        }""",
        index,
    )


def drag_box(page, plot_index: int, start: float, stop: float, steps: int = 12, within=None) -> None:
    """Drag a box selection on the ``plot_index``-th plotly figure of the page (or of the frame ``within``)
    from (start, start) to (stop, stop), as fractions of its plot area (dragmode = select); returns as the
    mouse is released."""
    surface = (within or page).locator(".js-plotly-plot").nth(plot_index).locator(".nsewdrag").first.bounding_box()
    page.mouse.move(surface["x"] + start * surface["width"], surface["y"] + start * surface["height"])
    page.mouse.down()
    page.mouse.move(surface["x"] + stop * surface["width"], surface["y"] + stop * surface["height"], steps=steps)
    page.mouse.up()


def no_exceptions(page) -> None:
    """No exception is shown once the script run is over (one drawn late in a run would be missed before)."""
    page.wait_for_selector(APP_IDLE)
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()
