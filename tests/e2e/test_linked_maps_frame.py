"""The linked maps frame (dashboard/linked_maps.html) in Chromium, without Streamlit: the folder the dashboard
serves it from is served over HTTP (the frame fetches its view's file from it), the page is given its
arguments as Streamlit's page would (a render message), and what it sends back is caught on the same window. Boxes and lassos are drawn with the mouse on
plotly's own drag surface; the samples they select must be exactly map_reduction's rule over all points."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from alignscope.dashboard import plots_projection
from alignscope.dashboard.linked_maps import frontend_dir
from alignscope.dashboard.map_reduction import drawn_samples, samples_in_box, samples_in_lasso
from alignscope.dashboard.map_views import MapsView, write_view

N, BUDGET = 3_000, 300

_LISTEN = """() => { window.sent = [];
  window.addEventListener('message', (e) => { if (e.data && e.data.isStreamlitMessage) window.sent.push(e.data); }); }"""
# Streamlit's render message, resolved once it is delivered: the frame's own listener (registered first) has
# then queued its update, so a _SETTLED after it waits for that update too
_RENDER = """(a, theme) => new Promise((delivered) => {
  const seen = (e) => { if (e.data && e.data.type === 'streamlit:render') {
    window.removeEventListener('message', seen); delivered(); } };
  window.addEventListener('message', seen);
  window.postMessage({type: 'streamlit:render', args: a, theme}, '*'); })"""
_SELECTIONS = "() => window.sent.filter(m => m.type === 'streamlit:setComponentValue').map(m => m.value)"
_DRAWN = "() => ['map-a', 'map-b'].every(id => (document.getElementById(id)._fullData || []).length)"  # both maps
_SETTLED = "async () => { let last; do { last = queue; await last; } while (last !== queue); }"  # all updates done
# plotly's click train on map A is over: a press now starts a new one (dragelement: gd._mouseDownTime)
_CLICK_TRAIN_OVER = """() => { const gd = document.getElementById('map-a');
  return Date.now() - (gd._mouseDownTime || 0) > gd._context.doubleClickDelay; }"""


def _arguments(
    cache_dir: Path, selected=(), version="v1", edit_figure_b: Callable[[str], str] = str
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """The frame's arguments for N samples in two maps (the view written under ``cache_dir``)."""
    rng = np.random.default_rng(0)
    coords_a, coords_b = rng.normal(size=(N, 2)), rng.normal(size=(N, 2)) * 3.0
    labels = [str(i % 5) for i in range(N)]
    drawn = drawn_samples(N, budget=BUDGET)

    ids = [f"s<{i}>" for i in range(N)]  # user text: must reach hover labels escaped

    def figure(coords, title):
        return plots_projection.projection_scatter(coords, sample_ids=ids, title=title, labels=labels, drawn=drawn)

    view = write_view(
        frontend_dir(cache_dir),
        MapsView(
            figure_jsons=(figure(coords_a, "A").to_json(), edit_figure_b(figure(coords_b, "B").to_json())),
            coords=(coords_a, coords_b),
            drawn=drawn,
            colour=plots_projection.colour_scale_values(N, labels),
            sample_ids=ids,
        ),
    )
    arguments = {"view": f"views/{view}", "n": N, "selected": list(selected), "version": version}
    return arguments, coords_a, coords_b, drawn


@pytest.fixture
def served(tmp_path):
    """The frame's folder (under the cache dir ``tmp_path``) served over HTTP: the page's URL."""
    handler = functools.partial(_QuietHandler, directory=str(frontend_dir(tmp_path)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    thread.join()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102 - no request log in the test output
        pass


@pytest.fixture
def frame(page, tmp_path, served):
    """The frame's page with its arguments rendered; returns (page, coords_a, coords_b, drawn, arguments)."""
    page.goto(served)
    page.evaluate(_LISTEN)
    arguments, coords_a, coords_b, drawn = _arguments(tmp_path)
    page.evaluate(_RENDER, arguments)
    page.wait_for_function(_DRAWN)
    # a box or lasso drawn on map A reports its outline here, as plotly gives it to the frame
    page.evaluate(
        "() => document.getElementById('map-a').on('plotly_selected', (e) => {"
        " if (!e || !(e.selections || []).length) return;"
        " window.outline = JSON.parse(JSON.stringify(e.selections));"
        " window.plotlyPicks = e.points.filter(p => p.curveNumber === 0).map(p => p.pointIndex); })"
    )
    return page, coords_a, coords_b, drawn, arguments


def _drag(page, points: list[tuple[float, float]]) -> None:
    """Press at the first point of map A's plot area (fractions of it), move through the rest, release."""
    area = page.locator("#map-a .nsewdrag").first.bounding_box()
    at = [(area["x"] + fx * area["width"], area["y"] + fy * area["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def _shown(page, side: str) -> dict:
    """What a map highlights: the drawn points' positions (trace 0) and the extra points (trace 1)."""
    return page.evaluate(
        """(id) => { const d = document.getElementById(id).data;
          return {positions: d[0].selectedpoints ? Array.from(d[0].selectedpoints) : null,
                  x: Array.from(d[1].x || []), y: Array.from(d[1].y || [])}; }""",
        side,
    )


def _drawn_on_top(selected: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """The selected samples outside the layer that a map draws on top: all of them, or as many as the layer
    holds, evenly spaced (the spec the frame follows)."""
    outside = selected[~np.isin(selected, drawn)]
    if len(outside) <= len(drawn):
        return outside
    return outside[np.floor(np.arange(len(drawn)) * (len(outside) / len(drawn))).astype(int)]


def _expect_highlight(page, side: str, coords: np.ndarray, drawn: np.ndarray, selected: np.ndarray) -> None:
    shown = _shown(page, side)
    assert sorted(drawn[shown["positions"]].tolist()) == selected[np.isin(selected, drawn)].tolist()
    on_top = _drawn_on_top(selected, drawn)
    np.testing.assert_array_equal(np.column_stack([shown["x"], shown["y"]]).reshape(-1, 2), coords[on_top])


def _wait_sent(page, count: int) -> list[dict]:
    page.wait_for_function(f"() => ({_SELECTIONS})().length >= {count}")
    page.evaluate(_SETTLED)
    return page.evaluate(_SELECTIONS)


def test_a_box_selects_exactly_among_all_samples_and_both_maps_light_them_up(frame):
    page, coords_a, coords_b, drawn, arguments = frame
    _drag(page, [(0.35, 0.35), (0.65, 0.65)])
    (value,) = _wait_sent(page, 1)
    (box,) = page.evaluate("() => window.outline")
    expected = samples_in_box(coords_a, [box["x0"], box["x1"]], [box["y0"], box["y1"]])
    assert value["selected"] == expected.tolist() and value["n"] == N and value["version"] == "v1"
    # most of them are not in the drawn layer (a tenth of the samples): the selection is not the layer's
    assert np.isin(expected, drawn).sum() < len(expected) / 2 and len(expected) > 50
    page.wait_for_function("() => performance.getEntriesByName('alignscope-linked').length === 1")
    _expect_highlight(page, "map-b", coords_b, drawn, expected)
    # the map the box was drawn in draws the selected samples outside its layer on the server's echo (its
    # redraw waits while the server's rerun sends the page its table)
    page.evaluate(_RENDER, {**arguments, "selected": value["selected"]})
    page.evaluate(_SETTLED)
    _expect_highlight(page, "map-a", coords_a, drawn, expected)
    # the samples drawn on top show their ids on hover, escaped
    hover_ids = page.evaluate("() => Array.from(document.getElementById('map-b').data[1].customdata)")
    assert hover_ids == [f"s&lt;{i}&gt;" for i in _drawn_on_top(expected, drawn)]
    assert len(hover_ids) == BUDGET < (~np.isin(expected, drawn)).sum()  # capped at the layer's size


def test_without_an_echo_the_map_the_box_was_drawn_in_is_highlighted_anyway(frame):
    """Streamlit renders a component only when its arguments change: a box that leaves the selection as it
    was (here: the same box again) gets no echo, and its map must still end up showing it."""
    page, coords_a, coords_b, drawn, arguments = frame
    _drag(page, [(0.35, 0.35), (0.65, 0.65)])
    (value,) = _wait_sent(page, 1)
    page.evaluate(_RENDER, {**arguments, "selected": value["selected"]})
    page.evaluate(_SETTLED)
    _drag(page, [(0.35, 0.35), (0.65, 0.65)])  # the same samples: news to the server, no new arguments
    again = _wait_sent(page, 2)[-1]
    assert again["selected"] == value["selected"]
    expected = np.array(value["selected"])
    # the highlight clears the box's outline (plotly keeps it in the layout until then)
    page.wait_for_function("() => !(document.getElementById('map-a').layout.selections || []).length")
    page.evaluate(_SETTLED)
    _expect_highlight(page, "map-a", coords_a, drawn, expected)
    _expect_highlight(page, "map-b", coords_b, drawn, expected)


def test_a_lasso_selects_by_the_even_odd_rule_over_all_samples(frame):
    page, coords_a, coords_b, drawn, _ = frame
    page.evaluate("() => Plotly.relayout('map-a', {dragmode: 'lasso'})")
    _drag(page, [(0.3, 0.3), (0.7, 0.35), (0.5, 0.5), (0.7, 0.7), (0.3, 0.65), (0.3, 0.3)])
    (value,) = _wait_sent(page, 1)
    (outline,) = page.evaluate("() => window.outline")
    assert outline["type"] == "path"
    numbers = [float(v) for v in re.split(r"[\s,]+", re.sub("[MLZ]", " ", outline["path"]).strip())]
    expected = samples_in_lasso(coords_a, numbers[0::2], numbers[1::2])
    assert value["selected"] == expected.tolist() and len(expected) > 50
    # plotly's own picks among the drawn points (its test is in pixels: a point on the outline may differ)
    plotly_picks = set(drawn[page.evaluate("() => window.plotlyPicks")].tolist())
    assert len(plotly_picks ^ (set(expected.tolist()) & set(drawn.tolist()))) <= 2 and plotly_picks
    _expect_highlight(page, "map-b", coords_b, drawn, expected)


def test_the_servers_selection_is_shown_and_a_stale_echo_does_not_undo_a_newer_one(frame):
    page, coords_a, coords_b, drawn, arguments = frame
    chosen = np.array([0, 5, int(drawn[3]), N - 1])
    page.evaluate(_RENDER, {**arguments, "selected": chosen.tolist()})  # a link, a search, a button
    page.wait_for_function("() => document.getElementById('map-b').data[0].selectedpoints")
    page.evaluate(_SETTLED)
    _expect_highlight(page, "map-a", coords_a, drawn, np.sort(chosen))
    _expect_highlight(page, "map-b", coords_b, drawn, np.sort(chosen))
    # two boxes one after the other; the server's echo of the first arrives after the second was drawn
    _drag(page, [(0.2, 0.2), (0.5, 0.5)])
    _drag(page, [(0.5, 0.5), (0.8, 0.8)])
    first, second = _wait_sent(page, 2)
    page.evaluate(_RENDER, {**arguments, "selected": first["selected"]})
    page.evaluate(_SETTLED)
    _expect_highlight(page, "map-b", coords_b, drawn, np.array(second["selected"]))
    page.evaluate(_RENDER, {**arguments, "selected": []})  # "Clear selection"
    page.wait_for_function("() => document.getElementById('map-b').data[0].selectedpoints == null")
    assert _shown(page, "map-a")["positions"] is None and _shown(page, "map-b")["x"] == []


def test_a_new_version_redraws_and_the_same_version_keeps_the_users_zoom(frame, tmp_path):
    page, _, _, _, arguments = frame
    page.evaluate("() => Plotly.relayout('map-b', {'xaxis.range': [0, 1]})")
    page.evaluate(_RENDER, {**arguments, "selected": [1, 2]})
    page.wait_for_function("() => document.getElementById('map-b').data[0].selectedpoints")
    assert page.evaluate("() => document.getElementById('map-b').layout.xaxis.range") == [0, 1]
    other = _arguments(
        tmp_path, version="v2", edit_figure_b=lambda figure: figure.replace('"text":"B"', '"text":"B, another layer"')
    )[0]
    assert other["view"] != arguments["view"]  # a view's file is named by its content
    page.evaluate(_RENDER, other)
    page.wait_for_function("() => view.version === 'v2'")
    page.evaluate(_SETTLED)
    assert page.evaluate("() => document.getElementById('map-b').layout.title.text") == "B, another layer"


def test_a_click_selects_nothing_and_a_double_click_clears(frame):
    page, coords_a, coords_b, drawn, _ = frame
    _drag(page, [(0.35, 0.35), (0.65, 0.65)])
    (box,) = _wait_sent(page, 1)
    area = page.locator("#map-a .nsewdrag").first.bounding_box()
    # a single click, not the second of a double click: plotly counts a press within its doubleClickDelay
    # of the box's press as one (and clears the selection), which a quick frame made possible
    page.wait_for_function(_CLICK_TRAIN_OVER)
    page.mouse.click(area["x"] + 0.9 * area["width"], area["y"] + 0.9 * area["height"])  # plotly: an empty event
    page.evaluate(_SETTLED)
    assert page.evaluate(_SELECTIONS) == [box]
    _expect_highlight(page, "map-b", coords_b, drawn, np.array(box["selected"]))
    page.wait_for_function(_CLICK_TRAIN_OVER)  # a double click of its own, not the single click's 2nd and 3rd
    page.mouse.dblclick(area["x"] + 0.9 * area["width"], area["y"] + 0.9 * area["height"])
    cleared = _wait_sent(page, 2)[-1]
    assert cleared["selected"] == [] and cleared["seq"] > box["seq"]
    assert _shown(page, "map-b")["positions"] is None


def test_shift_adds_a_box_and_the_same_samples_again_are_sent_again(frame):
    page, coords_a, _, _, arguments = frame
    _drag(page, [(0.2, 0.2), (0.4, 0.4)])
    (first,) = _wait_sent(page, 1)
    page.evaluate(_RENDER, {**arguments, "selected": first["selected"]})  # the server's echo
    page.evaluate(_SETTLED)
    page.keyboard.down("Shift")
    _drag(page, [(0.6, 0.6), (0.8, 0.8)])
    page.keyboard.up("Shift")
    second = _wait_sent(page, 2)[-1]
    (box,) = page.evaluate("() => window.outline")
    added = samples_in_box(coords_a, [box["x0"], box["x1"]], [box["y0"], box["y1"]])
    assert second["selected"] == np.union1d(first["selected"], added).tolist() and len(added) and first["selected"]
    # "Clear selection" on the server, then the first box again: news to the server (a new seq)
    page.evaluate(_RENDER, {**arguments, "selected": []})
    _drag(page, [(0.2, 0.2), (0.4, 0.4)])
    again = _wait_sent(page, 3)[-1]
    assert again["selected"] == first["selected"] and again["seq"] > second["seq"] > first["seq"]


def test_redrawing_for_a_new_view_does_not_send_a_selection(frame, tmp_path):
    """Plotly reports a map's selection as emptied when its figure is replaced: that is not the user's."""
    page, _, _, _, arguments = frame
    _drag(page, [(0.35, 0.35), (0.65, 0.65)])
    (box,) = _wait_sent(page, 1)
    page.evaluate(_RENDER, {**arguments, "selected": box["selected"]})  # the server's echo
    other = _arguments(tmp_path, version="v2")[0]
    page.evaluate(_RENDER, {**other, "selected": box["selected"]})
    page.wait_for_function("() => view.version === 'v2'")
    page.evaluate(_SETTLED)
    assert page.evaluate(_SELECTIONS) == [box]


def test_text_and_grid_follow_the_pages_theme(frame, tmp_path):
    page, _, _, _, arguments = frame
    dark = {"base": "dark", "textColor": "#fafafa"}
    page.evaluate("([a, theme]) => (" + _RENDER + ")(a, theme)", [arguments, dark])  # the page turned dark
    page.evaluate(_SETTLED)
    layout = page.evaluate("() => document.getElementById('map-b').layout")
    assert layout["font"]["color"] == "#fafafa" and layout["xaxis"]["gridcolor"] == "rgba(255,255,255,0.12)"
    other = _arguments(tmp_path, version="v2")[0]  # a new view drawn on a dark page starts dark
    page.evaluate("([a, theme]) => (" + _RENDER + ")(a, theme)", [other, dark])
    page.wait_for_function("() => view.version === 'v2'")
    page.evaluate(_SETTLED)
    assert page.evaluate("() => document.getElementById('map-a').layout.yaxis.color") == "#fafafa"


def test_a_view_that_cannot_be_fetched_is_said_in_words_and_the_next_render_draws_again(frame):
    page, _, _, _, arguments = frame
    gone = {**arguments, "view": "views/" + "0" * 32 + ".maps.gz", "version": "gone"}
    page.evaluate(_RENDER, gone)  # dropped from disk by another session meanwhile
    page.wait_for_function("() => document.getElementById('problem').textContent.includes('HTTP 404')")
    assert "Reload the page" in page.inner_text("#problem")
    assert not page.evaluate(_DRAWN)  # no maps of another view left to select in
    page.evaluate(_RENDER, arguments)  # the view drawn before, again
    page.wait_for_function(_DRAWN)
    page.evaluate(_SETTLED)
    assert page.inner_text("#problem") == ""


def test_a_file_of_other_samples_is_not_drawn(frame):
    page, _, _, _, arguments = frame
    page.evaluate(_RENDER, {**arguments, "n": N + 1, "version": "v2"})
    page.wait_for_function("() => document.getElementById('problem').textContent.includes('not of these')")
    assert not page.evaluate(_DRAWN)


def test_only_the_latest_of_several_views_sent_at_once_is_drawn(frame, tmp_path):
    page, _, _, _, arguments = frame
    page.evaluate(
        "() => { window.drew = []; const original = draw;"
        " window.draw = (args, ...rest) => { window.drew.push(args.version); return original(args, ...rest); }; }"
    )
    page.evaluate(
        "([a, b]) => { window.postMessage({type: 'streamlit:render', args: a}, '*');"
        " window.postMessage({type: 'streamlit:render', args: b}, '*'); }",
        [{**arguments, "version": "v2"}, {**arguments, "version": "v3"}],
    )
    page.wait_for_function("() => view && view.version === 'v3'")
    page.evaluate(_SETTLED)
    assert page.evaluate("() => window.drew") == ["v3"]


@pytest.mark.parametrize("colour", ["label", "alignment"])
def test_the_maps_plotly_js_draws_a_map_exactly_as_the_plotly_packages_own(page, tmp_path, served, colour):
    """The frame's plotly.js (the maps' own bundle, built with fewer traces) against the full one of the
    plotly package: the same figure (points coloured by label with annotations, or by a value with a colour
    bar; the density layer; titles) drawn pixel for pixel alike."""
    import gzip
    from importlib import resources

    from PIL import Image, ImageChops

    rng = np.random.default_rng(3)
    coords = np.concatenate([rng.normal(size=(1500, 2)), rng.normal(loc=4.0, size=(1500, 2))])
    colours = {"labels": [str(i % 4) for i in range(3000)]} if colour == "label" else {"color_values": rng.random(3000)}
    figure = plots_projection.projection_scatter(
        coords, sample_ids=[f"s{i}" for i in range(3000)], title="A", drawn=drawn_samples(3000, budget=500), **colours
    ).to_json()
    folder = frontend_dir(tmp_path)
    (folder / "full.js").write_bytes(resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes())
    (folder / "maps.js").write_bytes(gzip.decompress((folder / "plotly.min.js.gz").read_bytes()))
    shots = []
    for bundle in ("full.js", "maps.js"):
        (folder / f"draw-{bundle}.html").write_text(
            f'<html><body style="margin:0"><div id="plot" style="width:640px;height:480px"></div>'
            f'<script src="{bundle}"></script><script>const f = {figure};'
            "Plotly.newPlot('plot', f.data, f.layout).then(() => { window.drawn = true; });"
            "</script></body></html>"
        )
        page.goto(served.replace("index.html", f"draw-{bundle}.html"))
        page.wait_for_function("() => window.drawn === true")
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        shots.append(tmp_path / f"{bundle}.png")
        page.locator("#plot").screenshot(path=str(shots[-1]))
    full, maps = (Image.open(shot).convert("RGB") for shot in shots)
    assert full.size == maps.size and ImageChops.difference(full, maps).getbbox() is None
    assert len(full.getcolors(maxcolors=2**20)) > 20  # points of several colours and the density were drawn
