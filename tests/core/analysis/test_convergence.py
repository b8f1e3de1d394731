"""Convergent learning on the engine: the stored results equal the reference functions on the same
features, a net matched against itself is perfect, and bad families are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignscope.core.analysis.convergence import FamilyMatrixRequest, UnitMatchingRequest
from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import load_view, plan_features
from alignscope.core.cli import main
from alignscope.core.convergent import family_layer_matrices, family_matching_curves, matching_curves
from alignscope.core.errors import InputError

NETS = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
N = 200


def _nets(engine: Engine) -> list[list[np.ndarray]]:
    return [list(load_view(plan_features(m, "digits", N, 0, engine.cache), engine.cache).values) for m in NETS]


def test_unit_matching_equals_the_family_curves_on_the_same_features(engine):
    result = engine.run(UnitMatchingRequest(NETS, "digits", N, layer_index=-2, thresholds=(0.5, 0.8)))
    reference = family_matching_curves(_nets(engine), 3, thresholds=(0.5, 0.8))
    assert result.layer_index == 3 and result.n_nets == 3
    for band in ("one_to_one", "semi", "within"):
        assert np.allclose(getattr(result, band).curves, getattr(reference, band).curves)
        assert np.allclose(getattr(result, band).std, getattr(reference, band).std)
    assert result.fraction_above_mean == pytest.approx(reference.fraction_above_mean)
    assert result.within_fraction_above_std == pytest.approx(reference.within_fraction_above_std)
    # three nets: 3 unordered pairs (one-to-one), 6 ordered ones (semi), 3 within-net baselines
    assert (result.one_to_one.n_curves, result.semi.n_curves, result.within.n_curves) == (3, 6, 3)
    stored = Engine().run(UnitMatchingRequest(NETS, "digits", N, layer_index=-2, thresholds=(0.5, 0.8)))
    assert np.array_equal(stored.semi.mean, result.semi.mean)  # read back from the result store


def test_a_pair_of_nets_is_a_family_of_one_pair(engine):
    result = engine.run(UnitMatchingRequest(NETS[:2], "digits", N, layer_index=2))
    a, b = (net[2] for net in _nets(engine)[:2])
    pair = matching_curves(a, b)
    assert np.allclose(result.one_to_one.mean, pair.one_to_one)
    assert np.isnan(result.one_to_one.std).all()  # one pair: no spread
    assert result.fraction_above_mean[0.7] == pytest.approx(
        (pair.fraction_above[0.7] + matching_curves(b, a).fraction_above[0.7]) / 2
    )


def test_family_matrix_is_the_mean_and_sd_of_the_seed_pairs_matrices(engine):
    request = FamilyMatrixRequest(NETS, "digits", N, metric="linear_cka")
    result = engine.run(request)
    reference = family_layer_matrices(_nets(engine), "linear_cka")
    assert result.pairs == ((0, 1), (0, 2), (1, 2))
    assert np.allclose(result.values, reference.values, atol=1e-10)
    both_ways = (reference.values + reference.values.transpose(0, 2, 1)) / 2  # linear CKA is symmetric
    assert np.allclose(result.mean, both_ways.mean(axis=0), atol=1e-10) and np.allclose(result.mean, result.mean.T)
    assert np.allclose(result.std, both_ways.std(axis=0, ddof=1), atol=1e-10)
    # each pair's matrix is the shared MatrixRequest, so Compare and layer identification reuse it
    first = engine.run(request.pair_requests()[0])
    assert np.array_equal(first.values, result.values[0])


def test_a_family_matrix_stored_before_the_both_ways_mean_is_not_served(engine):
    import dataclasses

    from alignscope.core.analysis.store import result_key

    request = FamilyMatrixRequest(NETS, "digits", N, metric="linear_cka")
    prepared = engine.prepare(request)
    old_json = {"kind": request.kind, **dataclasses.asdict(prepared.request)}  # the key of result_version 1
    old_key = result_key(old_json, [plan.cached_key for plan in prepared.plans])
    assert prepared.key != old_key
    stale = family_layer_matrices(_nets(engine), "linear_cka")
    stale = dataclasses.replace(stale, mean=stale.values.mean(axis=0))  # one way round: not symmetric
    assert not np.allclose(stale.mean, stale.mean.T, atol=1e-3)
    features = [plan.cached_key for plan in prepared.plans]
    engine.store.put(old_key, old_json, features, stale, kind=request.kind, label="", seconds=0.0)
    served = engine.run(request).mean
    assert np.allclose(served, served.T) and not np.allclose(served, stale.mean)


def test_an_asymmetric_metric_uses_every_ordered_pair(engine):
    request = FamilyMatrixRequest(NETS[:2], "digits", N, metric="unit_match", params=(("mode", "semi"),))
    result = engine.run(request)
    assert result.pairs == ((0, 1), (1, 0)) and not result.symmetric
    assert not np.allclose(result.values[0], result.values[1].T)  # a→b semi-matching is not b→a


def test_bad_families_are_refused_by_name(engine):
    with pytest.raises(InputError, match="at least two different nets"):
        UnitMatchingRequest(NETS[:1], "digits", N)
    with pytest.raises(InputError, match="at least two different nets"):
        FamilyMatrixRequest((NETS[0], NETS[0]), "digits", N)
    with pytest.raises(InputError, match="out of range: the nets have 5 layers"):
        engine.run(UnitMatchingRequest(NETS, "digits", N, layer_index=5))


def test_convergent_command_prints_matching_against_the_within_baseline(engine, capsys):
    assert main(["convergent", "--models", ",".join(NETS), "--dataset", "digits", "--n", str(N), "--layer", "3"]) == 0
    out = capsys.readouterr().out
    reference = family_matching_curves(_nets(engine), 3)
    assert f"{reference.fraction_above_mean[0.7]:.3f} ± {reference.fraction_above_std[0.7]:.3f}" in out
    assert f"{reference.within_fraction_above_mean[0.7]:.3f}" in out
    assert "layer 3 (fc1)" in out
    # linear CKA's matrix is each pair's averaged with its transpose: said, as its numbers match no one score
    assert "averaged with its transpose" in out
    assert main(["convergent", "--models", NETS[0], "--dataset", "digits"]) == 2
    assert "at least two different nets" in capsys.readouterr().err
    assert main(["convergent", "--models", ",".join(NETS), "--dataset", "digits", "--thresholds", "2"]) == 2


def _conv1_maps(model: str, n: int) -> torch.Tensor:
    """The raw [n, 16, 8, 8] output of conv1 of a digits CNN, called directly (no hooks)."""
    from alignscope.core.analysis.features import full_dataset
    from alignscope.core.models import load_model

    encoder = load_model(model, device="cpu")
    images = encoder.preprocess(list(full_dataset("digits").subset(n, 0).inputs("image")))
    with torch.inference_mode():
        return encoder.module.conv1(images)


def test_positions_as_samples_correlate_units_over_images_times_positions(engine):
    """Li et al.: each of the 8 × 8 positions of conv1 is a sample; ReLU gives the post-activation."""
    from alignscope.core.metrics.matching import unit_correlation
    from alignscope.core.unit_activations import position_index

    n = 60
    result = engine.run(UnitMatchingRequest(NETS[:2], "digits", n, layer_index=0, positions=True, activation="relu"))
    rows = []
    for model in NETS[:2]:
        maps = torch.relu(_conv1_maps(model, n))
        b, c, h, w = maps.shape
        keep = position_index(h, w, 64, 0)
        rows.append(maps.reshape(b, c, h * w)[:, :, keep].permute(0, 2, 1).reshape(-1, c).numpy())
    assert result.n_rows == n * 64
    corr = np.abs(unit_correlation(rows[0], rows[1]))
    assert np.allclose(np.sort(corr.max(axis=1))[::-1], result.semi.curves[0], atol=1e-6)
    pooled = engine.run(UnitMatchingRequest(NETS[:2], "digits", n, layer_index=0))
    assert pooled.n_rows == n and not np.allclose(pooled.semi.mean, result.semi.mean, atol=1e-3)


def test_a_fully_connected_layer_has_no_positions_and_relu_changes_only_the_activation(engine):
    n = 80
    plain = engine.run(UnitMatchingRequest(NETS, "digits", n, layer_index=3))
    as_read = engine.run(UnitMatchingRequest(NETS, "digits", n, layer_index=3, positions=True))
    assert as_read.n_rows == n and np.allclose(as_read.semi.curves, plain.semi.curves, atol=1e-6)
    after = engine.run(UnitMatchingRequest(NETS, "digits", n, layer_index=3, activation="relu"))
    assert not np.allclose(after.semi.mean, plain.semi.mean, atol=1e-3)
    with pytest.raises(InputError, match="activation must be one of"):
        UnitMatchingRequest(NETS, "digits", n, activation="tanh")
