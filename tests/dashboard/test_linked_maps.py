"""The linked maps frame's Python side: the folder it is served from, and what it may send back (the
browser is not trusted). The frame itself runs in Chromium: tests/e2e/test_linked_maps_frame.py."""

from __future__ import annotations

import gzip
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from alignscope.dashboard import linked_maps
from alignscope.dashboard.linked_maps import (
    chosen_samples,
    figures_version,
    frontend_dir,
    ids_bytes,
    read_view,
    touch_view,
    write_view,
)


def test_the_frame_is_served_with_the_plotly_packages_own_plotly_js(tmp_path):
    folder = frontend_dir(tmp_path)
    page = (folder / "index.html").read_bytes()
    assert page == resources.files("alignscope.dashboard").joinpath("linked_maps.html").read_bytes()
    plotly_js = resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    assert gzip.decompress((folder / "plotly.min.js.gz").read_bytes()) == plotly_js
    assert b'gunzipped("plotly.min.js.gz")' in page and b"<script src" not in page and b"://" not in page  # no network
    stamp = (folder / "plotly.min.js.gz").stat().st_mtime_ns
    assert frontend_dir(tmp_path) == folder and (folder / "plotly.min.js.gz").stat().st_mtime_ns == stamp
    assert sorted(path.name for path in folder.iterdir()) == ["index.html", "plotly.min.js.gz"]  # no temp left


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


def test_sample_ids_reach_the_frame_as_utf8_json_whatever_they_hold():
    ids = ['a "quoted" id', "zürich\n2", "</script>", "x" * 300]
    assert json.loads(ids_bytes(ids).decode("utf-8")) == ids


def _view(cache_dir, seed=0, n=50, figure_a='{"data": []}'):
    rng = np.random.default_rng(seed)
    coords = (rng.normal(size=(n, 2)), rng.normal(size=(n, 2)))
    drawn = np.sort(rng.choice(n, size=n // 2, replace=False))
    colour = rng.normal(size=n)
    colour[3] = np.nan
    ids = [f"s{i} <b>é</b>" for i in range(n)]
    name = write_view(
        cache_dir,
        figure_jsons=(figure_a, '{"layout": {"title": "B"}}'),
        coords=coords,
        drawn=drawn,
        colour=colour,
        ids=ids_bytes(ids),
    )
    return name, coords, drawn, colour, ids


def test_a_view_is_read_back_exactly_from_a_file_named_by_its_content(tmp_path):
    name, coords, drawn, colour, ids = _view(tmp_path, n=51)  # odd sizes: sections padded to 8 bytes
    view = read_view(tmp_path, name)
    assert view["n"] == 51 and view["ids"] == ids and view["figure_b"] == '{"layout": {"title": "B"}}'
    assert np.array_equal(view["coords_a"], coords[0]) and np.array_equal(view["coords_b"], coords[1])
    assert np.array_equal(view["drawn"], drawn) and np.array_equal(view["colour"], colour, equal_nan=True)
    # the frame reads the sections in place: the header ends, and every section starts, 8-byte aligned
    content = gzip.decompress((frontend_dir(tmp_path) / "views" / name).read_bytes())
    size = int.from_bytes(content[:4], "little")
    assert (4 + size) % 8 == 0
    assert all(start % 8 == 0 for start, _ in json.loads(content[4 : 4 + size])["sections"].values())
    assert _view(tmp_path, n=51)[0] == name  # the same content: the same file, written once
    assert _view(tmp_path, n=51, figure_a='{"data": [1]}')[0] != name
    assert sorted(path.name for path in (frontend_dir(tmp_path) / "views").iterdir()) == sorted(
        {name, _view(tmp_path, n=51, figure_a='{"data": [1]}')[0]}
    )  # no temp file left


def test_old_views_are_dropped_least_recently_used_first(tmp_path, monkeypatch):
    first, second = _view(tmp_path, seed=1)[0], _view(tmp_path, seed=2)[0]
    folder = frontend_dir(tmp_path) / "views"
    size = (folder / first).stat().st_size
    os.utime(folder / first, (1, 1))  # long ago
    os.utime(folder / second, (2, 2))
    assert touch_view(tmp_path, first)  # used again now: the most recent
    monkeypatch.setattr(linked_maps, "MAX_VIEW_BYTES", 2 * size + size // 2)
    third = _view(tmp_path, seed=3)[0]
    assert sorted(path.name for path in folder.iterdir()) == sorted([first, third])
    assert not touch_view(tmp_path, second)


def test_only_view_names_are_read():
    with pytest.raises(ValueError):
        read_view(Path("/"), "../../etc/passwd")
