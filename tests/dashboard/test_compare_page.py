"""The Compare page through AppTest: default render, widgets, URL round trip, tampered links, the
compute gate."""

from __future__ import annotations

import pytest

from tests.dashboard.helpers import no_exception, random_tampered_query, run_page, url_of

pytestmark = pytest.mark.usefixtures("dashboard_cache")


def _metrics(app) -> dict[str, float]:
    return {m.label.split(" ")[0]: float(m.value) for m in app.metric}


def _core_score(model_a: str, model_b: str, n: int, metric: str, **params) -> float:
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.metrics.registry import compute

    full = load_dataset("digits")
    subset = full.subset(n, seed=0)
    feats = []
    for model in (model_a, model_b):
        features, result = FeatureCache().get_or_extract(model, full)
        assert result.hit
        position = {sid: i for i, sid in enumerate(features.sample_ids)}
        feats.append(features.take([position[sid] for sid in subset.sample_ids]).values[-1])
    return compute(metric, feats[0], feats[1], **params)


def test_default_render_matches_core():
    app = run_page("compare")
    no_exception(app)
    assert app.title[0].value == "Compare two models"
    assert not app.warning and not app.error
    scores = _metrics(app)
    assert set(scores) == {"mutual_knn", "cknna", "linear_cka"}
    assert scores["mutual_knn"] == pytest.approx(
        _core_score("digits-cnn-s0", "digits-cnn-s1", 120, "mutual_knn", k=10), abs=5e-4
    )
    assert scores["linear_cka"] == pytest.approx(
        _core_score("digits-cnn-s0", "digits-cnn-s1", 120, "linear_cka"), abs=5e-4
    )
    table = app.dataframe[0].value
    assert list(table.index) == ["mutual_knn", "cknna", "linear_cka"]
    assert (table["p-value"] == "≤ 1/21").all()  # 20 permutations, none as good as the observed pair
    for interval, score in zip(table["95% CI"], table["score"]):
        low, high = (float(x) for x in interval.strip("[]").split(","))
        assert low <= float(score) <= high
    assert {b.label for b in app.get("download_button")} >= {"Result card (JSON)", "Heatmap (CSV)", "Figure (HTML)"}
    assert "n=120" in app.code[0].value and "a=digits-cnn-s0" in app.code[0].value


@pytest.mark.parametrize(
    ("widget", "key", "value", "param"),
    [
        ("selectbox", "sel.model_b", "digits-cnn-s2", "b"),
        ("number_input", "sel.k", 5, "k"),
        ("number_input", "sel.n", 200, "n"),
        ("number_input", "sel.seed", 3, "seed"),
    ],
)
def test_changing_a_widget_changes_the_result_and_the_url(widget, key, value, param):
    app = run_page("compare")
    before = _metrics(app)
    getattr(app, widget)(key=key).set_value(value).run()
    no_exception(app)
    assert url_of(app)[param] == str(value)
    assert _metrics(app)["mutual_knn"] != before["mutual_knn"]


def test_metric_choice_changes_the_headline_and_the_heatmap():
    app = run_page("compare")
    app.multiselect(key="sel.metrics").set_value(["linear_cka"]).run()
    app.selectbox(key="sel.metric").set_value("linear_cka").run()
    no_exception(app)
    assert set(_metrics(app)) == {"linear_cka"}
    assert url_of(app)["metric"] == "linear_cka" and url_of(app)["metrics"] == "linear_cka"
    assert any("linear_cka" in c.value and "Best pair" in c.value for c in app.caption)


def test_layer_pair_from_the_url_and_the_best_pair_button():
    app = run_page("compare", {"la": "0", "lb": "1"})
    no_exception(app)
    assert any("layer 0 (conv1)" in c.value and "layer 1 (conv2)" in c.value for c in app.caption)
    assert all(m.delta.endswith(" vs chance") for m in app.metric)  # a pair fixed in advance
    assert not any("their margin over chance reads high" in c.value for c in app.caption)
    app.button(key="compare-best").click().run()
    assert (url_of(app)["la"], url_of(app)["lb"]) != ("0", "1")
    # at the best pair of the heatmap's search, its metric is read against the chance of that best
    best = run_page("compare", url_of(app))
    no_exception(best)
    deltas = {m.label.split(" ")[0]: m.delta for m in best.metric}
    heatmap_metric = url_of(best)["metric"]
    assert deltas[heatmap_metric].endswith("vs chance of the best")
    assert all(delta.endswith(" vs chance") for name, delta in deltas.items() if name != heatmap_metric)
    # the other metrics' cards are read against a fixed pair's chance at a pair a search picked: said
    helps = {m.label.split(" ")[0]: m.help for m in best.metric}
    assert all("picked as the best of the" in h for name, h in helps.items() if name != heatmap_metric)
    assert any("their margin over chance reads high" in c.value for c in best.caption)
    # the heatmap's metric without a card of its own: the caption speaks of no such card
    others = run_page("compare", {**url_of(best), "metrics": "linear_cka,cknna"})
    (caption,) = [c.value for c in others.caption if "margin over chance reads high" in c.value]
    assert f"{heatmap_metric}'s card" not in caption and "(linear_cka, cknna)" in caption


def test_url_round_trip_reproduces_the_view():
    query = {
        "b": "digits-cnn-s2",
        "k": "7",
        "n": "150",
        "seed": "2",
        "metrics": "mutual_knn,linear_cka",
        "la": "2",
        "lb": "3",
    }
    first = run_page("compare", query)
    url = url_of(first)
    second = run_page("compare", url, fast=False)
    no_exception(second)
    assert url_of(second) == url
    assert _metrics(second) == _metrics(first)


def test_out_of_range_layer_is_explained():
    app = run_page("compare", {"la": "40"})
    no_exception(app)
    assert any("layer 40 does not exist" in w.value for w in app.warning)


@pytest.mark.parametrize("seed", range(6))
def test_tampered_links_show_a_warning_never_a_traceback(seed):
    query = {k: v if isinstance(v, str) else str(v) for k, v in random_tampered_query(seed).items()}
    query = {k: v[:300] for k, v in query.items() if k and "\x00" not in k}
    app = run_page("compare", {**query, "n": "120", "boot": "5", "perm": "20"})
    no_exception(app)


def test_explicit_tampered_link_lists_the_fixes():
    app = run_page("compare", {"a": "../../etc/passwd", "k": "1000000000", "n": "-1", "metric": "drop table"})
    no_exception(app)
    text = app.warning[0].value
    for key in ("a=", "k=", "n=", "metric="):
        assert key in text
    assert url_of(app)["a"] == "digits-cnn-s0"


def test_modality_mismatch_is_explained():
    app = run_page("compare", {"a": "minilm-l6"})
    no_exception(app)
    assert "encodes text" in app.error[0].value and "digits" in app.error[0].value


def test_uncached_view_waits_for_a_click_then_computes(dashboard_cache):
    from alignscope.core.cache import FeatureCache

    query = {"a": "efficientnet-lite0", "b": "efficientnet-lite1", "data": "captions", "n": "25", "la": "-2"}
    before = set(FeatureCache().keys())
    app = run_page("compare", query)
    no_exception(app)
    assert set(FeatureCache().keys()) == before  # opening the link computed nothing
    assert not app.metric
    assert app.dataframe[0].value["model"].tolist() == ["efficientnet-lite0", "efficientnet-lite1"]
    app.button(key="compute-compare").click().run()
    no_exception(app)
    assert len(set(FeatureCache().keys()) - before) == 2
    scores = _metrics(app)
    # two ImageNet nets on the same 25 photos: clearly above the shuffled level (~0.04 for 25 samples)
    assert 0.3 < scores["linear_cka"] <= 1.0


def test_compatibility_is_opt_in_and_shows_the_engine_verdict():
    from alignscope.core.analysis.compatibility import CompatibilityRequest
    from alignscope.core.analysis.engine import default_engine

    app = run_page("compare")
    no_exception(app)
    assert app.selectbox(key="sel.compatibility").value == "off"
    assert not any("queries → gallery" == f.value.index.name for f in app.dataframe)
    app.selectbox(key="sel.compatibility").set_value("recall@1").run()
    no_exception(app)
    assert url_of(app)["compat"] == "recall@1"
    expected = default_engine().run(
        CompatibilityRequest("digits-cnn-s0", "digits-cnn-s1", "digits", 120, 0, 4, 4, "recall@1")
    )
    table = next(f.value for f in app.dataframe if f.value.index.name == "queries → gallery")
    d = expected.report.new_old
    assert table.loc["new → old gallery", "recall@1"] == f"{d.estimate:.3f} [{d.low:.3f}, {d.high:.3f}]"
    shown = [*app.success, *app.warning, *app.error]
    assert len(shown) == 1 and f"{expected.report.difference.estimate:+.3f}" in shown[0].value
    assert ("not compatible" in shown[0].value) == (not expected.report.passed)


def test_a_page_run_builds_no_export_file_until_its_button_is_clicked(monkeypatch):
    """The figure's HTML, the tables' CSV and the result card are made on click, not on every run (each
    held the GIL while every other session waited)."""
    import pandas as pd

    from alignscope.dashboard import plots

    built: list[str] = []
    monkeypatch.setattr(plots, "figure_html", lambda fig: built.append("html") or "<html></html>")
    to_csv = pd.DataFrame.to_csv
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, *a, **k: built.append("csv") or to_csv(self, *a, **k))
    app = run_page("compare")
    no_exception(app)
    labels = {b.label for b in app.get("download_button")}
    assert {"Result card (JSON)", "Heatmap (CSV)", "Figure (HTML)", "Scores (CSV)"} <= labels
    assert built == []


def test_a_third_model_that_is_a_or_b_is_said_not_dropped_silently():
    app = run_page("compare", {"a": "digits-cnn-s0", "b": "digits-cnn-s1", "vs": "digits-cnn-s0"}, settle=False)
    no_exception(app)
    assert any("The third model 'digits-cnn-s0' is A or B; pick another." in w.value for w in app.warning)


def test_two_one_layer_models_are_not_described_as_a_search():
    """Two uploaded matrices (one layer each): the caption said "after correcting for the 1 pairs searched"
    and the card read the score "vs chance of the best" of a search that never happened."""
    import io

    import numpy as np

    from alignscope.core.uploads import add_representation, forget

    rng = np.random.default_rng(5)
    pixels = rng.normal(size=(1797, 6)).astype(np.float32)
    for name, matrix in (("solo-a", pixels), ("solo-b", pixels + 0.5 * rng.normal(size=pixels.shape))):
        buffer = io.BytesIO()
        np.save(buffer, matrix.astype(np.float32))
        add_representation(name, f"{name}.npy", buffer.getvalue(), dataset="digits")
    try:
        app = run_page("compare", {"a": "solo-a", "b": "solo-b", "metrics": "mutual_knn"})
        no_exception(app)
        assert any(c.value.startswith("The only layer pair: A layer 0") for c in app.caption)
        assert not any("pairs searched" in c.value for c in app.caption)
        card = next(m for m in app.metric if m.label.startswith("mutual_knn"))
        assert card.proto.delta.endswith(" vs chance")
    finally:  # the session's shared cache
        forget("models", "solo-a")
        forget("models", "solo-b")
