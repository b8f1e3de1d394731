"""The dashboard in a real browser: every page on the embedded default, numbers checked against core,
a box selection in one projection highlighted in the other, a copied link reopened in a fresh context,
a histogram bar selecting its samples. Screenshots go to tests/e2e/screenshots/ (git-ignored)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.server import (
    PAGES,
    TIMEOUT_MS,
    drag_box,
    maps_frame,
    no_exceptions,
    open_page,
    plot_data,
    wait_plots,
    wait_settled,
)

pytestmark = pytest.mark.e2e
DEFAULT_N = 500  # the Selection's default subset
HIGHLIGHTED_IN_A_AND_B = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".every(p => p.data && p.data[0].selectedpoints && p.data[0].selectedpoints.length > 0)"
)


def _core(e2e_cache, model_a="digits-cnn-s0", model_b="digits-cnn-s1", n=DEFAULT_N, k=10):
    """(mutual k-NN at the last layers, per-sample overlap, subset sample ids) straight from alignscope.core."""
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.metrics.registry import compute
    from alignscope.core.neighbors import knn_indices, per_sample_overlap
    from alignscope.core.settings import Settings

    cache = FeatureCache(settings=Settings(cache_dir=e2e_cache))
    full = load_dataset("digits")
    subset = full.subset(n, seed=0)
    layers = []
    for model in (model_a, model_b):
        features, result = cache.get_or_extract(model, full)
        assert result.hit, f"{model} was not precomputed"
        position = {sid: i for i, sid in enumerate(features.sample_ids)}
        layers.append(features.take([position[sid] for sid in subset.sample_ids]).values[-1])
    overlap = per_sample_overlap(knn_indices(layers[0], k), knn_indices(layers[1], k)).numpy()
    return compute("mutual_knn", layers[0], layers[1], k=k), overlap, list(subset.sample_ids)


def _metric_value(page, label_prefix: str) -> float:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label_prefix).first
    return float(metric.locator('[data-testid="stMetricValue"]').inner_text().strip())


def _query(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlparse(url).query, keep_blank_values=True).items()}


def test_a_deep_link_as_a_fresh_servers_first_request_runs_the_app(page, fresh_server):
    open_page(page, f"{fresh_server}/neighbours?n=120", title="Neighbours")
    navigation = page.locator('[data-testid="stSidebarNav"]')
    assert navigation.get_by_text("Data & models", exact=True).count() == 1, navigation.inner_text()
    # the default page by its own name keeps the link's settings (no "Page not found", no reset)
    open_page(page, f"{fresh_server}/compare?b=digits-cnn-s2&n=120&perm=0&boot=0", title="Compare two models")
    assert page.get_by_text("Page not found").count() == 0
    captions = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="digits-cnn-s2 layer")
    assert "vs digits-cnn-s2 layer" in captions.first.inner_text()  # the view's own caption, after the guide
    assert _query(page.url)["b"] == "digits-cnn-s2" and _query(page.url)["n"] == "120"


def test_every_page_renders_on_the_embedded_default(page, server, e2e_cache, screenshots):
    score, _, _ = _core(e2e_cache)
    for path, title in PAGES.items():
        open_page(page, f"{server}/{path}", title=title)
        no_exceptions(page)
        if path == "compare":
            wait_plots(page, 1)
            assert _metric_value(page, "mutual_knn") == pytest.approx(score, abs=6e-4)
            assert re.fullmatch(r"-?\d+\.\d{3}", page.locator('[data-testid="stMetricValue"]').first.inner_text())
        elif path == "projections":
            maps = maps_frame(page)
            for index in (0, 1):
                data = plot_data(maps, index)
                assert data["type"] == "scattergl" and data["n"] == DEFAULT_N
        elif path == "neighbours":
            assert _metric_value(page, "Mutual k-NN") == pytest.approx(score, abs=6e-4)
            assert _metric_value(page, "Chance level") == pytest.approx(10 / (DEFAULT_N - 1), abs=6e-4)
        elif path in ("many-models", "sweeps"):
            wait_plots(page, 1)
        page.screenshot(path=str(screenshots / f"{path}.png"), full_page=True)


def test_box_selection_is_linked_and_the_link_reopens_the_same_view(page, browser, server, e2e_cache, screenshots):
    _, _, sample_ids = _core(e2e_cache)
    open_page(page, f"{server}/projections", title="Projections")
    maps = maps_frame(page)
    drag_box(page, 0, 0.30, 0.70, within=maps)  # on Plotly's drag surface: a box selection (dragmode = select)
    page.wait_for_function("() => /[?&]sel=[^&]/.test(location.search)")
    page.get_by_text(re.compile(r"^\d+ selected samples$")).wait_for()
    maps.wait_for_function(HIGHLIGHTED_IN_A_AND_B)
    no_exceptions(page)
    highlighted_b = plot_data(maps, 1)["selectedpoints"]
    highlighted_a = plot_data(maps, 0)["selectedpoints"]
    assert highlighted_a and sorted(highlighted_b) == sorted(highlighted_a)
    linked = _linked_ids(page.url)
    # The link holds every selected sample (compactly encoded), in sample order.
    assert linked == [sample_ids[i] for i in sorted(highlighted_b)]
    heading = page.get_by_text(re.compile(r"^\d+ selected samples$")).inner_text()
    assert heading == f"{len(highlighted_b)} selected samples"
    page.screenshot(path=str(screenshots / "projections-selection.png"), full_page=True)

    # Copy the link from the share popover and open it in a fresh browser context (no shared session):
    # the same view.
    # once the selection's rerun is over and the table and thumbnails above the share button have their size:
    # until then the button moves down, and a click can land where it was (the popover never opened in one CI
    # run); a layout change between the click's press and release can still miss it, so it is clicked again
    wait_settled(page)
    share = page.get_by_role("button", name=re.compile("Link to this exact view")).first
    code = page.locator('[data-testid="stCode"]').filter(has_text="sel=").first
    for attempt in range(3):
        share.click()
        try:
            code.wait_for(timeout=30_000)
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
    link = code.inner_text().strip()
    assert _linked_ids(link) == linked
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh.set_default_timeout(TIMEOUT_MS)
    try:
        other = fresh.new_page()
        open_page(other, link, title="Projections")
        other_maps = maps_frame(other)
        other_maps.wait_for_function(HIGHLIGHTED_IN_A_AND_B)
        no_exceptions(other)
        reopened = plot_data(other_maps, 1)["selectedpoints"]
        assert [sample_ids[i] for i in sorted(reopened)] == linked
        assert _query(other.url) == _query(link)
        other.get_by_text(f"{len(linked)} selected samples", exact=True).wait_for()
        other.screenshot(path=str(screenshots / "projections-from-link.png"), full_page=True)
    finally:
        fresh.close()


def test_a_reduced_maps_box_selects_every_sample_inside_drawn_or_not(page, reduced_server, e2e_cache, screenshots):
    """Maps over the point budget (here 150 of 500; at 100,000 samples with the default 10,000) draw a
    layer over the density of all points; a box selects every sample inside it, drawn or not, both maps
    draw them all, and the link holds them all."""
    from alignscope.core.analysis.engine import Engine
    from alignscope.core.analysis.requests import ProjectionRequest
    from alignscope.core.settings import Settings
    from alignscope.dashboard.map_reduction import samples_in_box
    from tests.e2e.conftest import REDUCED_MAP_POINTS

    _, _, sample_ids = _core(e2e_cache)
    coords = (
        Engine(settings=Settings(cache_dir=e2e_cache))
        .run(ProjectionRequest("digits-cnn-s0", "digits", DEFAULT_N))
        .coords
    )
    open_page(page, f"{reduced_server}/projections", title="Projections")
    maps = maps_frame(page)
    assert plot_data(maps, 0)["n"] == plot_data(maps, 1)["n"] == REDUCED_MAP_POINTS
    assert maps.evaluate("() => document.querySelectorAll('.js-plotly-plot')[0].data[2].type") == "heatmap"
    drawn_before = maps.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot')[0]._fullData[0].customdata || [])"
        ".map(row => row[0])"
    )
    # the box as plotly reports it (its ``selections``), in data coordinates
    maps.evaluate(
        "() => document.querySelectorAll('.js-plotly-plot')[0].on('plotly_selected', (event) => {"
        " if (!event || !(event.selections || []).length) return;"
        " window.boxSelected = JSON.parse(JSON.stringify(event.selections[0]));"
        " window.boxPoints = event.points.filter(p => p.curveNumber === 0).map(p => p.customdata[0]); })"
    )
    drag_box(page, 0, 0.35, 0.65, within=maps)
    page.get_by_text(re.compile(r"^\d+ selected samples$")).wait_for()
    box = maps.evaluate("() => window.boxSelected")
    expected = [sample_ids[i] for i in samples_in_box(coords, [box["x0"], box["x1"]], [box["y0"], box["y1"]])]
    no_exceptions(page)
    assert _linked_ids(page.url) == expected
    # among the drawn points the selection is exactly plotly's own; and it holds more samples than were
    # drawn inside the box: the selection is not the drawn layer's
    browser_picked = maps.evaluate("() => window.boxPoints")
    assert set(browser_picked) == set(expected) & set(drawn_before)
    assert len(expected) > len(browser_picked) > 0
    page.get_by_text(f"{len(expected)} selected samples", exact=True).wait_for()
    # map B lights up every selected sample: the drawn ones in place, the others drawn on top
    maps.wait_for_function(
        "(count) => { const p = document.querySelectorAll('.js-plotly-plot')[1];"
        " return p.data[0].selectedpoints && p.data[0].selectedpoints.length + p.data[1].x.length === count; }",
        arg=len(expected),
    )
    page.screenshot(path=str(screenshots / "projections-reduced-selection.png"), full_page=True)


def _linked_ids(url: str) -> list[str]:
    """The selected sample ids a link holds, decoded as the dashboard decodes them."""
    from alignscope.dashboard.selection import decode_samples
    from alignscope.dashboard.url_state import DashboardContext

    ids, warnings = decode_samples(_query(url)["sel"], "digits", DashboardContext())
    assert not warnings
    return list(ids)


def test_clicking_a_histogram_bar_selects_its_samples(page, server, e2e_cache, screenshots):
    _, overlap, sample_ids = _core(e2e_cache)
    open_page(page, f"{server}/neighbours", title="Neighbours")
    wait_plots(page, 1)
    histogram = page.locator(".js-plotly-plot").first
    bars = histogram.locator("g.point path")
    bars.first.wait_for()
    # The shortest non-empty bar: few samples, so the whole bin fits in a link.
    shared = np.rint(overlap * 10).astype(int)
    counts = np.bincount(shared, minlength=11).tolist()
    heights = [bars.nth(i).bounding_box()["height"] for i in range(bars.count())]
    candidates = [i for i, h in enumerate(heights) if h > 3]
    target = min(candidates, key=lambda i: heights[i])
    # Plotly's drag layer sits on top of the bars and turns a click there into a point click.
    histogram.scroll_into_view_if_needed()
    box = bars.nth(target).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => /[?&]sel=[^&]/.test(location.search)")
    toggle = page.get_by_text(re.compile(r"^Only the \d+ selected samples$"))
    toggle.wait_for()
    selected = int(re.search(r"\d+", toggle.inner_text()).group())
    assert selected in counts and selected > 0
    # Bins of equal size are indistinguishable by count: accept any bin with that many samples.
    expected = [[sample_ids[i] for i in np.flatnonzero(shared == j)] for j in range(11) if counts[j] == selected]
    assert _linked_ids(page.url) in expected
    no_exceptions(page)
    page.screenshot(path=str(screenshots / "neighbours-bin.png"), full_page=True)


def test_the_exports_are_made_when_clicked_and_hold_the_views_data(page, server):
    """The download buttons build their files on click (deferred): each click yields the whole file."""
    import json

    open_page(page, f"{server}/compare?n=120&perm=0&boot=0", title="Compare two models")
    # the heatmap's buttons come with the run that draws it (while its job runs a fragment reruns the page
    # each second): clicked once that run is over and the layout is final
    page.get_by_role("button", name="Heatmap (CSV)").first.wait_for()
    wait_plots(page, 2)  # the scores chart and the heatmap
    wait_settled(page)
    files = {}
    for label in ("Figure (HTML)", "Result card (JSON)", "Heatmap (CSV)"):
        button = page.get_by_role("button", name=label).first
        with page.expect_download() as download:
            button.click()
        files[label] = open(download.value.path(), encoding="utf-8").read()  # noqa: SIM115
    html = files["Figure (HTML)"]
    assert html.lstrip().lower().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "plotly" in html and "A:" in html  # plotly.js inlined, and the heatmap's own layer names
    card = json.loads(files["Result card (JSON)"])
    assert card["config"]["n_effective"] == 120 and "n=120" in card["link"]
    header, *rows = files["Heatmap (CSV)"].strip().splitlines()
    assert len(rows) == 5 and len(header.split(",")) == 6  # digits CNN: 5 x 5 layers, with the index column


# A point off the centre of the Many models matrix's first off-diagonal cell (page coordinates: a click
# near it opens the cell, not just one at its centre) and the two models and layers it names: each cell's
# click target carries (row model, column model, layer, layer, …).
_OFF_DIAGONAL_CELL = """() => {
  const gd = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(p => (p.data || []).some(t => t.name === 'cells'));
  const targets = gd.data.find(t => t.name === 'cells');
  const index = targets.customdata.findIndex(c => c[0] !== c[1]);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const count = Math.sqrt(targets.x.length), height = ya._length / count;  // a cell's height (px)
  return {x: box.left + xa._offset + xa.l2p(xa.d2c(targets.x[index])) + 0.2 * height,
          y: box.top + ya._offset + ya.l2p(ya.d2c(targets.y[index])) - 0.25 * height,
          cell: targets.customdata[index].slice(0, 4)};
}"""


def test_a_click_on_a_many_models_cell_opens_that_pair_in_compare(page, server):
    open_page(page, f"{server}/many-models?n=120&perm=0&boot=0", title="Many models")
    wait_plots(page, 1)
    wait_settled(page)
    models = _query(page.url)["models"].split(",")
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    target = page.evaluate(_OFF_DIAGONAL_CELL)
    row, column, layer_row, layer_column = target["cell"]
    page.mouse.click(target["x"], target["y"])
    page.wait_for_url(lambda url: "/many-models" not in url)  # Compare: the app's default page, at /
    page.get_by_role("heading", name="Compare two models", exact=True).first.wait_for()
    query = _query(page.url)
    assert (query["a"], query["b"]) == (models[row], models[column]) and models[row] != models[column]
    assert (int(query["la"]), int(query["lb"])) == (layer_row, layer_column)
    assert query["n"] == "120"  # the rest of the view comes along


HOSTILE_LABELS = (
    "[click me](https://example.com)",
    "![img](https://example.com/x.png)",
    "see www.example.org",
    "me@example.com",
)


@pytest.fixture
def hostile_labels_server(tmp_path, trained_models_dir, monkeypatch):
    """A server over a cache holding "hostile": 8 uploaded images whose labels are Markdown, a bare URL and an
    address, with the digits CNNs' features of them (uploaded before the server starts: it reads the
    registered datasets as it starts)."""
    import io
    import zipfile

    from PIL import Image

    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.settings import get_settings
    from alignscope.core.uploads import add_image_dataset
    from tests.e2e.conftest import running_server

    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    for path in trained_models_dir.iterdir():
        if path.suffix in (".safetensors", ".json"):
            (cache / "models" / path.name).write_bytes(path.read_bytes())
    files = {}
    for i in range(8):
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
        files[f"im{i}.png"] = buffer.getvalue()
    rows = "".join(f'im{i}.png,a photo,"{HOSTILE_LABELS[i % 4]}"\n' for i in range(8))
    files["captions.csv"] = ("image,caption,label\n" + rows).encode()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, blob in files.items():
            zipped.writestr(name, blob)
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(cache))
    get_settings.cache_clear()
    try:
        add_image_dataset("hostile", "hostile.zip", archive.getvalue())
        for model in ("digits-cnn-s0", "digits-cnn-s1"):
            FeatureCache().get_or_extract(model, load_dataset("hostile"))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    with running_server(cache, tmp_path) as base_url:
        yield base_url


def test_uploaded_labels_show_as_text_and_link_nowhere(page, hostile_labels_server):
    """Labels that are Markdown, bare URLs or addresses: shown as typed, never a link, never fetched (an
    image caption made a live link of [x](url), fetched ![x](url), and Streamlit links bare URLs itself)."""
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    link = "a=digits-cnn-s0&b=digits-cnn-s1&data=hostile&k=2"
    for path, title in (
        (f"neighbours?{link}&inspect=im0.png", "Neighbours"),
        (f"projections?{link}&proj=pca&sel=r:0-7", "Projections"),
    ):
        open_page(page, f"{hostile_labels_server}/{path}", title=title)
        page.locator('[data-testid="stImageCaption"]').first.wait_for()
        wait_settled(page)
        no_exceptions(page)
        main = page.locator('[data-testid="stMain"]')
        hrefs = [anchor.get_attribute("href") or "" for anchor in main.locator("a").all()]
        assert not [href for href in hrefs if "example" in href], hrefs
        captions = " ".join(main.locator('[data-testid="stImageCaption"]').all_inner_texts()).replace("\u2060", "")
        assert HOSTILE_LABELS[0] in captions, captions
    assert not [url for url in fetched if "example" in url]


def test_the_sidebar_line_of_a_job_another_tab_started_goes_when_the_job_ends(browser, server):
    """A page listed the jobs that ran as it was drawn and never looked again: a tab opened while another
    tab's job ran kept "1 background job · 0%" after the job had ended (for minutes, until a click)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        starter, onlooker = context.new_page(), context.new_page()
        # 1500 shuffles of a 5 x 5 linear CKA matrix: over the budget a link starts by itself, a few seconds
        open_page(
            starter, f"{server}/compare?metric=linear_cka&metrics=linear_cka&perm=1500&boot=0", title=PAGES["compare"]
        )
        starter.get_by_role("button", name=re.compile(r"^Compute \(")).first.click()
        open_page(onlooker, f"{server}/data-models", title=PAGES["data-models"])
        jobs_line = onlooker.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"\d+ background jobs?:"))
        jobs_line.wait_for(state="visible")  # drawn while the job runs
        jobs_line.wait_for(state="detached", timeout=180_000)  # and gone once it has ended, with no click
        starter.get_by_text(
            re.compile(r"above chance after correcting|not above chance after correcting")
        ).first.wait_for()
        no_exceptions(onlooker)
    finally:
        context.close()
