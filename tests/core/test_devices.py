"""Threads: work shared out side by side, in order, without leaving any thread (the caller, the pool's,
threads started later) on fewer torch threads than before."""

from __future__ import annotations

import threading

import pytest
import torch

from alignscope.core.devices import side_by_side, torch_threads


def _count_in_new_thread() -> int:
    counts = []
    thread = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return counts[0]


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_side_by_side_runs_items_in_order_sharing_torchs_threads(threads):
    seen = []

    def work(item: int) -> tuple[int, int]:
        seen.append(threading.current_thread().name)
        return item * item, torch.get_num_threads()

    with torch_threads(threads):
        results = list(side_by_side(work, list(range(7))))
        assert torch.get_num_threads() == threads  # the caller's count
        # a thread started afterwards starts from the caller's count, not the pool threads' share
        assert _count_in_new_thread() == threads
    assert [square for square, _ in results] == [i * i for i in range(7)]
    # two at once, each on half the threads; in turn on one thread when there is one to share
    assert {count for _, count in results} == {max(1, threads // 2)}
    assert (set(seen) == {threading.current_thread().name}) == (threads == 1)


def test_an_error_in_one_item_reaches_the_caller_and_the_counts_are_restored():
    def work(item: int) -> int:
        if item == 2:
            raise ValueError("item 2")
        return item

    with torch_threads(2):
        with pytest.raises(ValueError, match="item 2"):
            list(side_by_side(work, [0, 1, 2, 3]))
        assert torch.get_num_threads() == 2 and _count_in_new_thread() == 2


def test_a_job_thread_starts_on_the_process_thread_count_even_while_another_runs_on_one():
    """Torch copies a process-wide count into a thread at its first torch call; a job thread that started
    while another thread ran on one thread kept one for life (a reviewer's reproduction)."""
    from alignscope.core.analysis.jobs import LocalRunner
    from alignscope.core.devices import PROCESS_THREADS

    runner = LocalRunner(workers=2)
    with torch_threads(1):  # the process-wide count is 1 while this block runs
        job = runner.submit("count", lambda progress: torch.get_num_threads(), label="count", estimate_seconds=0)
        job.wait(30)
    assert job.result == PROCESS_THREADS
