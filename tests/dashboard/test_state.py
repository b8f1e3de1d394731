"""Selection <-> URL: defaults, exact round trip (selections of any size), and no input that makes the
parser raise."""

from __future__ import annotations

import random

import pytest

from alignscope.dashboard.selection import ALIGNMENT_STRENGTHS, FIELDS, MAX_MODELS, QUERY_KEYS, Selection
from tests.dashboard.helpers import random_tampered_query


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
        trend_depth=rng.choice([None, 0.0, 0.75, rng.random()]),
        permutations=rng.randint(0, 5000),
        bootstrap=rng.randint(0, 2000),
        sweep=rng.choice(["k", "n", "prefix", "depth"]),
        projection=rng.choice(["pca", "umap", "aligned_umap"]),
        umap_neighbors=rng.randint(2, 100),
        umap_min_dist=rng.choice([0.0, 0.05, 0.1, 1.0, rng.random()]),
        alignment=rng.choice(ALIGNMENT_STRENGTHS),
        color_by=rng.choice(["label", "alignment"]),
        similarity=rng.choice(["cosine", "ip", "euclidean"]),
        selected=tuple(f"digit-{i:04d}" for i in sorted(rng.sample(range(1797), rng.randint(0, 1797)))),
        inspected=rng.choice([None, f"digit-{rng.randint(0, 1796):04d}"]),
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
        ({"folds": "1"}, "shape_folds", 0),
        ({"tdepth": "-0.5"}, "trend_depth", None),
    ],
)
def test_tampered_values_fall_back_with_a_warning(query, field, expected):
    selection, warnings = Selection.from_query(query)
    assert getattr(selection, field) == expected
    assert len(warnings) == 1
    key = next(iter(query))
    assert warnings[0].startswith(key)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"n": "99999999999999999999"}, "n='99999999999999999999': n must lie in [3, "),
        ({"k": "99999999999999999999"}, "k='99999999999999999999': k must lie in [1, 499] for n=500; using k=10"),
        ({"perm": "99999999999999999999"}, "perm='99999999999999999999': must lie in [0, "),
        ({"perm": "2.5"}, "perm='2.5': must be a whole number; using perm=200"),
        ({"alpha": "5"}, "alpha='5': must be a number in [0.0, 1.0]; using alpha=1.0"),
        ({"folds": "1"}, "folds=1: cross-validation needs at least 2 folds (0 fits in-sample); using 0"),
    ],
)
def test_a_fixed_value_is_explained_by_what_was_wrong_with_it(query, message):
    """A huge whole number is out of range, not "not a whole number"; no field's description is garbled
    into the reason."""
    _, warnings = Selection.from_query(query)
    assert len(warnings) == 1 and warnings[0].startswith(message), warnings


def test_leading_zeros_do_not_make_a_number_huge():
    selection, warnings = Selection.from_query({"perm": "00000000000000000005"})
    assert (selection.permutations, warnings) == (5, [])


def test_a_link_from_before_the_trends_own_depth_keeps_its_trends_layers():
    old, warnings = Selection.from_query({"depth": "0.75", "tm": "digits-cnn-s0,digits-cnn-s1"})
    assert (old.relative_depth, old.trend_depth, warnings) == (0.75, 0.75, [])
    new, _ = Selection.from_query({"depth": "best", "tdepth": "0.5"})
    assert (new.relative_depth, new.trend_depth) == (None, 0.5)


def test_unknown_names_in_lists_are_dropped_and_reported():
    selection, warnings = Selection.from_query({"models": "digits-cnn-s0,../x,digits-cnn-s2,digits-cnn-s0"})
    assert selection.models == ("digits-cnn-s0", "digits-cnn-s2")
    assert any("../x" in w for w in warnings)


def test_selected_ids_are_cleaned():
    ids = ",".join(f"id-{i}" for i in range(530)) + ",bad\x00id,id-3"
    selection, warnings = Selection.from_query({"sel": ids})
    assert len(selection.selected) == 530  # no cap: every selection round-trips
    assert len(warnings) == 1 and "malformed or repeated" in warnings[0]


class DigitsContext:
    """The digits dataset's sample order and an in-memory stash, as a running dashboard provides them."""

    def __init__(self) -> None:
        from alignscope.dashboard.selection import RegistryContext

        self._registry = RegistryContext()
        self.stored: dict[str, list[int]] = {}
        self.order = [f"digit-{i:04d}" for i in range(1797)]

    def models(self):
        return self._registry.models()

    def datasets(self):
        return self._registry.datasets()

    def metrics(self):
        return self._registry.metrics()

    def dataset_size(self, name):
        return 1797 if name == "digits" else None

    def sample_ids(self, name):
        return self.order if name == "digits" else None

    def stash(self, indices):
        key = f"{len(self.stored):032x}"
        self.stored[key] = list(indices)
        return key

    def unstash(self, key):
        return self.stored.get(key)


@pytest.mark.parametrize("count", [0, 1, 7, 500, 501, 1632, 1797])
def test_selections_of_any_size_round_trip_compactly(count):
    context = DigitsContext()
    rng = random.Random(count)
    ids = tuple(sorted(rng.sample(context.order, count)))
    selection = Selection(selected=ids)
    query = selection.to_query(context)
    assert len(query["sel"]) <= 6000
    parsed, warnings = Selection.from_query(query, context=context)
    assert warnings == [] and parsed.selected == ids
    if count > 20:
        assert query["sel"][:2] in ("r:", "b:")  # indices over the dataset's order, not a list of ids


def test_a_contiguous_selection_is_a_range_and_a_huge_one_is_stashed(monkeypatch):
    from alignscope.dashboard import selection as selection_module

    context = DigitsContext()
    block = tuple(context.order[100:900])
    assert Selection(selected=block).to_query(context)["sel"] == "r:100-899"
    monkeypatch.setattr(selection_module, "MAX_SELECTION_CHARS", 10)
    scattered = tuple(context.order[::3])
    query = Selection(selected=scattered).to_query(context)
    assert query["sel"].startswith("s:") and len(context.stored) == 1
    assert Selection.from_query(query, context=context)[0].selected == scattered


def test_a_bitset_link_written_by_an_earlier_version_still_opens():
    """The format is fixed (bit i of byte i // 8, zlib, base64url): this value was written by the
    byte-at-a-time encoder that came before the numpy one, at zlib level 9."""
    context = DigitsContext()
    selection, warnings = Selection.from_query({"sel": "b:eNrjZGeAAw4GOgNG2lshAAAWBgAq"}, context=context)
    assert warnings == []
    assert selection.selected == tuple(context.order[i] for i in (0, 3, 8, 9, 10, 99, 1000, 1796))


@pytest.mark.parametrize("seed", range(5))
def test_compact_encodings_match_a_plain_loop(seed):
    """Ranges and bitset as numpy writes them, against the definition written as a loop."""
    import base64
    import zlib

    import numpy as np

    from alignscope.dashboard.selection import _bitset, _ranges

    rng = random.Random(seed)
    size = rng.choice([1, 7, 8, 9, 1797, 100_000])
    indices = sorted(rng.sample(range(size), rng.randint(1, min(size, 3000))))
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    assert _ranges(np.array(indices)) == ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    bits = bytearray((size + 7) // 8)
    for index in indices:
        bits[index // 8] |= 1 << (index % 8)
    packed = _bitset(np.array(indices), size)
    assert zlib.decompress(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))) == bytes(bits)


def test_sample_positions_are_built_once_per_sample_order():
    from alignscope.dashboard.selection import sample_positions

    order = tuple(f"s{i}" for i in range(1000))
    positions = sample_positions(order)
    assert sample_positions(order) is positions  # the same tuple: the same dict, not built again
    assert all(positions[sample_id] == i for i, sample_id in enumerate(order))
    equal = tuple(list(order))
    assert equal is not order and sample_positions(equal) == positions
    assert sample_positions(list(order)) == positions  # a list is not memoised (it could change)


@pytest.mark.parametrize("raw", ["r:5-2", "r:0-99999", "r:x", "b:!!!", "b:eJwDAAAAAAE", "s:" + "0" * 32, "s:zz"])
def test_broken_compact_selections_select_nothing_with_a_warning(raw):
    selection, warnings = Selection.from_query({"sel": raw}, context=DigitsContext())
    assert selection.selected == () and len(warnings) == 1


def test_every_field_is_in_the_module_docstring_table():
    from alignscope.dashboard import selection as selection_module

    for field in FIELDS:
        assert f"{field.key} " in selection_module.__doc__ and field.name in selection_module.__doc__


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


def test_an_unknown_model_is_replaced_by_one_that_reads_the_links_dataset():
    """/compare?data=sentences&a=minilm-l6&b=bert-tiny (a model not added here): B became the default
    digits-cnn-s1, which reads images, and the page said it cannot read text; no scores."""
    from alignscope.core.datasets import get_dataset_spec
    from alignscope.core.models import get_model_spec

    selection, warnings = Selection.from_query({"data": "sentences", "a": "minilm-l6", "b": "bert-tiny"})
    assert selection.model_a == "minilm-l6" and selection.model_b != "minilm-l6"
    assert get_dataset_spec("sentences").supports(get_model_spec(selection.model_b).modality)
    assert any(w.startswith("b='bert-tiny': unknown model") and f"using b={selection.model_b}" in w for w in warnings)
    # where the default reads the dataset, it stays the replacement
    selection, _ = Selection.from_query({"data": "digits", "b": "gone"})
    assert selection.model_b == Selection().model_b
