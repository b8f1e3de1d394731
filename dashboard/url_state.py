"""Binds the :class:`~alignscope.dashboard.selection.Selection` to Streamlit: the URL, widgets, page switches.

Pages read with :func:`read_selection`, create widgets with :func:`bound` and write with
:func:`update_selection`; nothing else touches ``st.query_params``. The URL is rewritten in canonical
form on every run, so a copied link always reopens the same view.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from alignscope.core.errors import AlignscopeError
from alignscope.core.files import atomic_write_bytes
from alignscope.dashboard.selection import RegistryContext, Selection

_LAST_QUERY = "_alignscope_last_query"
_PENDING_NOTES = "_alignscope_notes"
_RUN_NOTES = "_alignscope_run_notes"
_STICKY_NOTES = "_alignscope_sticky_notes"
_FRESH = "_alignscope_opened_without_link"
_WIDGET_PREFIX = "sel."
PAGE_PATH_KEY = "_alignscope_page_path"  # set by app.py: the url path of the page being shown


class DashboardContext(RegistryContext):
    """The link context of a running dashboard: the registries' names, dataset sizes and sample orders
    from core, long selections stashed under the cache dir (``selections/<sha256>.json``)."""

    def dataset_size(self, name: str) -> int | None:
        ids = self.sample_ids(name)
        return None if ids is None else len(ids)

    def sample_ids(self, name: str) -> Sequence[str] | None:
        from alignscope.core.analysis.features import full_dataset

        try:
            return full_dataset(name).sample_ids
        except AlignscopeError:
            return None

    def _stash_path(self, key: str):
        from alignscope.core.settings import get_settings

        return get_settings().cache_dir / "selections" / f"{key}.json"

    def stash(self, indices: Sequence[int]) -> str:
        blob = json.dumps(sorted(int(i) for i in indices)).encode()
        key = hashlib.sha256(blob).hexdigest()[:32]
        path = self._stash_path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, blob)
        return key

    def unstash(self, key: str) -> list[int] | None:
        try:
            blob = self._stash_path(key).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(blob).hexdigest()[:32] != key:
            return None
        try:
            values = json.loads(blob)
        except ValueError:
            return None
        return values if isinstance(values, list) else None


CONTEXT = DashboardContext()


def _query_from_url() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in st.query_params.keys()}


def last_query() -> dict[str, str]:
    """The query string of this session's current Selection (as last written to the URL)."""
    return dict(st.session_state.get(_LAST_QUERY, {}))


def write_selection(selection: Selection) -> None:
    """Put ``selection`` in the URL (only when it differs) and remember it for page switches."""
    query = selection.to_query(CONTEXT)
    st.session_state[_LAST_QUERY] = query
    current = {key: values[-1] for key, values in _query_from_url().items() if values}
    if current != query:
        st.query_params.from_dict(query)


def read_selection() -> tuple[Selection, list[str]]:
    """The page's Selection from the URL, plus warnings for anything that had to be fixed.

    A page switch drops the query string; the last Selection of this session is restored then, so
    state survives switching pages.
    """
    params = _query_from_url()
    if _FRESH not in st.session_state:  # the session's first run: did it come with a link's settings?
        st.session_state[_FRESH] = not params
    if not params and _LAST_QUERY in st.session_state:
        params = dict(st.session_state[_LAST_QUERY])
    selection, warnings = Selection.from_query(params, context=CONTEXT)
    write_selection(selection)
    # A link's fixes, and the notes a page left for this run (a layer the link named that the model
    # lacks, found once its features were read), stay on screen while the view is unchanged: a rerun
    # when a background job finishes must not wipe the explanation of what was fixed.
    # Keyed by the page too: a page's note (a layer its nets lack) is no news on the next page.
    view = (st.session_state.get(PAGE_PATH_KEY), st.session_state[_LAST_QUERY])
    sticky = st.session_state.get(_STICKY_NOTES)
    kept = list(sticky[1]) if sticky is not None and sticky[0] == view else []
    notes = list(dict.fromkeys([*kept, *st.session_state.pop(_PENDING_NOTES, []), *warnings]))
    if notes:
        st.session_state[_STICKY_NOTES] = (view, notes)
    else:
        st.session_state.pop(_STICKY_NOTES, None)
    st.session_state[_RUN_NOTES] = notes  # kept across an st.rerun by note_for_next_run
    return selection, notes


def opened_without_a_link() -> bool:
    """True when this browser session started on a bare address (a first visit, not a shared link)."""
    return bool(st.session_state.get(_FRESH, False))


def note_for_next_run(notes: list[str], *, keep_this_runs: bool = False) -> None:
    """Warnings to show on the next run. ``keep_this_runs``: also repeat this run's link fixes, for a
    page that calls ``st.rerun`` before its warnings could be seen."""
    this_run = st.session_state.pop(_RUN_NOTES, [])
    carried = [*(this_run if keep_this_runs else []), *st.session_state.get(_PENDING_NOTES, [])]
    st.session_state[_PENDING_NOTES] = list(dict.fromkeys([*carried, *notes]))


def update_selection(**changes: Any) -> Selection:
    """Apply ``changes`` (field names) to the current Selection, validated, and write it to the URL.

    Safe in widget callbacks. Clamping notes (e.g. n larger than a new dataset) are shown on the next run.
    """
    params = _query_from_url() or dict(st.session_state.get(_LAST_QUERY, {}))
    current, _ = Selection.from_query(params, context=CONTEXT)
    updated, notes = current.replace(context=CONTEXT, **changes)
    if notes:
        note_for_next_run(notes)
    write_selection(updated)
    return updated


def _identity(value: Any) -> Any:
    return value


def bound(
    widget: Callable[..., Any],
    label: str,
    selection: Selection,
    field: str,
    *,
    to_widget: Callable[[Any], Any] = _identity,
    from_widget: Callable[[Any], Any] = _identity,
    key_suffix: str = "",
    **kwargs: Any,
) -> Any:
    """Create ``widget`` showing ``selection.<field>``; a change by the user updates the URL.

    The widget's session state is overwritten from the Selection on every run, so the URL stays the
    single source of truth (a clicked heatmap cell or an opened link moves the widgets too). Do not pass
    ``value=`` / ``index=`` / ``default=``.

    Example: ``bound(st.selectbox, "Model A", sel, "model_a", options=names)``.
    """
    key = _WIDGET_PREFIX + field + key_suffix
    st.session_state[key] = to_widget(getattr(selection, field))
    return widget(label, key=key, on_change=_commit, args=(field, key, from_widget), **kwargs)


def _commit(field: str, key: str, convert: Callable[[Any], Any]) -> None:
    update_selection(**{field: convert(st.session_state[key])})


def share_url(selection: Selection, page_path: str | None = None) -> str:
    """The full link to ``selection`` on the page being shown: the browser's origin (and any path
    prefix in front of the app) plus the page's own url path, never the path the browser asked for."""
    from urllib.parse import urlencode, urlsplit

    if page_path is None:
        page_path = st.session_state.get(PAGE_PATH_KEY)
    try:
        address = urlsplit(str(st.context.url or ""))
    except Exception:  # noqa: BLE001 - outside a browser session (tests) there is no URL
        address = urlsplit("")
    if address.scheme and address.netloc:
        path = address.path
        if page_path is not None:  # replace the last path segment (the page) by the real page's path
            path = path.rsplit("/", 1)[0] + "/" + page_path
        base = f"{address.scheme}://{address.netloc}{path}"
    else:
        base = "http://localhost:8501/" + (page_path or "")
    return f"{base}?{urlencode(selection.to_query(CONTEXT), safe=',:')}"
