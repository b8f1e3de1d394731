"""Probes as engine requests (core/analysis/probes.py): a linear probe of every layer, its best layer's
accuracy recorded as the model's property ``probe_accuracy[<dataset>]``."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import ViewFeatures, extract_for_plan
from alignscope.core.analysis.probes import LayerProbes, ProbeRequest, compute_probes, probe_property_name
from alignscope.core.datasets import load_dataset
from alignscope.core.errors import InputError
from alignscope.core.probe import linear_probe
from alignscope.core.properties import model_properties

MODEL, N = "digits-cnn-s0", 300


def test_a_trained_cnns_probes_through_the_engine_become_its_property(warm_cache_dir):
    name = probe_property_name("digits")
    assert name == "probe_accuracy[digits]" and name not in model_properties(MODEL)
    engine = Engine()
    request = ProbeRequest(MODEL, "digits", N, seed=0)
    for plan in engine.prepare(request).missing:
        extract_for_plan(plan)
    result = engine.run(request)

    assert isinstance(result, LayerProbes) and result.layer_names == ("conv1", "conv2", "conv3", "fc1", "logits")
    accuracies = [probe.accuracy for probe in result.layers]
    assert len(accuracies) == 5 and all(0.0 <= value <= 1.0 for value in accuracies)
    assert all(0.0 <= value <= 1.0 for probe in result.layers for value in probe.fold_accuracies)
    labels = load_dataset("digits", n=N, seed=0).labels
    chance = max(Counter(labels).values()) / N  # the commonest digit's share, about 0.1
    assert {(p.chance, p.n_samples, p.n_folds, p.n_classes) for p in result.layers} == {(chance, N, 5, 10)}
    best = result.layers[result.best_layer]
    assert best.accuracy == max(accuracies) and best.accuracy > 0.9 > 5 * chance  # measured: 0.99 at fc1
    assert result.layers[-1].accuracy > result.layers[0].accuracy  # trained for digits: logits beat conv1

    # each layer is the plain probe on that layer's features, same folds (the seed)
    view = engine.views(engine.prepare(request))[MODEL]
    assert view.labels == tuple(labels)
    direct = linear_probe(view.values[result.best_layer], list(view.labels), n_folds=5, seed=0)
    assert direct.fold_accuracies == best.fold_accuracies
    again = compute_probes(request, view)
    assert [p.fold_accuracies for p in again.layers] == [p.fold_accuracies for p in result.layers]
    other_seed = linear_probe(view.values[result.best_layer], list(view.labels), n_folds=5, seed=1)
    assert other_seed.fold_accuracies != best.fold_accuracies  # other folds

    prop = result.as_property()
    assert (prop.name, prop.value, prop.unit) == (name, best.accuracy, "fraction")
    assert "5-fold" in prop.source and f"{N} samples" in prop.source
    assert result.layer_names[result.best_layer] in prop.source
    recorded = model_properties(MODEL)[name]  # the engine recorded it as measured here
    assert (recorded.value, recorded.unit, recorded.source) == (prop.value, prop.unit, prop.source)

    stored = Engine().run(request)  # a new engine reads it from the result store
    assert stored is not result and [p.fold_accuracies for p in stored.layers] == [
        p.fold_accuracies for p in result.layers
    ]
    assert stored.best_layer == result.best_layer and stored.layer_names == result.layer_names


def synthetic_view(labels: np.ndarray, layers: list[np.ndarray]) -> ViewFeatures:
    return ViewFeatures(
        "synthetic",
        "synthetic",
        tuple(f"layer{i}" for i in range(len(layers))),
        tuple(layer.astype(np.float32) for layer in layers),
        tuple(str(i) for i in range(len(labels))),
        tuple(str(label) for label in labels),
        "key",
    )


def test_the_best_layer_is_the_one_that_separates_the_classes_and_progress_counts_layers():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    noise = rng.normal(size=(120, 4))
    separable = rng.normal(size=(120, 4)) + 6.0 * np.eye(3, 4)[labels]
    calls = []
    result = compute_probes(
        ProbeRequest("synthetic", "synthetic", 120, seed=2, n_folds=4),
        synthetic_view(labels, [noise, separable, noise]),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert result.best_layer == 1 and result.layers[1].accuracy == 1.0
    assert result.layers[0].accuracy < 0.6 and result.layers[0].chance == pytest.approx(1 / 3)
    assert result.layers[0].fold_accuracies == result.layers[2].fold_accuracies  # same features, same folds
    assert {p.n_folds for p in result.layers} == {4}
    prop = result.as_property()
    assert prop.value == 1.0 and "layer1" in prop.source and "best of 3 layers" in prop.source


def test_a_dataset_without_labels_cannot_be_probed():
    view = synthetic_view(np.zeros(10), [np.eye(10)])
    unlabelled = ViewFeatures(view.model, view.dataset, view.layer_names, view.values, view.sample_ids, None, "key")
    with pytest.raises(InputError, match="dataset 'sentences' has no labels"):
        compute_probes(ProbeRequest("synthetic", "sentences", 10), unlabelled)
