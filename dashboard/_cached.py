"""The only place with ``st.cache_data`` / ``st.cache_resource`` wrappers around ``core``.

Cached functions are keyed by plain strings and ints, never by objects: loaded models are shared
resources (``st.cache_resource``); features, scores and tables are data (``st.cache_data``).
"""

from __future__ import annotations

import streamlit as st


@st.cache_data(show_spinner=False, max_entries=64)
def dataset_size(name: str) -> int | None:
    """Samples in registered dataset ``name``, or None when it cannot be loaded."""
    from core.datasets import load_dataset
    from core.errors import AlignscopeError

    try:
        return load_dataset(name).n_total
    except AlignscopeError:
        return None
