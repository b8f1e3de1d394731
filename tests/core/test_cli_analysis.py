"""The analysis commands of `alignscope`: model properties, families, trends, differences, probes and
uploaded representations, run in-process on the three digits nets (as tests/core/test_cli.py does)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alignscope.core.cli import main
from alignscope.core.models import list_models
from alignscope.core.properties import families, measured_properties, model_properties

NETS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")


@pytest.fixture(scope="module")
def digits_features_dir(trained_models_dir, tmp_path_factory):
    """A cache with the three digits nets trained and their features on digits extracted, made once for
    this module (extraction is what costs here); each test gets a copy."""
    from alignscope.core.analysis.features import extract_for_plan, plan_features
    from alignscope.core.settings import get_settings

    root = tmp_path_factory.mktemp("digits-features")
    (root / "models").mkdir()
    for path in trained_models_dir.iterdir():
        if path.suffix in (".safetensors", ".json"):
            shutil.copy(path, root / "models" / path.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_CACHE_DIR", str(root))
        get_settings.cache_clear()
        for model in NETS:
            extract_for_plan(plan_features(model, "digits", 100, 0))
    get_settings.cache_clear()
    return root


@pytest.fixture
def digits_cache(cache_dir, digits_features_dir):
    """This test's own cache dir, holding the trained nets and their features."""
    shutil.copytree(digits_features_dir, cache_dir, dirs_exist_ok=True)
    return cache_dir


@pytest.fixture(autouse=True)
def _forget_added_models():
    """Models an upload registers stay in this process's registry: remove them after the test."""
    from alignscope.core.models import MODELS

    before = {spec.name for spec in list_models()}
    yield
    for spec in list_models():
        if spec.name not in before:
            MODELS.unregister(spec.name)


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _model_row(capsys, name: str) -> dict:
    assert main(["models", "--format", "json"]) == 0
    return next(row for row in _json(capsys) if row["name"] == name)


def _error_line(err: str) -> str:
    return err.strip().split("\r")[-1].splitlines()[-1]  # after any progress bar


# -- models: properties -----------------------------------------------------------------------------


def test_models_json_is_valid_and_holds_a_property_set_with_the_cli(cache_dir, capsys):
    assert main(["models", "--set", "digits-cnn-s0", "imagenet_top1=12.5", "params=3", "--unit", "%"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["digits-cnn-s0: imagenet_top1 = 12.5 %", "digits-cnn-s0: params = 3 %"]
    # replacing a value the model had (its counted parameters) is said, with where the old one came from
    assert len(lines) == 3 and lines[2].startswith("note: replaced params = 28106 (")
    row = _model_row(capsys, "digits-cnn-s0")
    assert row["family"] == "digits-cnn" and row["kind"] == "torch-hooks"
    assert row["properties"]["imagenet_top1"] == {"value": 12.5, "unit": "%", "source": "set by the user"}
    assert row["properties"]["params"]["value"] == 3.0  # the user's value over the spec's 28106
    assert _model_row(capsys, "digits-cnn-s1")["properties"]["params"]["value"] == 28106.0

    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("digits-cnn-s0 "))
    assert "imagenet_top1=12.5, params=3" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "--set", "digits-cnn-s0", "a=1", "b=nan"], "'b=nan': 'nan' is not a finite number"),
        (["models", "--set", "digits-cnn-s0", "a=1", "b=high"], "'high' is not a number"),
        (["models", "--set", "digits-cnn-s0", "a=1", "b"], "'b' is not key=value"),
        (["models", "--set", "digits-cnn-s0", "a=1", "a=2"], "gives a more than once"),
        (["models", "--set", "digits-cnn-s0", "a=1", "<b>x</b>=1"], "property name '<b>x</b>' is not allowed"),
        (["models", "--set", "nope", "a=1"], "unknown model 'nope'"),
        (["models", "--set", "digits-cnn-s0"], "give the properties after the model"),
        (["models", "--set", "digits-cnn-s0", "a=1", "--import-properties", "x.csv"], "are separate steps"),
        (["models", "--set", "digits-cnn-s0", "a=1", "params=0"], "counts parameters: it must be positive, got 0"),
        (["models", "--set", "digits-cnn-s0", "a=1", "--unit", "x\ny"], "the unit of a must be one line"),
    ],
)
def test_bad_assignments_are_one_clear_line_and_nothing_is_written(cache_dir, capsys, argv, message):
    """Every assignment is checked before any is written (regression: ``a=1 b=nan`` wrote a, then failed)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert _error_line(err) == err.strip() and err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert "a" not in _model_row(capsys, "digits-cnn-s0")["properties"]
    assert not (cache_dir / "uploads" / "registry.json").exists()


def test_import_properties_from_a_csv_and_a_bad_csv_writes_nothing(cache_dir, tmp_path, capsys):
    good = tmp_path / "props.csv"
    good.write_text("model,name,value,unit,source\ndigits-cnn-s1,imagenet_top1,70.5,%,a card\ndigits-cnn-s2,top5,9,,\n")
    assert main(["models", "--import-properties", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "set 2 properties from props.csv"
    assert _model_row(capsys, "digits-cnn-s1")["properties"]["imagenet_top1"] == {
        "value": 70.5,
        "unit": "%",
        "source": "a card",
    }
    assert _model_row(capsys, "digits-cnn-s2")["properties"]["top5"]["source"] == "imported from a CSV"

    bad = tmp_path / "bad.csv"
    bad.write_text("model,name,value\ndigits-cnn-s0,fresh,1\ndigits-cnn-s0,fresh2,inf\n")
    assert main(["models", "--import-properties", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: line 3 of the properties CSV: 'inf' is not a finite number"
    assert not {"fresh", "fresh2"} & set(_model_row(capsys, "digits-cnn-s0")["properties"])
    bad.write_text("model,name,value,unit\ndigits-cnn-s0,fresh,1,%\ndigits-cnn-s0,fresh2,1," + "u" * 41 + "\n")
    assert main(["models", "--import-properties", str(bad)]) == 2  # a unit checked only when written: fresh stayed
    assert "line 3 of the properties CSV: the unit of fresh2 must be one line" in capsys.readouterr().err
    assert not {"fresh", "fresh2"} & set(_model_row(capsys, "digits-cnn-s0")["properties"])

    assert main(["models", "--import-properties", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read") and "missing.csv" in err and "No such file" in err


# -- families and trends ----------------------------------------------------------------------------


def test_a_saved_family_resolves_in_trend_even_when_a_net_is_not_trained_yet(digits_cache, capsys):
    """``families --add`` then ``trend --models family:NAME``; regression: the trend looked up each model's
    held-out accuracy before extracting (so before training), so an untrained net got no x (left out of
    rho), and on a fresh cache ``trend --preset ladder`` stopped with "none ... has the property"."""
    from alignscope.core.cache import FeatureCache

    for path in (digits_cache / "models").glob("digits-cnn-*-seed2.*"):
        path.unlink()
    cache = FeatureCache()
    for entry in cache.entries():
        if entry.model == "digits-cnn-s2":
            cache.remove(entry.key)
    assert "test_accuracy" not in model_properties("digits-cnn-s2")

    assert main(["families", "--add", "trio", "--models", " digits-cnn-s0, digits-cnn-s1,digits-cnn-s2,"]) == 0
    assert capsys.readouterr().out.strip() == "saved family 'trio': digits-cnn-s0, digits-cnn-s1, digits-cnn-s2"
    assert main(["families"]) == 0
    listed = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()[1:])
    assert listed["trio"].strip() == listed["digits-cnn"].strip() == ", ".join(NETS)

    args = ["trend", "--models", "family:trio", "--n", "100", "--bootstrap", "20"]
    assert main([*args, "--format", "json"]) == 0
    trend = _json(capsys)
    assert trend["models"] == list(NETS) and trend["n_samples"] == 100 and trend["n_bootstrap"] == 20
    accuracies = [model_properties(model)["test_accuracy"].value for model in NETS]
    assert trend["x"] == pytest.approx(accuracies) and all(0.8 < value <= 1.0 for value in accuracies)
    scores = np.array([[np.nan if v is None else v for v in row] for row in trend["pair_scores"]])
    assert np.isnan(np.diag(scores)).all()  # a model is not its own reference
    assert scores == pytest.approx(scores.T, nan_ok=True)  # mutual_knn is symmetric
    assert trend["y"] == pytest.approx(np.nanmean(scores, axis=1))
    assert all(low <= y <= high for low, y, high in zip(trend["ci_low"], trend["y"], trend["ci_high"]))
    assert all(chance < y for chance, y in zip(trend["chance"], trend["y"]))
    # each point is the best of 25 layer pairs: its chance is the search's, above the fixed pair's
    assert all(fixed < best < y for fixed, best, y in zip(trend["chance"], trend["chance_of_best"], trend["y"]))
    assert "search_chance" not in trend  # JSON names it as the table does
    assert trend["rho"] == pytest.approx(scipy_stats.spearmanr(trend["x"], trend["y"]).statistic)
    assert trend["n_orderings"] == 6

    assert main(args) == 0  # the table, from the stored result
    out = capsys.readouterr().out
    header, *rows = out.splitlines()[:4]
    columns = ["model", "test_accuracy", "mutual_knn", "ci_low", "ci_high", "chance", "chance_of_best", "layers"]
    assert header.split() == columns
    assert [row.split()[2] for row in rows] == [f"{y:.4f}" for y in trend["y"]]
    assert [row.split()[6] for row in rows] == [f"{c:.4f}" for c in trend["chance_of_best"]]
    assert "read it against chance_of_best" in out
    # Regression: with no reference set this named the models themselves as the references.
    assert "mutual_knn against the other models on digits (n = 100), 20 bootstrap resamples" in out
    assert f"Spearman rho = {trend['rho']:+.3f} across 3 models, two-sided permutation p = " in out

    # saved again with other members: replaced, and said; then removed (its models stay); a built-in cannot be
    assert main(["families", "--add", "trio", "--models", "digits-cnn-s0,digits-cnn-s1"]) == 0
    assert "note: replaced the earlier family 'trio' (digits-cnn-s0, digits-cnn-s1, digits-cnn-s2)" in (
        capsys.readouterr().out
    )
    assert main(["families", "--remove", "trio"]) == 0
    assert "removed family 'trio' (digits-cnn-s0, digits-cnn-s1); its models stay" in capsys.readouterr().out
    assert "trio" not in families() and "digits-cnn-s1" in [spec.name for spec in list_models()]
    assert main(["families", "--remove", "trio"]) == 2
    assert "no saved family 'trio'; saved families: none" in capsys.readouterr().err
    assert main(["families", "--remove", "digits-cnn"]) == 2
    assert "is the family of registered models, not a saved one" in capsys.readouterr().err


def test_a_trend_against_a_reference_set_scores_only_those_pairs(digits_cache, capsys):
    import csv

    argv = ["trend", "--models", "digits-cnn-s0,digits-cnn-s1", "--reference", "digits-cnn-s2", "--n", "100"]
    assert main([*argv, "--bootstrap", "0", "--layers", "last", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(captured.out.splitlines()))
    assert "Spearman rho = " in captured.err  # the CSV had no rho anywhere; stdout stays one table
    assert list(rows[0]) == ["model", "test_accuracy", "mutual_knn", "ci_low", "ci_high", "chance", "layers"]
    assert [row["model"] for row in rows] == ["digits-cnn-s0", "digits-cnn-s1"]
    assert [row["layers"] for row in rows] == ["digits-cnn-s2@4,4"] * 2  # the last of 5 layers, each side
    assert [row["ci_low"] for row in rows] == ["", ""]  # no bootstrap, no interval: an empty cell, not a dash
    for row in rows:  # one reference: the point is that pair's score
        score = ["score", "--model-a", row["model"], "--model-b", "digits-cnn-s2", "--dataset", "digits"]
        assert main([*score, "--n", "100", "--layers", "last", "--format", "json"]) == 0
        (pair,) = _json(capsys)
        assert float(row["mutual_knn"]) == pytest.approx(pair["value"], abs=1e-12)  # full precision in CSV
        assert float(row["test_accuracy"]) == pytest.approx(
            model_properties(row["model"])["test_accuracy"].value, abs=1e-12
        )
    # a metric with no closed-form chance at a fixed depth: the empty chance column says why
    assert main([*argv, "--bootstrap", "0", "--layers", "last", "--metric", "linear_cka"]) == 0
    assert "linear_cka has no closed-form chance level" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trend", "--preset", "nope"], "no trend preset 'nope'; presets: prh, ladder"),
        (["trend"], "name the models (--models a,b,c or family:NAME) or a --preset"),
        (["trend", "--models", "family:nope"], "no family 'nope'; families: digits-cnn, digits-ladder"),
        (["trend", "--models", "digits-cnn-s0,nope"], "unknown model 'nope'"),
        (["trend", "--models", "digits-cnn-s0,digits-cnn-s1", "--layers", "middle"], "layers must be 'best'"),
        (["trend", "--models", "digits-cnn-s0,digits-cnn-s1", "--metric", "nope"], "unknown metric 'nope'"),
        (["trend", "--models", "digits-cnn-s0,digits-cnn-s1", "--dataset", "nope"], "unknown dataset 'nope'"),
        (
            ["trend", "--models", "digits-cnn-s0,digits-cnn-s1", "--n", "50", "--property", "imagenet_top1"],
            "none of digits-cnn-s0, digits-cnn-s1 has the property 'imagenet_top1'",
        ),
        (["families", "--add", "solo", "--models", "digits-cnn-s0"], "a family needs at least two models, got 1"),
        (["families", "--add", "../x", "--models", "digits-cnn-s0,digits-cnn-s1"], "family name '../x'"),
        (["families", "--add", "digits-cnn", "--models", "digits-cnn-s0,digits-cnn-s1"], "is the family of"),
        (["families", "--models", "digits-cnn-s0,digits-cnn-s1"], "give its name with --add NAME"),
        (
            ["difference", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s0"]
            + ["--reference", "digits-cnn-s2", "--dataset", "digits"],
            "a difference needs three different models",
        ),
        (
            ["difference", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1"]
            + ["--reference", "digits-cnn-s2", "--dataset", "digits", "--layers", "top"],
            "layers must be 'best' (or 'all'), 'last' or 'depth:<0..1>'",
        ),
        (["probe", "--model", "nope", "--dataset", "digits"], "unknown model 'nope'"),
        (["upload-representation", "missing.npy", "--dataset", "digits"], "cannot read 'missing.npy'"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(digits_cache, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = _error_line(err)
    assert last.startswith("error: ") and message in last and "Traceback" not in err


def test_out_of_range_numbers_are_usage_errors(cache_dir, capsys):
    for argv, message in [
        (["trend", "--models", "a,b", "--bootstrap", "-1"], "--bootstrap: must be between 0 and 1000000"),
        (["probe", "--model", "a", "--dataset", "d", "--n", "5"], "--n: must be at least 10"),
        (["probe", "--model", "a", "--dataset", "d", "--folds", "1"], "--folds: must be at least 2"),
        (["difference", "--model-a", "a", "--model-b", "b", "--reference", "c", "--dataset", "d", "--k", "0"], "--k"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


# -- difference and probe ---------------------------------------------------------------------------


@pytest.mark.parametrize("layers", ["best", "last", "depth:0.5"])
def test_difference_scores_are_those_of_alignscope_score_for_the_same_pairs(digits_cache, capsys, layers):
    """score takes the same --layers words as difference (it knew only all / last / i,j)."""
    common = ["--dataset", "digits", "--n", "100", "--metric", "mutual_knn", "--k", "10"]
    argv = ["difference", "--model-a", "digits-cnn-s0", "--model-b", "digits-cnn-s1", "--reference", "digits-cnn-s2"]
    assert main([*argv, *common, "--layers", layers, "--bootstrap", "20", "--format", "json"]) == 0
    result = _json(capsys)
    test = result["test"]
    by_pair = {}
    for model in ("digits-cnn-s0", "digits-cnn-s1"):
        assert (
            main(
                ["score", "--model-a", model, "--model-b", "digits-cnn-s2", *common, "--layers", layers]
                + ["--format", "json"]
            )
            == 0
        )
        (by_pair[model],) = _json(capsys)
    score_a, score_b = by_pair["digits-cnn-s0"], by_pair["digits-cnn-s1"]
    assert test["score_a"] == pytest.approx(score_a["value"], abs=1e-9)
    assert test["score_b"] == pytest.approx(score_b["value"], abs=1e-9)
    assert result["layers_a"] == [score_a["layer_a"], score_a["layer_b"]]
    assert result["layers_b"] == [score_b["layer_a"], score_b["layer_b"]]
    assert result["layer_names_a"] == [score_a["layer_a_name"], score_a["layer_b_name"]]
    if layers == "last":
        assert result["layer_names_a"] == result["layer_names_b"] == ["logits", "logits"]
    if layers == "depth:0.5":  # the middle of 5 layers, each side
        assert result["layers_a"] == result["layers_b"] == [2, 2]
    assert test["difference"] == pytest.approx(test["score_a"] - test["score_b"])
    assert test["n_samples"] == 100 and test["n_resamples"] == 20 and 0 < test["p_value"] <= 1
    assert test["ci_low"] <= test["difference"] <= test["ci_high"]

    assert main([*argv, *common, "--layers", layers, "--bootstrap", "20"]) == 0  # the table, stored result
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"mutual_knn(digits-cnn-s0, digits-cnn-s2) = {test['score_a']:.4f}  at ")
    assert lines[1].startswith(f"mutual_knn(digits-cnn-s1, digits-cnn-s2) = {test['score_b']:.4f}  at ")
    assert lines[2].startswith(f"difference = {test['difference']:+.4f}, 95% paired interval")
    assert lines[2].endswith("(paired bootstrap, 20 resamples, n = 100)")
    # each model's best pair was searched on these samples: said, as the interval does not redo the search
    assert any(line.startswith("note: Each model's layer pair was chosen as its best") for line in lines) == (
        layers == "best"
    )
    if layers == "best":  # 'all', score's word for the search, is the same request (one stored result)
        from alignscope.core.analysis.differences import DifferenceRequest

        assert main([*argv, *common, "--layers", "all", "--bootstrap", "20", "--format", "json"]) == 0
        assert _json(capsys)["test"] == test
        assert DifferenceRequest("a", "b", "c", "digits", 100, layers="all").layers == "best"
    # a sign-flip p counts its flips (9999), not the bootstrap's 20 resamples behind the interval (it said 20)
    assert main([*argv, *common, "--layers", layers, "--bootstrap", "20", "--method", "sign_flip"]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert line.endswith("(sign flip, 9999 flips; interval from 20 bootstrap resamples, n = 100)")


def test_probe_records_its_accuracy_as_a_property_that_models_lists(digits_cache, capsys):
    assert main(["probe", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "150", "--folds", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["layer", "accuracy", "±", "folds"]
    rows = [line.split() for line in out[1:6]]
    assert [row[0] for row in rows] == ["conv1", "conv2", "conv3", "fc1", "logits"]
    accuracies = [float(row[1]) for row in rows]
    best = max(accuracies)
    assert best > 0.8  # a trained digits net's features are linearly separable, far above chance (0.1)
    assert out[-2].startswith(f"set digits-cnn-s0: probe_accuracy[digits] = {best:.4f} (chance 0.")

    prop = _model_row(capsys, "digits-cnn-s0")["properties"]["probe_accuracy[digits]"]
    assert prop["value"] == pytest.approx(best, abs=5e-5) and prop["unit"] == "fraction"
    assert "3-fold" in prop["source"] and "150 samples" in prop["source"]
    layer = ["conv1", "conv2", "conv3", "fc1", "logits"][accuracies.index(best)]
    assert f"({layer})" in prop["source"]
    assert "probe_accuracy[digits]" not in _model_row(capsys, "digits-cnn-s1")["properties"]

    # A user's value still wins over the measured one.
    assert main(["models", "--set", "digits-cnn-s0", "probe_accuracy[digits]=0.5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "digits-cnn-s0: probe_accuracy[digits] = 0.5"
    assert lines[1].startswith(f"note: replaced probe_accuracy[digits] = {prop['value']:g} (measured here")
    assert _model_row(capsys, "digits-cnn-s0")["properties"]["probe_accuracy[digits]"]["value"] == 0.5
    # probing again on other samples: the measured value it replaces is said, and that the user's still wins
    assert main(["probe", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "120", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert f"note: replaced the earlier probe_accuracy[digits] = {prop['value']:.4f} (measured here: 3-fold" in out
    assert "note: the value you set, probe_accuracy[digits] = 0.5, still wins" in out
    assert "the best of 5 layers' accuracies, picked on the same folds" in out
    # the first probe again, read back from the store: it said "replaced" but kept the second's value
    assert main(["probe", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "150", "--folds", "3"]) == 0
    assert "note: replaced the earlier probe_accuracy[digits]" in capsys.readouterr().out
    assert measured_properties("digits-cnn-s0")["probe_accuracy[digits]"].value == pytest.approx(best, abs=5e-5)


# -- uploaded representations -----------------------------------------------------------------------


def _digits_matrix(path, rows: int = 1797) -> None:
    np.save(path, np.random.default_rng(0).normal(size=(rows, 6)).astype(np.float32))


def test_an_uploaded_representation_is_a_model_with_the_properties_given(cache_dir, tmp_path, capsys):
    matrix = tmp_path / "brain.npy"
    _digits_matrix(matrix)
    argv = ["upload-representation", str(matrix), "--dataset", "digits", "--name", "brain-1"]
    assert main([*argv, "--set", "voxels=6", "snr=2.5"]) == 0
    assert capsys.readouterr().out.startswith("added model 'brain-1': precomputed 1797×6 from brain.npy")
    row = _model_row(capsys, "brain-1")
    assert row["kind"] == "representation" and row["family"] == "upload"
    assert {name: entry["value"] for name, entry in row["properties"].items()} == {"voxels": 6.0, "snr": 2.5}

    # Without --name the file's name is the model's.
    plain = tmp_path / "plain.npy"
    _digits_matrix(plain)
    assert main(["upload-representation", str(plain), "--dataset", "digits"]) == 0
    assert "added model 'plain'" in capsys.readouterr().out
    assert _model_row(capsys, "plain")["properties"] == {}


def test_probe_and_identify_layers_write_json_with_the_numbers_their_tables_show(digits_cache, capsys):
    """probe and identify-layers printed tables only: a script had to parse them."""
    probe = ["probe", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "150", "--folds", "3"]
    assert main(probe) == 0
    table = capsys.readouterr().out.splitlines()
    assert main([*probe, "--format", "json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the JSON alone; the notes go to stderr
    assert "set digits-cnn-s0: probe_accuracy[digits]" in captured.err
    shown = {line.split()[0]: line.split()[1] for line in table[1:6]}
    assert {name: f"{layer['accuracy']:.4f}" for name, layer in zip(result["layer_names"], result["layers"])} == shown
    identify = ["identify-layers", "--models", "digits-cnn-s0,digits-cnn-s1", "--dataset", "digits", "--n", "150"]
    assert main([*identify, "--metric", "linear_cka"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert main([*identify, "--metric", "linear_cka", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert row[0] == "linear_cka" and f"{result['accuracy']['linear_cka']:.3f}" == row[1]


def test_an_upload_replaced_under_its_name_says_so_and_drops_what_was_measured_of_it(cache_dir, tmp_path, capsys):
    """Uploading random numbers under the name of the digits' pixels kept the pixels' probe accuracy (0.95
    on a matrix that scores 0.1), without a word: trends over that property read the old matrix's number."""
    from sklearn.datasets import load_digits

    pixels, noise = tmp_path / "pixels.npy", tmp_path / "noise.npy"
    np.save(pixels, load_digits().data.astype(np.float32))
    _digits_matrix(noise)
    assert main(["upload-representation", str(pixels), "--dataset", "digits", "--set", "voxels=64"]) == 0
    assert main(["probe", "--model", "pixels", "--dataset", "digits", "--n", "300", "--folds", "3"]) == 0
    capsys.readouterr()
    assert _model_row(capsys, "pixels")["properties"]["probe_accuracy[digits]"]["value"] > 0.8
    assert main(["upload-representation", str(noise), "--dataset", "digits", "--name", "pixels"]) == 0
    out = capsys.readouterr().out
    assert "note: replaced the earlier model 'pixels' (precomputed 1797×64 from pixels.npy" in out
    properties = _model_row(capsys, "pixels")["properties"]
    assert "probe_accuracy[digits]" not in properties and properties["voxels"]["value"] == 64.0


@pytest.mark.parametrize(
    ("extra", "rows", "message"),
    [
        (["--set", "snr=nan"], 1797, "'snr=nan': 'nan' is not a finite number"),
        (["--set", "snr"], 1797, "'snr' is not key=value"),
        ([], 1000, "has 1000 rows but dataset 'digits' has 1797 samples"),
        (["--name", "../escape"], 1797, "is not allowed"),
    ],
)
def test_a_refused_upload_adds_no_model(cache_dir, tmp_path, capsys, extra, rows, message):
    """Regression: a non-finite ``--set`` value was refused only after the matrix was stored and the model
    registered, so the command failed yet the model stayed."""
    matrix = tmp_path / "refused.npy"
    _digits_matrix(matrix, rows)
    assert main(["upload-representation", str(matrix), "--dataset", "digits", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not {"refused", "../escape"} & {spec.name for spec in list_models()}
    assert not (cache_dir / "uploads" / "models").exists()
