"""Cost estimates against measured CPU time: the budget a link may spend is only as good as these.

Two grids, each request's estimate and the CPU time it actually spent (``time.process_time``: every
thread, BLAS and torch ones included, as the job runner counts it) measured in the same run:

* ``pair``: metrics × n × widths × (permutations, bootstrap), one layer pair scored by ``score_pair``
  against ``cost.pair_seconds``;
* ``matrix``: metrics × n × widths × permutations, a 3 × 3 layer matrix (``layer_matrix_of``, what
  Compare's heatmap, Many models and best-pair searches compute) against ``cost.matrix_seconds``.

``ratio`` = estimate / measured; the gate is safe when every ratio is >= 1 (estimates err high).
Results: ``bench/results/cost.json``.

    python bench/bench_cost.py            # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from alignscope.core.analysis.cost import matrix_seconds, pair_seconds
from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.requests import MatrixRequest, PairRequest, metric_params
from alignscope.core.analysis.scorer import layer_matrix_of, score_pair
from alignscope.core.metrics.registry import list_metrics

RESULTS = Path(__file__).resolve().parent / "results" / "cost.json"
SKIP = {"gram_volume", "retrieval_top1_unmapped", "retrieval_top5_unmapped"}  # need equal widths
LIMIT_SECONDS = 120.0  # far above any budget: what matters is the range a link may start
LAYERS = 3


def _view(model: str, layers: list[np.ndarray]) -> ViewFeatures:
    ids = tuple(f"s{i}" for i in range(layers[0].shape[0]))
    names = tuple(f"layer{i}" for i in range(len(layers)))
    return ViewFeatures(model, "synthetic", names, tuple(layers), ids, None, model)


def _layers(rng: np.random.Generator, n: int, d: int, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` layers per model, each [n, d], sharing an 8-dimensional latent (aligned, not identical)."""
    latent = rng.normal(size=(n, 8))

    def layer() -> np.ndarray:
        return (latent @ rng.normal(size=(8, d)) + 0.3 * rng.normal(size=(n, d))).astype(np.float32)

    return [layer() for _ in range(count)], [layer() for _ in range(count)]


def _measure(work: Callable[[], object]) -> tuple[float, float] | str:
    started, wall = time.process_time(), time.perf_counter()
    try:
        work()
    except Exception as error:  # noqa: BLE001 - a metric that cannot score this input
        return str(error)[:120]
    return time.process_time() - started, time.perf_counter() - wall


def _row(kind: str, metric: str, n: int, d: int, permutations: int, bootstrap: int, estimate: float, measured) -> dict:
    base = {"kind": kind, "metric": metric, "n": n, "d": d, "permutations": permutations, "bootstrap": bootstrap}
    if isinstance(measured, str):
        return {**base, "error": measured}
    cpu, wall = measured
    return {
        **base,
        "estimate_s": round(estimate, 4),
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 4),
        "ratio": round(estimate / max(cpu, 1e-4), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    sizes = [(120, 16), (500, 64)] if args.quick else [(120, 16), (500, 64), (500, 384), (1797, 64), (1000, 1280)]
    matrix_sizes = [(500, 64)] if args.quick else [(500, 64), (500, 384), (1797, 64), (1000, 768)]
    rows = []
    for spec in list_metrics():
        params = metric_params(spec.name, k=10)
        for n, d in sizes:
            (a,), (b,) = _layers(rng, n, d, 1)
            for permutations, bootstrap in ((0, 0), (40, 0), (0, 10)):
                request = PairRequest("a", "b", "synthetic", n, 0, spec.name, params, "0,0", permutations, bootstrap)
                estimate = pair_seconds(
                    spec.name, n, (d,), (d,), dict(params), search=False, permutations=permutations, bootstrap=bootstrap
                )
                if estimate > LIMIT_SECONDS:
                    continue
                measured = _measure(lambda: score_pair(request, _view("a", [a]), _view("b", [b])))  # noqa: B023
                rows.append(_row("pair", spec.name, n, d, permutations, bootstrap, estimate, measured))
                print(json.dumps(rows[-1]), flush=True)
        if spec.name in SKIP:
            continue
        for n, d in matrix_sizes:
            layers_a, layers_b = _layers(rng, n, d, LAYERS)
            for permutations in (0, 40):
                request = MatrixRequest("a", "b", "synthetic", n, 0, spec.name, params, permutations)
                estimate = matrix_seconds(spec.name, n, (d,) * LAYERS, (d,) * LAYERS, dict(params), permutations)
                if estimate > LIMIT_SECONDS:
                    continue
                measured = _measure(lambda: layer_matrix_of(request, _view("a", layers_a), _view("b", layers_b)))  # noqa: B023
                rows.append(_row("matrix", spec.name, n, d, permutations, 0, estimate, measured))
                print(json.dumps(rows[-1]), flush=True)
    scored = [r for r in rows if "ratio" in r and r["cpu_s"] > 0.05]
    under = [r for r in scored if r["ratio"] < 1.0]
    summary = {
        "what": "estimate / measured CPU seconds of one layer pair (score_pair) and of a 3 x 3 layer matrix "
        "(layer_matrix_of), one request each (bench/bench_cost.py)",
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
        "cases": len(scored),
        "min_ratio": min(r["ratio"] for r in scored),
        "median_ratio": float(np.median([r["ratio"] for r in scored])),
        "by_kind": {
            kind: {
                "cases": len(ratios),
                "min_ratio": min(ratios),
                "median_ratio": float(np.median(ratios)),
            }
            for kind in ("pair", "matrix")
            if (ratios := [r["ratio"] for r in scored if r["kind"] == kind])
        },
        "underestimated": under,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1))
    print(
        f"{len(scored)} cases; min ratio {summary['min_ratio']}, median {summary['median_ratio']}; "
        f"{len(under)} underestimated; {summary['by_kind']}"
    )


if __name__ == "__main__":
    main()
