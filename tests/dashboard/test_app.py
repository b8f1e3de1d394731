"""The entry point's last-resort handler lets Streamlit's control flow through and catches the rest."""

from __future__ import annotations

import os

import pytest

from alignscope.dashboard.pages import PAGES, is_script_control


def test_streamlits_control_flow_is_recognised_wherever_its_classes_live():
    """The fallback for another Streamlit layout used to define fresh exception classes that nothing ever
    raises, so st.rerun / st.stop would have been shown as errors."""
    from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

    assert is_script_control(StopException()) and is_script_control(RerunException(None))
    moved = type("RerunException", (Exception,), {})  # the same name in another module
    assert is_script_control(moved())
    assert not is_script_control(ValueError("a real bug")) and not is_script_control(KeyError("x"))


def test_every_page_has_a_script_and_a_render_function():
    for page in PAGES:
        assert page.script.is_file()
        assert callable(page.render())


def test_no_more_page_scripts_run_at_once_than_there_are_script_slots():
    """Under many sessions the extra scripts wait (without the GIL) instead of all running slowly together
    while the server's event loop starves (issue: /_stcore/health stalled for 30 s under 20 sessions)."""
    import threading

    from alignscope.dashboard.pages import SCRIPT_SLOTS, script_slot

    sessions = SCRIPT_SLOTS + 3
    inside, most = [0], [0]
    lock = threading.Lock()
    all_started = threading.Barrier(sessions + 1)
    release = threading.Event()

    def session() -> None:
        all_started.wait()
        with script_slot():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                if inside[0] == SCRIPT_SLOTS:
                    full.set()
            release.wait(30)
            with lock:
                inside[0] -= 1

    full = threading.Event()
    threads = [threading.Thread(target=session) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    all_started.wait()
    assert full.wait(30)  # the slots fill up ...
    with lock:
        assert inside[0] == SCRIPT_SLOTS  # ... and nobody else gets in
    release.set()
    for thread in threads:
        thread.join(30)
    assert most[0] == SCRIPT_SLOTS and inside[0] == 0


def test_a_page_that_stops_or_fails_gives_its_script_slot_back(dashboard_cache):
    """A slot kept by a run that ended with st.stop() (a page waiting for a Compute click) would hang the
    server after a few such runs."""
    from pathlib import Path

    from alignscope.dashboard import pages
    from tests.dashboard.helpers import SettlingAppTest

    root = Path(__file__).resolve().parents[2]
    # the first: a page drawn in full; the second stops at its Compute button (work above the budget)
    for query in ({"n": "120", "perm": "0", "boot": "0"}, {"n": "1797", "perm": "5000", "boot": "2000"}):
        for _ in range(pages.SCRIPT_SLOTS + 1):
            app = SettlingAppTest(str(root / "dashboard" / "app.py"), default_timeout=120)
            for key, value in query.items():
                app.query_params[key] = value
            app.run()
            assert not app.exception
        taken = [pages._script_slots.acquire(blocking=False) for _ in range(pages.SCRIPT_SLOTS)]
        for _ in range(sum(taken)):
            pages._script_slots.release()
        assert all(taken)  # every slot is free again


def test_the_entry_point_runs_every_page_inside_a_script_slot(dashboard_cache, monkeypatch):
    import contextlib
    from pathlib import Path

    from alignscope.dashboard import pages
    from tests.dashboard.helpers import SettlingAppTest

    entered = []

    @contextlib.contextmanager
    def counting_slot():
        entered.append(1)
        yield

    monkeypatch.setattr(pages, "script_slot", counting_slot)
    app = SettlingAppTest(str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py"), default_timeout=120)
    for key, value in {"n": "120", "perm": "0", "boot": "0"}.items():
        app.query_params[key] = value
    app.run()
    assert not app.exception and len(entered) >= 1


@pytest.mark.parametrize(
    ("cpu_max", "cap"),
    [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 1), ("50000 100000\n", 1), ("x", None)],
)
def test_script_slots_follow_a_containers_cpu_quota(tmp_path, cpu_max, cap):
    """SCRIPT_SLOTS followed the CPU affinity only: a container limited to 1 CPU on a 64-core host got 64."""
    from alignscope.dashboard.pages import usable_cpus

    quota = tmp_path / "cpu.max"
    quota.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(quota) == (affinity if cap is None else max(1, min(affinity, cap)))
    assert usable_cpus(tmp_path / "missing") == affinity


def test_a_page_run_shortens_the_gil_switch_interval_for_the_servers_event_loop(dashboard_cache):
    """A page script building a figure kept the GIL 5 ms at a time (CPython's default) from the event
    loop, which needs it back after every socket call: the health endpoint stalled for seconds."""
    import sys

    from alignscope.dashboard import pages
    from tests.dashboard.helpers import run_page

    default = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        app = run_page("data_models")
        assert not app.exception
        assert sys.getswitchinterval() == pytest.approx(pages.GIL_SWITCH_SECONDS) == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(default)
