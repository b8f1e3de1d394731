"""Paired differences: ``score_difference`` with B scored against its own layer of X, and the engine's
``DifferenceRequest`` (core/analysis/differences.py), which picks each model's layers and calls it."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from alignscope.core.analysis.differences import Difference, DifferenceRequest, compute_difference
from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import ViewFeatures, extract_for_plan
from alignscope.core.analysis.requests import metric_params
from alignscope.core.analysis.scorer import layer_matrix_of
from alignscope.core.comparisons import ScoreDifference, _sign_flip_p, score_difference
from alignscope.core.datasets import load_dataset
from alignscope.core.errors import InputError
from alignscope.core.metrics.registry import compute, get_metric

N = 80


def gaussian(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def features(seed: int, n: int = N, width: int = 6) -> dict[str, torch.Tensor]:
    """X and another layer of X; A a rotated, slightly noisy X; B mostly noise with a little of X's other layer."""
    generator = torch.Generator().manual_seed(seed)
    x = gaussian(generator, n, width)
    x_other = x @ gaussian(generator, width, width) + gaussian(generator, n, width)
    rotation = torch.linalg.qr(gaussian(generator, width, width))[0]
    a = x @ rotation + 0.1 * gaussian(generator, n, width)
    b = gaussian(generator, n, width) + 0.5 * x_other
    return {"x": x, "x_other": x_other, "a": a, "b": b}


def assert_same(first: ScoreDifference, second: ScoreDifference) -> None:
    """Every field equal, exactly (the resampled differences too)."""
    for field in dataclasses.fields(ScoreDifference):
        one, other = getattr(first, field.name), getattr(second, field.name)
        if isinstance(one, np.ndarray):
            assert np.array_equal(one, other), field.name
        else:
            assert one == other, field.name


METRICS = ["mutual_knn", "linear_cka"]  # a split (prepare / compare) metric and a plain one


@pytest.mark.parametrize("metric", METRICS)
def test_without_feats_x_for_b_b_is_scored_against_the_same_x(metric):
    f = features(0)
    default = score_difference(metric, f["a"], f["b"], f["x"], n_boot=40, seed=3)
    assert_same(default, score_difference(metric, f["a"], f["b"], f["x"], feats_x_for_b=f["x"], n_boot=40, seed=3))
    # a distinct tensor holding the same X goes through the two-X path (X prepared twice): same numbers
    copy = f["x"].clone()
    assert_same(default, score_difference(metric, f["a"], f["b"], f["x"], feats_x_for_b=copy, n_boot=40, seed=3))


@pytest.mark.parametrize("metric", METRICS)
def test_each_score_and_each_resample_uses_its_own_layer_of_x(metric):
    f = features(1)
    result = score_difference(metric, f["a"], f["b"], f["x"], feats_x_for_b=f["x_other"], n_boot=4, seed=5)
    assert result.score_a == compute(metric, f["a"], f["x"])
    assert result.score_b == compute(metric, f["b"], f["x_other"])
    assert result.score_b != compute(metric, f["b"], f["x"])  # so the other layer was really used
    assert result.difference == result.score_a - result.score_b
    spec = get_metric(metric)
    fn, params = spec.fn, spec.resolve_params({})
    generator = torch.Generator().manual_seed(5)
    assert result.n_resamples == 4
    for value in result.bootstrap_differences:  # each d* on the same rows of A, B and both layers of X
        rows = torch.randint(0, N, (N,), generator=generator)
        extra = {"sample_ids": rows} if spec.takes_sample_ids else {}
        expected = fn(f["a"][rows], f["x"][rows], **params, **extra) - fn(
            f["b"][rows], f["x_other"][rows], **params, **extra
        )
        assert value == pytest.approx(float(expected), abs=1e-12)


def test_bs_layer_of_x_must_hold_the_same_samples():
    f = features(1)
    with pytest.raises(InputError, match="has 79 rows but feats_b has 80"):
        score_difference("linear_cka", f["a"], f["b"], f["x"], feats_x_for_b=f["x_other"][:79])


def test_the_sign_flip_test_uses_bs_own_layer_of_x_too():
    f = features(2)
    result = score_difference(
        "gram_volume", f["a"], f["b"], f["x"], feats_x_for_b=f["x_other"], method="sign_flip", n_boot=10, n_flips=500
    )
    per_sample = get_metric("gram_volume").per_sample
    differences = torch.as_tensor(per_sample(f["a"], f["x"])) - torch.as_tensor(per_sample(f["b"], f["x_other"]))
    assert result.method == "sign_flip" and result.p_value == result.p_sign_flip
    assert result.p_sign_flip == _sign_flip_p(differences, 500, 1)  # flips drawn from seed + 1
    assert result.score_b == compute("gram_volume", f["b"], f["x_other"])


@pytest.mark.parametrize("metric", METRICS)
def test_a_model_against_itself_differs_by_exactly_zero(metric):
    f = features(3)
    for x_for_b in (None, f["x"].clone()):
        result = score_difference(metric, f["a"], f["a"], f["x"], feats_x_for_b=x_for_b, n_boot=30, seed=1)
        assert result.difference == 0.0 and result.score_a == result.score_b
        assert result.ci_low <= 0.0 <= result.ci_high and np.all(result.bootstrap_differences == 0.0)
        assert result.p_bootstrap == 1.0
    # ... but not against another layer of X
    other = score_difference(metric, f["a"], f["a"], f["x"], feats_x_for_b=f["x_other"], n_boot=30, seed=1)
    assert other.difference != 0.0


@pytest.mark.parametrize("metric", METRICS)
def test_swapping_a_and_b_negates_the_difference(metric):
    f = features(4)
    forward = score_difference(metric, f["a"], f["b"], f["x"], feats_x_for_b=f["x_other"], n_boot=60, seed=2)
    backward = score_difference(metric, f["b"], f["a"], f["x_other"], feats_x_for_b=f["x"], n_boot=60, seed=2)
    assert (backward.score_a, backward.score_b) == (forward.score_b, forward.score_a)
    assert backward.difference == -forward.difference
    assert np.array_equal(backward.bootstrap_differences, -forward.bootstrap_differences)
    assert backward.ci_low == pytest.approx(-forward.ci_high, abs=1e-12)
    assert backward.ci_high == pytest.approx(-forward.ci_low, abs=1e-12)
    assert backward.p_value == forward.p_value


@pytest.mark.parametrize("metric", METRICS)
def test_a_clearly_better_aligned_model_has_an_interval_excluding_zero(metric):
    f = features(5)
    noise = gaussian(torch.Generator().manual_seed(99), N, 6)  # unrelated to X
    better = score_difference(metric, f["a"], noise, f["x"], n_boot=100, seed=0)
    assert better.a_is_better and 0.0 < better.ci_low <= better.difference <= better.ci_high
    assert better.p_value < 0.05
    worse = score_difference(metric, noise, f["a"], f["x"], n_boot=100, seed=0)
    assert worse.ci_high < 0.0 and not worse.a_is_better


# -- the engine's request: which layers, then score_difference -------------------------------------------


def view(model: str, layers: list[torch.Tensor]) -> ViewFeatures:
    n = layers[0].shape[0]
    return ViewFeatures(
        model,
        "synthetic",
        tuple(f"{model}.{index}" for index in range(len(layers))),
        tuple(layer.numpy().astype(np.float32) for layer in layers),
        tuple(str(i) for i in range(n)),
        None,
        f"key-{model}",
    )


@pytest.fixture(scope="module")
def views() -> dict[str, ViewFeatures]:
    """Three-layer A, B and X: A's layer 2 is a noisy X layer 1; B's layer 0 holds some of X layer 2."""
    generator = torch.Generator().manual_seed(7)
    xs = [gaussian(generator, N, 5) for _ in range(3)]
    a = [gaussian(generator, N, 5), gaussian(generator, N, 5), xs[1] + 0.2 * gaussian(generator, N, 5)]
    b = [xs[2] + 1.5 * gaussian(generator, N, 5), gaussian(generator, N, 5), gaussian(generator, N, 5)]
    return {"A": view("A", a), "B": view("B", b), "X": view("X", xs)}


def matrix_of(views: dict[str, ViewFeatures]):
    return lambda request: layer_matrix_of(request, views[request.model_a], views[request.model_b])


def best_cell(metric: str, model: ViewFeatures, reference: ViewFeatures) -> tuple[int, int]:
    scores = np.array([[compute(metric, a, x) for x in reference.values] for a in model.values])
    i, j = np.unravel_index(np.argmax(scores), scores.shape)
    return int(i), int(j)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("layers", ["best", "last", "depth:0.5", "depth:0.0"])
def test_compute_difference_picks_each_models_layers_then_scores_them(views, metric, layers):
    request = DifferenceRequest("A", "B", "X", "synthetic", N, 4, metric, metric_params(metric), layers, 50)
    result = compute_difference(request, views, matrix_of(views))
    expected = {
        "best": (best_cell(metric, views["A"], views["X"]), best_cell(metric, views["B"], views["X"])),
        "last": ((2, 2), (2, 2)),
        "depth:0.5": ((1, 1), (1, 1)),
        "depth:0.0": ((0, 0), (0, 0)),
    }[layers]
    assert (result.layers_a, result.layers_b) == expected
    if layers == "best":
        assert expected == ((2, 1), (0, 2))  # the planted pairs: B is at its own best layer of X, not A's
    (i_a, j_a), (i_b, j_b) = expected
    assert result.layer_names_a == (f"A.{i_a}", f"X.{j_a}") and result.layer_names_b == (f"B.{i_b}", f"X.{j_b}")
    direct = score_difference(
        metric,
        views["A"].values[i_a],
        views["B"].values[i_b],
        views["X"].values[j_a],
        feats_x_for_b=views["X"].values[j_b],
        n_boot=50,
        seed=4,
        **dict(metric_params(metric)),
    )
    assert_same(result.test, direct)
    assert (result.model_a, result.model_b, result.reference, result.layers) == ("A", "B", "X", layers)


def test_a_model_against_a_copy_of_itself_differs_by_zero_at_its_best_layers(views):
    copy = dataclasses.replace(views["A"], model="A-copy")
    both = {**views, "A-copy": copy}
    params = metric_params("mutual_knn")
    request = DifferenceRequest("A", "A-copy", "X", "synthetic", N, 0, "mutual_knn", params, bootstrap=50)
    result = compute_difference(request, both, matrix_of(both))
    assert result.layers_a == result.layers_b and result.test.difference == 0.0
    assert result.test.ci_low <= 0.0 <= result.test.ci_high and result.test.p_value == 1.0


def test_a_difference_request_needs_three_models_and_a_known_layer_choice_and_method():
    with pytest.raises(InputError, match="three different models"):
        DifferenceRequest("A", "A", "X", "digits", 100)
    with pytest.raises(InputError, match=r"layers must be 'best' \(or 'all'\), 'last' or 'depth"):
        DifferenceRequest("A", "B", "X", "digits", 100, layers="middle")
    with pytest.raises(InputError, match="method must be one of auto, bootstrap, sign_flip"):
        DifferenceRequest("A", "B", "X", "digits", 100, method="t_test")


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_the_engine_computes_stores_and_reads_back_a_difference(cache_dir):
    from alignscope.core.uploads import add_representation

    rng = np.random.default_rng(11)
    x = rng.normal(size=(1797, 6)).astype(np.float32)
    arrays = {
        "rep-x": x,
        "rep-a": (x @ rng.normal(size=(6, 6)) + 0.3 * rng.normal(size=(1797, 6))).astype(np.float32),
        "rep-b": rng.normal(size=(1797, 6)).astype(np.float32),
    }
    for name, values in arrays.items():
        add_representation(name, f"{name}.npy", npy(values), dataset="digits")
    request = DifferenceRequest("rep-a", "rep-b", "rep-x", "digits", 200, 0, "linear_cka", (), "last", 100)
    engine = Engine()
    for plan in engine.prepare(request).missing:
        extract_for_plan(plan)
    result = engine.run(request)
    assert isinstance(result, Difference) and result.layers_a == (0, 0) and result.layers_b == (0, 0)
    rows = list(load_dataset("digits", n=200, seed=0).rows)  # the view: 200 seeded samples, in dataset order
    direct = score_difference(
        "linear_cka", arrays["rep-a"][rows], arrays["rep-b"][rows], arrays["rep-x"][rows], n_boot=100, seed=0
    )
    assert_same(result.test, direct)
    assert result.test.ci_low > 0.0 and result.test.n_samples == 200  # A is X mixed, B is noise
    stored = Engine().run(request)  # a new engine: read from the result store, not computed
    assert stored is not result and stored.layer_names_a == result.layer_names_a
    assert_same(stored.test, result.test)
