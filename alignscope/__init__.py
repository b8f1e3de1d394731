"""Alignscope: how similarly do neural networks represent the same inputs?

The package is ``alignscope``; its parts live in the checkout's top-level folders (setuptools
``package-dir``): ``alignscope.core`` is ``core/`` (compute, never imports Streamlit) and
``alignscope.dashboard`` is ``dashboard/`` (the Streamlit views over ``alignscope.core.analysis``).
"""

__version__ = "0.2.0"
