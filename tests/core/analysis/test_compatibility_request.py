"""Model-version compatibility on the engine: the stored report equals compatibility_report on the same
split of the same features; a model is compatible with a copy of itself; the split is disjoint."""

from __future__ import annotations

import io

import numpy as np
import pytest

from alignscope.core.analysis.compatibility import CompatibilityRequest, _split
from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.features import load_view, plan_features
from alignscope.core.cli import main
from alignscope.core.compatibility import compatibility_report
from alignscope.core.errors import InputError
from alignscope.core.metrics.retrieval import fit_linear_map

OLD, NEW = "digits-cnn-s0", "digits-cnn-s1"
N = 300


def _view(engine, model, seed=0):
    return load_view(plan_features(model, "digits", N, seed, engine.cache), engine.cache)


@pytest.mark.parametrize("mapped", [False, True])
def test_the_split_is_disjoint_and_covers_the_samples(mapped):
    fit, queries, gallery = _split(100, 4, 0.3, mapped)
    together = np.concatenate([fit, queries, gallery])
    assert sorted(together.tolist()) == list(range(100))
    assert (fit.size, queries.size, gallery.size) == ((30, 21, 49) if mapped else (0, 30, 70))


def test_the_engine_report_equals_compatibility_report_on_the_same_split(engine):
    result = engine.run(CompatibilityRequest(OLD, NEW, "digits", N, 2, -1, -1, "recall@1", 0.3, 50))
    old, new = _view(engine, OLD, 2).values[4], _view(engine, NEW, 2).values[4]
    labels = np.asarray(_view(engine, OLD, 2).labels)
    _, q, g = _split(N, 2, 0.3, mapped=False)
    expected = compatibility_report(
        old[q],
        new[q],
        old[g],
        new[g],
        query_labels=labels[q],
        gallery_labels=labels[g],
        measure="recall@1",
        n_boot=50,
        seed=2,
    )
    assert result.report.new_old == expected.new_old and result.report.old_old == expected.old_old
    assert result.report.difference == expected.difference and result.report.passed == expected.passed
    assert np.array_equal(result.report.new_old_result.cmc, expected.new_old_result.cmc)
    assert (result.layer_old_name, result.n_fit) == ("logits", 0)
    stored = Engine().run(CompatibilityRequest(OLD, NEW, "digits", N, 2, -1, -1, "recall@1", 0.3, 50))
    assert stored.report.difference == result.report.difference  # read back from the result store


def test_different_widths_go_through_a_map_fitted_on_other_samples(engine):
    result = engine.run(CompatibilityRequest(OLD, NEW, "digits", N, 0, -1, 2, bootstrap=20))
    old, new = _view(engine, OLD).values[4], _view(engine, NEW).values[2]
    labels = np.asarray(_view(engine, OLD).labels)
    fit, q, g = _split(N, 0, 0.3, mapped=True)
    mapping = fit_linear_map(new[fit], old[fit])
    expected = compatibility_report(
        old[q], new[q], old[g], new[g], query_labels=labels[q], gallery_labels=labels[g], query_map=mapping, n_boot=20
    )
    assert result.n_fit == fit.size == 90
    assert result.report.new_old.estimate == pytest.approx(expected.new_old.estimate, abs=1e-12)


def test_a_model_is_compatible_with_a_slightly_perturbed_copy_of_itself(engine):
    """Known answer: a 'new' model that is the old one plus tiny noise searches the old gallery as well as
    the old model does (difference ≈ 0, pairwise inequalities half satisfied by symmetry)."""
    from alignscope.core.uploads import add_representation

    old = _view(engine, OLD)
    full = engine.cache.get_or_extract(
        OLD, __import__("alignscope.core.datasets", fromlist=["x"]).load_dataset("digits")
    )[0]
    logits = np.asarray(full.values[4], dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, logits + 1e-4 * np.random.default_rng(0).standard_normal(logits.shape).astype(np.float32))
    add_representation("old-copy", "copy.npy", buffer.getvalue(), dataset="digits")
    from alignscope.core.analysis import run

    result = run(CompatibilityRequest(OLD, "old-copy", "digits", N, 0, -1, -1, bootstrap=50), engine=engine)
    assert abs(result.report.difference.estimate) < 5e-3
    assert result.report.new_new.estimate == pytest.approx(result.report.old_old.estimate, abs=5e-3)
    assert old.n_samples == N


def test_bad_requests_are_refused_by_name(engine):
    with pytest.raises(InputError, match="two different models"):
        CompatibilityRequest(OLD, OLD, "digits", N)
    with pytest.raises(InputError, match="recall@k"):
        CompatibilityRequest(OLD, NEW, "digits", N, measure="recall@zero")
    with pytest.raises(InputError, match="out of range"):
        engine.run(CompatibilityRequest(OLD, NEW, "digits", N, layer_new=9))
    # too few samples for a verdict: refused, not "+0.000 [+0.000, +0.000]: not compatible" on 1 query
    with pytest.raises(InputError, match=r"n = 3 gives 1 query and a gallery of 2; .* at least 10 .* n >= 35"):
        engine.run(CompatibilityRequest(OLD, NEW, "digits", 3, layer_old=4, layer_new=4))


def test_compatibility_command_prints_the_verdict(engine, capsys):
    args = ["compatibility", "--old", OLD, "--new", NEW, "--dataset", "digits", "--n", str(N), "--bootstrap", "30"]
    assert main(args) == 0
    out = capsys.readouterr().out
    result = engine.run(CompatibilityRequest(OLD, NEW, "digits", N, 0, -1, -1, bootstrap=30))
    d = result.report.difference
    assert f"M(new, old) − M(old, old) = {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]" in out
    assert ("not compatible" in out) == (not result.report.passed)
    assert main([*args[:-2], "--measure", "recall@0"]) == 2


def test_an_exact_copy_is_said_to_retrieve_the_same_not_to_be_incompatible(engine):
    """A new model that is the old one (an exact copy of its logits) got "+0.000 [+0.000, +0.000]: not
    compatible", read as a failed upgrade; it retrieves exactly as the old model does."""
    from alignscope.core.analysis import run
    from alignscope.core.datasets import load_dataset
    from alignscope.core.uploads import add_representation

    full = engine.cache.get_or_extract(OLD, load_dataset("digits"))[0]
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(full.values[4], dtype=np.float32))
    add_representation("old-exact", "exact.npy", buffer.getvalue(), dataset="digits")
    result = run(CompatibilityRequest(OLD, "old-exact", "digits", N, 0, -1, -1, bootstrap=50), engine=engine)
    verdict = result.verdict()
    assert "+0.000 [+0.000, +0.000]" in verdict and "not compatible" not in verdict
    assert "rank the old gallery exactly as the old model's do" in verdict and "gain kept" not in verdict
