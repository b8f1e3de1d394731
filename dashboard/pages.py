"""The dashboard's pages: one entry each (title, icon, URL path, view), and how one page runs.

Every page runs the same way: the Selection is read from the URL (fixing and reporting anything
invalid), then the page's view draws it with ``render(selection)``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from alignscope.dashboard.selection import Selection


@dataclass(frozen=True)
class PageEntry:
    name: str
    title: str
    icon: str
    url_path: str
    module: str

    def render(self) -> Callable[[Selection], None]:
        import importlib

        return importlib.import_module(f"alignscope.dashboard.views.{self.module}").render

    @property
    def script(self) -> Path:
        """The view's file: run as a script, it draws this page (``st.Page`` takes it)."""
        return Path(__file__).resolve().parent / "views" / f"{self.module}.py"


PAGES: tuple[PageEntry, ...] = (
    PageEntry("compare", "Compare", ":material/compare_arrows:", "compare", "compare"),
    PageEntry("many_models", "Many models", ":material/grid_view:", "many-models", "many_models"),
    PageEntry("trends", "Trends", ":material/trending_up:", "trends", "trends"),
    PageEntry("sweeps", "Sweeps", ":material/show_chart:", "sweeps", "sweeps"),
    PageEntry("projections", "Projections", ":material/scatter_plot:", "projections", "projections"),
    PageEntry("neighbours", "Neighbours", ":material/hub:", "neighbours", "neighbours"),
    PageEntry("rsa", "RSA", ":material/blur_on:", "rsa", "rsa"),
    PageEntry("results", "Results", ":material/table_view:", "results", "results"),
    PageEntry("data_models", "Data & models", ":material/database:", "data-models", "data_models"),
)
PAGE_BY_NAME = {page.name: page for page in PAGES}


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, capped by a container's cgroup-v2 quota (``cpu.max``:
    ``"<quota> <period>"`` in microseconds, ``"max ..."`` when unlimited; a quota of 1.5 CPUs gives 1)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            affinity = min(affinity, int(quota) // int(period))
    except (OSError, ValueError):
        pass  # no cgroup v2 file (or an unreadable one): the affinity alone
    return max(1, affinity)


# Page scripts running at once in this server process (one per usable core): the others wait without
# holding the GIL, so the server's event loop (websockets, /_stcore/health) stays responsive under many
# sessions, and the runs finish one after another instead of all slowly together (bench/results/load.json).
# One slot on this 2-core box was worse (bench_load, same day: health p99 3.6 s against 2.3, page p50 42 s
# against 34): a script waiting on I/O or on a torch kernel leaves its core idle.
SCRIPT_SLOTS = usable_cpus()
# How long a thread holding the GIL keeps it while another waits (CPython's default is 5 ms). The server's
# event loop gives the GIL up at every socket call and waits up to this long to get it back from a page
# script building a figure, so a request needing many socket calls waited longer. At 1 ms, bench_load
# (20 sessions x 3 links) gave health p99 2.9-4.6 s, max 3.4-6.6 s over three runs (with the worker process
# and deferred downloads), against 3.6-4.6 s and 6.2-6.4 s without them: within the spread, not a proven win.
GIL_SWITCH_SECONDS = 0.001
_script_slots = threading.BoundedSemaphore(SCRIPT_SLOTS)


@contextlib.contextmanager
def script_slot() -> Iterator[None]:
    """Hold one of the server's ``SCRIPT_SLOTS`` while a page script runs (waiting for one if all are taken)."""
    with _script_slots:
        yield


def is_script_control(error: BaseException) -> bool:
    """st.rerun / st.stop / st.switch_page raise these; they are Streamlit's control flow, not errors.

    Recognised by class name along the MRO, so another Streamlit layout (where they live in another
    module) is still recognised — never by classes defined here, which nothing would ever raise.
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ScriptControlException", "RerunException", "StopException"})


def run_page(name: str) -> None:
    """Read the Selection from the URL, show what had to be fixed, and draw page ``name``."""
    from alignscope.dashboard import _cached, ui
    from alignscope.dashboard.url_state import read_selection

    sys.setswitchinterval(GIL_SWITCH_SECONDS)  # process-wide: the server's event loop is what it serves
    _cached.ensure_registries()
    _cached.start_worker()  # it compiles UMAP's code while the first pages are looked at
    ui.background_work()
    selection, warnings = read_selection()
    ui.show_warnings(warnings)
    PAGE_BY_NAME[name].render()(selection)
