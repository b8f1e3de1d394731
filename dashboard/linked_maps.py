"""The Projections page's two maps in one frame, their box / lasso selections linked in the browser.

A selection drawn in either map lights up the same samples in both at once, in the browser, and is then
sent to the server (the URL, the table of selected samples). Linked through the server, a selection took
a page rerun and both figures re-sent and re-drawn: 1.75 s at 500 samples and ~4 s at 100,000 on a 2-core
machine (bench/results/dashboard_100k.json).

The frame (``linked_maps.html``, a Streamlit component, protocol v1) is served from a folder under the
cache dir that holds the page and a copy of the plotly package's own plotly.js: no network, no build
step. Its arguments:

- ``figure_a`` / ``figure_b``: plotly JSON without a selection (trace 0 = the drawn samples);
- ``coords_a`` / ``coords_b``: float64 [n, 2] of all samples, little-endian bytes, so a box or lasso
  selects exactly over all n points in a reduced map (see map_reduction), drawn or not;
- ``drawn``: int32 ascending sample indices that trace 0 holds (trace point j = sample ``drawn[j]``);
- ``colour``: float64 [n] each sample's value on trace 0's colour scale (NaN: one colour for all), for
  selected samples a reduced map does not draw;
- ``ids``: the n sample ids as UTF-8 JSON bytes (hover labels of the selected samples drawn on top);
- ``selected``: the selected sample indices (the URL's), ``version``: names the figures and data; the
  frame redraws only when it changes, so a rerun after a selection only moves the highlight.

It sends back ``{"selected": [sample indices], "n": n, "version": version, "seq": count}`` (read with
:func:`chosen_samples`; ``seq`` makes the same samples chosen again a change Streamlit reports).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from alignscope.core.files import atomic_write_bytes

PAGE = "linked_maps.html"


def frontend_dir(cache_dir: Path) -> Path:
    """``cache_dir/frontend/linked-maps-<digest>/`` holding ``index.html`` and ``plotly.min.js`` (written
    once per page and plotly version, each file atomically)."""
    page = resources.files("alignscope.dashboard").joinpath(PAGE).read_bytes()
    plotly_js = resources.files("plotly").joinpath("package_data", "plotly.min.js")
    import plotly

    digest = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "frontend" / f"linked-maps-{digest}"
    for name, read in (("index.html", lambda: page), ("plotly.min.js", plotly_js.read_bytes)):
        if not (folder / name).is_file():
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / name, read())
    return folder


@functools.cache
def _component(folder: str) -> Callable[..., Any]:
    import streamlit.components.v1 as components

    return components.declare_component("linked_maps", path=folder)


def figures_version(*parts: object) -> str:
    """A short name for what the maps show (anything that changes the figures or the data)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def linked_maps(
    figure_jsons: tuple[str, str],
    coords: tuple[np.ndarray, np.ndarray],
    *,
    ids: bytes,
    drawn: np.ndarray,
    colour: np.ndarray,
    selected: Sequence[int],
    version: str,
    cache_dir: Path,
    key: str,
    on_change: Callable[[], None],
) -> Any:
    """Both maps (see the module docstring); ``coords`` [n, 2] each, ``colour`` [n], ``ids`` from
    :func:`ids_bytes`. Returns the frame's last value (read it with :func:`chosen_samples`)."""
    component = _component(str(frontend_dir(cache_dir)))
    return component(
        figure_a=figure_jsons[0],
        figure_b=figure_jsons[1],
        coords_a=np.ascontiguousarray(coords[0], dtype="<f8").tobytes(),
        coords_b=np.ascontiguousarray(coords[1], dtype="<f8").tobytes(),
        drawn=np.ascontiguousarray(drawn, dtype="<i4").tobytes(),
        colour=np.ascontiguousarray(colour, dtype="<f8").tobytes(),
        ids=ids,
        n=len(coords[0]),
        selected=sorted(int(i) for i in selected),
        version=version,
        key=key,
        on_change=on_change,
        default=None,
    )


def ids_bytes(sample_ids: Sequence[str]) -> bytes:
    """The sample ids as the frame reads them: a JSON list, UTF-8."""
    return json.dumps([str(sample_id) for sample_id in sample_ids]).encode()


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
