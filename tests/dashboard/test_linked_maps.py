"""The linked maps frame's Python side: the folder it is served from, and what it may send back (the
browser is not trusted). The frame itself runs in Chromium: tests/e2e/test_linked_maps_frame.py."""

from __future__ import annotations

import gzip
from importlib import resources

import pytest

from alignscope.dashboard.linked_maps import (
    MAPS_PLOTLY_JS,
    chosen_samples,
    figures_version,
    frontend_dir,
    plotly_js_version,
)


def test_the_frame_is_served_with_plotly_js_of_the_plotly_packages_version(tmp_path):
    from plotly.offline import get_plotlyjs_version

    folder = frontend_dir(tmp_path)
    page = (folder / "index.html").read_bytes()
    assert page == resources.files("alignscope.dashboard").joinpath("linked_maps.html").read_bytes()
    served = gzip.decompress((folder / "plotly.min.js.gz").read_bytes())
    assert plotly_js_version(served[:300]) == get_plotlyjs_version()  # the figures are that package's
    maps = gzip.decompress(resources.files("alignscope.dashboard").joinpath(MAPS_PLOTLY_JS).read_bytes())
    full = resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    # the maps' own bundle when it is of that version (a third of the size), else the package's full one
    assert served == (maps if plotly_js_version(maps[:300]) == get_plotlyjs_version() else full)
    assert len(maps) < len(full) / 3
    assert b'gunzipped("plotly.min.js.gz")' in page and b"<script src" not in page and b"://" not in page  # no network
    stamp = (folder / "plotly.min.js.gz").stat().st_mtime_ns
    assert frontend_dir(tmp_path) == folder and (folder / "plotly.min.js.gz").stat().st_mtime_ns == stamp
    assert sorted(path.name for path in folder.iterdir()) == ["index.html", "plotly.min.js.gz"]  # no temp left


def test_a_bundles_version_is_read_from_its_header():
    assert plotly_js_version(b"/**\n* plotly.js v4.1.1\n* Copyright") == "4.1.1"
    assert plotly_js_version(b"/*! plotly.js v4.2.0-rc.1 with the traces") == "4.2.0-rc.1"
    assert plotly_js_version(b"var Plotly = 1;") is None


def test_a_new_page_or_plotly_version_removes_the_views_of_the_old_one(tmp_path):
    old = tmp_path / "frontend" / "linked-maps-0123456789abcdef"
    (old / "views").mkdir(parents=True)
    (old / "views" / ("0" * 32 + ".maps.gz")).write_bytes(b"an old view")
    (old / "index.html").write_bytes(b"the old page")
    folder = frontend_dir(tmp_path)
    assert not (old / "views").exists() and (old / "index.html").exists()  # a running old server keeps its page
    (folder / "views").mkdir()
    (folder / "views" / "kept").write_bytes(b"")
    assert frontend_dir(tmp_path) == folder and (folder / "views" / "kept").exists()  # its own views stay


def test_a_selection_of_these_maps_is_read_sorted_and_unique():
    value = {"selected": [9, 2, 2, 0], "n": 10, "version": "v", "seq": 4}
    assert chosen_samples(value, n_samples=10, version="v").tolist() == [0, 2, 9]
    assert chosen_samples({**value, "selected": []}, n_samples=10, version="v").size == 0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "garbage",
        {"selected": [1], "n": 11, "version": "v"},  # another view's n
        {"selected": [1], "n": 10, "version": "old"},  # the maps before a change of view
        {"selected": "1,2", "n": 10, "version": "v"},
        {"selected": [1, "2"], "n": 10, "version": "v"},
        {"selected": [1, True], "n": 10, "version": "v"},
        {"selected": [1, 2.5], "n": 10, "version": "v"},
        {"selected": [[1]], "n": 10, "version": "v"},
        {"selected": [1] * 11, "n": 10, "version": "v"},  # more than there are samples
    ],
)
def test_anything_else_is_no_selection(value):
    assert chosen_samples(value, n_samples=10, version="v") is None


def test_indices_outside_the_samples_are_dropped_even_huge_ones():
    value = {"selected": [-1, 3, 10, 2**80, -(2**90)], "n": 10, "version": "v"}
    assert chosen_samples(value, n_samples=10, version="v").tolist() == [3]


def test_the_version_names_what_the_maps_show():
    assert figures_version(["k1"], "label", 10) == figures_version(["k1"], "label", 10)
    assert len({figures_version(["k1"], "label", 10), figures_version(["k2"], "label", 10)}) == 2
