"""The Trends and Results pages through AppTest: the numbers drawn are the engine's, the view is a link."""

from __future__ import annotations

import numpy as np
import pytest

from tests.dashboard.helpers import no_exception, plotly_figure, run_page, url_of

pytestmark = pytest.mark.usefixtures("dashboard_cache")
NETS = "digits-cnn-s0,digits-cnn-s1,digits-cnn-s2"
TREND = {"tm": NETS, "prop": "test_accuracy", "n": "120", "boot": "10", "k": "5"}


def _engine_trend():
    from alignscope.core.analysis.engine import default_engine
    from alignscope.core.analysis.requests import metric_params
    from alignscope.core.analysis.trends import TrendRequest

    request = TrendRequest(
        tuple(NETS.split(",")),
        (),
        "digits",
        120,
        0,
        "mutual_knn",
        metric_params("mutual_knn", k=5),
        None,
        "test_accuracy",
        (),
        10,
    )
    return default_engine().run(request)


def test_the_trend_points_are_the_engines():
    app = run_page("trends", TREND, fast=False)
    no_exception(app)
    points = app.dataframe[0].value
    trend = _engine_trend()
    assert list(points.index) == list(trend.models)
    assert np.allclose(points["mean mutual_knn"].to_numpy(), trend.y)
    assert np.allclose(points["ci_low"].to_numpy(), trend.ci_low)
    # each point is a best-of-25 layer pairs: its chance line is the search's, above a fixed pair's
    assert np.allclose(points["chance of best"].to_numpy(), trend.search_chance)
    assert (points["chance of best"] > points["chance"]).all()
    figure = plotly_figure(app.get("plotly_chart")[0].proto.spec)
    (line,) = [trace for trace in figure["data"] if trace.get("name") == "chance of the best layer pair"]
    order = np.argsort(trend.x, kind="stable")
    assert np.allclose(line["y"], trend.search_chance[order])
    assert any("Spearman ρ" in m.value and "6 orderings" in m.value for m in app.markdown)
    assert url_of(app)["tm"] == NETS and url_of(app)["prop"] == "test_accuracy"


def test_the_paired_difference_defaults_to_the_strongest_against_the_weakest():
    from alignscope.core.properties import model_properties

    # the link's pair is not in the trend: the test takes the extremes of the property
    app = run_page("trends", {**TREND, "a": "efficientnet-lite0", "b": "minilm-l6"}, fast=False)
    accuracy = {m: model_properties(m)["test_accuracy"].value for m in NETS.split(",")}
    ranked = sorted(accuracy, key=accuracy.get)
    pickers = [next(s for s in app.selectbox if s.label == label).value for label in ("A", "B", "against")]
    assert pickers[:2] == [ranked[-1], ranked[0]] and pickers[2] == ranked[1]
    # the defaults are not the user's picks: the link's A and B (Compare's pair) stay as they were
    assert (url_of(app)["a"], url_of(app)["b"], url_of(app)["vs"]) == ("efficientnet-lite0", "minilm-l6", "")
    next(s for s in app.selectbox if s.label == "A").set_value(ranked[1]).run()  # a pick: the link holds the three
    assert (url_of(app)["a"], url_of(app)["b"], url_of(app)["vs"]) == (ranked[1], ranked[0], ranked[-1])


def test_another_property_moves_the_default_pair_without_writing_it():
    """The pickers follow new defaults (a keyed widget would keep the old ones, which then read as the
    user's pick and overwrote the link's A and B)."""
    from alignscope.core.properties import model_properties, set_user_property

    accuracy = {m: model_properties(m)["test_accuracy"].value for m in NETS.split(",")}
    for model, value in accuracy.items():
        set_user_property(model, "error_rate", 1.0 - value)
    ranked = sorted(accuracy, key=accuracy.get)
    app = run_page("trends", {**TREND, "a": "efficientnet-lite0", "b": "minilm-l6"}, fast=False)
    app.selectbox(key="sel.prop").set_value("error_rate").run()
    no_exception(app)
    pickers = [next(s for s in app.selectbox if s.label == label).value for label in ("A", "B")]
    assert pickers == [ranked[0], ranked[-1]]  # the highest error rate against the lowest
    assert (url_of(app)["a"], url_of(app)["b"], url_of(app)["prop"]) == (
        "efficientnet-lite0",
        "minilm-l6",
        "error_rate",
    )


def test_a_trend_preset_sets_the_trends_own_layers_not_the_other_pages():
    from alignscope.core.analysis.trends import PRESETS
    from alignscope.dashboard.views.trends import _preset_changes

    app = run_page("trends", fast=False, settle=False)  # no link: the ladder preset is shown
    no_exception(app)
    assert url_of(app)["tdepth"] == "0.75" and url_of(app)["tm"].startswith("digits-ladder-1,")
    assert url_of(app)["depth"] == "best"  # Many models' and Compare's layers are left alone
    assert all("relative_depth" not in _preset_changes(preset) for preset in PRESETS.values())


def test_a_tampered_trend_link_is_fixed_with_a_warning():
    app = run_page("trends", {**TREND, "prop": "<script>x</script>", "xs": "cubic", "tm": "nope,digits-cnn-s0"})
    no_exception(app)
    warnings = " ".join(w.value for w in app.warning)
    assert "ignored unknown model 'nope'" in warnings and "using xs=linear" in warnings
    assert "using prop=test\\_accuracy" in warnings  # shown as text: Markdown characters escaped
    assert url_of(app)["xs"] == "linear" and url_of(app)["prop"] == "test_accuracy"
    assert not any("<script>" in m.value for m in app.markdown)


def test_results_page_shows_a_run_table_and_its_plot(dashboard_cache, tmp_path):
    from alignscope.core.analysis.engine import default_engine
    from alignscope.core.analysis.plans import execute, parse_plan
    from alignscope.core.settings import get_settings

    plan = parse_plan(
        'name = "three-nets"\ndataset = "digits"\nn = 120\nmodels = ["digits-cnn-s0", "digits-cnn-s1", '
        '"digits-cnn-s2"]\nmetrics = ["linear_cka"]\nlayers = "last"\n'
    )
    report = execute(plan, get_settings().runs_dir / "three-nets", engine=default_engine(), extract=lambda plans: None)
    assert report.cells == 3
    app = run_page("results", {"run": "three-nets"}, fast=False)
    no_exception(app)
    table = app.dataframe[0].value
    assert len(table) == 3 and set(table["metric"]) == {"linear_cka"}
    assert url_of(app)["run"] == "three-nets"
    app.selectbox(key="results-metric").set_value("linear_cka").run()
    assert len(app.dataframe[0].value) == 3
    # a link to a run this cache lacks says so (it silently showed another), and so does a missing property
    app = run_page("results", {"run": "not-a-run", "prop": "nothing_like_it"}, fast=False)
    no_exception(app)
    assert any("There is no run 'not-a-run' here; showing" in w.value for w in app.warning)
    assert url_of(app)["run"] == "three-nets"
    assert any("model of this table has the property 'nothing\\_like\\_it'" in c.value for c in app.caption), [
        c.value for c in app.caption
    ]


def test_data_and_models_lists_properties_and_sets_one_as_text():
    from alignscope.core.properties import model_properties

    app = run_page("data_models", fast=False)
    no_exception(app)
    frames = [d.value for d in app.dataframe if "property" in d.value.columns]
    rows = frames[0].set_index(["model", "property"])
    assert rows.loc[("efficientnet-lite0", "imagenet_top1"), "value"] == 75.1
    model = next(box for box in app.selectbox if box.label == "Model")
    model.set_value("digits-cnn-s1")
    next(box for box in app.text_input if box.label == "Property").input("my_score")
    next(box for box in app.number_input if box.label == "Value").set_value(0.25)
    next(box for box in app.text_input if box.label == "Unit").input("<b>au</b>")
    next(button for button in app.button if button.label == "Set").click().run()
    no_exception(app)
    prop = model_properties("digits-cnn-s1")["my_score"]
    assert prop.value == 0.25 and prop.unit == "<b>au</b>"  # kept as text
    assert not any("<b>au</b>" in m.value for m in app.markdown)  # never rendered as HTML


def test_a_property_no_model_has_is_said_once_with_no_figure_hints():
    app = run_page("trends", {**TREND, "prop": "bogus"})
    no_exception(app)
    said = [e.value for e in app.error] + [c.value for c in app.caption if "bogus" in c.value]
    assert len(said) == 1 and "has the property 'bogus'" in said[0]  # the red box only, not also a grey line
    assert not any("camera button" in c.value for c in app.caption)  # no figure to take a PNG of


def test_a_point_left_out_is_named_with_why():
    """With digits-cnn-s0 its own only reference, the title said "1 without test_accuracy left out", though
    s0 has a test accuracy: it has no score (a model is not scored against itself)."""
    app = run_page("trends", {**TREND, "ref": "digits-cnn-s0", "layers": "last"}, fast=False)
    no_exception(app)
    figure = plotly_figure(app.get("plotly_chart")[0].proto.spec)
    title = figure["layout"]["title"]["text"]
    assert "left out: digits-cnn-s0 (its only reference is itself)" in title and "without test_accuracy" not in title
