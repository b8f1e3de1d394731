"""The dashboard at 100,000 samples in headless Chromium: bench/results/dashboard_100k.json and
docs/screenshots/scale-*.png.

Data: sklearn's 1,797 digits, each shifted by up to one pixel and given seeded pixel noise, 100,000 images;
the penultimate layer (fc1, 64 units) of the embedded default's trained nets digits-cnn-s0 and -s1 on them,
uploaded with the real CLI as two representations of an uploaded 100,000-sample dataset (its texts say
which digit, copy and shift each sample is). The pages then run as they do for any user's upload.

Measured, each from navigation in a fresh tab (a new browser context: a first visit, nothing cached) and
again in the same tab (a reload), until the page's script run is over and its plots are drawn, by this
script's clock and by the browser's own (from the start of the navigation, without the new tab's start),
on a server that has settled (its worker has compiled umap):
- Projections at n = 100,000 (PCA, one Scattergl trace per map): the very first visit (nothing computed:
  until the PCA maps are drawn, Compute clicks included; the per-sample overlap is computed after), then
  first paint and a second visit of the stored view, then
  first paint in five more fresh tabs (the browser's clock, this script's where the browser's read
  nothing; their median: one visit varies by a few tenths of a second here);
- the same page at n = 500 of the same data (a floor: what any Projections page takes here), in the run;
- a box selection: mouse up until the other map lights up the selected samples (in the browser: the maps'
  frame links them, see dashboard/linked_maps.py), and until the server's rerun shows their table; the
  first box in a fresh tab, and a second one in the same tab;
- Neighbours at n = 100,000 with approximate neighbours (`nbr=approx`), first visit (computes the lists
  in a background job) and a second visit (from the result store).

Usage:
    python bench/bench_dashboard_100k.py [--n 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.server import (  # noqa: E402
    APP_IDLE,
    drag_box,
    free_port,
    launch_browser,
    maps_frame,
    no_exceptions,
    plot_data,
    server_env,
    start_server,
    stop_server,
    wait_healthy,
)

RESULTS = ROOT / "bench" / "results" / "dashboard_100k.json"
SHOTS = ROOT / "docs" / "screenshots"
DATASET = "digits-augmented"
MODELS = ("digits-cnn-s0-fc1", "digits-cnn-s1-fc1")


def augmented_digits(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """``n`` images [n, 8, 8] in [0, 1]: digit i % 1797, shifted by (dy, dx) in {-1, 0, 1}², noise σ = 0.05."""
    from alignscope.core.digits_nets import digits_arrays

    images, labels = digits_arrays()
    rng = np.random.default_rng(seed)
    source = np.arange(n) % len(images)
    shifts = rng.integers(-1, 2, size=(n, 2))
    out = np.empty((n, 8, 8), dtype=np.float32)
    texts, digit_labels = [], []
    for i, (j, (dy, dx)) in enumerate(zip(source, shifts)):
        digit_labels.append(str(labels[j]))
        out[i] = np.roll(images[j], (dy, dx), axis=(0, 1))
        texts.append(f"digit {labels[j]}, copy {i // len(images)} of image {j}, shift ({dy:+d}, {dx:+d})")
    out += rng.normal(0.0, 0.05, size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0), texts, digit_labels


def fc1_features(images: np.ndarray, seed: int, cache_dir: Path) -> np.ndarray:
    """fc1 (after ReLU) of the trained digits-cnn-s<seed> on ``images``, [n, 64] float32."""
    from alignscope.core.digits_nets import load_or_train
    from alignscope.core.settings import Settings

    net = load_or_train(seed, Settings(cache_dir=cache_dir)).eval()
    captured: list[torch.Tensor] = []
    hook = net.fc1.register_forward_hook(lambda _m, _i, out: captured.append(torch.relu(out)))
    with torch.no_grad():
        for start in range(0, len(images), 4096):
            net(torch.from_numpy(images[start : start + 4096]).unsqueeze(1))
    hook.remove()
    return torch.cat(captured).numpy().astype(np.float32)


def prepare(cache_dir: Path, n: int, work: Path) -> None:
    import pandas as pd

    images, texts, labels = augmented_digits(n)
    csv = work / f"{DATASET}.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(csv, index=False)
    env = server_env(cache_dir)
    cli = [str(Path(sys.executable).parent / "alignscope")]
    subprocess.run([*cli, "datasets", "--upload", str(csv), "--name", DATASET], env=env, check=True)
    for seed, model in enumerate(MODELS):
        path = work / f"{model}.npy"
        np.save(path, fc1_features(images, seed, cache_dir))
        subprocess.run(
            [*cli, "upload-representation", str(path), "--dataset", DATASET, "--name", model], env=env, check=True
        )


PLOTS_DRAWN = "() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => p._fullData && p._fullData.length).length"
UMAP_DRAWN = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".filter(p => p.layout && p.layout.xaxis && /UMAP/.test(p.layout.xaxis.title.text || '')).length"
)


def count_in_frames(page, script: str) -> int:
    """``script``'s count summed over the page and its frames (the Projections maps are in a frame)."""
    total = 0
    for frame in page.frames:
        try:
            total += frame.evaluate(script)
        except Exception:  # noqa: BLE001 - a frame that navigates or closes meanwhile counts nothing
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and all its descendants, live or exited and
    waited for (Linux /proc: a child that exits between two samples moves its time into its parent's)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, and cutime, cstime of the waited-for children; a live child counts itself
            total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return total


def wait_server_idle(pid: int, timeout_s: float = 600.0, window_s: float = 2.0) -> float:
    """Wait until the server and its children (the analysis worker compiling umap after a start) use under
    5% of a core over ``window_s``; the seconds waited (TimeoutError if they never settle). Timings are of
    a server that is up and settled."""
    start = time.perf_counter()
    before = tree_cpu_seconds(pid)
    while time.perf_counter() - start < timeout_s:
        time.sleep(window_s)  # a benchmark sampling CPU time, not a test
        after = tree_cpu_seconds(pid)
        if 0.0 <= after - before < 0.05 * window_s:  # negative: a child exited unwaited, its time lost
            return round(time.perf_counter() - start, 1)
        before = after
    raise TimeoutError(f"the server kept using CPU for {timeout_s:.0f} s")


# Installed in every page: the browser's own clock (ms since the navigation started) when the first figure
# is drawn ("first") and when at least c figures are drawn with the script idle (c = 1, 2, ...), checked
# once per animation frame.
DRAW_CLOCK = """
// in the page and in each of its frames: when this document first drew a figure, and when it first held
// its figures while the page's script run was over; absolute times (time origin + now) to compare frames
window.__drawn = {};
(function check() {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => p._fullData && p._fullData.length).length;
  let app = null;
  try { app = window.top.document.querySelector('[data-testid="stApp"]'); } catch (e) {}
  const idle = app && app.getAttribute('data-test-script-state') === 'notRunning';
  const now = performance.timeOrigin + performance.now();
  if (plots >= 1 && window.__drawn.first === undefined) window.__drawn.first = now;
  if (idle && plots >= 1 && window.__drawn.all === undefined) { window.__drawn.all = now; window.__drawn.count = plots; }
  setTimeout(check, 10); // not requestAnimationFrame: a component's frame may never get one (zero-sized at first)
})();
"""


def browser_clock(page) -> dict:
    """From the start of the page's navigation (the browser's clock): the first figure drawn, and all figures
    drawn with the script idle (the latest over the page and its frames)."""
    origin = page.evaluate("performance.timeOrigin")
    clocks = []
    for frame in page.frames:
        try:
            clocks.append(frame.evaluate("window.__drawn || {}"))
        except Exception:  # noqa: BLE001 - as in count_in_frames
            continue
    firsts = [c["first"] for c in clocks if "first" in c]
    alls = [c["all"] for c in clocks if "all" in c]
    return {
        "first": (min(firsts) - origin) / 1000 if firsts else None,
        "all": (max(alls) - origin) / 1000 if alls else None,
    }


def fresh_page(browser, page=None):
    """A new tab in a new browser context (Playwright's ``browser.new_page``: no cache, no compiled code
    kept from earlier visits, as a first visit), closing ``page``."""
    if page is not None:
        page.close()
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.add_init_script(DRAW_CLOCK)
    return page


def timed_visit(page, url: str, plots: int, timeout_s: float = 900.0, umap_title: bool = False) -> dict:
    """Seconds from navigation until ``plots`` figures are drawn (with ``umap_title``: two UMAP maps, not
    the PCA shown while UMAP runs) and the script is idle, pressing a Compute button if the page asks for
    one (work above the auto budget); also how often it asked. ``seconds`` is this script's wall clock
    (it polls every 0.1 s); ``browser_first_map_s`` and ``browser_all_drawn_s`` are the browser's own clock
    from the start of the navigation to the first figure drawn and to all of them drawn with the script
    idle (``None`` for UMAP visits and when a Compute button had to be pressed: see below)."""
    start = time.perf_counter()
    page.goto(url)
    clicked = 0
    while time.perf_counter() - start < timeout_s:
        idle = page.locator(APP_IDLE).count() > 0
        drawn = count_in_frames(page, UMAP_DRAWN if umap_title else PLOTS_DRAWN) >= plots
        if idle and drawn:
            seconds = round(time.perf_counter() - start, 2)
            # the browser's clock sees figures, not which: a UMAP visit first draws the PCA placeholder, and
            # a page that asked for a Compute click drew its maps after this script's click
            clock = {} if umap_title or clicked else browser_clock(page)
            return {
                "seconds": seconds,
                "browser_first_map_s": None if clock.get("first") is None else round(clock["first"], 2),
                "browser_all_drawn_s": None if clock.get("all") is None else round(clock["all"], 2),
                "compute_clicks": clicked,
            }
        button = page.get_by_role("button", name=re.compile(r"^Compute"))
        if idle and button.count() > 0 and button.first.is_enabled():
            button.first.click()
            clicked += 1
        page.wait_for_timeout(100)  # a benchmark polling the browser, not a test
    raise TimeoutError(f"{url} did not draw {plots} plots in {timeout_s} s")


def click_compute_if_offered(page) -> bool:
    """Press the page's Compute button once the script is idle, if it shows one; whether it did."""
    page.locator(APP_IDLE).first.wait_for(timeout=60_000)
    button = page.get_by_role("button", name=re.compile(r"^Compute"))
    if button.count() == 0 or not button.first.is_enabled():
        return False
    button.first.click()
    return True


FRESH_TABS = 5


def fresh_tab_visits(browser, page, url: str, visits: int) -> tuple[dict, object]:
    """``visits`` first visits of a page with two maps, each in a fresh tab that replaces the one before
    (as :func:`fresh_page`; closing ``page`` first): the browser's clock to all drawn (this script's clock
    where the browser's read nothing), each and their median / min / max (seconds), and the last tab."""
    drawn = []
    for _ in range(visits):
        page = fresh_page(browser, page)
        visit = timed_visit(page, url, 2)
        drawn.append(visit["seconds"] if visit["browser_all_drawn_s"] is None else visit["browser_all_drawn_s"])
    spread = {"median": statistics.median(drawn), "min": min(drawn), "max": max(drawn)}
    return {"drawn_s": drawn, **spread}, page


def screenshot(page, name: str, full_page: bool = False) -> None:
    """A palette PNG under docs/screenshots (as scripts/screenshots.py writes them)."""
    from PIL import Image

    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


# In the page: the time (epoch ms) the selected samples' table is on screen after a selection: the app idle,
# a "N selected samples" heading that differs from the one before (none, for the selections timed here),
# and the frame after it drawn. (The script's running state is no signal: a quick rerun's "running" and
# "not running" can reach the page in one batch of React updates, so its attribute never changes.)
TABLE_CLOCK = """() => {
  window.__tableShown = null;
  const heading = () => (Array.from(document.querySelectorAll('h3'))
    .map((h) => h.textContent.trim()).find((text) => /^[\\d,]+ selected samples$/.test(text)) || null);
  const before = heading();
  const observer = new MutationObserver(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const idle = app && app.getAttribute('data-test-script-state') === 'notRunning';
    const now = heading();
    if (idle && now !== null && now !== before) {
      observer.disconnect();
      requestAnimationFrame(() => setTimeout(() => { window.__tableShown = performance.timeOrigin + performance.now(); }, 0));
    }
  });
  observer.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
}"""


def box_select(page, start: float = 0.45, stop: float = 0.55) -> dict:
    """A box dragged in map A, timed by the browser's clock from releasing the mouse. ``linked_s``: until map
    B shows the selected samples lit up, drawn (the frame marks ``alignscope-linked`` after the frame that
    draws them; above ALIGNSCOPE_MAP_POINTS the frame selects over all points and draws the selected
    samples outside the layer on top); ``table_s``: until the server's rerun is over and its table of the
    selected samples is drawn (the URL holds them); ``table_script_s``: the same by this script's clock
    (Playwright's polling included). ``selected`` and ``highlighted_in_b``: how many samples the page says
    are selected, and map B shows."""
    maps = maps_frame(page)
    maps.evaluate(
        "() => { performance.clearMarks(); window.addEventListener('mouseup',"
        " () => { window.__released = performance.now(); }, {capture: true, once: true}); }"
    )
    page.evaluate(TABLE_CLOCK)
    drag_box(page, 0, start, stop, steps=8, within=maps)
    released = time.perf_counter()
    page.wait_for_function("() => window.__tableShown !== null", timeout=120_000)
    table_script_s = time.perf_counter() - released
    heading = page.get_by_text(re.compile(r"^[\d,]+ selected samples$"))
    selected = int(heading.inner_text().split()[0].replace(",", ""))
    released_at = maps.evaluate("() => performance.timeOrigin + window.__released")
    maps.wait_for_function("() => performance.getEntriesByName('alignscope-linked').length > 0")
    linked_ms = maps.evaluate(
        "() => performance.getEntriesByName('alignscope-linked')[0].startTime - window.__released"
    )
    highlighted = maps.evaluate(
        "() => { const d = document.querySelectorAll('.js-plotly-plot')[1].data;"
        " return (d[0].selectedpoints || []).length + (d[1].x || []).length; }"
    )
    return {
        "linked_s": round(linked_ms / 1000, 3),
        "table_s": round((page.evaluate("window.__tableShown") - released_at) / 1000, 3),
        "table_script_s": round(table_script_s, 2),
        "selected": selected,
        "highlighted_in_b": highlighted,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="cache dir to use (and keep); default a temp dir")
    parser.add_argument("--umap", action="store_true", help="also time UMAP maps (minutes on 2 cores at 100k)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="alignscope-100k-"))
    cache_dir = args.keep or work / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    marker = cache_dir / f".bench-100k-{args.n}"
    if not marker.exists():
        prepare(cache_dir, args.n, work)
        marker.touch()
    prepare_s = time.perf_counter() - began
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    query = f"data={DATASET}&a={MODELS[0]}&b={MODELS[1]}&n={args.n}"
    server = start_server(cache_dir, port, work / "server.log")
    results: dict = {"n_samples": args.n, "prepare_s": round(prepare_s, 1)}
    try:
        wait_healthy(base, server, log_path=work / "server.log")
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = fresh_page(browser)
            results["projections_first"] = timed_visit(page, f"{base}/projections?{query}", 2)
            # the maps are drawn before the per-sample overlap is computed: start it where it waits for a
            # click, so the visits below are those of a view whose every result is stored
            results["projections_first"]["overlap_clicked"] = click_compute_if_offered(page)
            results["settle_s"] = wait_server_idle(server.pid)
            maps = maps_frame(page)
            results["projections_points"] = [plot_data(maps, 0)["n"], plot_data(maps, 1)["n"]]
            results["projections_trace"] = plot_data(maps, 0)["type"]
            no_exceptions(page)
            screenshot(page, "scale-projections")
            page = fresh_page(browser, page)
            results["projections_again"] = timed_visit(page, f"{base}/projections?{query}", 2)
            # the same link again in the same tab (a reload): no new renderer process to start
            results["projections_again_same_tab"] = timed_visit(page, f"{base}/projections?{query}", 2)
            # more fresh tabs: one visit's first paint varies by a few tenths of a second on this machine
            results["projections_fresh_tabs"], page = fresh_tab_visits(
                browser, page, f"{base}/projections?{query}", FRESH_TABS
            )
            # the same page on 500 of the same samples, as a floor: what this browser and server take for
            # any Projections page (the first visit computes its PCA and overlaps, the second is timed)
            small = query.replace(f"n={args.n}", "n=500")
            page = fresh_page(browser, page)
            timed_visit(page, f"{base}/projections?{small}", 2)
            page = fresh_page(browser, page)
            results["projections_500_again"] = timed_visit(page, f"{base}/projections?{small}", 2)
            results["projections_500_again_same_tab"] = timed_visit(page, f"{base}/projections?{small}", 2)
            results["box_selection_500"] = box_select(page, 0.3, 0.7)
            results["projections_again_vs_500"] = round(
                results["projections_again"]["seconds"] / results["projections_500_again"]["seconds"], 2
            )
            page = fresh_page(browser, page)
            timed_visit(page, f"{base}/projections?{query}", 2)
            results["box_selection"] = box_select(page)
            results["box_selection_linked_vs_500"] = round(
                results["box_selection"]["linked_s"] / results["box_selection_500"]["linked_s"], 2
            )
            no_exceptions(page)
            screenshot(page, "scale-selection")
            # a second, larger box in the same tab: the table's code is loaded, the ids parsed, plotly warm
            page.wait_for_timeout(2000)  # the first box's own map is redrawn once the page is idle
            results["box_selection_again"] = box_select(page, 0.40, 0.60)
            no_exceptions(page)
            neighbours = f"{base}/neighbours?{query}&nbr=approx"
            page = fresh_page(browser, page)
            results["neighbours_first"] = timed_visit(page, neighbours, 1)
            no_exceptions(page)
            screenshot(page, "scale-neighbours", full_page=True)
            page = fresh_page(browser, page)
            results["neighbours_again"] = timed_visit(page, neighbours, 1)
            if args.umap:
                umap = f"{base}/projections?{query}&proj=umap"
                page = fresh_page(browser, page)
                results["umap_first"] = timed_visit(page, umap, 2, umap_title=True)
                screenshot(page, "scale-umap")
                page = fresh_page(browser, page)
                results["umap_again"] = timed_visit(page, umap, 2, umap_title=True)
            browser.close()
    finally:
        stop_server(server)
    if not args.umap and RESULTS.exists():  # keep the last --umap run's numbers (minutes to measure)
        earlier = json.loads(RESULTS.read_text())
        results["umap_earlier_run"] = earlier.get("umap_earlier_run") or {
            key: earlier[key] for key in ("umap_first", "umap_again") if key in earlier
        }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
