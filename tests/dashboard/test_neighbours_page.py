"""The Neighbours page through AppTest: the mean overlap is core's mutual k-NN, the histogram, the table
and the side-by-side neighbours agree with core.neighbors, widgets and links drive it, tampering is safe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alignscope.dashboard import plots_projection
from tests.dashboard.helpers import no_exception, random_tampered_query, run_page, url_of
from tests.dashboard.test_projections_page import captions_features, chart_spec, core_layer, core_overlap  # noqa: F401

pytestmark = pytest.mark.usefixtures("dashboard_cache")


def _metric(app, prefix: str) -> float:
    return float(next(m.value for m in app.metric if m.label.startswith(prefix)))


def test_default_render_mean_overlap_is_cores_mutual_knn_and_chance_is_k_over_n_minus_1():
    from alignscope.core.metrics.registry import compute

    app = run_page("neighbours")
    no_exception(app)
    assert app.title[0].value == "Neighbours"
    assert not app.warning and not app.error
    feats_a, _ = core_layer("digits-cnn-s0", 120)
    feats_b, _ = core_layer("digits-cnn-s1", 120)
    assert _metric(app, "Mutual k-NN") == pytest.approx(compute("mutual_knn", feats_a, feats_b, k=10), abs=5e-4)
    assert _metric(app, "Chance level") == pytest.approx(10 / 119, abs=5e-4)
    overlap = core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 10)
    assert _metric(app, "Samples sharing no neighbour") == int((overlap == 0).sum())
    # The histogram: one bar per possible overlap j/10, the counts of core's overlaps, mean line at the score.
    spec = chart_spec(app, "nb-histogram")
    assert spec["data"][0]["y"] == np.bincount(np.rint(overlap * 10).astype(int), minlength=11).tolist()
    lines = {trace["name"].split(" = ")[0]: trace["x"][0] for trace in spec["data"][1:]}
    assert abs(lines["mean"] - overlap.mean()) < 1e-9 and abs(lines["chance k/(n−1)"] - 10 / 119) < 1e-9


def test_table_lists_every_sample_from_least_to_most_aligned():
    app = run_page("neighbours")
    table = app.dataframe[0].value
    _, subset = core_layer("digits-cnn-s0", 120)
    overlap = core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 10)
    assert len(table) == 120 and set(table["sample"]) == set(subset.sample_ids)
    assert table["overlap"].is_monotonic_increasing
    by_id = dict(zip(subset.sample_ids, overlap))
    assert all(by_id[s] == pytest.approx(v) for s, v in zip(table["sample"], table["overlap"]))
    assert (table["shared"] == np.rint(table["overlap"] * 10)).all()


def test_a_long_table_is_paged_and_a_search_opens_on_its_first_page():
    """500 samples: pages of ui.PAGE_ROWS rows that together are the whole sorted table; a search (other
    rows) starts on its first page."""
    from alignscope.dashboard.ui import PAGE_ROWS

    app = run_page("neighbours", {"n": "500"})
    no_exception(app)
    pages = []
    for page in (1, 2, 3):
        app.number_input(key="nb-page").set_value(page).run()
        no_exception(app)
        pages.append(app.dataframe[0].value)
    assert [len(table) for table in pages] == [PAGE_ROWS, PAGE_ROWS, 500 - 2 * PAGE_ROWS]
    whole = pd.concat(pages)
    _, subset = core_layer("digits-cnn-s0", 500)
    assert sorted(whole["sample"]) == sorted(subset.sample_ids) and whole["overlap"].is_monotonic_increasing
    app.text_input(key="nb-search").input("digit-0").run()  # ids digit-0000 to digit-0999: more than a page
    no_exception(app)
    matching = [i for i in subset.sample_ids if "digit-0" in i]
    assert len(matching) > PAGE_ROWS and app.number_input(key="nb-page").value == 1
    assert len(app.dataframe[0].value) == PAGE_ROWS and set(app.dataframe[0].value["sample"]) <= set(matching)


def test_inspected_sample_shows_its_neighbours_in_a_and_b_with_shared_ones_marked():
    from alignscope.core.neighbors import knn_indices

    table = run_page("neighbours").dataframe[0].value
    target = table["sample"].iloc[-1]  # the most aligned sample
    app = run_page("neighbours", {"inspect": target})  # the inspected sample is part of the link
    no_exception(app)
    assert url_of(app)["inspect"] == target
    feats_a, subset = core_layer("digits-cnn-s0", 120)
    feats_b, _ = core_layer("digits-cnn-s1", 120)
    i = subset.sample_ids.index(target)
    shared = set(knn_indices(feats_a, 10)[i].tolist()) & set(knn_indices(feats_b, 10)[i].tolist())
    assert any(f"{len(shared)} of 10 neighbours are shared" in m.value for m in app.markdown)
    images = app.get("image")
    assert len(images) == 21  # the sample, its 10 neighbours in A, its 10 neighbours in B


def test_widgets_change_the_result_and_the_url():
    from alignscope.core.metrics.registry import compute

    app = run_page("neighbours")
    before = _metric(app, "Mutual k-NN")
    app.number_input(key="sel.k").set_value(5).run()
    no_exception(app)
    assert url_of(app)["k"] == "5"
    assert _metric(app, "Chance level") == pytest.approx(5 / 119, abs=5e-4)
    assert _metric(app, "Mutual k-NN") != before
    app.selectbox(key="sel.model_b").set_value("digits-cnn-s2").run()
    no_exception(app)
    assert url_of(app)["b"] == "digits-cnn-s2"
    overlap = core_overlap("digits-cnn-s0", "digits-cnn-s2", 120, 5)
    assert _metric(app, "Mutual k-NN") == pytest.approx(overlap.mean(), abs=5e-4)
    app.selectbox(key="sel.layer_a").set_value(2).run()
    no_exception(app)
    assert url_of(app)["la"] == "2"
    feats_a, _ = core_layer("digits-cnn-s0", 120, layer=2)
    feats_b, _ = core_layer("digits-cnn-s2", 120)
    assert _metric(app, "Mutual k-NN") == pytest.approx(compute("mutual_knn", feats_a, feats_b, k=5), abs=5e-4)


def test_selecting_a_bin_through_the_link_filters_the_table_and_highlights_the_bar():
    overlap = core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 10)
    _, subset = core_layer("digits-cnn-s0", 120)
    shared = np.rint(overlap * 10).astype(int)
    counts = np.bincount(shared, minlength=11)
    j = int(np.argmax(np.where(counts <= 50, counts, 0)))  # a full bin fits in a link (50 ids at most)
    members = [subset.sample_ids[i] for i in np.flatnonzero(shared == j)]
    app = run_page("neighbours", {"sel": ",".join(members)})
    no_exception(app)
    table = app.dataframe[0].value
    assert sorted(table["sample"]) == sorted(members)
    colours = chart_spec(app, "nb-histogram")["data"][0]["marker"]["color"]
    assert [i for i, colour in enumerate(colours) if colour == plots_projection.HIGHLIGHT] == [j]
    app.toggle(key="nb-only-selected").set_value(False).run()
    assert len(app.dataframe[0].value) == 120


def test_label_rollup_is_the_mean_overlap_per_label():
    app = run_page("neighbours")
    rollup = app.dataframe[1].value
    _, subset = core_layer("digits-cnn-s0", 120)
    overlap = core_overlap("digits-cnn-s0", "digits-cnn-s1", 120, 10)
    expected = pd.Series(overlap).groupby(list(subset.labels)).mean()
    assert list(rollup.index) == [str(d) for d in range(10)]
    np.testing.assert_allclose(rollup["mean overlap"], expected.loc[rollup.index].to_numpy())
    assert rollup["samples"].sum() == 120
    assert chart_spec(app, "nb-rollup")["data"][0]["x"] == [str(d) for d in range(10)]


@pytest.mark.slow
def test_text_and_image_previews_on_the_captions_dataset(captions_features):  # noqa: F811
    app = run_page("neighbours", {"a": "minilm-l6", "b": "e5-small", "data": "captions", "n": "25", "k": "3"})
    no_exception(app)
    assert _metric(app, "Chance level") == pytest.approx(3 / 24, abs=5e-4)
    table = app.dataframe[0].value
    assert "text" in table.columns
    inspected = table["sample"].iloc[0]
    text = captions_features.texts[captions_features.sample_ids.index(inspected)]
    assert any(text == t.value for t in app.text)  # user text shown as text, never as Markdown
    assert len(app.get("image")) == 1 + 3 + 3


@pytest.mark.parametrize("seed", range(8))
def test_tampered_links_show_a_warning_never_a_traceback(seed):
    query = {k: v if isinstance(v, str) else str(v) for k, v in random_tampered_query(seed).items()}
    query = {k: v[:300] for k, v in query.items() if k and "\x00" not in k}
    app = run_page("neighbours", {**query, "n": "120"})
    no_exception(app)


def test_explicit_tampered_link_is_fixed_and_listed():
    app = run_page("neighbours", {"k": "abc", "lb": "-999", "sel": "x" * 500, "b": "../../etc/passwd"})
    no_exception(app)
    text = app.warning[0].value
    assert "k=" in text and "b=" in text
    assert url_of(app)["k"] == "10" and url_of(app)["b"] == "digits-cnn-s1"
    assert len(app.dataframe[0].value) == 120  # an unknown sample id selects nothing


def test_a_score_at_chance_is_not_shown_as_a_green_gain():
    """k = n − 1: every other sample is a neighbour, the overlap is 1 = chance, and the card showed a green
    "↑ +0.000 vs chance". A difference that rounds to zero is grey; a real one keeps its colour."""
    at_chance = run_page("neighbours", {"n": "12", "k": "11"})
    no_exception(at_chance)
    card = next(m for m in at_chance.metric if m.label.startswith("Mutual k-NN"))
    from streamlit.proto.Metric_pb2 import Metric

    assert card.value == "1.000" and card.proto.delta == "+0.000 vs chance"
    assert card.proto.color == Metric.MetricColor.GRAY
    default = next(m for m in run_page("neighbours").metric if m.label.startswith("Mutual k-NN"))
    assert default.proto.delta.startswith("+") and default.proto.color == Metric.MetricColor.GREEN


def test_a_linked_sample_outside_the_views_subset_is_said_so_not_swapped_silently():
    """inspect=digit-0042, a sample of digits but not of the view's seeded subset, showed another sample with
    no word while the link kept naming digit-0042."""
    from alignscope.core.datasets import load_dataset

    shown = set(load_dataset("digits", n=120, seed=0).sample_ids)
    outside = next(i for i in load_dataset("digits").sample_ids if i not in shown)
    app = run_page("neighbours", {"inspect": outside})
    no_exception(app)
    assert any(w.value.startswith(f"{outside} is not among the 120 samples of this view (seed 0)") for w in app.warning)
    inside = next(iter(sorted(shown)))
    assert not run_page("neighbours", {"inspect": inside}).warning
