"""Many browser sessions on one dashboard server: per-page latency percentiles, the health endpoint's
worst latency while they run, and the server's memory.

20 sessions (browser contexts of one headless Chromium) each open 3 different links of the embedded
default at once, on loopback; a page counts as shown when its title is drawn and its script run has
finished. Meanwhile a thread polls ``/_stcore/health`` every 0.25 s and the server's resident memory
(``/proc/<pid>/status``, the Streamlit process and its children) is sampled. The browsers run at
niceness 10 (``--client-nice``): on this one box they stand in for the users' own machines, so they get
the CPU the server leaves rather than starving it (``--client-nice 0``: both compete as equals). Everything is bounded (each
page has a 240 s limit), so the benchmark stops by itself. Results: ``bench/results/load.json`` (other sizes:
``load-<sessions>x<links>.json``).

    python bench/bench_load.py [--sessions 20] [--links 3]     # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "load.json"

from alignscope.dashboard.pages import SCRIPT_SLOTS  # noqa: E402
from tests.e2e.server import (  # noqa: E402
    APP_IDLE,
    CHROMIUM,
    CHROMIUM_ARGS,
    fill_cache,
    free_port,
    start_server,
    stop_server,
    wait_healthy,
)

# (title, path): links a colleague might send, on the cached default
LINKS = [
    ("Compare two models", "compare?n=300&perm=50&boot=20"),
    ("Compare two models", "compare?b=digits-cnn-s2&n=200&perm=0&boot=0"),
    ("Many models", "many-models?n=200"),
    ("Sweeps", "sweeps?n=200"),
    ("Projections", "projections?n=300"),
    ("Neighbours", "neighbours?n=300"),
    ("Trends", "trends?tm=digits-cnn-s0,digits-cnn-s1,digits-cnn-s2&n=200&boot=20"),
    ("Data & models", "data-models"),
]


def _rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children (Linux /proc), MiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _poll(base: str, pid: int, done, out_path: str) -> None:
    """Poll the health endpoint every 0.25 s and sample the server's memory until ``done``; write JSON."""
    health: list[float] = []
    rss: list[float] = []
    failures = 0
    while not done.is_set():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=30) as response:
                response.read()
            health.append(time.perf_counter() - started)
        except OSError:
            failures += 1
        rss.append(_rss_mib(pid))
        done.wait(0.25)
    Path(out_path).write_text(json.dumps({"health": health, "failures": failures, "rss": rss}))


class Monitor:
    """Health latency and server memory, sampled from a process of its own (its own GIL: the Playwright
    driver of this process cannot delay the polls) until stopped."""

    def __init__(self, base: str, pid: int, out_path: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.done = context.Event()
        self.out_path = out_path
        self.process = context.Process(target=_poll, args=(base, pid, self.done, str(out_path)), daemon=True)
        self.health: list[float] = []
        self.failures = 0
        self.rss: list[float] = []

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.done.set()
        self.process.join(60)
        data = json.loads(self.out_path.read_text())
        self.health, self.failures, self.rss = data["health"], data["failures"], data["rss"]


async def _session(browser, base: str, links: list[tuple[str, str]], latencies: list, errors: list) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        for title, path in links:
            started = time.perf_counter()
            try:
                await page.goto(f"{base}/{path}", timeout=240_000)
                await page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=240_000)
                await page.wait_for_selector(APP_IDLE, timeout=240_000)
                latencies.append({"page": path.split("?")[0], "seconds": time.perf_counter() - started})
            except Exception as error:  # noqa: BLE001 - a timed-out page is a result, not a crash
                errors.append(f"{path}: {type(error).__name__}: {str(error)[:200]}")
    finally:
        await context.close()


def _niced_chromium(folder: Path, niceness: int) -> Path:
    """A launcher running Debian's Chromium at ``niceness``: its renderers inherit it, so the browsers get
    the CPU the server leaves (as browsers on the users' own machines would) instead of starving it."""
    launcher = folder / "chromium-niced"
    launcher.write_text(f'#!/bin/sh\nexec nice -n {int(niceness)} {CHROMIUM} "$@"\n')
    launcher.chmod(0o755)
    return launcher


async def _load(base: str, sessions: int, per_session: int, executable: Path) -> tuple[list, list, float]:
    from playwright.async_api import async_playwright

    latencies: list = []
    errors: list = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        plans = [[LINKS[(s + i) % len(LINKS)] for i in range(per_session)] for s in range(sessions)]
        started = time.perf_counter()
        await asyncio.gather(*(_session(browser, base, plan, latencies, errors) for plan in plans))
        wall = time.perf_counter() - started
        await browser.close()
    return latencies, errors, wall


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 3), "count": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--links", type=int, default=3)
    parser.add_argument(
        "--client-nice",
        type=int,
        default=10,
        help="niceness of the browsers (0: compete with the server as equals; the box runs both)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(os.environ.get("ALIGNSCOPE_BENCH_CACHE", Path(tmp) / "cache"))
        fill_cache(cache)
        port = free_port()
        log = Path(tmp) / "server.log"
        process = start_server(cache, port, log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, process, log_path=log)
            idle_rss = _rss_mib(process.pid)
            monitor = Monitor(base, process.pid, Path(tmp) / "monitor.json")
            monitor.start()
            executable = _niced_chromium(Path(tmp), args.client_nice) if args.client_nice else CHROMIUM
            latencies, errors, wall = asyncio.run(_load(base, args.sessions, args.links, executable))
            monitor.stop()
        finally:
            stop_server(process)
    by_page: dict[str, list[float]] = {}
    for item in latencies:
        by_page.setdefault(item["page"], []).append(item["seconds"])
    result = {
        "what": f"{args.sessions} browser sessions x {args.links} links at once on one server (bench/bench_load.py)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "browser_niceness": args.client_nice,
        "script_slots": SCRIPT_SLOTS,
        "wall_seconds": round(wall, 2),
        "pages_shown": len(latencies),
        "pages_failed": len(errors),
        "errors": errors[:20],
        "page_seconds": _percentiles([item["seconds"] for item in latencies]),
        "page_seconds_by_page": {page: _percentiles(values) for page, values in sorted(by_page.items())},
        "health_seconds": _percentiles(monitor.health),
        "health_failures": monitor.failures,
        "health_mean_seconds": round(statistics.fmean(monitor.health), 4) if monitor.health else None,
        "server_rss_mib": {"idle": round(idle_rss, 1), "peak": round(max(monitor.rss, default=0.0), 1)},
    }
    default = (args.sessions, args.links) == (20, 3)
    out = RESULTS if default else RESULTS.with_name(f"load-{args.sessions}x{args.links}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "wall_seconds",
                    "pages_shown",
                    "pages_failed",
                    "page_seconds",
                    "health_seconds",
                    "server_rss_mib",
                )
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
