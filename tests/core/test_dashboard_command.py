"""`alignscope dashboard` as a process: loopback by default, and stopping it frees the port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.e2e.server import free_port, server_env


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)  # polling a condition with a deadline, not a delay the test relies on
    return condition()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_dashboard_command_stops_its_server(tmp_path, stop):
    """SIGTERM to `alignscope dashboard` used to leave its Streamlit child serving the port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "alignscope.core.cli", "dashboard", "--port", str(port), "--headless"],
        env=server_env(tmp_path / "cache"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the finally below can always clean up
    )
    try:
        assert _wait(lambda: _healthy(port), 120), "the dashboard never answered"
        process.send_signal(stop)
        process.wait(timeout=60)
        assert _wait(lambda: not _listening(port), 30), "the server kept serving after the command stopped"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # a server left behind (the bug) goes too
        except ProcessLookupError:
            pass
        process.wait()


def test_the_dashboard_listens_on_loopback_only_by_default():
    from alignscope.core.cli import build_parser

    args = build_parser().parse_args(["dashboard"])
    assert args.host == "127.0.0.1" and not args.read_only


def test_the_server_command_turns_off_the_full_collection_after_every_script_run():
    """Streamlit ran gc.collect(2) after every script run (~0.2 s holding the GIL in a warmed server);
    under 20 sessions that stalled /_stcore/health for seconds (bench/results/load.json)."""
    from streamlit import config

    from alignscope.core.cli import streamlit_command

    command = streamlit_command(8501, "127.0.0.1")
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app.py")
    pairs = dict(zip(command[5::2], command[6::2], strict=True))
    known = config.get_config_options()
    assert all(flag.startswith("--") and flag[2:] in known for flag in pairs), pairs
    assert pairs["--runner.postScriptGC"] == "false"
    assert pairs["--runner.magicEnabled"] == "false"
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8501"
