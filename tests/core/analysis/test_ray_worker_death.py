"""A Ray worker killed in the middle of writing a result (SIGKILL between the arrays and the sidecar
that marks the entry complete): the retried task completes the entry, nothing half-written is ever
served, and a task whose worker dies every time is a clear error — on a real local Ray instance."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from alignscope.core.analysis.engine import Engine
from alignscope.core.analysis.ray_tasks import RayOptions, _compute_cell, run_on_ray
from alignscope.core.analysis.requests import MatrixRequest
from alignscope.core.errors import InputError
from alignscope.core.settings import get_settings

NETS = ("digits-cnn-s0", "digits-cnn-s1")


def _dies_while_writing(deaths: int):
    """A cell task whose worker SIGKILLs itself half-way through writing the sidecar, ``deaths`` times."""

    def task(request, cache_dir):
        import alignscope.core.analysis.store as store

        counter = Path(cache_dir) / "deaths"
        died = int(counter.read_text()) if counter.exists() else 0
        if died < deaths:
            real = store.atomic_write_bytes

            def half_then_die(path, data):
                if path.suffix == ".json":
                    counter.write_text(str(died + 1))
                    partial = path.with_name(path.name + ".partial")
                    partial.write_bytes(data[: len(data) // 2])  # what a killed writer leaves
                    os.kill(os.getpid(), signal.SIGKILL)
                real(path, data)

            store.atomic_write_bytes = half_then_die
        return _compute_cell(request, cache_dir)

    return task


def test_a_worker_killed_mid_write_is_retried_and_the_entry_is_complete(local_ray, engine):
    request = MatrixRequest(*NETS, "digits", 100, 0, "linear_cka")
    cache_dir = get_settings().cache_dir
    [key] = run_on_ray(_dies_while_writing(1), [request], cache_dir, RayOptions())
    assert (cache_dir / "deaths").read_text() == "1"  # the first attempt died
    prepared = Engine().prepare(request)
    assert key == prepared.key
    stored = Engine().cached(prepared)  # the retried worker's entry, read from the store
    assert stored is not None and stored.values.shape == (5, 5)
    assert list(cache_dir.rglob("*.json.partial"))  # the killed attempt's half-written sidecar is there …
    from alignscope.core.metrics.registry import compute

    view = engine.views(engine.prepare(request))
    a, b = view[NETS[0]].values[2], view[NETS[1]].values[3]
    assert stored.values[2, 3] == pytest.approx(compute("linear_cka", a, b), abs=1e-9)  # … and was not read


def test_a_worker_that_dies_every_time_is_an_error_and_serves_nothing(local_ray, engine):
    request = MatrixRequest(*NETS, "digits", 90, 0, "linear_cka")
    cache_dir = get_settings().cache_dir
    with pytest.raises(InputError, match="failed on Ray after 2 retries: .*Nothing it half-wrote is served"):
        run_on_ray(_dies_while_writing(99), [request], cache_dir, RayOptions())
    assert int((cache_dir / "deaths").read_text()) == 3  # the first attempt and two retries
    prepared = Engine().prepare(request)
    assert Engine().cached(prepared) is None  # arrays without their sidecar: not an entry
    assert np.isfinite(Engine().run(request).values).all()  # and a rerun computes it
