"""The docstring examples of every ``alignscope.core`` module, and of the dashboard's modules that are not
pages, run as tests (they are documentation that must stay true)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import alignscope.core
import alignscope.dashboard


def _documented_modules() -> list[str]:
    core = [
        info.name
        for info in pkgutil.walk_packages(alignscope.core.__path__, prefix="alignscope.core.")
        if not info.name.startswith("alignscope.core.data")
    ]
    dashboard = [  # the pages (app, views) run Streamlit as they are imported
        info.name
        for info in pkgutil.walk_packages(alignscope.dashboard.__path__, prefix="alignscope.dashboard.")
        if not info.name.startswith(("alignscope.dashboard.app", "alignscope.dashboard.views"))
    ]
    return sorted(core + dashboard)


@pytest.mark.parametrize("module_name", _documented_modules())
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
