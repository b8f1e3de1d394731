"""The RSA page through AppTest: the model RDM ordered by label, a stored recording scored per layer as
the engine scores it, the settings in the URL, and a recording uploaded on the page."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.dashboard.helpers import no_exception, run_page, url_of

pytestmark = pytest.mark.usefixtures("dashboard_cache")
MODEL = "digits-cnn-s0"


def _recording(name: str, n: int = 90) -> tuple[bytes, tuple[str, ...]]:
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset

    features, _ = FeatureCache().get_or_extract(MODEL, load_dataset("digits"))
    rng = np.random.default_rng(7)
    rows = rng.choice(len(features.sample_ids), n, replace=False)
    signal = np.asarray(features.values[0])[rows]
    data = signal @ rng.standard_normal((signal.shape[1], 20)) + 0.3 * rng.standard_normal((3, n, 20))
    buffer = io.BytesIO()
    np.save(buffer, data.astype(np.float32))
    return buffer.getvalue(), tuple(features.sample_ids[i] for i in rows)


def test_the_model_rdm_is_drawn_ordered_by_label_without_a_recording():
    app = run_page("rsa", {"a": MODEL, "la": "2"})
    no_exception(app)
    assert app.title[0].value.startswith("Representational similarity")
    assert any("grouped by label" in c.value for c in app.caption)
    assert any("Choose a recording" in c.value for c in app.caption)
    assert url_of(app)["rec"] == ""


def _page_and_engine(recording: str, link: dict[str, str], **request: object) -> tuple:
    """The RSA page opened on a stored ``recording`` with ``link``, its per-layer table, and the engine's
    own result for the same request (``request``: RsaRequest's settings)."""
    from alignscope.core.analysis.engine import default_engine
    from alignscope.core.analysis.rsa import RsaRequest
    from alignscope.core.recordings import add_recording

    data, ids = _recording(recording)
    add_recording(recording, "r.npy", data, dataset="digits", sample_ids=ids)
    app = run_page("rsa", {"a": MODEL, "rec": recording, **link})
    no_exception(app)
    table = next(f.value for f in app.dataframe if "ceiling_low" in f.value.columns)
    expected = default_engine().run(RsaRequest(MODEL, recording, "digits", 10**9, 0, **request))
    return app, table, expected


def test_a_recording_is_scored_per_layer_as_the_engine_scores_it():
    app, table, expected = _page_and_engine("page-rec", {"rsam": "pearson"}, method="pearson")
    assert np.allclose(table["pearson"].to_numpy(), [s.value for s in expected.scores])
    assert table["ceiling_high"].iloc[0] == pytest.approx(expected.scores[0].noise_ceiling_high)
    assert any("90 stimuli shared" in c.value for c in app.caption)
    app.selectbox(key="sel.data_rdm").set_value("euclidean").run()
    no_exception(app)
    assert url_of(app)["drdm"] == "euclidean"


def test_the_links_bootstrap_sets_the_intervals_and_zero_turns_them_off():
    app, table, expected = _page_and_engine("boot-rec", {"boot": "20"}, bootstrap=20)
    assert np.allclose(table["ci_low"].to_numpy(), [s.ci_low for s in expected.scores])
    assert any("(20 resamples)" in c.value for c in app.caption)
    app.number_input(key="sel.bootstrap").set_value(0).run()
    no_exception(app)
    assert url_of(app)["boot"] == "0"
    table = next(f.value for f in app.dataframe if "ceiling_low" in f.value.columns)
    assert table["ci_low"].isna().all() and table["spearman"].notna().all()
    assert any("no interval (boot=0)" in c.value for c in app.caption)


def test_an_unknown_recording_in_a_link_is_a_warning_not_a_crash():
    app = run_page("rsa", {"a": MODEL, "rec": "not-there"})
    no_exception(app)
    assert any("No recording named not-there" in w.value for w in app.warning)


def test_a_recording_the_data_rdm_cannot_use_is_said_once_with_no_button_that_cannot_help():
    """crossnobis on a recording without repeats: the error came twice (a caption and an error box), and
    a "Try again" button ran the same failing request again."""
    from alignscope.core.recordings import add_recording

    data, ids = _recording("flat")
    buffer = io.BytesIO()
    np.save(buffer, np.load(io.BytesIO(data))[0])  # one subject, no repeats: [stimuli, channels]
    add_recording("flat", "flat.npy", buffer.getvalue(), dataset="digits", sample_ids=ids)
    app = run_page("rsa", {"a": MODEL, "rec": "flat", "drdm": "crossnobis"})
    no_exception(app)
    shown = [e.value for e in app.error] + [c.value for c in app.caption if "crossnobis" in c.value.lower()]
    assert len(app.error) == 1 and "repeat" in app.error[0].value, shown
    assert not [c for c in app.caption if app.error[0].value.split(": ", 1)[-1][:40] in c.value]
    assert not any(button.label == "Try again" for button in app.button)
