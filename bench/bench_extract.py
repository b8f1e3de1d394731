"""Extraction and cache benchmark -> bench/results/extract.json.

* ``default``: every job of the embedded offline default (``alignscope extract``), cold (empty cache,
  digits nets trained included) and then served from the cache, in the same run: the cache speed-up
  is cold / hit, and the cache's size on disk.
* ``text_batching``: MiniLM on the 560 sentences, batches sorted by length (ours) against batches in
  dataset order (the baseline), same batch size, same run; identical features.

    python bench/bench_extract.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_default(cache_dir: Path) -> dict:
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset
    from alignscope.core.defaults import DEFAULT_JOBS
    from alignscope.core.settings import get_settings

    os.environ["ALIGNSCOPE_CACHE_DIR"] = str(cache_dir)
    get_settings.cache_clear()
    cache = FeatureCache()
    jobs = []
    cold_total = hit_total = 0.0
    for model, dataset_name in DEFAULT_JOBS:
        dataset = load_dataset(dataset_name)
        started = time.perf_counter()
        features, result = cache.get_or_extract(model, dataset, batch_size=32)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        _, again = cache.get_or_extract(model, dataset, batch_size=32)
        hit = time.perf_counter() - started
        assert not result.hit and again.hit
        cold_total, hit_total = cold_total + cold, hit_total + hit
        jobs.append(
            {
                "model": model,
                "dataset": dataset_name,
                "n": features.n_samples,
                "layers": features.n_layers,
                "cold_s": round(cold, 3),
                "hit_s": round(hit, 4),
            }
        )
    return {
        "jobs": jobs,
        "cold_total_s": round(cold_total, 2),
        "hit_total_s": round(hit_total, 3),
        "cache_speedup": round(cold_total / hit_total, 1),
        "features_mib": round(_dir_bytes(cache.root) / 2**20, 2),
        "cache_dir_mib": round(_dir_bytes(cache_dir) / 2**20, 2),
    }


def bench_text_batching(repeats: int = 3) -> dict:
    import alignscope.core.extract as extract_module
    from alignscope.core.datasets import load_dataset
    from alignscope.core.extract import extract_features
    from alignscope.core.models import load_model

    dataset = load_dataset("sentences")
    encoder = load_model("minilm-l6")
    sorted_order = extract_module._batch_order

    def timed(order_fn) -> tuple[float, list[torch.Tensor]]:
        extract_module._batch_order = order_fn
        try:
            best, values = float("inf"), None
            for _ in range(repeats):
                started = time.perf_counter()
                values = extract_features(encoder, dataset, batch_size=64).values
                best = min(best, time.perf_counter() - started)
            return best, values
        finally:
            extract_module._batch_order = sorted_order

    ours, ours_values = timed(sorted_order)
    baseline, baseline_values = timed(lambda inputs, modality: list(range(len(inputs))))
    max_diff = max(float((a - b).abs().max()) for a, b in zip(ours_values, baseline_values))
    return {
        "n": len(dataset),
        "batch_size": 64,
        "sorted_s": round(ours, 3),
        "dataset_order_s": round(baseline, 3),
        "speedup": round(baseline / ours, 2),
        "max_abs_diff": max_diff,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        default = bench_default(Path(tmp) / "cache")
        batching = bench_text_batching()
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },
        "default": default,
        "text_batching": batching,
    }
    out = ROOT / "bench" / "results" / "extract.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
