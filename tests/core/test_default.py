"""The whole embedded offline default, end to end: real pretrained models on the bundled data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignscope.core.cache import FeatureCache
from alignscope.core.datasets import load_dataset
from alignscope.core.defaults import DEFAULT_JOBS
from alignscope.core.digits_nets import train

pytestmark = pytest.mark.slow


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Plain biased linear CKA (Kornblith et al. 2019), written out here as an independent check."""
    a = a.double() - a.double().mean(0)
    b = b.double() - b.double().mean(0)
    cross = torch.linalg.matrix_norm(b.T @ a) ** 2
    return float(cross / (torch.linalg.matrix_norm(a.T @ a) * torch.linalg.matrix_norm(b.T @ b)))


EXPECTED_LAYERS = {
    "digits-cnn-s0": 5,
    "minilm-l6": 7,
    "e5-small": 1,
    "efficientnet-lite0": 18,
}


@pytest.fixture(scope="module")
def default_features(tmp_path_factory, trained_models_dir):
    from alignscope.core.settings import Settings

    root = tmp_path_factory.mktemp("default")
    (root / "models").mkdir()
    for path in trained_models_dir.iterdir():
        (root / "models" / path.name).write_bytes(path.read_bytes())
    settings = Settings(cache_dir=root)
    import alignscope.core.digits_nets as digits_nets

    original = digits_nets.get_settings
    digits_nets.get_settings = lambda: settings
    try:
        cache = FeatureCache(settings=settings)
        out = {}
        for model, dataset in DEFAULT_JOBS:
            out[model, dataset] = cache.get_or_extract(model, load_dataset(dataset), batch_size=64)[0]
        yield out
    finally:
        digits_nets.get_settings = original


def test_every_default_model_gives_finite_features_of_the_right_shape(default_features):
    sizes = {"digits": 1797, "sentences": len(load_dataset("sentences")), "captions": len(load_dataset("captions"))}
    for (model, dataset), features in default_features.items():
        assert features.n_samples == sizes[dataset], (model, dataset)
        if model in EXPECTED_LAYERS:
            assert features.n_layers == EXPECTED_LAYERS[model], model
        for values in features.values:
            assert torch.isfinite(values).all()
            assert values.std(0).max() > 0  # not a constant output
    assert default_features["minilm-l6", "sentences"].dims == (384,) * 7
    assert default_features["e5-small", "sentences"].dims == (384,)
    assert default_features["efficientnet-lite0", "captions"].dims[-1] == 1280


def test_digits_nets_with_different_seeds_align_best_at_matching_layers(default_features):
    a = default_features["digits-cnn-s0", "digits"]
    b = default_features["digits-cnn-s1", "digits"]
    matrix = np.array([[linear_cka(x, y) for y in b.values] for x in a.values])
    off_diagonal = matrix[~np.eye(len(matrix), dtype=bool)]
    assert np.diag(matrix).mean() > off_diagonal.mean() + 0.2, matrix.round(3)
    for i in range(len(matrix)):
        # The best partner of each layer is the same layer or its neighbour (fc1 and the logits are one
        # linear map apart, so they trade places).
        assert abs(int(matrix[i].argmax()) - i) <= 1, matrix.round(3)
        far = [j for j in range(len(matrix)) if abs(i - j) >= 2]
        assert matrix[i, i] > matrix[i, far].max(), matrix.round(3)
    assert matrix[-1, -1] > 0.8  # both nets solve the task: their logits agree closely


def test_text_models_group_sentences_by_topic(default_features):
    sentences = load_dataset("sentences")
    labels = np.array(sentences.labels)
    for model in ("minilm-l6", "e5-small"):
        values = torch.nn.functional.normalize(default_features[model, "sentences"].values[-1], dim=1)
        similarity = values @ values.T
        similarity.fill_diagonal_(-1)
        nearest = similarity.argmax(1).numpy()
        assert (labels[nearest] == labels).mean() > 0.7, model  # chance is 0.1


def test_vision_and_language_models_agree_more_than_chance_on_captions(default_features):
    """The Platonic Representation Hypothesis in miniature: real pairs beat shuffled pairs."""
    image = default_features["efficientnet-lite0", "captions"].values[-1]
    text = default_features["minilm-l6", "captions"].values[-1]
    real = linear_cka(image, text)
    rng = np.random.default_rng(0)
    shuffled = [linear_cka(image, text[torch.from_numpy(rng.permutation(len(text)))]) for _ in range(50)]
    assert real > np.percentile(shuffled, 90)


def test_digits_training_is_deterministic_per_seed_and_accurate(trained_models_dir):
    from safetensors.torch import load_file

    net, info = train(0)
    from alignscope.core.digits_nets import weights_path
    from alignscope.core.settings import Settings

    settings = Settings(cache_dir=trained_models_dir.parent)
    stored_seed0 = load_file(weights_path(0, settings))
    stored_seed1 = load_file(weights_path(1, settings))
    for key, value in net.state_dict().items():
        assert torch.equal(value, stored_seed0[key])  # retrained from scratch: bit-identical
    assert not torch.equal(stored_seed0["conv1.weight"], stored_seed1["conv1.weight"])
    assert info["test_accuracy"] > 0.9
