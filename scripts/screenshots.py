"""README screenshots of the main pages: ``python scripts/screenshots.py [--cache-dir DIR] [--out DIR]``.

Starts ``streamlit run dashboard/app.py`` on a free port against the cache dir (default: the settings'
cache dir; the digits features of the embedded default are computed first if missing), drives a headless
Debian Chromium through the pages, waits on each page's own content, and writes palette PNGs under
300 KB to docs/screenshots/.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.server import (  # noqa: E402
    fill_cache,
    free_port,
    launch_browser,
    maps_frame,
    open_page,
    start_server,
    stop_server,
    wait_healthy,
    wait_plots,
)

MAX_BYTES = 300 * 1024
VIEWPORT = {"width": 1440, "height": 900}


def _selected_ids(label: str, n: int = 500, seed: int = 0, limit: int = 40) -> str:
    from alignscope.core.datasets import load_dataset

    subset = load_dataset("digits").subset(n, seed)
    return ",".join([sid for sid, lab in zip(subset.sample_ids, subset.labels) if lab == label][:limit])


def _half_aligned_sample(cache_dir: Path, n: int = 500, seed: int = 0, k: int = 10) -> str:
    """A sample whose neighbours A and B half share: the most telling one to show side by side."""
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.neighbors import knn_indices, per_sample_overlap
    from alignscope.core.settings import Settings

    cache = FeatureCache(settings=Settings(cache_dir=cache_dir))
    full = load_dataset("digits")
    subset = full.subset(n, seed)
    layers = []
    for model in ("digits-cnn-s0", "digits-cnn-s1"):
        features, _ = cache.get_or_extract(model, full)
        position = {sid: i for i, sid in enumerate(features.sample_ids)}
        layers.append(features.take([position[sid] for sid in subset.sample_ids]).values[-1])
    overlap = per_sample_overlap(knn_indices(layers[0], k), knn_indices(layers[1], k)).numpy()
    return subset.sample_ids[int(abs(overlap - 0.5).argmin())]


# (file name, url path + query, page title, plots to wait for, text to scroll to or None)
SHOTS = [
    ("compare", "compare", "Compare two models", 1, None),
    ("projections", "projections?sel={sel}", "Projections", 2, None),
    ("projections-umap", "projections?proj=aligned_umap&color=alignment", "Projections", 2, None),
    ("neighbours", "neighbours", "Neighbours", 1, None),
    ("neighbours-sample", "neighbours?sel={sample}", "Neighbours", 1, "A sample's neighbours in A and in B"),
    ("many-models", "many-models", "Many models", 1, None),
    ("sweeps", "sweeps", "Sweeps", 1, None),
]


def save_small_png(png: bytes, path: Path) -> int:
    """Quantise to a 256-colour palette (screenshots are flat colours) so each file stays small."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    for colours, scale in ((256, 1.0), (128, 1.0), (128, 0.85), (64, 0.75)):
        resized = image if scale == 1.0 else image.resize((int(image.width * scale), int(image.height * scale)))
        buffer = io.BytesIO()
        resized.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES:
            break
    path.write_bytes(buffer.getvalue())
    return buffer.tell()


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    from alignscope.core.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: the settings' cache dir")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", nargs="*", help="file names to (re)take, e.g. compare neighbours")
    args = parser.parse_args(argv)
    cache_dir = (args.cache_dir or get_settings().cache_dir).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"cache: {cache_dir}; making sure the digits features are there…", flush=True)
    fill_cache(cache_dir)
    port = free_port()
    log_path = args.out / ".streamlit.log"
    process = start_server(cache_dir, port, log_path, extra_args=["--client.toolbarMode", "viewer"])
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, process, log_path=log_path)
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            context.set_default_timeout(300_000)
            page = context.new_page()
            open_page(page, base_url, title="Compare two models")  # the entry point runs first
            for name, target, title, plots, scroll_to in SHOTS:
                if args.only and name not in args.only:
                    continue
                url = f"{base_url}/{target.format(sel=_selected_ids('8'), sample=_half_aligned_sample(cache_dir))}"
                open_page(page, url, title=title)
                if name.startswith("projections"):
                    maps_frame(page)  # both maps, in the linked maps frame
                else:
                    wait_plots(page, plots)
                if scroll_to:
                    page.get_by_text(scroll_to, exact=True).scroll_into_view_if_needed()
                else:
                    page.get_by_role("heading", name=title, exact=True).first.scroll_into_view_if_needed()
                page.mouse.move(2, VIEWPORT["height"] - 2)  # no hover labels or toolbars in the picture
                size = save_small_png(page.screenshot(), args.out / f"{name}.png")
                print(f"{name}.png  {size / 1024:.0f} KB", flush=True)
            browser.close()
    finally:
        stop_server(process)
        log_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
