"""How long the page script blocks, per interaction, on cached features (AppTest, in this process).

For each interaction: ``script_s`` is the page script's run (what a user waits for before the page
redraws; the engine's background jobs are not in it), ``filled_s`` the time until every job the view
started has finished and the page has rerun with the results. Run twice: ``first`` computes the
results (jobs), ``again`` finds them in the result store. Target: script_s <= 1 s everywhere.
Results: ``bench/results/dashboard.json``.

    python bench/bench_dashboard.py     # a few minutes on 2 cores (trains the digits nets once)
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "dashboard.json"
ROOT = Path(__file__).resolve().parents[1]
BASE = {"n": "500", "perm": "200", "boot": "100"}
# (page, what is changed, query after the change)
INTERACTIONS = [
    ("compare", "open (default link)", {}),
    ("compare", "model B", {"b": "digits-cnn-s2"}),
    ("compare", "k", {"b": "digits-cnn-s2", "k": "5"}),
    ("compare", "heatmap cell (layer pair)", {"b": "digits-cnn-s2", "k": "5", "la": "2", "lb": "3"}),
    ("many_models", "open", {}),
    ("many_models", "relative depth", {"depth": "0.5"}),
    ("sweeps", "open (k)", {}),
    ("sweeps", "vary n", {"sweep": "n"}),
    ("projections", "open (PCA)", {}),
    ("projections", "colour by alignment", {"color": "alignment"}),
    ("projections", "UMAP", {"proj": "umap"}),
    ("neighbours", "open", {}),
    ("neighbours", "inspect a sample", {"inspect": "digit-0042"}),
]


_COMPONENTS = []


def _components():
    """Streamlit's component registry, built once: a server scans every installed package's metadata for
    components once at start, but each new AppTest does it again (~2.5 s with this environment's ~150
    packages), which is no part of a page's script run."""
    if not _COMPONENTS:
        from streamlit.components.v2.component_manager import BidiComponentManager

        manager = BidiComponentManager()
        manager.discover_and_register_components(start_file_watching=False)
        _COMPONENTS.append(manager)
    return _COMPONENTS[0]


def _run(page: str, query: dict[str, str]) -> tuple[float, float]:
    from alignscope.dashboard.pages import PAGE_BY_NAME
    from tests.dashboard.helpers import SettlingAppTest, wait_for_jobs

    app = SettlingAppTest(str(PAGE_BY_NAME[page].script), default_timeout=600)
    app._bidi_component_manager = _components()  # scanned once, as a server does at start
    app.settle = False
    for key, value in {**BASE, **query}.items():
        app.query_params[key] = value
    started = time.perf_counter()
    app.run()
    script = time.perf_counter() - started
    while wait_for_jobs():
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return script, time.perf_counter() - started


def main() -> None:
    cache = Path(tempfile.mkdtemp(prefix="alignscope-bench-dashboard-"))
    os.environ["ALIGNSCOPE_CACHE_DIR"] = str(cache)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "cache" / "numba"))
    import sys

    sys.path.insert(0, str(ROOT))
    from alignscope.core.analysis.engine import default_engine
    from alignscope.core.analysis.worker import wait_warm
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset

    digits = load_dataset("digits")
    for model in ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2"):
        FeatureCache().get_or_extract(model, digits)
    worker = default_engine().worker
    worker.start()  # as the server does at start: its UMAP jobs run in this worker, compiled once
    wait_warm(worker, 600)
    rows = []
    for round_name in ("first", "again"):
        for page, what, query in INTERACTIONS:
            script, filled = _run(page, query)
            rows.append(
                {
                    "round": round_name,
                    "page": page,
                    "interaction": what,
                    "script_s": round(script, 3),
                    "filled_s": round(filled, 3),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    again = [r for r in rows if r["round"] == "again"]
    summary = {
        "what": "AppTest script run time per interaction on cached features (bench/bench_dashboard.py)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "max_script_s": max(r["script_s"] for r in rows),
        "max_script_s_from_store": max(r["script_s"] for r in again),
        "max_filled_s_from_store": max(r["filled_s"] for r in again),
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))


if __name__ == "__main__":
    main()
