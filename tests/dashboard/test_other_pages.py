"""Many models, Sweeps and Data & models through AppTest, and state surviving a page switch."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.dashboard.helpers import SettlingAppTest, no_exception, plotly_figure, run_page, url_of

pytestmark = pytest.mark.usefixtures("dashboard_cache")


def _features(model: str, n: int, layer: int = -1):
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset

    full = load_dataset("digits")
    subset = full.subset(n, seed=0)
    features, _ = FeatureCache().get_or_extract(model, full)
    position = {sid: i for i, sid in enumerate(features.sample_ids)}
    return features.take([position[sid] for sid in subset.sample_ids]).values[layer]


# -- many models -----------------------------------------------------------------------------------


def test_many_models_default_matrix_matches_core():
    from alignscope.core.metrics.layers import layer_matrix

    app = run_page("many_models")
    no_exception(app)
    matrix = app.dataframe[0].value
    assert list(matrix.index) == ["digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"]
    layers = lambda m: [_features(m, 120, i) for i in range(5)]  # noqa: E731
    expected = layer_matrix(layers("digits-cnn-s0"), layers("digits-cnn-s2"), "mutual_knn", k=10).best_value
    assert matrix.loc["digits-cnn-s0", "digits-cnn-s2"] == pytest.approx(expected)
    assert np.allclose(matrix.to_numpy(), matrix.to_numpy().T)
    gram, chance = (float(m.value) for m in app.metric)
    assert gram < chance  # same-width logits of nets trained on one task: more aligned than shuffled


def test_many_models_depth_and_metric_change_the_matrix():
    app = run_page("many_models")
    before = app.dataframe[0].value.copy()
    app.radio(key="sel.relative_depth.mode").set_value("fixed relative depth").run()
    no_exception(app)
    assert url_of(app)["depth"] == "1.0"
    app.slider(key="sel.relative_depth").set_value(0.5).run()
    assert url_of(app)["depth"] == "0.5"
    assert not np.allclose(app.dataframe[0].value.to_numpy(), before.to_numpy())
    assert any("widths" in i.value for i in app.info) or app.metric  # GRAM explained or computed
    app.selectbox(key="sel.metric").set_value("linear_cka").run()
    assert url_of(app)["metric"] == "linear_cka"


def test_many_models_needs_two_models_and_round_trips():
    app = run_page("many_models", {"models": "digits-cnn-s1,digits-cnn-s0", "depth": "0.25"})
    no_exception(app)
    again = run_page("many_models", url_of(app), fast=False)
    assert url_of(again) == url_of(app)
    assert again.dataframe[0].value.equals(app.dataframe[0].value)
    single = run_page("many_models", {"models": "digits-cnn-s1"})
    no_exception(single)
    assert single.warning  # one model is not a set: the link is fixed to the default set


def _frame_with(app, column: str):
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def test_many_models_convergent_learning_matches_the_family_curves_and_keeps_its_layer_in_the_url():
    from alignscope.core.convergent import family_matching_curves

    app = run_page("many_models", {"metric": "linear_cka", "ul": "3"})
    no_exception(app)
    table = _frame_with(app, "units with a match in another net")
    nets = [[_features(m, 120, i) for i in range(5)] for m in ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")]
    expected = family_matching_curves(nets, 3)
    mean, sd = expected.fraction_above_mean[0.7], expected.fraction_above_std[0.7]
    assert table.loc["|corr| > 0.7", "units with a match in another net"] == f"{mean:.2f} ± {sd:.2f}"
    within = expected.within_fraction_above_mean[0.9]
    assert table.loc["|corr| > 0.9", "units with a match in their own net (baseline)"].startswith(f"{within:.2f} ± ")
    assert app.selectbox(key="sel.unit_layer").value == 3
    app.selectbox(key="sel.unit_layer").set_value(0).run()
    no_exception(app)
    assert url_of(app)["ul"] == "0"
    again = _frame_with(app, "units with a match in another net")
    assert not again.equals(table)  # conv1 is matched differently from fc1
    app.radio(key="sel.unit_rows").set_value("positions").run()
    no_exception(app)
    assert url_of(app)["ur"] == "positions"
    assert any(f"correlations over {120 * 64} images × positions" in c.value for c in app.caption)


def test_a_unit_matching_layer_the_nets_lack_is_said_and_replaced_by_the_last():
    app = run_page("many_models", {"metric": "linear_cka", "ul": "50", "models": "digits-cnn-s0"}, settle=False)
    no_exception(app)
    assert url_of(app)["ul"] == "-1"  # it was silently read as layer 50 % 5 = 0
    assert app.selectbox(key="sel.unit_layer").value == 4
    layer_note = "has 5 layers (0..4); layer 50 does not exist, showing the last one"
    models_note = "needs at least 2 known models"
    for _ in range(2):  # and on the runs after, as when a background job finishes: both fixes stay said
        shown = " ".join(w.value for w in app.warning)
        assert layer_note in shown and models_note in shown, shown
        app.run()
        no_exception(app)
    # another page on the same selection: the notes were this view's, not news there
    from alignscope.dashboard.url_state import PAGE_PATH_KEY

    app.session_state[PAGE_PATH_KEY] = "compare"
    app.run()
    no_exception(app)
    assert not app.warning
    # back, then a change of the view: gone too
    app.session_state[PAGE_PATH_KEY] = None
    app.query_params["ul"] = "50"
    app.run()
    assert any(layer_note in w.value for w in app.warning)
    app.selectbox(key="sel.unit_layer").set_value(2).run()
    no_exception(app)
    assert url_of(app)["ul"] == "2" and not app.warning


def test_many_models_without_one_architecture_explains_why_there_is_no_unit_matching():
    from alignscope.core.uploads import add_representation

    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(2).normal(size=(1797, 6)).astype(np.float32))
    add_representation("one-layer-rep", "one.npy", buffer.getvalue(), dataset="digits")
    app = run_page("many_models", {"models": "digits-cnn-s0,one-layer-rep"})
    no_exception(app)
    assert any("need nets of one architecture" in c.value for c in app.caption)
    assert not any("units with a match in another net" in f.value.columns for f in app.dataframe)


def test_gram_with_different_widths_is_explained():
    from alignscope.core.uploads import add_representation

    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(1).normal(size=(1797, 7)).astype(np.float32))
    add_representation("narrow-rep", "narrow.npy", buffer.getvalue(), dataset="digits")
    app = run_page("many_models", {"models": "digits-cnn-s0,digits-cnn-s1,narrow-rep"})
    no_exception(app)  # an uploaded representation is read without the compute gate
    assert app.dataframe[0].value.shape == (3, 3)
    assert any("same width" in i.value and "narrow-rep" in i.value for i in app.info)


# -- sweeps ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["k", "n", "prefix", "depth"])
def test_each_sweep_renders_with_a_chance_band(kind):
    app = run_page("sweeps", {"sweep": kind})
    no_exception(app)
    assert not app.error
    assert url_of(app)["sweep"] == kind
    frame = app.dataframe[0].value
    assert len(frame) >= 3
    assert (frame["chance_sd"] >= 0).all()
    # Two trained nets beat chance at every point of every sweep.
    assert (frame["mutual_knn"] > frame["chance"]).all()
    if kind == "prefix":  # starts at 2 dimensions: at m = 1 every cosine is ±1 (all ties)
        assert frame.index[0] == 2
    if kind == "depth":  # the best layer of B is read against its own chance, above a fixed pair's
        own = frame["chance of the best layer of B"]
        assert (own > frame["chance"]).all() and (frame["best layer of B"] > own).all()


def test_k_sweep_value_matches_core():
    from alignscope.core.metrics.registry import compute

    app = run_page("sweeps", {"sweep": "k"})
    frame = app.dataframe[0].value
    k = int(frame.index[2])
    expected = compute("mutual_knn", _features("digits-cnn-s0", 120), _features("digits-cnn-s1", 120), k=k)
    assert frame.loc[k, "mutual_knn"] == pytest.approx(expected)


def test_sweep_widget_and_metric_without_k():
    app = run_page("sweeps")
    app.radio(key="sel.sweep").set_value("depth").run()
    no_exception(app)
    assert url_of(app)["sweep"] == "depth"
    bad = run_page("sweeps", {"sweep": "k", "metric": "linear_cka"})
    no_exception(bad)
    assert "has no k" in bad.error[0].value


# -- data & models ---------------------------------------------------------------------------------


def test_data_models_lists_registries_and_cache():
    app = run_page("data_models")
    no_exception(app)
    models, datasets, cache = (frame.value for frame in app.dataframe[:3])
    assert "digits-cnn-s0" in set(models["name"])
    assert dict(zip(datasets["name"], datasets["samples"]))["digits"] == 1797
    assert {"digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"} <= set(cache["model"])


def _cli_in_another_process(*argv: str) -> None:
    import subprocess
    import sys

    code = "import sys; from alignscope.core.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_dataset_the_cli_adds_or_removes_meanwhile_shows_without_a_restart(tmp_path):
    """The registries were read once per server: a dataset uploaded with the CLI while the dashboard ran
    was missing from every page until a restart (and one removed stayed listed)."""
    texts = tmp_path / "meanwhile.txt"
    texts.write_text("first line\nsecond line\nthird line\n")
    before = run_page("data_models")
    assert "meanwhile" not in set(before.dataframe[1].value["name"])
    _cli_in_another_process("datasets", "--upload", str(texts), "--name", "meanwhile")
    after = run_page("data_models")
    no_exception(after)
    assert dict(zip(after.dataframe[1].value["name"], after.dataframe[1].value["samples"]))["meanwhile"] == 3
    _cli_in_another_process("datasets", "--remove", "meanwhile")
    gone = run_page("data_models")
    no_exception(gone)
    assert "meanwhile" not in set(gone.dataframe[1].value["name"])
    assert "digits" in set(gone.dataframe[1].value["name"])  # a built-in stays


def test_hub_model_without_network_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = run_page("data_models")
    app.text_input(key="hub-id").set_value("someone/not-a-real-model-xyz")
    next(b for b in app.get("form_submit_button") if b.label == "Add model").click().run()
    no_exception(app)  # auto, offline: nothing tells text from image, so nothing is added (it was added as text)
    assert any("cannot tell whether" in e.value and "the hub did not answer" in e.value for e in app.error)
    assert not app.success
    app.radio[0].set_value("text")
    next(b for b in app.get("form_submit_button") if b.label == "Add model").click().run()
    no_exception(app)
    assert any("Added model" in s.value for s in app.success)
    next(b for b in app.button if b.label.startswith("Try loading")).click().run()
    no_exception(app)
    assert any("could not load" in e.value for e in app.error)


def test_cache_verify_reports_every_entry_intact_and_names_a_damaged_upload(dashboard_cache: Path):
    """The page's Verify hashed the feature entries and nets only: a damaged upload, which nothing can
    recompute, was called intact (the CLI's verify checks it, through the same check_cache)."""
    from alignscope.core.uploads import add_representation, forget
    from alignscope.core.user_store import upload_folder

    app = run_page("data_models")
    next(b for b in app.button if b.label == "Verify checksums").click().run()
    no_exception(app)
    assert any("intact" in s.value for s in app.success)
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).normal(size=(1797, 3)).astype(np.float32))
    add_representation("verified-rep", "v.npy", buffer.getvalue(), dataset="digits")
    stored = upload_folder("models", "verified-rep") / "features.safetensors"
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    try:
        app = run_page("data_models")
        next(b for b in app.button if b.label == "Verify checksums").click().run()
        no_exception(app)
        assert not app.success
        message = "the stored matrix of 'verified-rep' does not match its checksum"  # shown as text, ':' escaped
        assert any(e.value.startswith("uploads/models/verified-rep") and message in e.value for e in app.error)
    finally:  # the session's shared cache
        forget("models", "verified-rep")


def test_representation_rows_must_match_the_dataset(dashboard_cache: Path):
    from alignscope.core.errors import UploadError
    from alignscope.core.uploads import add_representation

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(UploadError, match="1797 samples"):
        add_representation("short-rep", "short.npy", buffer.getvalue(), dataset="digits")


def test_an_uploaded_representation_opens_without_the_compute_gate(dashboard_cache: Path):
    from alignscope.core.metrics.registry import compute
    from alignscope.core.uploads import add_representation

    rows = np.random.default_rng(0).standard_normal((1797, 6)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, rows)
    add_representation("gate-free-rep", "rep.npy", buffer.getvalue(), dataset="digits")
    app = run_page("compare", {"b": "gate-free-rep", "metrics": "linear_cka", "metric": "linear_cka"})
    no_exception(app)
    assert not any(b.label == "Compute features" for b in app.button)
    # (compare reads the feature file the page stored; the value must be the same metric on the same rows)
    expected = compute("linear_cka", _features("digits-cnn-s0", 120), _features("gate-free-rep", 120))
    assert float(app.metric[0].value) == pytest.approx(expected, abs=5e-4)


# -- state across pages ----------------------------------------------------------------------------


def test_selection_survives_a_page_switch():

    root = Path(__file__).resolve().parents[2]
    app = SettlingAppTest(str(root / "dashboard" / "app.py"), default_timeout=60)
    for key, value in {"n": "120", "perm": "20", "boot": "5", "b": "digits-cnn-s2", "k": "6"}.items():
        app.query_params[key] = value
    app.run()
    no_exception(app)
    app.switch_page("views/sweeps.py").run()
    no_exception(app)
    assert app.title[0].value == "Sweeps"
    assert url_of(app)["b"] == "digits-cnn-s2" and url_of(app)["k"] == "6"


def test_compare_as_model_b_after_an_upload_opens_the_compare_page(dashboard_cache: Path):

    from alignscope.core.uploads import add_representation

    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(2).standard_normal((1797, 5)).astype(np.float32))
    add_representation("switch-rep", "switch.npy", buffer.getvalue(), dataset="digits")
    root = Path(__file__).resolve().parents[2]
    app = SettlingAppTest(str(root / "dashboard" / "app.py"), default_timeout=60)
    for key, value in {"n": "120", "perm": "0", "boot": "0"}.items():
        app.query_params[key] = value
    app.run()
    app.switch_page("views/data_models.py").run()
    app.session_state["last-representation"] = ("switch-rep", "digits")
    app.run()
    next(b for b in app.button if b.label.startswith("Compare switch-rep")).click().run()
    no_exception(app)
    assert app.title[0].value == "Compare two models"
    assert url_of(app)["b"] == "switch-rep" and url_of(app)["n"] == "120"
    assert app.metric  # scores shown at once: a representation needs no compute click


def test_an_uploaded_representation_can_be_removed_on_the_page(dashboard_cache: Path):
    from alignscope.core.models import list_models
    from alignscope.core.uploads import add_representation

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1797, 2), dtype=np.float32) + np.arange(1797)[:, None])
    add_representation("doomed-rep", "doomed.npy", buffer.getvalue(), dataset="digits")
    app = run_page("data_models")
    app.selectbox(key="remove-entry").set_value(("models", "doomed-rep")).run()
    app.button(key="remove-entry-button").click().run()
    no_exception(app)
    assert "doomed-rep" not in [spec.name for spec in list_models()]


def _many_models_cells(query: dict, layers: str):
    """The Many models page for linear CKA on the three digits CNNs: (app, the heatmap's customdata by
    (row, column) model index, the engine's PairRequest score of s0 vs s2 at ``layers``)."""
    from alignscope.core.analysis.engine import default_engine
    from alignscope.core.analysis.requests import PairRequest, metric_params

    app = run_page("many_models", {"metric": "linear_cka", **query})
    no_exception(app)
    figure = plotly_figure(app.get("plotly_chart")[0].proto.spec)
    heatmap = next(trace for trace in figure["data"] if trace["type"] == "heatmap")
    cells = {(int(c[0]), int(c[1])): c for row in heatmap["customdata"] for c in row}
    score = default_engine().run(
        PairRequest("digits-cnn-s0", "digits-cnn-s2", "digits", 120, 0, "linear_cka", metric_params("linear_cka"),
                    layers, 20, 5)
    )  # fmt: skip
    return app, cells, score


def test_many_models_cells_carry_their_own_p_and_interval_in_the_hover():
    _, cells, expected = _many_models_cells({"depth": "1.0"}, "4,4")
    text = cells[0, 2][5]
    assert f"p {'≤' if expected.at_floor else '='} {expected.p_value:.4f}" in text  # ≤: no shuffle as good
    assert f"[{expected.ci_low:.4f}, {expected.ci_high:.4f}]" in text
    assert cells[2, 0][5] == text  # a symmetric metric: the mirrored cell is the same pair's statistics
    assert cells[1, 1][5] == ""  # a model against itself has none


def test_many_models_best_layer_cells_carry_the_searchs_corrected_p_and_its_chance():
    """Each cell at its pair's best layer pair was chosen from 25: its p was the fixed pair's (as if chosen
    in advance), and its chance one fixed pair's."""
    app, cells, searched = _many_models_cells({}, "all")
    assert searched.pairs_searched == 25 and searched.search_chance is not None
    assert (cells[0, 2][2], cells[0, 2][3]) == (searched.layer_a, searched.layer_b)
    sign = "≤" if searched.p_maxstat <= 1 / 21 + 1e-12 else "="  # 20 shuffles: the floor is 1/21
    assert f"p {sign} {searched.p_maxstat:.4f} (permutation, corrected for the layer search)" in cells[0, 2][5]
    assert f"chance of the best layer pair = {searched.search_chance:.4f}" in cells[0, 2][4]
    search_table = app.dataframe[2].value  # in the expander too, beside the scores and their layer pairs
    assert search_table.loc["digits-cnn-s0", "digits-cnn-s2"] == pytest.approx(searched.search_chance)
    assert "corrected for the search" in " ".join(c.value for c in app.caption)


def test_a_slow_representation_read_shows_its_progress_instead_of_holding_the_page(monkeypatch):
    """Reading an uploaded representation is a background job; a page waiting for it returned only after
    10 s (holding one of the server's script slots) and then reran in a loop until the read was done."""
    import threading

    from alignscope.core.analysis import engine as engine_module
    from alignscope.core.uploads import add_representation
    from tests.dashboard.helpers import wait_for_jobs

    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(3).normal(size=(1797, 5)).astype(np.float32))
    add_representation("slow-rep", "slow.npy", buffer.getvalue(), dataset="digits")
    release = threading.Event()
    read = engine_module.extract_for_plan

    def held_read(plan, **kwargs):
        assert release.wait(120), "the test never released the read"
        return read(plan, **kwargs)

    monkeypatch.setattr(engine_module, "extract_for_plan", held_read)
    query = {"models": "digits-cnn-s0,slow-rep"}
    try:
        app = run_page("many_models", query, settle=False, timeout=30)
        no_exception(app)
        bars = app.get("progress")
        assert len(bars) == 1 and "slow-rep on digits" in bars[0].proto.text
        assert not app.dataframe  # nothing drawn from features that are not read yet
    finally:
        release.set()
    assert wait_for_jobs()
    app = run_page("many_models", query)
    no_exception(app)
    assert app.dataframe[0].value.shape == (2, 2)
