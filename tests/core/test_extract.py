"""extract_features: order, batching, layers, progress."""

from __future__ import annotations

import pytest
import torch

from alignscope.core.datasets import load_dataset
from alignscope.core.errors import InputError
from alignscope.core.extract import extract_features, select_layers


@pytest.mark.usefixtures("warm_cache_dir")
def test_batch_size_and_order_do_not_change_features():
    dataset = load_dataset("digits", n=70, seed=0)
    a = extract_features("digits-cnn-s0", dataset, batch_size=64)
    b = extract_features("digits-cnn-s0", dataset, batch_size=7)
    for x, y in zip(a.values, b.values):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    assert a.sample_ids == dataset.sample_ids


@pytest.mark.usefixtures("warm_cache_dir")
def test_progress_reports_every_batch_and_ends_at_n():
    calls = []
    extract_features(
        "digits-cnn-s0", load_dataset("digits", n=50), batch_size=16, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(16, 50), (32, 50), (48, 50), (50, 50)]


@pytest.mark.usefixtures("warm_cache_dir")
def test_layer_selection_by_name_index_and_last():
    dataset = load_dataset("digits", n=20)
    full = extract_features("digits-cnn-s0", dataset)
    some = extract_features("digits-cnn-s0", dataset, layers=["conv2", -1])
    assert some.layer_names == ("conv2", "logits")
    torch.testing.assert_close(some.values[0], full.layer("conv2"))
    assert extract_features("digits-cnn-s0", dataset, layers="last").layer_names == ("logits",)


def test_unknown_layer_lists_the_real_ones():
    with pytest.raises(InputError, match="conv1"):
        select_layers(("conv1", "conv2"), ["conv9"])
    with pytest.raises(InputError):
        select_layers(("conv1", "conv2"), [5])


@pytest.mark.usefixtures("warm_cache_dir")
def test_text_batches_sorted_by_length_come_back_in_dataset_order():
    dataset = load_dataset("sentences", n=40, seed=2)
    batched = extract_features("minilm-l6", dataset, batch_size=16, layers="last")
    one = extract_features("minilm-l6", dataset.take([5]), batch_size=1, layers="last")
    torch.testing.assert_close(batched.values[0][5], one.values[0][0], atol=1e-4, rtol=1e-4)
