"""Model properties (spec -> measured -> user), their persistence and checks, and families of models."""

from __future__ import annotations

import json
import math
import re

import pytest

from alignscope.core.errors import AlignscopeError, InputError, InvalidNameError, UnknownModelError
from alignscope.core.models import ModelProperty, get_model_spec
from alignscope.core.properties import (
    families,
    import_properties_csv,
    model_properties,
    parse_assignment,
    record_measured,
    resolve_models,
    save_family,
    set_user_property,
)
from alignscope.core.settings import Settings, get_settings

SPEC_PARAMS = 28106.0  # digits-cnn-s0's spec: "counted from the architecture"


def _registry(cache_dir) -> dict:
    return json.loads((cache_dir / "uploads" / "registry.json").read_text())


def _fresh_settings(cache_dir) -> Settings:
    """What a new process reads: nothing memoised, the same folder."""
    get_settings.cache_clear()
    return Settings(cache_dir=cache_dir)


# -- precedence and persistence ---------------------------------------------------------------------


def test_a_user_value_overrides_a_measured_one_which_overrides_the_specs(cache_dir):
    spec_params = {p.name: p for p in get_model_spec("digits-cnn-s0").properties}["params"]
    assert spec_params.value == SPEC_PARAMS
    assert model_properties("digits-cnn-s0")["params"] == spec_params

    record_measured("digits-cnn-s0", ModelProperty("params", 28000.0, "count", "measured here: counted"))
    measured = model_properties("digits-cnn-s0")["params"]
    assert (measured.value, measured.source) == (28000.0, "measured here: counted")

    set_user_property("digits-cnn-s0", "params", 12345.0, unit="count")
    user = model_properties("digits-cnn-s0")["params"]
    assert (user.value, user.unit, user.source) == (12345.0, "count", "set by the user")

    # Other models are untouched: the values are per model.
    assert model_properties("digits-cnn-s1")["params"].value == SPEC_PARAMS


def test_the_held_out_accuracy_of_a_trained_net_is_measured_and_a_user_value_still_wins(warm_cache_dir):
    from alignscope.core import digits_nets

    sidecar = digits_nets._read_sidecar(digits_nets.weights_path(1))
    accuracy = model_properties("digits-cnn-s1")["test_accuracy"]
    assert accuracy.value == pytest.approx(sidecar["test_accuracy"]) and 0.8 < accuracy.value <= 1.0
    assert accuracy.source.startswith("measured here")
    set_user_property("digits-cnn-s1", "test_accuracy", 0.25)
    assert model_properties("digits-cnn-s1")["test_accuracy"].value == 0.25


def test_an_untrained_net_has_no_held_out_accuracy_yet(cache_dir):
    assert "test_accuracy" not in model_properties("digits-cnn-s0")


def test_values_persist_in_files_under_the_cache_dir_across_fresh_reads(cache_dir):
    set_user_property("digits-cnn-s0", "imagenet_top1", 77.6, unit="%", source="a model card")
    record_measured("digits-cnn-s1", ModelProperty("probe_accuracy[digits]", 0.93, "fraction", "a probe"))
    save_family("pair", ["digits-cnn-s0", "digits-cnn-s1"])

    assert _registry(cache_dir)["properties"]["digits-cnn-s0"]["imagenet_top1"] == {
        "value": 77.6,
        "unit": "%",
        "source": "a model card",
    }
    measured = json.loads((cache_dir / "models" / "measured_properties.json").read_text())
    assert measured["digits-cnn-s1"]["probe_accuracy[digits]"]["value"] == 0.93

    settings = _fresh_settings(cache_dir)
    assert model_properties("digits-cnn-s0", settings)["imagenet_top1"] == ModelProperty(
        "imagenet_top1", 77.6, "%", "a model card"
    )
    assert model_properties("digits-cnn-s1", settings)["probe_accuracy[digits]"].value == 0.93
    assert families(settings)["pair"] == ("digits-cnn-s0", "digits-cnn-s1")
    # A different cache dir is a different store.
    other = Settings(cache_dir=cache_dir.parent / "other")
    assert "imagenet_top1" not in model_properties("digits-cnn-s0", other)
    assert "pair" not in families(other)


def test_setting_a_property_again_replaces_it_and_keeps_the_others(cache_dir):
    set_user_property("digits-cnn-s0", "a", 1.0)
    set_user_property("digits-cnn-s0", "b", 2.0)
    set_user_property("digits-cnn-s0", "a", 3.0)
    stored = _registry(cache_dir)["properties"]["digits-cnn-s0"]
    assert {name: entry["value"] for name, entry in stored.items()} == {"a": 3.0, "b": 2.0}


# -- parse_assignment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("imagenet_top1=77.6", ("imagenet_top1", 77.6)),
        (" params =1e6", ("params", 1e6)),
        ("probe_accuracy[digits]=-0.5", ("probe_accuracy[digits]", -0.5)),
        ("a.b:c-d=0", ("a.b:c-d", 0.0)),
    ],
)
def test_parse_assignment_reads_key_and_number(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("imagenet_top1", "is not key=value"),
        ("imagenet_top1:77.6", "is not key=value"),
        ("top1=high", "'high' is not a number"),
        ("top1=", "'' is not a number"),
        ("=3", "property name '' is not allowed"),
        ("top 1=3", "property name 'top 1' is not allowed"),
        ("<b>x</b>=1", "is not allowed"),
        ("top1=nan", "'nan' is not a finite number"),
        ("top1=inf", "'inf' is not a finite number"),
        ("top1=-Infinity", "is not a finite number"),
    ],
)
def test_parse_assignment_errors_say_what_is_wrong(text, message):
    with pytest.raises(InputError) as error:
        parse_assignment(text)
    assert message in str(error.value)


# -- hostile input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_and_nothing_is_written(cache_dir, value):
    with pytest.raises(InputError, match="is not a finite number"):
        set_user_property("digits-cnn-s0", "top1", value)
    with pytest.raises(InputError, match="is not a finite number"):
        record_measured("digits-cnn-s0", ModelProperty("top1", value))
    assert not (cache_dir / "uploads" / "registry.json").exists()
    assert not (cache_dir / "models" / "measured_properties.json").exists()
    assert "top1" not in model_properties("digits-cnn-s0")


@pytest.mark.parametrize(
    "name",
    ["two\nlines", "<script>alert(1)</script>", "x" * 81, "", "a/b", "tab\there", "quote'd", 'x"y'],
)
def test_hostile_property_names_are_refused(cache_dir, name):
    with pytest.raises(InputError, match="is not allowed"):
        set_user_property("digits-cnn-s0", name, 1.0)
    assert not (cache_dir / "uploads" / "registry.json").exists()


def test_the_longest_allowed_property_name_is_80_characters(cache_dir):
    set_user_property("digits-cnn-s0", "x" * 80, 1.0)
    assert model_properties("digits-cnn-s0")["x" * 80].value == 1.0


@pytest.mark.parametrize("model", ["nope", "digits-cnn-s0\nrm -rf /", "<img src=x onerror=alert(1)>", "m" * 5000])
def test_properties_of_unknown_models_are_refused_with_a_one_line_message(cache_dir, model):
    with pytest.raises(UnknownModelError) as error:
        set_user_property(model, "top1", 1.0)
    assert "unknown model" in str(error.value) and "\n" not in str(error.value)
    assert not (cache_dir / "uploads" / "registry.json").exists()


def test_hostile_units_and_sources_are_kept_as_text_and_the_returned_property_is_what_was_stored(cache_dir):
    unit = "<b>%</b>"
    source = "<script>alert('x')</script>\n" + "s" * 500
    returned = set_user_property("digits-cnn-s0", "top1", 1.0, unit=unit, source=source)
    stored = model_properties("digits-cnn-s0", _fresh_settings(cache_dir))["top1"]
    assert stored == returned
    assert (stored.unit, stored.source) == (unit, source[:200])


@pytest.mark.parametrize(
    ("name", "value", "unit", "message"),
    [
        ("top1", 1.0, "%\nnext line", "the unit of top1 must be one line of at most 40 characters"),
        ("top1", 1.0, "u" * 41, "the unit of top1 must be one line"),  # was cut to 40 without a word
        ("params", -5.0, "", "property params of digits-cnn-s0 counts parameters: it must be positive, got -5"),
        ("params", 0.0, "", "must be positive, got 0"),
    ],
)
def test_a_unit_on_many_lines_or_a_count_below_one_is_refused_and_nothing_is_written(
    cache_dir, name, value, unit, message
):
    with pytest.raises(InputError, match=re.escape(message)):
        set_user_property("digits-cnn-s0", name, value, unit=unit)
    stored = model_properties("digits-cnn-s0", _fresh_settings(cache_dir)).get(name)
    assert stored is None or stored.value != value


def test_damaged_property_files_are_read_around_not_crashed_on(cache_dir):
    set_user_property("digits-cnn-s0", "good", 1.0)
    registry = _registry(cache_dir)
    registry["properties"]["digits-cnn-s1"] = [1, 2]  # not a {name: entry} mapping
    registry["properties"]["digits-cnn-s0"]["nan"] = {"value": "nan"}
    registry["properties"]["digits-cnn-s0"]["text"] = {"value": "high"}
    registry["properties"]["digits-cnn-s0"]["bare"] = 3.0
    (cache_dir / "uploads" / "registry.json").write_text(json.dumps(registry))
    measured = cache_dir / "models" / "measured_properties.json"
    measured.parent.mkdir(parents=True)
    measured.write_text(json.dumps({"digits-cnn-s2": 5, "digits-cnn-s0": {"inf": {"value": "inf"}}}))

    props = model_properties("digits-cnn-s0")
    assert set(props) == {"params", "good"} and props["good"].value == 1.0
    assert set(model_properties("digits-cnn-s1")) == {"params"}
    assert set(model_properties("digits-cnn-s2")) == {"params"}
    # Writing over a damaged entry replaces it.
    set_user_property("digits-cnn-s1", "top1", 2.0)
    record_measured("digits-cnn-s2", ModelProperty("top1", 4.0))
    assert model_properties("digits-cnn-s1")["top1"].value == 2.0
    assert model_properties("digits-cnn-s2")["top1"].value == 4.0


# -- CSV import -------------------------------------------------------------------------------------


def test_a_csv_sets_every_row_with_its_unit_and_source(cache_dir):
    data = (
        b"model,name,value,unit,source\n"
        b"digits-cnn-s0,imagenet_top1,71.5,%,a paper\n"
        b"digits-cnn-s1,imagenet_top1,72,,\n"
        b'digits-cnn-s1,note,3,"count, rough","line one, quoted"\n'
    )
    assert import_properties_csv(data) == 3
    settings = _fresh_settings(cache_dir)
    assert model_properties("digits-cnn-s0", settings)["imagenet_top1"] == ModelProperty(
        "imagenet_top1", 71.5, "%", "a paper"
    )
    assert model_properties("digits-cnn-s1", settings)["imagenet_top1"] == ModelProperty(
        "imagenet_top1", 72.0, "", "imported from a CSV"
    )
    assert model_properties("digits-cnn-s1", settings)["note"] == ModelProperty(
        "note", 3.0, "count, rough", "line one, quoted"
    )


def test_a_csv_written_by_a_spreadsheet_with_a_byte_order_mark_is_read(cache_dir):
    """Regression: "CSV UTF-8" from Excel starts with a BOM, so the first column was "\\ufeffmodel" and the
    file was refused as lacking the column ``model``."""
    assert import_properties_csv("model,name,value\ndigits-cnn-s0,top1,5\n".encode("utf-8-sig")) == 1
    assert model_properties("digits-cnn-s0")["top1"].value == 5.0


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("nope,top1,1", "line 3 of the properties CSV: unknown model 'nope'"),
        ("digits-cnn-s1,top1,high", "line 3 of the properties CSV: could not convert string to float"),
        ("digits-cnn-s1,top1,nan", "line 3 of the properties CSV: 'nan' is not a finite number"),
        ("digits-cnn-s1,top1,-inf", "line 3 of the properties CSV: '-inf' is not a finite number"),
        ("digits-cnn-s1,<b>top</b>,1", "line 3 of the properties CSV: property name '<b>top</b>' is not allowed"),
        ("digits-cnn-s1,top1", "line 3 of the properties CSV: it has fewer columns than the header"),
    ],
)
def test_a_csv_with_one_bad_row_writes_nothing(cache_dir, bad_row, message):
    """Every row is checked before any is written: the good rows around the bad one are not set either."""
    data = f"model,name,value\ndigits-cnn-s0,top1,1\n{bad_row}\ndigits-cnn-s2,top1,2\n".encode()
    with pytest.raises(InputError) as error:
        import_properties_csv(data)
    assert message in str(error.value)
    assert not (cache_dir / "uploads" / "registry.json").exists()
    assert all("top1" not in model_properties(f"digits-cnn-s{seed}") for seed in range(3))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "needs the columns model, name, value"),
        (b"model,property,value\ndigits-cnn-s0,top1,1\n", "needs the columns model, name, value"),
        (b"model,name,value\n", "has a header but no rows"),
        (b"model,name,value\ndigits-cnn-s0,top\xff,1\n", "is not UTF-8 text"),
    ],
)
def test_a_csv_that_is_not_a_properties_table_is_refused(cache_dir, data, message):
    with pytest.raises(InputError) as error:
        import_properties_csv(data)
    assert message in str(error.value)
    assert not (cache_dir / "uploads" / "registry.json").exists()


# -- families ---------------------------------------------------------------------------------------


def test_the_specs_families_with_two_or_more_members_are_listed(cache_dir):
    known = families()
    assert known["digits-cnn"] == ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
    assert known["digits-ladder"] == tuple(f"digits-ladder-{rung}" for rung in range(1, 8))
    assert get_model_spec("minilm-l6").family == "minilm" and "minilm" not in known  # a family of one


def test_a_saved_family_is_listed_without_repeats_in_the_order_given(cache_dir):
    members = save_family("mixed", ["digits-cnn-s2", "digits-ladder-1", "digits-cnn-s2", "digits-cnn-s0"])
    assert members == ("digits-cnn-s2", "digits-ladder-1", "digits-cnn-s0")
    assert families()["mixed"] == members
    save_family("mixed", ["digits-cnn-s0", "digits-cnn-s1"])  # saving again replaces it
    assert families()["mixed"] == ("digits-cnn-s0", "digits-cnn-s1")


@pytest.mark.parametrize(
    ("name", "models", "error", "message"),
    [
        ("solo", ["digits-cnn-s0"], InputError, "at least two models, got 1"),
        ("solo", ["digits-cnn-s0", "digits-cnn-s0"], InputError, "at least two models, got 1"),
        ("none", [], InputError, "at least two models, got 0"),
        ("typo", ["digits-cnn-s0", "digits-cnn-s9"], UnknownModelError, "unknown model 'digits-cnn-s9'"),
        ("../up", ["digits-cnn-s0", "digits-cnn-s1"], InvalidNameError, "family name '../up' is not allowed"),
        ("a\nb", ["digits-cnn-s0", "digits-cnn-s1"], InvalidNameError, "is not allowed"),
        ("<b>", ["digits-cnn-s0", "digits-cnn-s1"], InvalidNameError, "is not allowed"),
        ("f" * 101, ["digits-cnn-s0", "digits-cnn-s1"], InvalidNameError, "is not allowed"),
        ("family:x", ["digits-cnn-s0", "digits-cnn-s1"], InvalidNameError, "is not allowed"),
        # Regression: a saved group silently replaced the built-in family (what the ladder preset names).
        ("digits-ladder", ["digits-cnn-s0", "digits-cnn-s1"], InputError, "is the family of registered models"),
    ],
)
def test_bad_families_are_refused_and_nothing_is_saved(cache_dir, name, models, error, message):
    with pytest.raises(error) as raised:
        save_family(name, models)
    assert message in str(raised.value)
    assert not (cache_dir / "uploads" / "registry.json").exists()
    assert families()["digits-ladder"][0] == "digits-ladder-1"


def test_resolve_models_expands_families_in_order_without_repeats(cache_dir):
    save_family("pair", ["digits-cnn-s1", "digits-ladder-2"])
    assert resolve_models(["digits-ladder-2", "family:digits-cnn", "family:pair"]) == (
        "digits-ladder-2",
        "digits-cnn-s0",
        "digits-cnn-s1",
        "digits-cnn-s2",
    )
    assert resolve_models([]) == ()


def test_resolve_models_names_the_unknown_family_and_lists_the_known_ones(cache_dir):
    save_family("pair", ["digits-cnn-s1", "digits-cnn-s2"])
    with pytest.raises(InputError) as error:
        resolve_models(["digits-cnn-s0", "family:nope"])
    message = str(error.value)
    assert message.startswith("no family 'nope'; families: digits-cnn, digits-ladder, efficientnet, pair")
    # (families of representations other tests uploaded in this process may follow)
    with pytest.raises(UnknownModelError, match="unknown model 'digits-cnn-s7'"):
        resolve_models(["digits-cnn-s0", "digits-cnn-s7"])


def test_a_saved_family_whose_model_is_gone_names_that_model(cache_dir):
    """Regression: the members of a saved family were returned unchecked, so a removed model failed later
    (or was scored under a name nothing knew)."""
    save_family("pair", ["digits-cnn-s1", "digits-cnn-s2"])
    registry = _registry(cache_dir)
    registry["families"]["pair"] = ["digits-cnn-s1", "removed-model"]
    (cache_dir / "uploads" / "registry.json").write_text(json.dumps(registry))
    with pytest.raises(InputError) as error:
        resolve_models(["family:pair"])
    assert "family 'pair' lists 'removed-model', which is no longer a registered model" in str(error.value)
    assert isinstance(error.value, AlignscopeError)
