"""The Projections page through AppTest: PCA at once and equal to core, colour by alignment equal to
core's per-sample overlap, a selection in the URL highlighted in both maps, UMAP / aligned UMAP (slow),
tampered links."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alignscope.dashboard.plots_projection import point_colours
from alignscope.dashboard.ui import WORD_JOINER
from tests.dashboard.helpers import no_exception, plotly_figure, random_tampered_query, run_page, url_of

pytestmark = pytest.mark.usefixtures("dashboard_cache")


def maps_arguments(app) -> dict:
    """The JSON arguments of the page's linked maps frame (dashboard/linked_maps.py): view, selection."""
    frames = [element.proto for element in app.get("component_instance")]
    frames = [frame for frame in frames if frame.component_name.endswith("linked_maps")]
    assert len(frames) == 1, f"{len(frames)} linked maps frames"
    return json.loads(frames[0].json_args)


def maps_view(app):
    """What the page's linked maps frame draws: its view's file, read back (a map_views.MapsView)."""
    from alignscope.core.settings import get_settings
    from alignscope.dashboard.linked_maps import frontend_dir
    from alignscope.dashboard.map_views import VIEWS, read_view

    folder, name = maps_arguments(app)["view"].split("/")
    assert folder == VIEWS
    return read_view(frontend_dir(get_settings().cache_dir), name)


def chart_spec(app, key: str) -> dict:
    """The plotly figure (as a plain dict) of the chart whose widget key is ``key``; "proj-a" and "proj-b":
    map A and B of the Projections page, as its linked maps frame gets them."""
    maps = {"proj-a": 0, "proj-b": 1}
    if key in maps:
        return plotly_figure(maps_view(app).figure_jsons[maps[key]])
    for chart in app.get("plotly_chart"):
        if chart.proto.id.endswith(f"-{key}"):
            return plotly_figure(chart.proto.spec)
    raise AssertionError(f"no chart with key {key!r}; charts: {[c.proto.id for c in app.get('plotly_chart')]}")


def core_layer(model: str, n: int, *, seed: int = 0, layer: int = -1, dataset: str = "digits"):
    """One layer's features of ``model`` on the subset the page shows, straight from alignscope.core."""
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset

    full = load_dataset(dataset)
    subset = full.subset(n, seed=seed)
    features, result = FeatureCache().get_or_extract(model, full)
    assert result.hit
    position = {sid: i for i, sid in enumerate(features.sample_ids)}
    return features.take([position[sid] for sid in subset.sample_ids]).values[layer], subset


def core_overlap(model_a: str, model_b: str, n: int, k: int, **kwargs) -> np.ndarray:
    from alignscope.core.neighbors import knn_indices, per_sample_overlap

    feats_a, _ = core_layer(model_a, n, **kwargs)
    feats_b, _ = core_layer(model_b, n, **kwargs)
    return per_sample_overlap(knn_indices(feats_a, k), knn_indices(feats_b, k)).numpy()


def test_default_render_shows_pca_of_both_models_equal_to_core():
    from alignscope.core.projection import pca_2d

    app = run_page("projections")
    no_exception(app)
    assert app.title[0].value == "Projections"
    assert not app.warning and not app.error
    for key, model in (("proj-a", "digits-cnn-s0"), ("proj-b", "digits-cnn-s1")):
        spec = chart_spec(app, key)
        assert len(spec["data"]) == 1 and spec["data"][0]["type"] == "scattergl"
        feats, subset = core_layer(model, 120)
        expected = pca_2d(feats)
        np.testing.assert_allclose(spec["data"][0]["x"], expected[:, 0], atol=1e-4)
        np.testing.assert_allclose(spec["data"][0]["y"], expected[:, 1], atol=1e-4)
        assert [row[0] for row in spec["data"][0]["customdata"]] == list(subset.sample_ids)
        assert spec["layout"]["xaxis"]["title"]["text"].startswith("PC 1 (")
        # Coloured by label: one colour per sample, the same colour for the same digit.
        colours = spec["data"][0]["marker"]["color"]
        assert len(colours) == 120
        assert len({c for c, label in zip(colours, subset.labels) if label == "3"}) == 1
    assert "sel" in url_of(app) and url_of(app)["proj"] == "pca"


def test_colour_by_alignment_is_cores_per_sample_overlap_and_follows_k():
    app = run_page("projections", {"color": "alignment"})
    no_exception(app)
    colours = chart_spec(app, "proj-a")["data"][0]["marker"]["color"]
    np.testing.assert_allclose(colours, core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 10), atol=1e-9)
    # the hover maps below colour as the maps do (they stayed coloured by label)
    hover = next(e.proto.srcdoc for e in app.get("iframe") if "const D = " in e.proto.srcdoc)
    points = json.loads(hover.split("const D = ", 1)[1].split(";\n", 1)[0])
    assert points["colours"] == point_colours(120, None, core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 10))
    version = maps_arguments(app)["version"]
    app.run()  # a rerun of the same view: the frame keeps its figures (and the cached ones are right)
    assert maps_arguments(app)["version"] == version
    app.number_input(key="sel.k").set_value(4).run()
    no_exception(app)
    assert url_of(app)["k"] == "4" and maps_arguments(app)["version"] != version
    colours = chart_spec(app, "proj-b")["data"][0]["marker"]["color"]
    np.testing.assert_allclose(colours, core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 4), atol=1e-9)


def test_the_pca_maps_are_drawn_while_the_per_sample_overlap_waits_for_its_click(monkeypatch):
    """At 100k the exact overlap takes minutes: the maps waited for it (nothing on screen until it was
    done). Now PCA is drawn at once, coloured by label, and the overlap joins when it is computed."""
    from alignscope.core.settings import get_settings

    run_page("projections", {"k": "10"})  # stores both PCA maps (and the overlap at k = 10)
    monkeypatch.setenv("ALIGNSCOPE_AUTO_BUDGET_S", "0")  # nothing starts without a click
    get_settings.cache_clear()
    try:
        _, subset = core_layer("digits-cnn-s0", 120)
        app = run_page("projections", {"k": "7", "color": "alignment", "sel": subset.sample_ids[3]})
        no_exception(app)
        colours = chart_spec(app, "proj-a")["data"][0]["marker"]["color"]
        assert len(colours) == 120 and len({c for c, label in zip(colours, subset.labels) if label == "3"}) == 1
        assert any("k-NN overlap (k = 7) is not computed yet" in i.value for i in app.info)
        assert any("coloured by label; compute it below" in i.value for i in app.info)
        assert [m.value for m in app.metric][:2] == ["…", "…"]  # the selection's summary waits for it too
        compute = next(b for b in app.button if b.key == "compute-projections-gate")
        compute.click().run()
        no_exception(app)
        colours = chart_spec(app, "proj-a")["data"][0]["marker"]["color"]
        np.testing.assert_allclose(colours, core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 7), atol=1e-9)
        assert not any("not computed yet" in i.value for i in app.info)
        # a view whose PCA waits for a click too: that click starts the maps only (the overlap took its
        # minutes with them, and the maps waited for both)
        app = run_page("projections", {"n": "150", "k": "7", "color": "alignment"})
        no_exception(app)
        assert any("Computing the maps takes" in m.value for m in app.markdown)
        assert not any("k-NN overlap (k=7) of" in c.value for c in app.caption)  # not in the maps' click
        next(b for b in app.button if b.key == "compute-projections-gate").click().run()
        no_exception(app)
        assert len(chart_spec(app, "proj-a")["data"][0]["x"]) == 150
        assert any("compute it below" in i.value for i in app.info)
        assert any("Computing each sample's k-NN overlap takes" in m.value for m in app.markdown)
    finally:
        get_settings.cache_clear()


def test_widgets_change_the_maps_and_the_url():
    app = run_page("projections")
    before = chart_spec(app, "proj-b")["data"][0]["x"]
    app.selectbox(key="sel.model_b").set_value("digits-cnn-s2").run()
    no_exception(app)
    assert url_of(app)["b"] == "digits-cnn-s2"
    assert chart_spec(app, "proj-b")["data"][0]["x"] != before
    app.selectbox(key="sel.layer_a").set_value(1).run()
    no_exception(app)
    assert url_of(app)["la"] == "1"
    assert "layer 1" in chart_spec(app, "proj-a")["layout"]["title"]["text"]


def test_selected_samples_in_the_link_are_highlighted_in_both_maps():
    _, subset = core_layer("digits-cnn-s0", 120)
    chosen = [subset.sample_ids[i] for i in (3, 10, 42)]
    app = run_page("projections", {"sel": ",".join(chosen)})
    no_exception(app)
    # both maps light up samples 3, 10 and 42 (the frame's highlight: tests/e2e/test_linked_maps_frame.py)
    assert maps_arguments(app)["selected"] == [3, 10, 42]
    assert all("selectedpoints" not in chart_spec(app, key)["data"][0] for key in ("proj-a", "proj-b"))
    assert app.subheader[0].value == "3 selected samples"
    table = app.dataframe[0].value
    assert list(table["sample"]) == chosen
    overlap = core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 10)
    np.testing.assert_allclose(table["k-NN overlap"], overlap[[3, 10, 42]])
    assert len(app.get("image")) == 1  # one gallery of the selected digits
    app.button(key="proj-clear").click().run()
    no_exception(app)
    assert url_of(app)["sel"] == ""
    assert maps_arguments(app)["selected"] == []


def test_a_large_selection_is_a_paged_table_and_its_export_holds_all_of_it(monkeypatch):
    """Beyond ui.PAGE_ROWS selected samples the table sends one page at a time; the heading, the maps and the
    CSV export hold all of them. Another selection opens on its first page."""
    import io

    import pandas as pd

    from alignscope.dashboard import ui

    exports = {}
    real_download = ui.lazy_download

    def keep_export(label, make, file_name, mime, key):
        exports[key] = make
        real_download(label, make, file_name, mime, key)

    monkeypatch.setattr(ui, "lazy_download", keep_export)
    _, subset = core_layer("digits-cnn-s0", 500)
    chosen = list(subset.sample_ids[: 2 * ui.PAGE_ROWS + 50])
    app = run_page("projections", {"n": "500", "sel": ",".join(chosen)})
    no_exception(app)
    assert app.subheader[0].value == f"{len(chosen)} selected samples"
    assert maps_arguments(app)["selected"] == list(range(len(chosen)))
    assert list(app.dataframe[0].value["sample"]) == chosen[: ui.PAGE_ROWS]
    exported = pd.read_csv(io.BytesIO(exports["proj-export"]()))
    assert list(exported["sample"]) == chosen
    app.number_input(key="proj-selected-page").set_value(3).run()
    no_exception(app)
    assert list(app.dataframe[0].value["sample"]) == chosen[2 * ui.PAGE_ROWS :]
    app.run()  # a rerun of the same selection keeps its page
    assert list(app.dataframe[0].value["sample"]) == chosen[2 * ui.PAGE_ROWS :]
    app.query_params["sel"] = ",".join(chosen[: ui.PAGE_ROWS + 1])  # another selection: its first page
    app.run()
    no_exception(app)
    assert list(app.dataframe[0].value["sample"]) == chosen[: ui.PAGE_ROWS]
    app.query_params["sel"] = ",".join(chosen[: ui.PAGE_ROWS])  # exactly one page: all of it, no page input
    app.run()
    no_exception(app)
    assert list(app.dataframe[0].value["sample"]) == chosen[: ui.PAGE_ROWS]
    assert all(widget.key != "proj-selected-page" for widget in app.number_input)


@pytest.fixture
def captions_features(dashboard_cache):
    """minilm-l6 and e5-small features of the 25 bundled captions (a few seconds, real models)."""
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset

    captions = load_dataset("captions")
    for model in ("minilm-l6", "e5-small"):
        FeatureCache().get_or_extract(model, captions)
    return captions


@pytest.mark.slow
def test_text_dataset_shows_snippets_on_hover_and_images_of_the_selection(captions_features):
    first = captions_features.sample_ids[0]
    app = run_page(
        "projections", {"a": "minilm-l6", "b": "e5-small", "data": "captions", "n": "25", "k": "5", "sel": first}
    )
    no_exception(app)
    data = chart_spec(app, "proj-a")["data"][0]
    assert "customdata[3]" in data["hovertemplate"]
    text = captions_features.texts[0]
    assert data["customdata"][0][3] == (text if len(text) <= 80 else text[:79] + "…")
    assert len(app.get("image")) == 1 and app.dataframe[0].value["text"][0] == captions_features.texts[0]


@pytest.mark.parametrize("seed", range(8))
def test_tampered_links_show_a_warning_never_a_traceback(seed):
    query = {k: v if isinstance(v, str) else str(v) for k, v in random_tampered_query(seed).items()}
    query = {k: v[:300] for k, v in query.items() if k and "\x00" not in k}
    query.update({"n": "120", "proj": "pca"})  # keep it fast: UMAP is tested below
    app = run_page("projections", query)
    no_exception(app)


def test_explicit_tampered_link_is_fixed_and_listed():
    app = run_page("projections", {"proj": "tsne", "color": "<script>", "la": "999", "sel": "nope,\x01bad"})
    no_exception(app)
    text = app.warning[0].value
    assert "proj=" in text and "color=" in text
    assert url_of(app)["proj"] == "pca" and url_of(app)["color"] == "label"
    assert any("layer 999 does not exist" in w.value for w in app.warning)
    assert maps_arguments(app)["selected"] == []  # unknown ids select nothing


@pytest.mark.slow
def test_umap_and_aligned_umap_render_and_match_core():
    from alignscope.core.projection import aligned_umap_2d, umap_2d

    query = {"n": "60", "proj": "umap", "seed": "1"}
    app = run_page("projections", query, timeout=300)
    no_exception(app)
    feats_a, _ = core_layer("digits-cnn-s0", 60, seed=1)
    feats_b, _ = core_layer("digits-cnn-s1", 60, seed=1)
    spec = chart_spec(app, "proj-a")
    np.testing.assert_allclose(
        np.column_stack([spec["data"][0]["x"], spec["data"][0]["y"]]), umap_2d(feats_a, seed=1), atol=1e-4
    )
    assert spec["layout"]["xaxis"]["title"]["text"] == "UMAP 1"

    app.radio(key="sel.projection").set_value("aligned_umap").run(timeout=300)
    no_exception(app)
    assert url_of(app)["proj"] == "aligned_umap"
    expected_a, expected_b = aligned_umap_2d(feats_a, feats_b, alignment_regularisation=0.01, seed=1)
    for key, expected in (("proj-a", expected_a), ("proj-b", expected_b)):
        data = chart_spec(app, key)["data"][0]
        np.testing.assert_allclose(np.column_stack([data["x"], data["y"]]), expected, atol=1e-4)


def test_umap_settings_show_the_links_values_and_set_them_while_pca_is_shown():
    app = run_page("projections", {"n": "60", "nn": "30", "md": "0.123", "align": "0.1"})
    no_exception(app)
    assert app.number_input(key="sel.umap_neighbors").value == 30
    assert app.number_input(key="sel.umap_min_dist").value == pytest.approx(0.123)
    assert app.number_input(key="sel.umap_min_dist").proto.format == "%g"  # shown as 0.123, not 0.12
    assert app.selectbox(key="sel.alignment").value == 0.1
    app.number_input(key="sel.umap_neighbors").set_value(5).run()
    app.number_input(key="sel.umap_min_dist").set_value(0.25).run()
    app.selectbox(key="sel.alignment").set_value(0.3).run()
    no_exception(app)
    url = url_of(app)
    assert (url["nn"], url["md"], url["align"]) == ("5", "0.25", "0.3")
    assert url.get("proj", "pca") == "pca"  # set for later: the maps are still PCA's
    assert chart_spec(app, "proj-a")["layout"]["xaxis"]["title"]["text"].startswith("PC 1")


def _metadata_upload(name: str = "meta-texts", n: int = 40) -> None:
    import io

    import pandas as pd

    from alignscope.core.uploads import add_representation, add_text_dataset

    table = pd.DataFrame(
        {
            "text": [f"sentence number {i}" for i in range(n)],
            "label": [str(i % 2) for i in range(n)],
            "source": [("web", "book", "news")[i % 3] for i in range(n)],
            "length": [float(i) for i in range(n)],
            "<b>odd</b>": ["<i>x</i>"] * n,
            "[x](http://host/)": ["a", "b"] * (n // 2),
            "caption": [f"unique {i}" for i in range(n)],  # more values than colours: not offered
        }
    )
    add_text_dataset(name, "t.csv", table.to_csv(index=False).encode())
    rng = np.random.default_rng(0)
    for model in ("meta-rep-a", "meta-rep-b"):
        buffer = io.BytesIO()
        np.save(buffer, rng.standard_normal((n, 6)).astype(np.float32))
        add_representation(model, f"{model}.npy", buffer.getvalue(), dataset=name)


def test_a_map_is_coloured_by_any_metadata_column_of_the_dataset():
    _metadata_upload()
    query = {"data": "meta-texts", "a": "meta-rep-a", "b": "meta-rep-b", "n": "40", "perm": "0", "boot": "0"}
    app = run_page("projections", {**query, "color": "meta:source"}, fast=False)
    no_exception(app)
    options = next((r.options for r in app.radio if r.label == "Colour by"), None)
    trace = chart_spec(app, "proj-a")["data"][0]
    # text metadata: one colour step per value, the value in the hover under the column's name
    assert [row[1] for row in trace["customdata"]] == [("web", "book", "news")[i % 3] for i in range(40)]
    assert "source: %{customdata[1]}" in trace["hovertemplate"]
    assert len({c for c in trace["marker"]["color"]}) == 3
    # numbers: a colour scale over their own range with the column's name on the bar
    trace = chart_spec(run_page("projections", {**query, "color": "meta:length"}, fast=False), "proj-a")["data"][0]
    assert trace["marker"]["color"] == [float(i) for i in range(40)]
    assert trace["marker"]["colorbar"]["title"]["text"] == "length" and "cmin" not in trace["marker"]
    # a hostile column name is shown as text
    trace = chart_spec(run_page("projections", {**query, "color": "meta:<b>odd</b>"}, fast=False), "proj-a")["data"][0]
    assert "&lt;b&gt;odd&lt;/b&gt;: %{customdata[1]}" in trace["hovertemplate"]
    assert {row[1] for row in trace["customdata"]} == {"&lt;i&gt;x&lt;/i&gt;"}
    assert options is not None and {"source (metadata)", "length (metadata)"} <= set(options)
    # option labels are shown as text (Streamlit renders Markdown in them): the link stays a bracket
    link = "\\[x\\](http\\:" + WORD_JOINER + "//host/) (metadata)"  # and the bare URL breaks (ui.plain)
    assert link in options and not any("caption" in o for o in options)


def test_a_link_to_a_metadata_column_the_dataset_lacks_says_so_and_colours_by_label():
    _metadata_upload("meta-texts-2")
    query = {"data": "meta-texts-2", "a": "meta-rep-a", "b": "meta-rep-b", "n": "40", "color": "meta:nope"}
    app = run_page("projections", query, fast=False)
    no_exception(app)
    assert any("no metadata column 'nope'" in w.value for w in app.warning)
    assert "label: %{customdata[1]}" in chart_spec(app, "proj-a")["data"][0]["hovertemplate"]


def test_a_text_column_with_more_values_than_colours_colours_its_main_categories_and_numbers_show_on_hover():
    import io

    import pandas as pd

    from alignscope.core.uploads import add_representation, add_text_dataset
    from alignscope.dashboard.plots_projection import LABEL_COLOURS

    n = 120
    table = pd.DataFrame(
        {
            "text": [f"sentence number {i}" for i in range(n)],
            "city": [f"city {i % 50:02d}" for i in range(n)],  # 50 values, each 2-3 times: categories
            "team": ["red" if i % 3 else "" for i in range(n)],  # a third of the samples have none
            "caption": [f"unique {i}" for i in range(n)],  # all distinct: no categories
            "length": [float("nan") if i == 7 else float(i) for i in range(n)],
        }
    )
    add_text_dataset("many-cities", "t.csv", table.to_csv(index=False).encode())
    rng = np.random.default_rng(1)
    for model in ("city-rep-a", "city-rep-b"):
        buffer = io.BytesIO()
        np.save(buffer, rng.standard_normal((n, 5)).astype(np.float32))
        add_representation(model, f"{model}.npy", buffer.getvalue(), dataset="many-cities")
    query = {"data": "many-cities", "a": "city-rep-a", "b": "city-rep-b", "n": str(n), "perm": "0", "boot": "0"}
    app = run_page("projections", {**query, "color": "meta:city"}, fast=False)
    no_exception(app)
    options = next(r.options for r in app.radio if r.label == "Colour by")
    assert "city (metadata)" in options and not any("caption" in o for o in options)
    trace = chart_spec(app, "proj-a")["data"][0]
    shown = [row[1] for row in trace["customdata"]]
    # the 35 most frequent keep their names (20 seen 3 times, then 15 of those seen twice, in order);
    # the other 15 are one category
    assert len(LABEL_COLOURS) == 36
    kept = [f"city {i:02d}" for i in range(35)]
    assert shown == [f"city {i % 50:02d}" if i % 50 < 35 else "other (15 values)" for i in range(n)]
    assert set(shown) == {*kept, "other (15 values)"} and len(set(trace["marker"]["color"])) == 36
    # a missing text value is a named category, not a blank one
    trace = chart_spec(run_page("projections", {**query, "color": "meta:team"}, fast=False), "proj-a")["data"][0]
    assert [row[1] for row in trace["customdata"]] == ["red" if i % 3 else "(no value)" for i in range(n)]
    # numbers: each point's value on hover, a missing one too
    trace = chart_spec(run_page("projections", {**query, "color": "meta:length"}, fast=False), "proj-a")["data"][0]
    assert "length: %{marker.color:.4g}" in trace["hovertemplate"]
    colours = trace["marker"]["color"]
    assert colours[8] == 8.0 and (colours[7] is None or np.isnan(colours[7]))


def test_a_view_dropped_from_disk_is_written_again_and_a_full_disk_is_said(monkeypatch):
    import shutil

    from alignscope.core.files import NoSpaceError
    from alignscope.core.settings import get_settings
    from alignscope.dashboard import map_views
    from alignscope.dashboard.linked_maps import frontend_dir

    query = {"data": "digits", "n": "200", "proj": "pca", "k": "7"}
    app = run_page("projections", query)
    name = maps_arguments(app)["view"]
    shutil.rmtree(frontend_dir(get_settings().cache_dir) / map_views.VIEWS)  # another session dropped it
    app = run_page("projections", query)
    no_exception(app)
    assert maps_arguments(app)["view"] == name and maps_view(app).sample_ids  # written again, the same

    def full(folder, view):
        raise NoSpaceError(folder, 10**9)

    monkeypatch.setattr(map_views, "write_view", full)
    shutil.rmtree(frontend_dir(get_settings().cache_dir) / map_views.VIEWS)
    app = run_page("projections", query)
    no_exception(app)
    shown = [w.value.replace("\\", "") for w in app.warning]  # as Markdown shows it
    assert any("The maps cannot be drawn" in w and "no space left" in w for w in shown), shown
    assert not [e for e in app.get("component_instance") if e.proto.component_name.endswith("linked_maps")]
    assert app.get("text_input")  # the search below the maps is still there
