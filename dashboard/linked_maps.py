"""The Projections page's two maps in one frame, their box / lasso selections linked in the browser.

A selection drawn in either map lights up the same samples in both at once, in the browser, and is then
sent to the server (the URL, the table of selected samples). Linked through the server, a selection took
a page rerun and both figures re-sent and re-drawn: 1.75 s at 500 samples and ~4 s at 100,000 on a 2-core
machine (bench/results/dashboard_100k.json).

The frame (``linked_maps.html``, a Streamlit component, protocol v1) is served from a folder under the
cache dir that holds the page and a copy of the plotly package's own plotly.js: no network, no build
step. What the maps show goes by HTTP, not in the component's arguments: :func:`write_view` writes it once
per view as ``views/<digest>.maps.gz`` in that folder (named by its content), and the frame fetches it. The
arguments that Streamlit re-sends on every rerun (a selection is one) stay a few hundred bytes; at 100,000
samples the view is ~8 MB, which went through the websocket and the page's own decoding on every rerun.

A view file, once gunzipped: a little-endian uint32 ``h``, an ``h``-byte UTF-8 JSON header (padded with
spaces so the sections start 8-byte aligned) ``{"format": 1, "n": n, "sections": {name: [offset, length]}}``
with offsets from the end of the header, then the sections:

- ``figure_a`` / ``figure_b``: plotly JSON without a selection (trace 0 = the drawn samples), UTF-8;
- ``coords_a`` / ``coords_b``: float64 [n, 2] of all samples, so a box or lasso selects exactly over all n
  points in a reduced map (see map_reduction), drawn or not;
- ``drawn``: int32 ascending sample indices that trace 0 holds (trace point j = sample ``drawn[j]``);
- ``colour``: float64 [n] each sample's value on trace 0's colour scale (NaN: one colour for all), for
  selected samples a reduced map does not draw;
- ``ids``: the n sample ids as UTF-8 JSON (hover labels of the selected samples drawn on top).

The component's arguments: ``view`` (the file, relative to the frame), ``n``, ``selected`` (the URL's
sample indices) and ``version`` (names what the maps show: the frame redraws only when it changes, so a
rerun after a selection only moves the highlight). It sends back ``{"selected": [sample indices], "n": n,
"version": version, "seq": count}`` (read with :func:`chosen_samples`; ``seq`` makes the same samples
chosen again a change Streamlit reports).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from alignscope.core.files import atomic_write_bytes

PAGE = "linked_maps.html"
VIEWS = "views"  # under the frontend folder: the views' files, named by their content
VIEW_NAME = re.compile(r"^[0-9a-f]{32}\.maps\.gz$")
MAX_VIEW_BYTES = 512 * 2**20  # the views kept on disk, the least recently used removed first
_ALIGN = 8


def frontend_dir(cache_dir: Path) -> Path:
    """``cache_dir/frontend/linked-maps-<digest>/`` holding ``index.html`` and ``plotly.min.js.gz`` (written
    once per page and plotly version, each file atomically).

    plotly.js goes gzipped (the frame unpacks it): Streamlit's server would otherwise gzip its 4.8 MB at
    level 9 on every page load, ~0.3 s of a core; a ``.gz`` file is served as it is."""
    page = resources.files("alignscope.dashboard").joinpath(PAGE).read_bytes()
    plotly_js = resources.files("plotly").joinpath("package_data", "plotly.min.js")
    import plotly

    digest = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "frontend" / f"linked-maps-{digest}"
    packed = (
        ("index.html", lambda: page),
        ("plotly.min.js.gz", lambda: gzip.compress(plotly_js.read_bytes(), mtime=0)),
    )
    for name, read in packed:
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
    view: str,
    *,
    n_samples: int,
    selected: Sequence[int],
    version: str,
    cache_dir: Path,
    key: str,
    on_change: Callable[[], None],
) -> Any:
    """Both maps (see the module docstring): ``view`` from :func:`write_view`. Returns the frame's last
    value (read it with :func:`chosen_samples`)."""
    component = _component(str(frontend_dir(cache_dir)))
    return component(
        view=f"{VIEWS}/{view}",
        n=n_samples,
        selected=sorted(int(i) for i in selected),
        version=version,
        key=key,
        on_change=on_change,
        default=None,
    )


def write_view(
    cache_dir: Path,
    *,
    figure_jsons: tuple[str, str],
    coords: tuple[np.ndarray, np.ndarray],
    drawn: np.ndarray,
    colour: np.ndarray,
    ids: bytes,
) -> str:
    """Write what the maps show (``coords`` [n, 2] each, ``colour`` [n], ``ids`` from :func:`ids_bytes`) to
    the frontend folder's ``views/`` unless there (atomically), drop the least recently used views beyond
    :data:`MAX_VIEW_BYTES`, and return the file's name (its content's digest)."""
    sections = {
        "figure_a": figure_jsons[0].encode(),
        "figure_b": figure_jsons[1].encode(),
        "coords_a": np.ascontiguousarray(coords[0], dtype="<f8").tobytes(),
        "coords_b": np.ascontiguousarray(coords[1], dtype="<f8").tobytes(),
        "drawn": np.ascontiguousarray(drawn, dtype="<i4").tobytes(),
        "colour": np.ascontiguousarray(colour, dtype="<f8").tobytes(),
        "ids": ids,
    }
    offsets, offset = {}, 0
    for name, data in sections.items():
        offsets[name] = [offset, len(data)]
        offset += -(-len(data) // _ALIGN) * _ALIGN
    header = json.dumps({"format": 1, "n": len(coords[0]), "sections": offsets}).encode()
    header += b" " * (-(4 + len(header)) % _ALIGN)
    body = b"".join(data + b"\0" * (-len(data) % _ALIGN) for data in sections.values())
    content = len(header).to_bytes(4, "little") + header + body
    name = hashlib.sha256(content).hexdigest()[:32] + ".maps.gz"
    if not touch_view(cache_dir, name):
        folder = frontend_dir(cache_dir) / VIEWS
        folder.mkdir(exist_ok=True)
        atomic_write_bytes(folder / name, gzip.compress(content, compresslevel=1, mtime=0))
        _drop_old_views(folder, keep=name)
    return name


def touch_view(cache_dir: Path, name: str) -> bool:
    """Whether view ``name`` is on disk; marks it used (another session may have dropped it)."""
    try:
        os.utime(frontend_dir(cache_dir) / VIEWS / name)
    except OSError:
        return False
    return True


def read_view(cache_dir: Path, name: str) -> dict[str, Any]:
    """View ``name`` as the frame reads it: figures and ids decoded, arrays as numpy (for tests and tools)."""
    if not VIEW_NAME.match(name):
        raise ValueError(f"not a view name: {name!r}")
    content = gzip.decompress((frontend_dir(cache_dir) / VIEWS / name).read_bytes())
    size = int.from_bytes(content[:4], "little")
    header = json.loads(content[4 : 4 + size])
    body = memoryview(content)[4 + size :]
    part = {name: bytes(body[start : start + length]) for name, (start, length) in header["sections"].items()}
    n = header["n"]
    return {
        "n": n,
        "figure_a": part["figure_a"].decode(),
        "figure_b": part["figure_b"].decode(),
        "coords_a": np.frombuffer(part["coords_a"], dtype="<f8").reshape(n, 2),
        "coords_b": np.frombuffer(part["coords_b"], dtype="<f8").reshape(n, 2),
        "drawn": np.frombuffer(part["drawn"], dtype="<i4"),
        "colour": np.frombuffer(part["colour"], dtype="<f8"),
        "ids": json.loads(part["ids"]),
    }


def _drop_old_views(folder: Path, *, keep: str) -> None:
    views = []
    for path in folder.iterdir():
        try:
            if VIEW_NAME.match(path.name):
                stat = path.stat()
                views.append((stat.st_mtime, stat.st_size, path))
        except OSError:
            continue  # dropped by another session meanwhile
    total = sum(size for _, size, _ in views)
    for _, size, path in sorted(views):
        if total <= MAX_VIEW_BYTES:
            break
        if path.name != keep:
            path.unlink(missing_ok=True)
            total -= size


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
