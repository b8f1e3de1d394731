"""The only place with ``st.cache_resource`` wrappers, each over one core call.

Numbers never come from here: pages ask the engine (:func:`outcome`) for results, which live in the
on-disk result store and are shared by every browser session and the CLI. What is cached here is what
is expensive to rebuild in memory: the engine itself (one per cache dir) and loaded models for
extraction jobs.
"""

from __future__ import annotations

import streamlit as st

from alignscope.core.analysis.engine import Engine, Outcome, default_engine
from alignscope.core.analysis.features import full_dataset
from alignscope.core.analysis.requests import Request
from alignscope.core.errors import AlignscopeError
from alignscope.core.settings import get_settings
from alignscope.core.versions import versions_of


def ensure_registries() -> None:
    """Persisted uploads and added models registered, and kept in step with what another process (the
    CLI) adds or removes meanwhile: one ``stat`` of the registry file per rerun."""
    from alignscope.core.uploads import sync_user_registry

    sync_user_registry(get_settings())


def engine() -> Engine:
    """The process-wide engine of the current cache dir."""
    return default_engine()


def start_worker() -> None:
    """Start the engine's worker process for GIL-bound jobs (a no-op while it runs)."""
    worker = engine().worker
    if worker is not None:
        worker.start()


def outcome(request: Request, *, start: bool = False) -> Outcome:
    """Where ``request`` stands (see :meth:`Engine.request`); never blocks on work."""
    return engine().request(request, start=start)


@st.cache_resource(show_spinner=False, max_entries=4)
def _encoder(model: str, fingerprint: str) -> object:
    from alignscope.core.models import load_model

    return load_model(model, device=get_settings().device)


def encoder(model: str) -> object:
    """A loaded model, shared by every session's extraction jobs (a changed spec loads anew)."""
    from alignscope.core.models import get_model_spec

    return _encoder(model, str(get_model_spec(model).fingerprint()))


def dataset_size(name: str) -> int | None:
    """Samples in registered dataset ``name``, or None when it cannot be loaded."""
    try:
        return len(full_dataset(name))
    except AlignscopeError:
        return None


def package_versions() -> dict[str, str]:
    """The versions a result card records."""
    return versions_of("alignscope", "torch", "numpy", "scipy", "streamlit", "plotly", "transformers")


def show_error(error: Exception | str) -> None:
    """Every AlignscopeError is shown with its own words (as text), never as a traceback."""
    st.error(str(error), icon=":material/error:")


@st.cache_data(show_spinner=False, max_entries=8)
def thumbnails(dataset: str, n: int, seed: int) -> list[str]:
    """Small base64 PNGs of a view's images, in its sample order (the hover maps show them)."""
    from alignscope.core.analysis.features import view_dataset
    from alignscope.dashboard.hover_maps import thumbnail_png

    data = view_dataset(dataset, n, seed)
    return [] if data.images is None else [thumbnail_png(data.images[i]) for i in range(len(data))]


@st.cache_resource(show_spinner=False)
def _prefetch(cache_dir: str) -> dict:
    """Start extracting the embedded default once per server and cache dir (see ``--prefetch-default``)."""
    from alignscope.core.analysis.engine import prefetch_default

    job = prefetch_default(engine())
    return {"key": None if job is None else job.key}


def start_prefetch() -> None:
    _prefetch(str(get_settings().cache_dir))
