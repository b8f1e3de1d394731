"""Layer matrices on a busy machine; results go to bench/results/contention.json.

The layer matrix (mutual k-NN and debiased CKA, 10 x 10 layers, n = 1024, d = 768) and platonic-rep's
naive per-pair loop (the baseline of bench_metrics.py) are timed on an idle machine and again while
``--competitors`` processes (default: one per core) spin on the CPU, each at torch's default thread
count and on one thread. Reports each slowdown (busy / idle), so "Alignscope degrades no worse than the
baseline" is a ratio measured in one run.

Usage:
    python bench/bench_contention.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_metrics import naive_layer_matrix, synthetic_layers  # noqa: E402

from alignscope.core.metrics.layers import layer_matrix  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "contention.json"


def _spin(stop_at: float) -> None:
    """A competing process: pure Python busy work until ``stop_at`` (a time.time() value)."""
    count = 0
    while time.time() < stop_at:
        count += 1


def _best_of(repeats: int, run) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _measure(layers_a, layers_b, metric: str, threads: int, repeats: int) -> dict[str, float]:
    params = {"k": 10} if metric == "mutual_knn" else {}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fast = _best_of(repeats, lambda: layer_matrix(layers_a, layers_b, metric, **params))
        slow = _best_of(1, lambda: naive_layer_matrix(layers_a, layers_b, metric, 10))
    finally:
        torch.set_num_threads(previous)
    return {"layer_matrix_s": round(fast, 3), "naive_per_pair_s": round(slow, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--competitors", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--layers", type=int, default=10)
    args = parser.parse_args()
    layers_a = synthetic_layers(args.layers, 1024, 768, seed=0)
    layers_b = synthetic_layers(args.layers, 1024, 768, seed=1)
    layer_matrix(layers_a[:2], layers_b[:2], "mutual_knn", k=10)  # first-call costs
    default_threads = torch.get_num_threads()
    settings = sorted({default_threads, 1}, reverse=True)
    results: dict[str, dict] = {}
    for metric in ("mutual_knn", "debiased_cka"):
        for threads in settings:
            idle = _measure(layers_a, layers_b, metric, threads, repeats=3)
            context = multiprocessing.get_context("spawn")
            stop_at = time.time() + 600
            competitors = [context.Process(target=_spin, args=(stop_at,)) for _ in range(args.competitors)]
            for process in competitors:
                process.start()
            try:
                time.sleep(1.0)  # let the competitors reach full speed (a benchmark, not a test)
                busy = _measure(layers_a, layers_b, metric, threads, repeats=3)
            finally:
                for process in competitors:
                    process.terminate()
                    process.join()
            record = {
                "threads": threads,
                "idle": idle,
                "busy": busy,
                "layer_matrix_slowdown": round(busy["layer_matrix_s"] / idle["layer_matrix_s"], 2),
                "naive_slowdown": round(busy["naive_per_pair_s"] / idle["naive_per_pair_s"], 2),
                "layer_matrix_speedup_busy": round(busy["naive_per_pair_s"] / busy["layer_matrix_s"], 1),
            }
            results[f"{metric}@{threads}_threads"] = record
            print(metric, record, flush=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"cpu_count": os.cpu_count(), "torch_default_threads": default_threads},
                "setup": {
                    "layers": [args.layers, args.layers],
                    "n_samples": 1024,
                    "dim": 768,
                    "competitors": args.competitors,
                    "competitor": "a pure-Python busy loop per process",
                },
                "results": results,
            },
            indent=1,
        )
        + "\n"
    )
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
