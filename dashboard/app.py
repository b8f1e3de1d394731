"""Alignscope dashboard entry point: ``streamlit run dashboard/app.py``. Navigation only."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from alignscope.dashboard import ui
from alignscope.dashboard.pages import PAGES, is_script_control, script_slot
from alignscope.dashboard.url_state import PAGE_PATH_KEY

# A local file: a Material icon as page icon is fetched from an external font host, which fails offline.
st.set_page_config(page_title="Alignscope", page_icon=str(Path(__file__).resolve().parent / "icon.png"), layout="wide")
# The default page is served at "/", yet /compare?… (typed by hand, or from a page's own name) must open
# it too rather than "Page not found" with the settings dropped: a hidden twin holds that path, and the
# default's reserved (never shown) path is "start".
# Page files live in views/, not pages/: a folder named pages/ beside the entry script switches on
# Streamlit's legacy page discovery.
pages = [
    st.Page(
        str(page.script),
        title=page.title,
        icon=page.icon,
        url_path="start" if index == 0 else page.url_path,
        default=index == 0,
    )
    for index, page in enumerate(PAGES)
]
first = PAGES[0]
pages.append(
    st.Page(str(first.script), title=first.title, icon=first.icon, url_path=first.url_path, visibility="hidden")
)
st.session_state["_alignscope_pages"] = {page.name: st_page for page, st_page in zip(PAGES, pages)}
try:
    current = st.navigation(pages)
    # share links name the page that is shown, never a mistyped path the browser asked for
    st.session_state[PAGE_PATH_KEY] = "" if current is pages[0] else current.url_path
    with script_slot():
        current.run()
except Exception as error:  # last resort: pages show AlignscopeErrors themselves; anything else is a bug
    if is_script_control(error):
        raise
    st.error(
        ui.plain(
            f"Something went wrong: {type(error).__name__}: {error}. Nothing was written to the cache. "
            "Change a setting or go back; if it happens again, please report it with the link below."
        ),
        icon=":material/error:",
    )
