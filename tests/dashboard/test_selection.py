def test_a_count_has_its_noun_in_the_right_number():
    from alignscope.dashboard.selection import counted

    assert [counted(n, "sample") for n in (0, 1, 2, 1797)] == ["0 samples", "1 sample", "2 samples", "1,797 samples"]
    assert counted(1, "known metric") == "1 known metric"  # "needs at least 1 known metrics" before


def test_an_unknown_dataset_is_replaced_by_one_the_pairs_models_can_encode():
    """A link to a dataset removed since (a text upload) fell back to digits, which the link's text models
    cannot encode: the page then showed two errors instead of a view."""
    from alignscope.core.datasets import get_dataset_spec
    from alignscope.dashboard.selection import Selection

    text_pair = {"a": "minilm-l6", "b": "e5-small", "data": "removed-meanwhile"}
    selection, warnings = Selection.from_query(text_pair)
    assert get_dataset_spec(selection.dataset).supports("text") and selection.dataset != "digits"
    assert any(w.startswith("data='removed-meanwhile': unknown dataset") and w.endswith(f"data={selection.dataset}")
               for w in warnings)  # fmt: skip
    image_pair, warnings = Selection.from_query({"data": "removed-meanwhile"})  # the digits CNNs
    assert image_pair.dataset == Selection().dataset and warnings[-1].endswith(f"data={Selection().dataset}")
