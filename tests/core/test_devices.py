"""Threads: work shared out one torch thread each, in order, with the caller's thread count restored."""

from __future__ import annotations

import threading

import pytest
import torch

from alignscope.core.devices import one_thread_each, torch_threads


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_one_thread_each_runs_every_item_on_one_torch_thread_in_order(threads):
    seen = []

    def work(item: int) -> tuple[int, int, str]:
        seen.append(threading.current_thread().name)
        return item * item, torch.get_num_threads(), threading.current_thread().name

    with torch_threads(threads):
        results = list(one_thread_each(work, list(range(7))))
        assert torch.get_num_threads() == threads  # restored for the caller
    assert [square for square, _, _ in results] == [i * i for i in range(7)]
    assert {count for _, count, _ in results} == {1}
    main = threading.current_thread().name
    # side by side on pool threads when torch had more than one, in the caller's thread otherwise
    assert (set(seen) == {main}) == (threads == 1)


def test_an_error_in_one_item_reaches_the_caller_and_the_thread_count_is_restored():
    def work(item: int) -> int:
        if item == 2:
            raise ValueError("item 2")
        return item

    with torch_threads(2):
        with pytest.raises(ValueError, match="item 2"):
            list(one_thread_each(work, [0, 1, 2, 3]))
        assert torch.get_num_threads() == 2
