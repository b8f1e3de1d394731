"""Selection <-> URL: defaults, exact round trip, and no input that makes the parser raise."""

from __future__ import annotations

import random
import string

import pytest

from alignscope.dashboard.state import ALIGNMENT_STRENGTHS, MAX_MODELS, MAX_SELECTED, QUERY_KEYS, Selection


def test_empty_query_is_the_default_without_warnings():
    selection, warnings = Selection.from_query({})
    assert selection == Selection()
    assert warnings == []


def test_default_round_trip_is_exact():
    selection = Selection()
    assert Selection.from_query(selection.to_query()) == (selection, [])


def test_every_field_has_a_url_key():
    assert set(QUERY_KEYS) == set(Selection.__dataclass_fields__)
    assert set(Selection().to_query()) == set(QUERY_KEYS.values())


def _random_selection(rng: random.Random) -> Selection:
    from alignscope.core.metrics.registry import list_metrics
    from alignscope.core.models import list_models

    models = [spec.name for spec in list_models()]
    metrics = [spec.name for spec in list_metrics()]
    n = rng.randint(3, 5000)
    return Selection(
        model_a=rng.choice(models),
        model_b=rng.choice(models),
        models=tuple(rng.sample(models, rng.randint(2, min(len(models), MAX_MODELS)))),
        dataset=rng.choice(["digits", "sentences", "captions"]),
        n=n,
        seed=rng.randint(0, 2**31 - 1),
        metric=rng.choice(metrics),
        metrics=tuple(rng.sample(metrics, rng.randint(1, min(8, len(metrics))))),
        k=rng.randint(1, min(1000, n - 1)),
        layer_a=rng.randint(-5, 30),
        layer_b=rng.randint(-5, 30),
        relative_depth=rng.choice([None, 0.0, 1.0, rng.random()]),
        permutations=rng.randint(0, 5000),
        bootstrap=rng.randint(0, 2000),
        sweep=rng.choice(["k", "n", "prefix", "depth"]),
        projection=rng.choice(["pca", "umap", "aligned_umap"]),
        umap_neighbors=rng.randint(2, 100),
        umap_min_dist=rng.choice([0.0, 0.05, 0.1, 1.0, rng.random()]),
        alignment=rng.choice(ALIGNMENT_STRENGTHS),
        color_by=rng.choice(["label", "alignment"]),
        selected=tuple(f"digit-{i:04d}" for i in rng.sample(range(1797), rng.randint(0, 400))),
    )


@pytest.mark.parametrize("seed", range(50))
def test_random_selection_round_trips_exactly(seed):
    selection = _random_selection(random.Random(seed))
    parsed, warnings = Selection.from_query(selection.to_query())
    assert warnings == []
    assert parsed == selection


@pytest.mark.parametrize(
    ("query", "field", "expected"),
    [
        ({"a": "../../etc/passwd"}, "model_a", "digits-cnn-s0"),
        ({"nn": "1"}, "umap_neighbors", 15),
        ({"nn": "abc"}, "umap_neighbors", 15),
        ({"md": "nan"}, "umap_min_dist", 0.1),
        ({"md": "2"}, "umap_min_dist", 0.1),
        ({"align": "0.5"}, "alignment", 0.01),
        ({"align": "inf"}, "alignment", 0.01),
        ({"b": "digits-cnn-s1/../../x"}, "model_b", "digits-cnn-s1"),
        ({"data": "../cache"}, "dataset", "digits"),
        ({"k": "1000000000"}, "k", 10),
        ({"k": "0"}, "k", 10),
        ({"k": "ten"}, "k", 10),
        ({"n": "-1"}, "n", 500),
        ({"n": "1e9"}, "n", 500),
        ({"n": "3.5"}, "n", 500),
        ({"seed": "-4"}, "seed", 0),
        ({"metric": "rm -rf"}, "metric", "mutual_knn"),
        ({"depth": "2"}, "relative_depth", None),
        ({"depth": "inf"}, "relative_depth", None),
        ({"perm": "99999999"}, "permutations", 200),
        ({"sweep": "<script>"}, "sweep", "k"),
        ({"proj": "tsne"}, "projection", "pca"),
        ({"la": "1000000"}, "layer_a", -1),
        ({"boot": "1"}, "bootstrap", 2),
    ],
)
def test_tampered_values_fall_back_with_a_warning(query, field, expected):
    selection, warnings = Selection.from_query(query)
    assert getattr(selection, field) == expected
    assert len(warnings) == 1
    key = next(iter(query))
    assert warnings[0].startswith(key)


def test_unknown_names_in_lists_are_dropped_and_reported():
    selection, warnings = Selection.from_query({"models": "digits-cnn-s0,../x,digits-cnn-s2,digits-cnn-s0"})
    assert selection.models == ("digits-cnn-s0", "digits-cnn-s2")
    assert any("../x" in w for w in warnings)


def test_selected_ids_are_capped_and_cleaned():
    ids = ",".join(f"id-{i}" for i in range(MAX_SELECTED + 30)) + ",bad\x00id"
    selection, warnings = Selection.from_query({"sel": ids})
    assert len(selection.selected) == MAX_SELECTED
    assert len(warnings) == 2


def test_n_is_bounded_by_the_dataset_and_k_by_n():
    selection, warnings = Selection.from_query({"data": "captions", "n": "500", "k": "100"}, dataset_size=lambda _: 25)
    assert selection.n == 25
    assert selection.k == 10
    assert len(warnings) == 2


def test_lists_count_by_their_last_value_and_unknown_keys_are_reported():
    selection, warnings = Selection.from_query({"metric": ["mutual_knn", "linear_cka"], "utm_source": "x"})
    assert selection.metric == "linear_cka"
    assert warnings == ["ignored unknown parameter 'utm_source'"]


def test_replace_validates_and_clamps():
    changed, notes = Selection().replace(dataset="captions", dataset_size=lambda _: 25)
    assert (changed.dataset, changed.n) == ("captions", 25)
    assert notes
    same, notes = Selection().replace(k=10**9)
    assert same.k == 10 and notes


def _garbage(rng: random.Random) -> str:
    alphabet = string.printable + "\x00\x7f…é😀/\\..%"
    pieces = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))),
        str(rng.choice([-1, 0, 10**30, 2**63, -(2**31)])),
        "../" * rng.randint(1, 5) + "etc/passwd",
        ",".join(rng.choice(["digits-cnn-s0", "", "x", "mutual_knn", ".."]) for _ in range(rng.randint(0, 20))),
        rng.choice(["nan", "inf", "-inf", "1e308", "0x10", " 5 ", "None", "[]", "{}"]),
        "a" * rng.randint(100, 30000),
    ]
    return rng.choice(pieces)


def random_tampered_query(seed: int) -> dict:
    rng = random.Random(seed)
    keys = list(QUERY_KEYS.values()) + ["", "x", "embed", "../k", "k\x00"]
    query: dict = {}
    for _ in range(rng.randint(1, 12)):
        key = rng.choice(keys)
        value = _garbage(rng)
        query[key] = [value, _garbage(rng)] if rng.random() < 0.2 else value
    if rng.random() < 0.1:
        query[rng.choice(keys)] = rng.choice([None, 5, 3.5, [], object()])
    return query


def test_two_hundred_tampered_queries_never_raise():
    for seed in range(200):
        query = random_tampered_query(seed)
        selection, warnings = Selection.from_query(query, dataset_size=lambda name: 1797)
        assert isinstance(selection, Selection)
        assert all(isinstance(w, str) for w in warnings)
        # Whatever came in, what goes out is canonical: it parses back to itself without warnings.
        assert Selection.from_query(selection.to_query(), dataset_size=lambda name: 1797) == (selection, [])


def test_a_failing_size_lookup_does_not_raise():
    def broken(name):
        raise RuntimeError("boom")

    selection, _ = Selection.from_query({"n": "100"}, dataset_size=broken)
    assert selection.n == 100
