"""Feature plans: cheap (a bounded number of sidecar reads however big the cache), right about what
is cached, and the view's rows are the dataset's seeded subset."""

from __future__ import annotations

import pytest
import torch

from alignscope.core.analysis.features import load_view, plan_features, view_dataset
from alignscope.core.cache import FeatureCache
from alignscope.core.datasets import load_dataset
from alignscope.core.extract import Features
from alignscope.core.models import get_model_spec


def test_planning_reads_at_most_two_sidecars_however_many_entries_the_cache_holds(warm_cache_dir, monkeypatch):
    """It used to read up to 500 sidecars on every call (to estimate throughput), many calls per page run."""
    cache = FeatureCache()
    digits = load_dataset("digits")
    cache.get_or_extract("digits-cnn-s0", digits)
    spec = get_model_spec("digits-cnn-s0")
    for index in range(40):  # other entries of the same model: what the old estimate scanned
        subset = digits.subset(10 + index, seed=index)
        values = (torch.zeros(len(subset), 3),)
        features = Features(spec.name, "digits", ("x",), values, subset.sample_ids, {"seconds": 1.0})
        cache.put(f"{index:032x}", features, model_spec=spec, dataset=subset)
    reads = []
    original = FeatureCache.read_sidecar
    monkeypatch.setattr(FeatureCache, "read_sidecar", lambda self, key: reads.append(key) or original(self, key))
    for _ in range(10):
        cached = plan_features("digits-cnn-s0", "digits", 500, 0)
        missing = plan_features("digits-cnn-s1", "digits", 500, 0)
    assert cached.cached and not missing.cached and missing.estimate_seconds > 0
    assert len(reads) <= 10 * (1 + 2)


def test_a_view_is_the_seeded_subset_of_the_whole_datasets_entry(warm_cache_dir):
    FeatureCache().get_or_extract("digits-cnn-s0", load_dataset("digits"))
    plan = plan_features("digits-cnn-s0", "digits", 120, 3)
    assert plan.cached_key == plan.full_key and plan.n == 120 and plan.layer_names[-1] == "logits"
    view = load_view(plan)
    subset = view_dataset("digits", 120, 3)
    assert view.sample_ids == subset.sample_ids and view.values[0].shape[0] == 120
    direct, _ = FeatureCache().get_or_extract("digits-cnn-s0", subset)
    assert torch.allclose(torch.from_numpy(view.values[-1]), direct.values[-1], atol=1e-5)


def test_a_layer_the_model_does_not_have_is_named_in_the_error(warm_cache_dir):
    from alignscope.core.errors import InputError

    FeatureCache().get_or_extract("digits-cnn-s0", load_dataset("digits"))
    plan = plan_features("digits-cnn-s0", "digits", 120, 0)
    assert plan.resolve_layer(-1) == 4
    with pytest.raises(InputError, match="layers 0..4"):
        plan.resolve_layer(5)


def test_a_models_first_extraction_estimate_comes_from_its_family_or_its_factory(warm_cache_dir):
    """A digits CNN extracts the 1,797 digits in ~4 s here; the estimate shown before its first extraction
    was the generic one for any hooked torch module, ~21 s (and EfficientNet's, ~5x too low)."""
    from alignscope.core.analysis.features import extraction_estimate

    cache = FeatureCache()
    assert extraction_estimate("digits-cnn-s2", 1797, cache) < 8.0  # the factory's own guess
    assert extraction_estimate("efficientnet-lite0", 1797, cache) > 30.0  # a real ImageNet net on CPU
    digits = load_dataset("digits")
    values = (torch.zeros(len(digits), 3),)
    for model, seconds, key in (("digits-cnn-s0", 35.94, "f"), ("digits-cnn-s1", 17.97, "e")):  # 20 and 10 ms
        features = Features(model, "digits", ("x",), values, digits.sample_ids, {"seconds": seconds})
        cache.put(key * 32, features, model_spec=get_model_spec(model), dataset=digits)
    # the slowest of the same recipe's seeds measured here; another recipe (a ladder rung) keeps its own
    assert extraction_estimate("digits-cnn-s2", 1797, cache) == pytest.approx(3.0 + 0.02 * 1797)
    assert extraction_estimate("digits-ladder-2", 1797, cache) < 8.0
