"""The docstring examples of every ``alignscope.core`` module run as tests (they are documentation
that must stay true)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import alignscope.core


def _core_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(alignscope.core.__path__, prefix="alignscope.core.")
        if not info.name.startswith("alignscope.core.data")
    )


@pytest.mark.parametrize("module_name", _core_modules())
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
