"""Alignscope dashboard entry point: ``streamlit run dashboard/app.py``. Navigation only."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from alignscope.dashboard._cached import ensure_registries
from alignscope.dashboard.state import PAGE_PATH_KEY

try:
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException as _SCRIPT_CONTROL
except ImportError:  # another Streamlit layout: recognise the control-flow exceptions by name
    _SCRIPT_CONTROL = tuple(
        type(name, (Exception,), {}) for name in ("RerunException", "StopException")
    )

# Page files live in views/, not pages/: a folder named pages/ beside the entry script switches on
# Streamlit's legacy page discovery, and a deep link as a fresh server's first request would then run
# that page file by itself, without this script (no layout, no registries).
_PAGES = Path(__file__).resolve().parent / "views"
# (file, title, icon, url path); pages whose file does not exist yet are left out.
PAGES = (
    ("compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("many_models.py", "Many models", ":material/grid_view:", "many-models"),
    ("sweeps.py", "Sweeps", ":material/show_chart:", "sweeps"),
    ("projections.py", "Projections", ":material/scatter_plot:", "projections"),
    ("neighbours.py", "Neighbours", ":material/hub:", "neighbours"),
    ("data_models.py", "Data & models", ":material/database:", "data-models"),
)

st.set_page_config(page_title="Alignscope", page_icon=":material/join_inner:", layout="wide")
ensure_registries()
# The default page is served at "/", yet /compare?… (typed by hand, or from a page's own name) must open
# it too rather than "Page not found" with the settings dropped: a hidden twin holds that path, and the
# default's reserved (never shown) path is "start".
pages = [
    st.Page(str(_PAGES / file), title=title, icon=icon, url_path="start" if index == 0 else url_path,
            default=index == 0)  # fmt: skip
    for index, (file, title, icon, url_path) in enumerate(PAGES)
    if (_PAGES / file).exists()
]
_file, _title, _icon, _url_path = PAGES[0]
pages.append(st.Page(str(_PAGES / _file), title=_title, icon=_icon, url_path=_url_path, visibility="hidden"))
try:
    current = st.navigation(pages)
    # share links name the page that is shown, never a mistyped path the browser asked for
    st.session_state[PAGE_PATH_KEY] = "" if current is pages[0] else current.url_path
    current.run()
except Exception as error:  # last resort: pages show AlignscopeErrors themselves; anything else is a bug
    if isinstance(error, _SCRIPT_CONTROL):  # st.rerun / st.stop: Streamlit's own control flow
        raise
    st.error(
        f"Something went wrong: {type(error).__name__}: {error}. Nothing was written to the cache. "
        "Change a setting or go back; if it happens again, please report it with the link below.",
        icon=":material/error:",
    )

