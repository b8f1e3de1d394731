"""One generic registry for models, datasets and metrics: register / get / list / unregister / is_builtin.

Entries are frozen specs with a ``name``. Built-in entries (the embedded default, the metric families)
are registered by a module named at construction and imported on first use, so a registry is never
seen half-filled and no module has to import the one that fills it.
"""

from __future__ import annotations

import builtins
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from alignscope.core.errors import AlignscopeError, InputError


class _Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=_Named)


class Registry(Generic[T]):
    """Named specs of one kind, in registration order.

    Args:
        what: the kind, for messages (``"model"``).
        unknown: the error raised for a name that is not registered (a subclass of AlignscopeError).
        builtin_modules: modules that register the built-in entries when imported (on first use).
        hint: a sentence appended to the unknown-name message (how to add one).
    """

    def __init__(
        self,
        what: str,
        unknown: type[AlignscopeError],
        *,
        builtin_modules: tuple[str, ...] = (),
        hint: str = "",
        same: Callable[[T, T], bool] | None = None,
    ) -> None:
        self.what = what
        self._unknown = unknown
        self._builtin_modules = builtin_modules
        self._hint = hint
        self._same = same or (lambda old, new: old == new)
        self._items: dict[str, T] = {}
        self._builtin: set[str] = set()
        self._loading = False
        self._loaded = not builtin_modules
        self._lock = threading.RLock()

    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                for module in self._builtin_modules:
                    importlib.import_module(module)
            finally:
                self._loading = False
            self._loaded = True

    def register(self, item: T, *, builtin: bool = False, overwrite: bool = False) -> T:
        """Add ``item``; a different item under a taken name needs ``overwrite`` (never over a built-in)."""
        if not builtin:
            self._ensure_loaded()  # built-ins first, so a user entry can never shadow one
        with self._lock:
            existing = self._items.get(item.name)
            if existing is not None and not self._same(existing, item):
                if item.name in self._builtin and not builtin:
                    raise InputError(f"{item.name!r} is a built-in {self.what}; choose another name")
                if not overwrite:
                    raise ValueError(f"a different {self.what} is already registered as {item.name!r}")
            self._items[item.name] = item
            if builtin:
                self._builtin.add(item.name)
            return item

    def get(self, name: str) -> T:
        self._ensure_loaded()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            known = ", ".join(self._items) or "none"
            raise self._unknown(
                f"unknown {self.what} {name!r}. Registered {self.what}s: {known}.{' ' + self._hint if self._hint else ''}"
            ) from None

    def list(self) -> builtins.list[T]:
        self._ensure_loaded()
        return list(self._items.values())

    def names(self) -> builtins.list[str]:
        return [item.name for item in self.list()]

    def unregister(self, name: str) -> None:
        """Forget an added entry; built-in entries are refused."""
        self._ensure_loaded()
        with self._lock:
            if name in self._builtin:
                raise InputError(f"{name!r} is a built-in {self.what} and cannot be removed")
            self._items.pop(name, None)

    def is_builtin(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._builtin

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())
