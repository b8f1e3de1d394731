"""Threads from the cores free right now: /proc/loadavg's runnable count, and a layer matrix that gives the
same values on one thread as on all."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignscope.core.devices import free_cores, threads_for_load
from alignscope.core.metrics.layers import layer_matrix


def _usable() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _tasks(folder, states: str):
    """A fake /proc/self/task: one thread per letter of ``states`` (R running, S sleeping)."""
    for tid, state in enumerate(states, start=100):
        (folder / str(tid)).mkdir(parents=True)
        (folder / str(tid) / "stat").write_text(f"{tid} (pt_main thread) {state} 1 2 3 4\n")
    return folder


@pytest.mark.parametrize(
    ("runnable", "own", "free"),
    [(1, "R", "all"), (2, "RS", "all-1"), (2, "RRS", "all"), (3, "RRS", "all-1"), (50, "RSSS", 0)],
)
def test_free_cores_subtracts_the_runnable_tasks_of_other_processes(tmp_path, runnable, own, free):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"0.72 2.29 2.03 {runnable}/244 11645\n")
    expected = {"all": _usable(), "all-1": _usable() - 1, 0: 0}[free]
    # our own running threads (OpenMP workers spinning after a parallel region) are not load
    assert free_cores(loadavg, _tasks(tmp_path / "task", own)) == max(0, expected)


def test_free_cores_without_proc_loadavg_is_every_usable_cpu(tmp_path):
    assert free_cores(tmp_path / "missing") == _usable()
    garbled = tmp_path / "garbled"
    garbled.write_text("not a loadavg")
    assert free_cores(garbled) == _usable()
    assert free_cores() >= 0  # the real /proc


def test_threads_for_load_uses_the_free_cores_and_restores_the_setting():
    before = torch.get_num_threads()
    with threads_for_load(free=0) as count:
        assert count == 1 == torch.get_num_threads()  # never zero threads
    assert torch.get_num_threads() == before
    with threads_for_load(free=10_000) as count:
        assert count == before  # never more than torch's own count
    with pytest.raises(RuntimeError), threads_for_load(free=0):
        raise RuntimeError("restored even when the block fails")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("metric", ["mutual_knn", "debiased_cka", "linear_cka", "cknna"])
def test_a_layer_matrix_is_the_same_on_one_thread_as_on_all(monkeypatch, metric):
    """The thread count follows the machine's load, so it must not change a result (a stored result is
    keyed by its inputs, not by how busy the machine was): neighbour lists are identical, float64 sums
    agree to rounding (a parallel reduction adds in another order)."""
    import alignscope.core.metrics.layers as layers_module

    generator = torch.Generator().manual_seed(0)
    layers_a = [torch.randn(300, 96, generator=generator) for _ in range(3)]
    layers_b = [torch.randn(300, 64, generator=generator) @ torch.randn(64, 80, generator=generator) for _ in range(2)]
    params = {"k": 10} if metric in ("mutual_knn", "cknna") else {}
    values = {}
    for free in (1, 10_000):
        monkeypatch.setattr(layers_module, "threads_for_load", lambda free=free: threads_for_load(free=free))
        values[free] = layer_matrix(layers_a, layers_b, metric, **params).values
    if metric == "debiased_cka":
        np.testing.assert_allclose(values[1], values[10_000], rtol=1e-12, atol=1e-15)
    else:
        assert np.array_equal(values[1], values[10_000])
