"""RSA on the engine: recordings stored and validated, every layer scored against them exactly as
score_shared scores them (itself checked against rsatoolbox in tests/core/test_brain.py), a replaced
recording never served an old score, and the RDM view ordered by label."""

from __future__ import annotations

import io

import numpy as np
import pytest

from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import load_view, plan_features
from alignscope.core.analysis.rsa import RdmRequest, RsaRequest, label_order
from alignscope.core.brain import score_shared
from alignscope.core.cli import main
from alignscope.core.errors import InputError, UploadError
from alignscope.core.metrics.rdm import compute_rdm, square_rdm
from alignscope.core.recordings import add_recording, list_recordings, load_recording, remove_recording

MODEL = "digits-cnn-s0"
N_FULL = 1797
SOURCE = 0  # conv1: the layer the simulated recording reads out (unlike the later ones)


def _full_view(engine):
    return load_view(plan_features(MODEL, "digits", N_FULL, 0, engine.cache), engine.cache)


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def _simulated(engine, layer: int, n_stimuli: int, shape: tuple[int, ...], noise: float, seed: int = 0):
    """Responses that are a random linear read-out of one layer plus noise, for a shuffled subset of ids."""
    view = _full_view(engine)
    rng = np.random.default_rng(seed)
    rows = rng.choice(view.n_samples, n_stimuli, replace=False)  # not in the dataset's order
    signal = view.values[layer][rows].astype(np.float64)
    signal = (signal - signal.mean(0)) / (signal.std() + 1e-12)
    readout = rng.standard_normal((signal.shape[1], 30)) / np.sqrt(signal.shape[1])
    clean = signal @ readout
    data = clean + noise * rng.standard_normal((*shape, n_stimuli, 30))
    return data, tuple(view.sample_ids[i] for i in rows)


def test_every_layer_is_scored_as_score_shared_scores_it_and_the_source_layer_wins(engine):
    data, ids = _simulated(engine, SOURCE, 150, (4,), noise=0.5)
    add_recording("v1", "v1.npy", _npy(data), dataset="digits", sample_ids=ids)
    profile = engine.run(RsaRequest(MODEL, "v1", "digits", N_FULL, 0, bootstrap=20))
    view = _full_view(engine)
    stored = load_recording("v1").measurements
    for layer, score in enumerate(profile.scores):
        expected = score_shared(view.values[layer], view.sample_ids, stored, ids, n_boot=20)
        assert score.value == pytest.approx(expected.value, abs=1e-12)
        assert (score.ci_low, score.ci_high) == pytest.approx((expected.ci_low, expected.ci_high), abs=1e-12)
        assert score.noise_ceiling_low == pytest.approx(expected.noise_ceiling_low, abs=1e-12)
    assert profile.best_layer == SOURCE and profile.n_shared == 150
    best = profile.scores[SOURCE]
    assert best.noise_ceiling_low - 0.1 < best.value <= best.noise_ceiling_high + 1e-9  # the data's own source
    assert profile.data_rdm_view.shape == (150, 150)
    assert list(profile.labels) == sorted(profile.labels, key=float)


def test_crossnobis_over_repeats_and_a_replaced_recording_is_recomputed(engine):
    data, ids = _simulated(engine, 2, 80, (3, 4), noise=1.0, seed=1)  # 3 subjects x 4 repeats
    add_recording("v2", "v2.npy", _npy(data), dataset="digits", sample_ids=ids)
    first = engine.run(RsaRequest(MODEL, "v2", "digits", N_FULL, data_rdm="crossnobis", bootstrap=10))
    assert first.scores[0].n_repeats == 4 and first.scores[0].n_subjects == 3
    noisier, _ = _simulated(engine, 2, 80, (3, 4), noise=5.0, seed=1)
    add_recording("v2", "v2.npy", _npy(noisier), dataset="digits", sample_ids=ids)
    second = Engine().run(RsaRequest(MODEL, "v2", "digits", N_FULL, data_rdm="crossnobis", bootstrap=10))
    assert second.scores[2].value < first.scores[2].value  # the new data's score, not the stored old one
    # [subjects, stimuli, channels] is not one subject's repeats: crossnobis read it so, and lost the ceiling
    three_subjects, _ = _simulated(engine, 2, 80, (3,), noise=1.0, seed=1)
    add_recording("v3", "v3.npy", _npy(three_subjects), dataset="digits", sample_ids=ids)
    with pytest.raises(InputError, match="crossnobis needs repeated measurements of one subject.*--over repeats"):
        engine.run(RsaRequest(MODEL, "v3", "digits", N_FULL, data_rdm="crossnobis", bootstrap=10))
    add_recording("v4", "v4.npy", _npy(three_subjects), dataset="digits", sample_ids=ids, over="repeats")
    repeats = engine.run(RsaRequest(MODEL, "v4", "digits", N_FULL, data_rdm="crossnobis", bootstrap=10))
    assert repeats.scores[0].n_repeats == 3 and repeats.scores[0].n_subjects == 1


def test_recordings_are_validated_and_listed(engine):
    data, ids = _simulated(engine, 1, 20, (), noise=0.1)
    with pytest.raises(UploadError, match="20 stimuli .* 19 sample ids"):
        add_recording("bad", "x.npy", _npy(data), dataset="digits", sample_ids=ids[:19])
    with pytest.raises(UploadError, match="not in 'digits'"):
        add_recording("bad", "x.npy", _npy(data), dataset="digits", sample_ids=("nope", *ids[1:]))
    with pytest.raises(UploadError, match="duplicates"):
        add_recording("bad", "x.npy", _npy(data), dataset="digits", sample_ids=(ids[0], *ids[:-1]))
    bad = data.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UploadError, match="NaN"):
        add_recording("bad", "x.npy", _npy(bad), dataset="digits", sample_ids=ids)
    with pytest.raises(UploadError, match="is not a .npy file"):  # a text file named .npy: not "pickled data"
        add_recording("bad", "x.npy", b"0.1 0.2\n0.3 0.4\n", dataset="digits", sample_ids=ids)
    with pytest.raises(UploadError, match=".npy or .safetensors"):
        add_recording("bad", "x.pkl", b"\x80\x04", dataset="digits", sample_ids=ids)
    # every stimulus measured the same: stored, it failed later in rsa with a hint that failed again
    with pytest.raises(UploadError, match="has 2 stimuli; RSA needs at least 3"):
        add_recording("bad", "x.npy", _npy(data[:2]), dataset="digits", sample_ids=ids[:2])
    with pytest.raises(UploadError, match="every stimulus has the same measurements"):
        add_recording("bad", "x.npy", _npy(np.ones_like(data)), dataset="digits", sample_ids=ids)
    # [subjects, repeats, n, d] said to be over repeats: stored, every rsa of it was refused later
    four_d, four_d_ids = _simulated(engine, 1, 20, (2, 3), noise=0.1)
    with pytest.raises(UploadError, match=r"\[subjects, repeats, stimuli, channels\]; over='repeats' is for one"):
        add_recording("bad", "x.npy", _npy(four_d), dataset="digits", sample_ids=four_d_ids, over="repeats")
    with pytest.raises(Exception, match="not allowed"):
        add_recording("../escape", "x.npy", _npy(data), dataset="digits", sample_ids=ids)
    # a 2-D recording said to be over repeats: stored as one subject, the --over ignored without a word
    with pytest.raises(UploadError, match=r"one \[stimuli, channels\] matrix, with no subjects or repeats axis"):
        add_recording("bad", "x.npy", _npy(data), dataset="digits", sample_ids=ids, over="repeats")
    assert list_recordings() == []
    add_recording("ok", "x.npy", _npy(data), dataset="digits", sample_ids=ids)
    assert list_recordings(dataset="digits") == ["ok"] and list_recordings(dataset="captions") == []
    remove_recording("ok")
    with pytest.raises(InputError, match="no recording named 'ok'"):
        load_recording("ok")


def test_the_rdm_view_is_the_layer_rdm_ordered_by_label(engine):
    result = engine.run(RdmRequest(MODEL, "digits", 200, 0, -1, "euclidean"))
    view = load_view(plan_features(MODEL, "digits", 200, 0, engine.cache), engine.cache)
    order = label_order(view.labels, 200)
    expected = square_rdm(compute_rdm(view.values[4][order].astype(np.float64), "euclidean"))
    assert np.allclose(result.values, expected, atol=1e-4)
    assert result.layer == 4 and result.labels == tuple(view.labels[i] for i in order)
    assert [int(x) for x in result.labels] == sorted(int(x) for x in result.labels)


def test_rsa_commands_store_and_score(engine, tmp_path, capsys):
    data, ids = _simulated(engine, 3, 60, (2,), noise=0.5)
    (tmp_path / "rec.npy").write_bytes(_npy(data))
    (tmp_path / "ids.csv").write_text("sample_id\n" + "\n".join(ids) + "\n")
    assert (
        main(["upload-recording", str(tmp_path / "rec.npy"), "--dataset", "digits", "--ids", str(tmp_path / "ids.csv")])
        == 0
    )
    assert "2 subjects × 60 stimuli × 30 channels" in capsys.readouterr().out
    upload = ["upload-recording", str(tmp_path / "rec.npy"), "--dataset", "digits", "--ids", str(tmp_path / "ids.csv")]
    assert main(upload) == 0  # the same name again: said, not silent
    assert "note: replaced the earlier recording 'rec'" in capsys.readouterr().out
    assert main(["rsa", "--model", MODEL, "--recording", "rec", "--bootstrap", "10"]) == 0
    out = capsys.readouterr().out
    profile = engine.run(RsaRequest(MODEL, "rec", "digits", N_FULL, bootstrap=10))
    assert f"{profile.scores[3].value:.3f}" in out and "60 shared stimuli" in out
    # --n draws from the whole dataset: most recorded stimuli fell out without a word
    assert main(["rsa", "--model", MODEL, "--recording", "rec", "--bootstrap", "0", "--n", "600"]) == 0
    captured = capsys.readouterr()
    shared = int(captured.out.split(" shared stimuli")[0].rsplit(" ", 1)[1])
    assert shared < 60 and f"note: only {shared} of the 60 recorded stimuli are in the model's subset" in captured.err
    assert main(["rsa", "--model", MODEL, "--recording", "missing"]) == 2


def test_the_same_recording_stored_again_has_the_same_digest(engine):
    """The digest was the file's sha256, whose header lists the metadata in an order that changes from one
    write to the next: the same upload got a new digest (and new result keys) each time."""
    data, ids = _simulated(engine, SOURCE, 40, (3,), noise=0.5)
    digests = {add_recording("again", "a.npy", _npy(data), dataset="digits", sample_ids=ids).digest for _ in range(6)}
    assert len(digests) == 1
    changed = add_recording("again", "a.npy", _npy(data + 1.0), dataset="digits", sample_ids=ids).digest
    assert changed not in digests  # other values: another digest


def test_the_best_layer_says_how_surely_it_is_the_best(engine):
    """On a recording of pure noise the CLI still starred a best layer, with nothing to say it was chance."""
    data, ids = _simulated(engine, SOURCE, 120, (3,), noise=0.5)
    add_recording("real", "real.npy", _npy(data), dataset="digits", sample_ids=ids)
    real = engine.run(RsaRequest(MODEL, "real", "digits", N_FULL, 0, bootstrap=50))
    boots = np.stack([score.bootstrap_values for score in real.scores])
    assert real.best_support == pytest.approx((boots.argmax(axis=0) == real.best_layer).mean())
    assert real.best_support > 0.8 and "includes 0" not in real.best_words()

    noise = np.random.default_rng(5).standard_normal((3, 120, 30))
    add_recording("noise", "noise.npy", _npy(noise), dataset="digits", sample_ids=ids)
    chance = engine.run(RsaRequest(MODEL, "noise", "digits", N_FULL, 0, bootstrap=50))
    assert chance.best_support < real.best_support
    assert "every layer's 95% interval includes 0: none is shown to relate to the data" in chance.best_words()
    unmeasured = engine.run(RsaRequest(MODEL, "noise", "digits", N_FULL, 0, bootstrap=0))
    assert unmeasured.best_support is None and "not measured" in unmeasured.best_words()


def test_a_recording_of_a_dataset_replaced_since_is_refused(engine):
    """Re-uploading a dataset under its name gave old recordings new stimuli under the same ids."""
    from alignscope.core.datasets import load_dataset
    from alignscope.core.uploads import add_text_dataset

    add_text_dataset("stimuli", "s.txt", b"alpha\nbeta\ngamma\ndelta\n")
    ids = load_dataset("stimuli").sample_ids
    responses = np.random.default_rng(0).standard_normal((4, 6))
    add_recording("on-old", "r.npy", _npy(responses), dataset="stimuli", sample_ids=ids)
    load_recording("on-old").check_dataset_unchanged()  # the same dataset: fine
    add_text_dataset("stimuli", "s.txt", b"one\ntwo\nthree\nfour\n")
    with pytest.raises(InputError, match="uploaded against an earlier 'stimuli' .* upload the recording again"):
        load_recording("on-old").check_dataset_unchanged()
    with pytest.raises(InputError, match="uploaded against an earlier 'stimuli'"):
        RsaRequest("minilm-l6", "on-old", "stimuli", 4).with_cached_features()
