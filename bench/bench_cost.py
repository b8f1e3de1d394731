"""Cost estimates against measured CPU time: the budget a link may spend is only as good as these.

For a grid of metrics × n × widths × (permutations, bootstrap), the engine's estimate
(``alignscope.core.analysis.cost.pair_seconds``) and the CPU time the scorer actually spent
(``time.process_time``: every thread, BLAS and torch ones included, as the job runner counts it) are measured in the same run.
``ratio`` = estimate / measured; the gate is safe when every ratio is >= 1 (estimates err high).
Results: ``bench/results/cost.json``.

    python bench/bench_cost.py            # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from alignscope.core.analysis.cost import pair_seconds
from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import PairRequest, metric_params
from alignscope.core.analysis.scorer import score_pair
from alignscope.core.metrics.registry import list_metrics

RESULTS = Path(__file__).resolve().parent / "results" / "cost.json"
SKIP = {"gram_volume", "retrieval_top1_unmapped", "retrieval_top5_unmapped"}  # need equal widths: run below


def _view(model: str, values: np.ndarray) -> ViewFeatures:
    ids = tuple(f"s{i}" for i in range(values.shape[0]))
    return ViewFeatures(model, "synthetic", ("layer",), (values,), ids, None, model)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    sizes = [(120, 16), (500, 64)] if args.quick else [(120, 16), (500, 64), (500, 384), (1797, 64), (1000, 1280)]
    stats = [(0, 0), (40, 0), (0, 10)]
    rows = []
    for spec in list_metrics():
        for n, d in sizes:
            latent = rng.normal(size=(n, 8))
            a = (latent @ rng.normal(size=(8, d)) + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
            b = (latent @ rng.normal(size=(8, d)) + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
            if spec.name in SKIP:
                b = b[:, :d] if b.shape[1] == d else b
            for permutations, bootstrap in stats:
                params = metric_params(spec.name, k=10)
                request = PairRequest("a", "b", "synthetic", n, 0, spec.name, params, "0,0", permutations, bootstrap)
                estimate = pair_seconds(
                    spec.name, n, (d,), (d,), dict(params), search=False, permutations=permutations, bootstrap=bootstrap
                )
                if estimate > 120:  # far above any budget: what matters is the range a link may start
                    continue
                started, wall = time.process_time(), time.perf_counter()
                try:
                    score_pair(request, _view("a", a), _view("b", b))
                except Exception as error:  # noqa: BLE001 - a metric that cannot score this input
                    rows.append({"metric": spec.name, "n": n, "d": d, "error": str(error)[:120]})
                    continue
                cpu, elapsed = time.process_time() - started, time.perf_counter() - wall
                rows.append(
                    {
                        "metric": spec.name,
                        "n": n,
                        "d": d,
                        "permutations": permutations,
                        "bootstrap": bootstrap,
                        "estimate_s": round(estimate, 4),
                        "cpu_s": round(cpu, 4),
                        "wall_s": round(elapsed, 4),
                        "ratio": round(estimate / max(cpu, 1e-4), 2),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    scored = [r for r in rows if "ratio" in r and r["cpu_s"] > 0.05]
    under = [r for r in scored if r["ratio"] < 1.0]
    summary = {
        "what": "estimate / measured CPU seconds of score_pair, one request each (bench/bench_cost.py)",
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
        "cases": len(scored),
        "min_ratio": min(r["ratio"] for r in scored),
        "median_ratio": float(np.median([r["ratio"] for r in scored])),
        "underestimated": under,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1))
    print(
        f"{len(scored)} cases; min ratio {summary['min_ratio']}, median {summary['median_ratio']}; "
        f"{len(under)} underestimated"
    )


if __name__ == "__main__":
    main()
