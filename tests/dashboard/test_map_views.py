"""The linked maps' view files (dashboard/map_views.py): read back exactly as written, named by their content,
the least recently used dropped first; the frame that reads them: tests/e2e/test_linked_maps_frame.py."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from alignscope.dashboard import map_views
from alignscope.dashboard.map_views import MapsView, read_view, touch_view, write_view


def _view(seed=0, n=50, figure_a='{"data": []}') -> MapsView:
    rng = np.random.default_rng(seed)
    colour = rng.normal(size=n)
    colour[3] = np.nan
    return MapsView(
        figure_jsons=(figure_a, '{"layout": {"title": "B"}}'),
        coords=(rng.normal(size=(n, 2)), rng.normal(size=(n, 2))),
        drawn=np.sort(rng.choice(n, size=n // 2, replace=False)).astype(np.int32),
        colour=colour,
        sample_ids=[f's{i} "<b>é</b>"\n' for i in range(n)],  # user text of any kind
    )


def test_a_view_is_read_back_exactly_from_a_file_named_by_its_content(tmp_path):
    view = _view(n=51)  # odd sizes: sections padded to 8 bytes
    name = write_view(tmp_path, view)
    back = read_view(tmp_path, name)
    assert back.figure_jsons == view.figure_jsons and back.sample_ids == view.sample_ids
    assert all(np.array_equal(a, b) for a, b in zip(back.coords, view.coords))
    assert np.array_equal(back.drawn, view.drawn) and np.array_equal(back.colour, view.colour, equal_nan=True)
    # the frame reads the sections in place: the header ends, and every section starts, 8-byte aligned
    content = gzip.decompress((tmp_path / "views" / name).read_bytes())
    size = int.from_bytes(content[:4], "little")
    header = json.loads(content[4 : 4 + size])
    assert (4 + size) % 8 == 0 and header["format"] == 1 and header["n"] == 51
    assert all(start % 8 == 0 for start, _ in header["sections"].values())
    assert write_view(tmp_path, _view(n=51)) == name  # the same content: the same file, written once
    other = write_view(tmp_path, _view(n=51, figure_a='{"data": [1]}'))
    assert other != name
    assert sorted(path.name for path in (tmp_path / "views").iterdir()) == sorted([name, other])  # no temp left


def test_old_views_are_dropped_least_recently_used_first_before_a_new_one_is_written(tmp_path, monkeypatch):
    first, second = write_view(tmp_path, _view(seed=1)), write_view(tmp_path, _view(seed=2))
    views = tmp_path / "views"
    size = (views / first).stat().st_size
    os.utime(views / first, (1, 1))  # long ago
    os.utime(views / second, (2, 2))
    assert touch_view(tmp_path, first)  # used again now: the most recent
    monkeypatch.setattr(map_views, "MAX_VIEW_BYTES", 2 * size + size // 2)
    third = write_view(tmp_path, _view(seed=3))  # room for it is made first
    assert sorted(path.name for path in views.iterdir()) == sorted([first, third])
    assert not touch_view(tmp_path, second)


def test_a_view_used_in_the_last_minutes_stays_even_beyond_the_limit(tmp_path, monkeypatch):
    first = write_view(tmp_path, _view(seed=1))
    monkeypatch.setattr(map_views, "MAX_VIEW_BYTES", 1)
    second = write_view(tmp_path, _view(seed=2))  # a page may be fetching the first: both stay
    assert sorted(path.name for path in (tmp_path / "views").iterdir()) == sorted([first, second])
    long_ago = time.time() - 2 * map_views.RECENT_SECONDS
    os.utime(tmp_path / "views" / first, (long_ago, long_ago))
    third = write_view(tmp_path, _view(seed=3))
    assert sorted(path.name for path in (tmp_path / "views").iterdir()) == sorted([second, third])


def test_a_view_that_cannot_be_marked_used_is_still_there(tmp_path, monkeypatch):
    name = write_view(tmp_path, _view())

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(map_views.os, "utime", read_only)  # a read-only cache, another user's file
    assert touch_view(tmp_path, name)
    assert not touch_view(tmp_path, "f" * 32 + ".maps.gz")


def test_only_view_names_are_read():
    with pytest.raises(ValueError):
        read_view(Path("/"), "../../etc/passwd")
