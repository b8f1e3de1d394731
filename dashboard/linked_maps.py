"""The Projections page's two maps in one frame, their box / lasso selections linked in the browser.

A selection drawn in either map lights up the same samples in both at once, in the browser, and is then
sent to the server (the URL, the table of selected samples). Linked through the server, a selection took
a page rerun and both figures re-sent and re-drawn: 1.75 s at 500 samples and ~4 s at 100,000 on a 2-core
machine (bench/results/dashboard_100k.json).

The frame (``linked_maps.html``, a Streamlit component, protocol v1) is served from a folder under the
cache dir that holds the page and the plotly package's own plotly.js (gzipped): no network, no build step.
What the maps show goes by HTTP, not in the component's arguments: a view file in that folder
(map_views.py), written once per view and fetched by the frame. The arguments, which Streamlit re-sends on
every rerun (a selection is one), stay a few hundred bytes; at 100,000 samples a view is ~8 MB, which went
through the websocket and the page's own decoding on every rerun.

The arguments: ``view`` (the file, relative to the frame), ``n`` (checked against the file's), ``selected``
(the URL's sample indices) and ``version`` (names what the maps show: the frame redraws only when it
changes, so a rerun after a selection only moves the highlight). It sends back ``{"selected": [sample
indices], "n": n, "version": version, "seq": count}`` (read with :func:`chosen_samples`; ``seq`` makes the
same samples chosen again a change Streamlit reports).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import shutil
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from alignscope.core.files import atomic_write_bytes
from alignscope.dashboard.map_views import VIEWS

PAGE = "linked_maps.html"
# plotly.js with only the traces the maps draw (scatter, scattergl, heatmap): 1.5 MB, not 4.8 MB; a first
# visit compiles it ~4x faster. Built from npm's plotly.js by scripts/plotly_maps/build.sh, with a patch:
# a WebGL map converts each distinct colour value once, not once per point (~0.1 s per 10,000-point map here).
# The same figure draws pixel for pixel as with the plotly package's own (tests/e2e/test_linked_maps_frame.py).
MAPS_PLOTLY_JS = "vendor/plotly-maps.min.js.gz"


def frontend_dir(cache_dir: Path) -> Path:
    """``cache_dir/frontend/linked-maps-<digest>/`` holding ``index.html`` and ``plotly.min.js.gz`` (written
    once per page and plotly.js, each file atomically; the views of other versions are removed).

    plotly.js is :data:`MAPS_PLOTLY_JS` when it is of the version the plotly package ships (the figures are
    that package's), else the package's own full plotly.js. It goes gzipped (the frame unpacks it):
    Streamlit's server would otherwise gzip it at level 9 on every page load (~0.3 s of a core for the
    full 4.8 MB); a ``.gz`` file is served as it is."""
    page, plotly_js, digest = _frontend()
    folder = Path(cache_dir) / "frontend" / f"linked-maps-{digest}"
    for name, content in (("index.html", lambda: page), ("plotly.min.js.gz", plotly_js)):
        if not (folder / name).is_file():
            if not folder.is_dir():
                for other in folder.parent.glob("linked-maps-*"):
                    shutil.rmtree(other / VIEWS, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / name, content())
    return folder


@functools.cache
def _frontend() -> tuple[bytes, Callable[[], bytes], str]:
    """The frame's page, its gzipped plotly.js (read when needed), and a digest of both."""
    from plotly.offline import get_plotlyjs_version

    page = resources.files("alignscope.dashboard").joinpath(PAGE).read_bytes()
    maps = resources.files("alignscope.dashboard").joinpath(MAPS_PLOTLY_JS).read_bytes()
    if plotly_js_version(gzip.decompress(maps)[:300]) == get_plotlyjs_version():
        return page, lambda: maps, hashlib.sha256(page + maps).hexdigest()[:16]
    full = resources.files("plotly").joinpath("package_data", "plotly.min.js")
    return (
        page,
        lambda: gzip.compress(full.read_bytes(), mtime=0),
        hashlib.sha256(page + full.read_bytes()).hexdigest()[:16],
    )


def plotly_js_version(head: bytes) -> str | None:
    """The version a plotly.js bundle names in its first lines ("plotly.js v4.1.1"), None if none."""
    found = re.search(rb"plotly\.js v(\d+\.\d+\.\d+\S*)", head)
    return found.group(1).decode() if found else None


@functools.cache
def _component(folder: str) -> Callable[..., Any]:
    import streamlit.components.v1 as components

    return components.declare_component("linked_maps", path=folder)


def figures_version(*parts: object) -> str:
    """A short name for what the maps show (anything that changes the figures or the data)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def linked_maps(
    view: str,
    *,
    n_samples: int,
    selected: Sequence[int],
    version: str,
    folder: Path,
    key: str,
    on_change: Callable[[], None],
) -> Any:
    """Both maps (see the module docstring): ``view`` from map_views.write_view into ``folder`` (from
    :func:`frontend_dir`). Returns the frame's last value (read it with :func:`chosen_samples`)."""
    component = _component(str(folder))
    return component(
        view=f"{VIEWS}/{view}",
        n=n_samples,
        selected=sorted(int(i) for i in selected),
        version=version,
        key=key,
        on_change=on_change,
        default=None,
    )


def chosen_samples(value: Any, *, n_samples: int, version: str) -> np.ndarray | None:
    """The ascending sample indices a value sent by the frame selects, or None when it is not a selection
    of these maps (another view's, or malformed: the browser is not trusted)."""
    if not isinstance(value, dict) or value.get("n") != n_samples or value.get("version") != version:
        return None
    picked = value.get("selected")
    if not isinstance(picked, list) or len(picked) > n_samples:
        return None
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in picked):
        return None
    return np.unique(np.asarray([i for i in picked if 0 <= i < n_samples], dtype=np.int64))
