"""The local job runner: a failure says whether running the job again could end otherwise."""

from __future__ import annotations

import pytest

from alignscope.core.analysis.jobs import LocalRunner
from alignscope.core.errors import CacheError, FeaturesGone, InputError


def _fail_with(error: Exception):
    def work(progress):
        raise error

    return work


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (InputError("crossnobis needs repeats"), False),  # the same input fails the same way
        (FeaturesGone("features went meanwhile"), True),  # extracted again, it can work
        (CacheError("disk busy"), True),
        (RuntimeError("a bug"), True),
    ],
)
def test_a_failed_job_is_retryable_unless_its_input_made_it_fail(error, retryable):
    runner = LocalRunner()
    job = runner.submit("key", _fail_with(error), label="l", estimate_seconds=0.0)
    assert runner.wait_idle(30)
    assert job.state == "failed" and job.retryable is retryable and str(error) in job.error


def test_a_request_refused_as_it_is_prepared_is_not_offered_again(engine):
    """The engine's other way to fail: a request its input refuses before any job runs (layer 9 of a
    five-layer net) was offered a retry that could only fail the same way."""
    from alignscope.core.analysis.requests import PairRequest

    outcome = engine.request(PairRequest("digits-cnn-s0", "digits-cnn-s1", "digits", 200, layers="9,9"))
    assert outcome.state == "failed" and "layer" in outcome.error and outcome.retryable is False


def test_an_error_from_another_process_is_rebuilt_with_its_own_type():
    from alignscope.core.errors import AlignscopeError, UnknownModelError, rebuilt

    assert type(rebuilt("InputError", "n_neighbors must be at least 2")) is InputError
    assert str(rebuilt("UnknownModelError", "no model 'x'")) == "no model 'x'"  # not quoted as a KeyError
    assert type(rebuilt("UnknownModelError", "m")) is UnknownModelError
    # anything else (a bug's type, a name from elsewhere) is the base type, never an arbitrary class
    assert type(rebuilt("ValueError", "m")) is AlignscopeError and type(rebuilt("os.system", "m")) is AlignscopeError
