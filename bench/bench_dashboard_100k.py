"""The dashboard at 100,000 samples in headless Chromium: bench/results/dashboard_100k.json and
docs/screenshots/scale-*.png.

Data: sklearn's 1,797 digits, each shifted by up to one pixel and given seeded pixel noise, 100,000 images;
the penultimate layer (fc1, 64 units) of the embedded default's trained nets digits-cnn-s0 and -s1 on them,
uploaded with the real CLI as two representations of an uploaded 100,000-sample dataset (its texts say
which digit, copy and shift each sample is). The pages then run as they do for any user's upload.

Measured, each from navigation (a fresh browser page) until the page's script run is over and its plots
are drawn:
- Projections at n = 100,000 (PCA, one Scattergl trace per map), first paint and a second visit;
- the same page at n = 500 of the same data (a floor: what any Projections page takes here), in the run;
- a box selection's round trip (mouse up until the other map highlights every selected sample; above
  ALIGNSCOPE_MAP_POINTS the maps draw a layer and the server selects over all points);
- Neighbours at n = 100,000 with approximate neighbours (`nbr=approx`), first visit (computes the lists
  in a background job) and a second visit (from the result store).

Usage:
    python bench/bench_dashboard_100k.py [--n 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
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


PLOTS_DRAWN = (
    "(count) => Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".filter(p => p._fullData && p._fullData.length).length >= count"
)


UMAP_DRAWN = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".filter(p => p.layout && p.layout.xaxis && /UMAP/.test(p.layout.xaxis.title.text || '')).length >= 2"
)


def timed_visit(page, url: str, plots: int, timeout_s: float = 900.0, umap_title: bool = False) -> dict:
    """Seconds from navigation until ``plots`` figures are drawn (with ``umap_title``: two UMAP maps, not
    the PCA shown while UMAP runs) and the script is idle, pressing a Compute button if the page asks for
    one (work above the auto budget); also how often it asked."""
    start = time.perf_counter()
    page.goto(url)
    clicked = 0
    while time.perf_counter() - start < timeout_s:
        idle = page.locator(APP_IDLE).count() > 0
        drawn = page.evaluate(UMAP_DRAWN) if umap_title else page.evaluate(PLOTS_DRAWN, plots)
        if idle and drawn:
            return {"seconds": round(time.perf_counter() - start, 2), "compute_clicks": clicked}
        button = page.get_by_role("button", name=re.compile(r"^Compute"))
        if idle and button.count() > 0 and button.first.is_enabled():
            button.first.click()
            clicked += 1
        page.wait_for_timeout(100)  # a benchmark polling the browser, not a test
    raise TimeoutError(f"{url} did not draw {plots} plots in {timeout_s} s")


def screenshot(page, name: str, full_page: bool = False) -> None:
    """A palette PNG under docs/screenshots (as scripts/screenshots.py writes them)."""
    from PIL import Image

    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def box_select(page, start: float = 0.45, stop: float = 0.55) -> tuple[float, int]:
    """Seconds from releasing a box drag in map A until map B highlights the selection; and how many
    samples the page says are selected (computed on the server over all points)."""
    drag_box(page, 0, start, stop, steps=8)
    released = time.perf_counter()
    heading = page.get_by_text(re.compile(r"^[\d,]+ selected samples$"))
    heading.wait_for(timeout=120_000)
    selected = int(heading.inner_text().split()[0].replace(",", ""))
    # done when map B highlights every selected sample (a reduced map draws all selected ones up to its
    # budget of points; the box here selects fewer)
    page.wait_for_function(
        "(count) => { const p = document.querySelectorAll('.js-plotly-plot')[1];"
        " return p && p.data && p.data[0].selectedpoints && p.data[0].selectedpoints.length === count; }",
        arg=selected,
        timeout=120_000,
    )
    seconds = time.perf_counter() - released
    return seconds, selected


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
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            results["projections_first"] = timed_visit(page, f"{base}/projections?{query}", 2)
            results["projections_points"] = [plot_data(page, 0)["n"], plot_data(page, 1)["n"]]
            results["projections_trace"] = plot_data(page, 0)["type"]
            no_exceptions(page)
            screenshot(page, "scale-projections")
            results["projections_again"] = timed_visit(page, f"{base}/projections?{query}", 2)
            # the same page on 500 of the same samples, as a floor: what this browser and server take for
            # any Projections page (the first visit computes its PCA and overlaps, the second is timed)
            small = query.replace(f"n={args.n}", "n=500")
            timed_visit(page, f"{base}/projections?{small}", 2)
            results["projections_500_again"] = timed_visit(page, f"{base}/projections?{small}", 2)
            results["box_selection_round_trip_500_s"] = round(box_select(page, 0.3, 0.7)[0], 2)
            results["projections_again_vs_500"] = round(
                results["projections_again"]["seconds"] / results["projections_500_again"]["seconds"], 2
            )
            timed_visit(page, f"{base}/projections?{query}", 2)
            seconds, selected = box_select(page)
            results["box_selection_round_trip_s"] = round(seconds, 2)
            results["box_selection_vs_500"] = round(seconds / results["box_selection_round_trip_500_s"], 2)
            results["selected"] = selected
            results["selected_highlighted_in_b"] = len(plot_data(page, 1)["selectedpoints"] or [])
            no_exceptions(page)
            screenshot(page, "scale-selection")
            neighbours = f"{base}/neighbours?{query}&nbr=approx"
            results["neighbours_first"] = timed_visit(page, neighbours, 1)
            no_exceptions(page)
            screenshot(page, "scale-neighbours", full_page=True)
            results["neighbours_again"] = timed_visit(page, neighbours, 1)
            if args.umap:
                umap = f"{base}/projections?{query}&proj=umap"
                results["umap_first"] = timed_visit(page, umap, 2, umap_title=True)
                screenshot(page, "scale-umap")
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
