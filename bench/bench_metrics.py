"""Metric benchmarks; results go to bench/results/metrics.json.

1. Layer matrix: 25 x 25 layers, n = 1024, d = 768, for mutual_knn, cknna and debiased_cka, timed
   against the naive per-pair loop of platonic-rep's ``measure_alignment`` (neighbours / kernels
   recomputed for every pair, dense n x n masks, float32 as there), in the same run. Reports the
   speed-up, the ratio to the matmul bound (one n x n Gram per layer, timed in the same run: float32,
   and float64 for the kernel metrics, which build their Grams in float64), and the largest absolute
   difference between the two matrices. The bound is one plain ``x @ x.T`` per layer; Alignscope builds
   each Gram from its upper block triangle (``core/metrics/self_gram.py``, 10 of 16 blocks), so the Gram
   itself takes about 0.8 of the bound.
2. Mutual k-NN at n = 10,000 and 100,000, d = 768: wall time and peak resident memory, each in a fresh
   subprocess (VmHWM, i.e. ru_maxrss of the child alone; tracemalloc does not see torch).
3. Split forms of the CCA family, Procrustes and RSA: 8 x 8 layers, n = 1024, d = 768, layer_matrix
   (each layer's SVD / Gram factor / ranked RDM once) against calling the metric once per pair.

Usage:
    python bench/bench_metrics.py                 # everything (~10 min on 2 cores)
    python bench/bench_metrics.py --skip-large    # only the layer matrices
    python bench/bench_metrics.py --split-forms   # only section 3 (the rest keeps its previous results)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alignscope.core.metrics.layers import layer_matrix  # noqa: E402
from alignscope.core.metrics.registry import get_metric  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "metrics.json"


# --- naive per-pair baseline (platonic-rep measure_alignment + metrics.py, restated) ---------------


def naive_knn(feats, topk):
    return (feats @ feats.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :topk]


def naive_mutual_knn(feats_a, feats_b, topk):
    knn_a, knn_b = naive_knn(feats_a, topk), naive_knn(feats_b, topk)
    n = knn_a.shape[0]
    rows = torch.arange(n).unsqueeze(1)
    mask_a, mask_b = torch.zeros(n, n), torch.zeros(n, n)
    mask_a[rows, knn_a] = 1.0
    mask_b[rows, knn_b] = 1.0
    return ((mask_a * mask_b).sum(dim=1) / topk).mean().item()


def naive_hsic_unbiased(K, L):
    m = K.shape[0]
    K_tilde = K.clone().fill_diagonal_(0)
    L_tilde = L.clone().fill_diagonal_(0)
    value = (
        torch.sum(K_tilde * L_tilde.T)
        + torch.sum(K_tilde) * torch.sum(L_tilde) / ((m - 1) * (m - 2))
        - 2 * torch.sum(torch.mm(K_tilde, L_tilde)) / (m - 2)
    )
    return value / (m * (m - 3))


def naive_cknna(feats_a, feats_b, topk):
    n = feats_a.shape[0]
    K, L = feats_a @ feats_a.T, feats_b @ feats_b.T

    def similarity(K, L):
        K_hat = K.clone().fill_diagonal_(float("-inf"))
        L_hat = L.clone().fill_diagonal_(float("-inf"))
        _, idx_k = torch.topk(K_hat, topk, dim=1)
        _, idx_l = torch.topk(L_hat, topk, dim=1)
        mask = torch.zeros(n, n).scatter_(1, idx_k, 1) * torch.zeros(n, n).scatter_(1, idx_l, 1)
        return naive_hsic_unbiased(mask * K, mask * L)

    return (similarity(K, L) / torch.sqrt(similarity(K, K) * similarity(L, L))).item()


def naive_debiased_cka(feats_a, feats_b):
    K, L = feats_a @ feats_a.T, feats_b @ feats_b.T
    return (naive_hsic_unbiased(K, L) / torch.sqrt(naive_hsic_unbiased(K, K) * naive_hsic_unbiased(L, L))).item()


def naive_layer_matrix(layers_a, layers_b, metric, topk):
    values = np.empty((len(layers_a), len(layers_b)))
    for i, x in enumerate(layers_a):
        for j, y in enumerate(layers_b):
            if metric == "debiased_cka":
                values[i, j] = naive_debiased_cka(x, y)
                continue
            x_unit, y_unit = F.normalize(x, p=2, dim=-1), F.normalize(y, p=2, dim=-1)  # per pair, as there
            if metric == "mutual_knn":
                values[i, j] = naive_mutual_knn(x_unit, y_unit, topk)
            else:
                values[i, j] = naive_cknna(x_unit, y_unit, topk)
    return values


def synthetic_layers(n_layers, n_samples, dim, seed):
    """Layers of one 'model': a random walk, so neighbouring layers are more alike than distant ones."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(n_samples, dim, generator=generator)
    layers, current = [], torch.randn(n_samples, dim, generator=generator)
    for _ in range(n_layers):
        current = current + 0.5 * torch.randn(n_samples, dim, generator=generator)
        layers.append((current + 0.8 * shared).contiguous())
    return layers


# The float64 metrics (kernel family) build their Grams in float64; their bound is the float64 Gram.
FLOAT64_METRICS = ("debiased_cka", "linear_cka")


def matmul_bound_s(layers: list[torch.Tensor], dtype: torch.dtype, repeats: int = 3) -> float:
    """The matmul bound of a layer matrix: one n x n Gram per layer (A's and B's), best of ``repeats``."""
    cast = [layer.to(dtype) for layer in layers]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for layer in cast:
            layer @ layer.T
        best = min(best, time.perf_counter() - start)
    return best


def bench_layer_matrices(
    n_layers=25, n_samples=1024, dim=768, k=10, metrics=("mutual_knn", "cknna", "debiased_cka")
) -> dict:
    layers_a = synthetic_layers(n_layers, n_samples, dim, seed=0)
    layers_b = synthetic_layers(n_layers, n_samples, dim, seed=0)[::-1]  # same content, reversed order
    noise = torch.Generator().manual_seed(1)  # seeded: every run measures the same inputs
    layers_b = [layer + 0.3 * torch.randn(layer.shape, generator=noise) for layer in layers_b]
    results = {}
    for metric in metrics:
        params = {"k": k} if "k" in get_metric(metric).param_names else {}
        layer_matrix(layers_a[:2], layers_b[:2], metric, **params)  # warm-up: first-call costs of torch
        fast_s = bound32_s = bound64_s = float("inf")
        for _ in range(5):  # best of five, each round timing ours and the bound back to back (a busy
            # moment of this shared machine then slows both, not one of them)
            start = time.perf_counter()
            fast = layer_matrix(layers_a, layers_b, metric, **params).values
            fast_s = min(fast_s, time.perf_counter() - start)
            bound32_s = min(bound32_s, matmul_bound_s(layers_a + layers_b, torch.float32, repeats=1))
            if metric in FLOAT64_METRICS:
                bound64_s = min(bound64_s, matmul_bound_s(layers_a + layers_b, torch.float64, repeats=1))
        bound64_s = bound64_s if metric in FLOAT64_METRICS else None
        bound_s = bound64_s if bound64_s is not None else bound32_s
        start = time.perf_counter()
        slow = naive_layer_matrix(layers_a, layers_b, metric, k)
        slow_s = time.perf_counter() - start
        results[metric] = {
            "layers": [n_layers, n_layers],
            "n_samples": n_samples,
            "dim": dim,
            "params": params,
            "layer_matrix_s": round(fast_s, 3),
            "naive_per_pair_s": round(slow_s, 3),
            "speedup": round(slow_s / fast_s, 1),
            "matmul_bound_float32_s": round(bound32_s, 3),
            "matmul_bound_float64_s": None if bound64_s is None else round(bound64_s, 3),
            "bound_dtype": "float64" if bound64_s is not None else "float32",
            "ratio_to_bound": round(fast_s / bound_s, 2),
            "ratio_to_float32_bound": round(fast_s / bound32_s, 2),
            "max_abs_diff": float(np.abs(fast - slow).max()),
            "value_range": [float(fast.min()), float(fast.max())],
        }
        print(metric, results[metric], flush=True)
    return results


def bench_split_forms(
    n_layers=8, n_samples=1024, dim=768, metrics=("svcca", "pwcca", "mean_cca", "procrustes", "rsa")
) -> dict:
    from alignscope.core.metrics.registry import compute

    layers_a = synthetic_layers(n_layers, n_samples, dim, seed=0)
    noise = torch.Generator().manual_seed(2)
    layers_b = [
        layer + 0.3 * torch.randn(layer.shape, generator=noise)
        for layer in synthetic_layers(n_layers, n_samples, dim, seed=1)
    ]
    results = {}
    for metric in metrics:
        start = time.perf_counter()
        fast = layer_matrix(layers_a, layers_b, metric).values
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        slow = np.array([[compute(metric, a, b) for b in layers_b] for a in layers_a])
        slow_s = time.perf_counter() - start
        results[metric] = {
            "layers": [n_layers, n_layers],
            "n_samples": n_samples,
            "dim": dim,
            "layer_matrix_s": round(fast_s, 3),
            "per_pair_s": round(slow_s, 3),
            "speedup": round(slow_s / fast_s, 1),
            "max_abs_diff": float(np.abs(fast - slow).max()),
        }
        print(metric, results[metric], flush=True)
    return results


# --- large-n mutual k-NN, one subprocess per measurement -------------------------------------------


def _vm_hwm_kib() -> int:
    """Peak resident memory of this process in KiB. Linux keeps ``ru_maxrss`` across execve, so a
    child started by a large parent would report the parent's peak; VmHWM starts afresh at exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def child(n_samples: int, dim: int, k: int) -> None:
    from alignscope.core.metrics.knn import mutual_knn

    generator = torch.Generator().manual_seed(0)
    feats_a = torch.randn(n_samples, dim, generator=generator)
    feats_b = feats_a + torch.randn(n_samples, dim, generator=generator)
    rss_inputs = _vm_hwm_kib()
    start = time.perf_counter()
    value = mutual_knn(feats_a, feats_b, k=k)
    seconds = time.perf_counter() - start
    peak_kib = _vm_hwm_kib()
    print(
        json.dumps(
            {
                "n_samples": n_samples,
                "dim": dim,
                "k": k,
                "value": value,
                "seconds": round(seconds, 2),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "peak_rss_after_inputs_mib": round(rss_inputs / 1024, 1),
                "inputs_mib": round(2 * n_samples * dim * 4 / 2**20, 1),
            }
        )
    )


def bench_large(sizes=(10_000, 100_000), dim=768, k=10) -> list[dict]:
    out = []
    for n_samples in sizes:
        command = [sys.executable, __file__, "--child", str(n_samples), str(dim), str(k)]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        record = json.loads(completed.stdout.strip().splitlines()[-1])
        print("mutual_knn large", record, flush=True)
        out.append(record)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3, type=int, metavar=("N", "DIM", "K"))
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--split-forms", action="store_true", help="only measure section 3")
    parser.add_argument(
        "--metrics",
        nargs="*",
        default=["mutual_knn", "cknna", "debiased_cka"],
        help="layer-matrix metrics to (re)measure; the others keep their previous results",
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "2 CPU cores shared with other work: absolute times are noisy, ratios less so",
        },
        "layer_matrix": {
            **previous.get("layer_matrix", {}),
            **({} if args.split_forms else bench_layer_matrices(metrics=tuple(args.metrics))),
        },
        "mutual_knn_large": previous.get("mutual_knn_large") if args.skip_large or args.split_forms else bench_large(),
        "split_forms": bench_split_forms(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
