"""Properties every registered metric must have, checked against what its spec claims."""

import numpy as np
import pytest
import slow_reference as ref

from alignscope.core.metrics.registry import compute, get_metric, list_metrics

N, D = 60, 6
NAMES = [spec.name for spec in list_metrics()]


def transforms(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "orthogonal": lambda x: x @ ref.random_orthogonal(x.shape[1], seed),
        "isotropic_scale": lambda x: 3.7 * x,
        "translation": lambda x: x + rng.standard_normal(x.shape[1]) * 2,
        "permutation": lambda x: x[:, ::-1],
        "unit_scale": lambda x: x * np.linspace(0.2, 5.0, x.shape[1]),
        "invertible_linear": lambda x: x @ (np.eye(x.shape[1]) + np.triu(np.ones((x.shape[1],) * 2), 1)),
    }


def data(spec):
    a = ref.gaussian(N, D, 1)
    width = D if spec.requires_equal_dims else D + 3
    b = np.hstack([a, np.zeros((N, width - D))]) + 0.6 * ref.gaussian(N, width, 2)
    return a, b


@pytest.mark.parametrize("name", NAMES)
def test_identity_gives_the_best_value(name):
    spec = get_metric(name)
    a, b = data(spec)
    best = spec.value_range[1] if spec.higher_is_better else spec.value_range[0]
    if name == "cknna":  # unbounded (its self-terms use their own masks: above 1 at small n), but 1 on identity
        best = 1.0
    identity = compute(name, a, a)
    assert identity == pytest.approx(best, abs=2e-3)
    noisy = compute(name, a, b[:, :D] if spec.requires_equal_dims else b)
    assert (identity >= noisy) if spec.higher_is_better else (identity <= noisy)


@pytest.mark.parametrize("name", NAMES)
def test_claimed_invariances_hold_and_symmetry_and_range(name):
    spec = get_metric(name)
    a, b = data(spec)
    value = compute(name, a, b)
    low, high = spec.value_range
    assert low - 1e-12 <= value <= high + 1e-12
    for invariance in spec.invariances:
        transform = transforms()[invariance]
        assert compute(name, a, transform(b)) == pytest.approx(value, abs=1e-8), invariance
        if not spec.symmetric:
            assert compute(name, transform(a), b) == pytest.approx(value, abs=1e-8), invariance
    if spec.symmetric:
        assert compute(name, b, a) == pytest.approx(value, abs=1e-10)


@pytest.mark.parametrize("name", [name for name in NAMES if len(get_metric(name).invariances) < 6])
def test_an_unclaimed_invariance_fails(name):
    spec = get_metric(name)
    a, b = data(spec)
    value = compute(name, a, b)
    unclaimed = [t for name_t, t in transforms(3).items() if name_t not in spec.invariances]
    changes = [abs(compute(name, a, t(b)) - value) for t in unclaimed]
    if not spec.symmetric:
        changes += [abs(compute(name, t(a), b) - value) for t in unclaimed]
    assert max(changes) > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_independent_data_scores_like_its_own_shuffled_null(name):
    """Independent A and B: the observed score is one more draw from the shuffled-correspondence null,
    so it lies within a few standard deviations of the null mean (and of the analytic chance level
    where the metric has one)."""
    from alignscope.core.stats import permutation_test

    spec = get_metric(name)
    a = ref.gaussian(300, 8, 11)
    b = ref.gaussian(300, 8 if spec.requires_equal_dims else 11, 12)
    result = permutation_test(name, a, b, n_permutations=60, seed=0)
    null_mean, null_std = result.null_values.mean(), result.null_values.std(ddof=1)
    assert abs(result.observed - null_mean) <= 4 * null_std + 1e-9, (result.observed, null_mean, null_std)
    if spec.chance is not None:
        analytic = spec.chance(300, **spec.defaults())
        assert abs(analytic - null_mean) <= 4 * null_std + 0.01, (analytic, null_mean, null_std)


def _choice_settings(spec):
    """Every value of each choice parameter of ``spec``, one at a time (the defaults elsewhere)."""
    yield {}
    for param in spec.params:
        for choice in param.choices or ():
            yield {param.name: choice}


@pytest.mark.parametrize("name", NAMES)
def test_symmetry_is_claimed_only_for_the_parameters_it_holds_for(name):
    """``symmetric_for(params)`` is what model matrices and trends trust to reuse (a, b) for (b, a):
    semi unit matching (each unit of A to its best unit of B) is not symmetric though one-to-one is."""
    spec = get_metric(name)
    a, b = data(spec)
    for params in _choice_settings(spec):
        if spec.symmetric_for(params):
            assert compute(name, b, a, **params) == pytest.approx(compute(name, a, b, **params), abs=1e-10), params


def test_semi_unit_matching_is_not_claimed_symmetric():
    spec = get_metric("unit_match")
    assert spec.symmetric_for({}) and spec.symmetric_for({"mode": "one_to_one"})
    assert not spec.symmetric_for({"mode": "semi"})
