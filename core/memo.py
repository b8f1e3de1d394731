"""A small thread-safe LRU of computed values, shared by every caller in the process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class Lru(Generic[Value]):
    """At most ``capacity`` values by key, the least recently used dropped first. ``load`` runs outside
    the lock (two callers may load one key at once; the later value is kept): values must be read-only.

    Example:
        >>> memo, loads = Lru(capacity=2), []
        >>> [memo.get(key, lambda: loads.append(key) or key * 10) for key in (1, 2, 1, 3, 2, 1)], loads
        ([10, 20, 10, 30, 20, 10], [1, 2, 3, 2, 1])
    """

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[Hashable, Value] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def get(self, key: Hashable, load: Callable[[], Value]) -> Value:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return value

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
