"""Linear probe: separable data is read out perfectly, random labels at chance, the numbers are
scikit-learn's own cross-validation on the same folds, and the digits ladder's best net is decodable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignscope.core import digits_nets
from alignscope.core.errors import InputError
from alignscope.core.probe import ProbeResult, linear_probe, probe_layers, stratified_folds
from alignscope.core.settings import Settings


def _blobs(n_per_class: int, n_classes: int, dim: int, separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.normal(size=(n_classes, dim)) * separation
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def test_separable_classes_are_read_out_perfectly():
    feats, labels = _blobs(40, 3, 5, separation=10.0)
    result = linear_probe(feats, labels)
    assert isinstance(result, ProbeResult)
    assert result.accuracy == 1.0 and result.accuracy_std_over_folds == 0.0
    assert result.fold_accuracies == (1.0,) * 5
    assert (result.chance, result.n_classes, result.n_folds, result.n_samples) == (pytest.approx(1 / 3), 3, 5, 120)


def test_random_labels_give_chance_accuracy():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(400, 10))
    labels = rng.permutation(np.repeat(np.arange(4), 100))  # balanced: chance is exactly 1/4
    result = linear_probe(feats, labels)
    assert result.chance == 0.25
    assert abs(result.accuracy - 0.25) < 0.07
    assert result.accuracy_std_over_folds > 0


def test_accuracy_is_sklearns_cross_val_score_on_the_same_folds():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    digits = load_digits()
    feats, labels = digits.data[:600], digits.target[:600]
    result = linear_probe(feats, labels, n_folds=4, seed=7)
    with threadpool_limits(limits=1):  # the same arithmetic as the probe, so no prediction can flip
        expected = cross_val_score(
            make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
            feats,
            labels,
            cv=StratifiedKFold(n_splits=4, shuffle=True, random_state=7),
            scoring="accuracy",
        )
    np.testing.assert_allclose(result.fold_accuracies, expected, rtol=0, atol=1e-12)
    assert result.accuracy == pytest.approx(expected.mean()) and result.accuracy > 0.9
    assert result.accuracy_std_over_folds == pytest.approx(expected.std())
    assert result.chance == pytest.approx(np.bincount(labels).max() / len(labels))


def test_folds_are_stratified_and_deterministic_per_seed():
    labels = np.repeat(np.arange(3), [30, 60, 90])
    folds = stratified_folds(labels, n_folds=5, seed=3)
    assert len(folds) == 5
    held_out = np.concatenate([test for _, test in folds])
    assert sorted(held_out) == list(range(len(labels)))  # each sample held out exactly once
    for _, test in folds:
        assert list(np.bincount(labels[test])) == [6, 12, 18]  # class proportions kept in every fold
    again = stratified_folds(labels, n_folds=5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = stratified_folds(labels, n_folds=5, seed=4)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other))

    feats, blob_labels = _blobs(30, 4, 6, separation=0.6)
    assert linear_probe(feats, blob_labels, seed=2) == linear_probe(feats, blob_labels, seed=2)
    assert linear_probe(feats, blob_labels, seed=2) != linear_probe(feats, blob_labels, seed=5)


def test_probe_layers_probes_each_layer_on_the_same_folds_and_takes_tensors_and_strings():
    easy, labels = _blobs(30, 3, 4, separation=8.0)
    hard, _ = _blobs(30, 3, 4, separation=0.3, seed=1)
    results = probe_layers([easy, torch.from_numpy(hard).float()], [f"class-{v}" for v in labels])
    assert results[0] == linear_probe(easy, labels)
    assert results[1] == linear_probe(torch.from_numpy(hard).float().numpy(), labels)
    assert results[0].accuracy > results[1].accuracy
    assert probe_layers([], labels) == []


@pytest.mark.parametrize(
    "feats, labels, message",
    [
        (np.zeros((10, 2)), np.repeat([0, 1], 6), "10 rows but labels has 12"),
        (np.zeros(12), np.repeat([0, 1], 6), r"\[n_samples, dim\]"),
        (np.full((12, 2), np.nan), np.repeat([0, 1], 6), "NaN"),
        (np.zeros((12, 0)), np.repeat([0, 1], 6), "no columns"),
        (np.zeros((12, 2)), np.zeros(12), "single class"),
        (np.zeros((12, 2)), np.repeat([0, 1], [3, 9]), "rarest class has 3 samples"),
        (np.zeros((12, 2)), np.zeros((12, 2)), "one label per sample"),
    ],
)
def test_bad_inputs_are_refused_with_a_message(feats, labels, message):
    with pytest.raises(InputError, match=message):
        linear_probe(feats, labels)


def test_fewer_than_two_folds_are_refused():
    feats, labels = _blobs(10, 2, 2, separation=1.0)
    with pytest.raises(InputError, match="n_folds must be at least 2"):
        linear_probe(feats, labels, n_folds=1)


# --- the digits ladder: task performance as the tool measures it -------------------------------------


def _layer_features(net: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Each of LAYERS' outputs for ``images``; conv maps global-average-pooled, as the hook encoder does."""
    captured: dict[str, torch.Tensor] = {}
    handles = [
        getattr(net, name).register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out))
        for name in digits_nets.LAYERS
    ]
    try:
        with torch.inference_mode():
            net(images)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[n].mean(dim=(2, 3)) if captured[n].dim() == 4 else captured[n] for n in digits_nets.LAYERS]


@pytest.fixture(scope="module")
def held_out_probes(tmp_path_factory):
    """Probe accuracy of every layer of the ladder's best and weakest rungs, on the held-out digits."""
    settings = Settings(cache_dir=tmp_path_factory.mktemp("ladder"))
    images, labels = digits_nets.digits_arrays()
    _, test_idx = digits_nets.train_test_split_indices(len(labels))
    held_out = torch.from_numpy(images[test_idx]).unsqueeze(1)
    probes = {}
    for each in (digits_nets.LADDER[0], digits_nets.LADDER[-1]):
        net, info = digits_nets.load_or_train_recipe(each.recipe, settings)
        probes[each.name] = (
            info,
            dict(zip(digits_nets.LAYERS, probe_layers(_layer_features(net, held_out), labels[test_idx]))),
        )
    return probes


def test_the_best_rung_is_linearly_decodable_late_and_beats_the_weakest(held_out_probes):
    best_info, best = held_out_probes[digits_nets.LADDER[-1].name]
    weakest_info, weakest = held_out_probes[digits_nets.LADDER[0].name]
    assert best_info.test_accuracy > 0.97 and weakest_info.test_accuracy < 0.7
    assert best["fc1"].accuracy > 0.9 and best["logits"].accuracy > 0.9
    assert best["logits"].chance < 0.15 and best["logits"].n_samples == 539
    assert best["fc1"].accuracy > weakest["fc1"].accuracy + 0.1
    assert best["fc1"].accuracy > best["conv1"].accuracy  # depth helps a linear read-out
