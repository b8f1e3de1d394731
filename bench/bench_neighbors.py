"""Neighbour-search benchmark; results go to bench/results/neighbors.json.

Mutual k-NN (k = 10, cosine) at n = 1,000 ... 100,000, d = 768, on seeded synthetic data with structure:
two "models" of one 32-d latent mixture of 64 clusters, each embedded in 768-d by its own random isometry
(B through a tanh of the latent first) plus small isotropic noise, so neighbourhoods are shared in part
(mutual k-NN about 0.2) and the data has the low intrinsic dimension of real embeddings. One fresh
subprocess per size; in it, in this order, each for both layers:

- ``matmul_bound``: the n x n cosine similarities computed block-wise (1024-row blocks into one buffer,
  the products alone): the floor for any exact search.
- ``exact_torch``: ``search_neighbors(exact_backend="torch")``, the default exact path.
- ``exact_faiss``: ``search_neighbors(exact_backend="faiss")``: faiss's flat search + the tie rule.
- ``approx``: ``search_neighbors(neighbors="approx")``: IVF-Flat with its recall measured.
- ``faiss_ivf_search`` (n <= 30,000): faiss's own ``IndexIVFFlat`` (same number of lists, trained on as
  many rows, ``nprobe`` = the ``n_probe`` the approximate search settled on), for reference.

Per method: wall seconds and CPU seconds (process time, all threads; best of 3 up to n = 10,000, else
one run), the 1-minute load average before it, peak resident memory (VmHWM, reset through
/proc/self/clear_refs before each method, so it is that method's peak; inputs included), the mutual k-NN
score and |score − exact|, recall@10 against the exact lists over all n queries, and for ``approx`` the
recall its report states (measured on 512 held-out queries). ``exact_faiss`` also reports the fraction
of rows whose ordered list is identical to torch's. ``exponents`` are least-squares slopes of
log(time) against log(n). The cores are shared with other work whose load changes within minutes, so the
summary gives each ratio by CPU time as well as by wall time.

Usage:
    python bench/bench_neighbors.py                   # every size (~15 min on 2 shared cores)
    python bench/bench_neighbors.py --sizes 1000 3000 # some sizes; the others keep their last results
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alignscope.core import ann  # noqa: E402
from alignscope.core.neighbors import per_sample_overlap, search_neighbors  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "neighbors.json"
SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
DATA = (
    "structured_pair(n): a 32-d latent mixture of 64 Gaussian clusters (centres sd 1.5, within sd 1); "
    "A = (latent + 0.3 noise) through a random 32 -> 768 isometry, B = (2 tanh(latent) + 0.5 noise) through "
    "another; both + 0.05 isotropic noise per feature; torch seed 0"
)
DIM, K = 768, 10
FAISS_IVF_MAX = 30_000
CLOCKS = (
    "cpu_seconds: CPU time of the process, all threads (time.process_time), less disturbed than wall "
    "seconds by other work on the 2 shared cores, whose load changed within minutes (load_1min per method)"
)


def structured_pair(n_samples: int, dim: int = DIM, latent: int = 32, clusters: int = 64, seed: int = 0):
    """Two representations of the same samples (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, latent, generator=generator) * 1.5
    labels = torch.randint(clusters, (n_samples,), generator=generator)
    shared = centres[labels] + torch.randn(n_samples, latent, generator=generator)
    embed_a = torch.linalg.qr(torch.randn(dim, latent, generator=generator))[0].T
    embed_b = torch.linalg.qr(torch.randn(dim, latent, generator=generator))[0].T
    latent_a = shared + 0.3 * torch.randn(n_samples, latent, generator=generator)
    latent_b = 2 * torch.tanh(shared) + 0.5 * torch.randn(n_samples, latent, generator=generator)
    feats_a = latent_a @ embed_a + 0.05 * torch.randn(n_samples, dim, generator=generator)
    feats_b = latent_b @ embed_b + 0.05 * torch.randn(n_samples, dim, generator=generator)
    return feats_a.contiguous(), feats_b.contiguous()


def _vm_hwm_kib() -> int:
    """Peak resident memory of this process (KiB) since start or the last reset (see bench_metrics.py)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
        return True
    except OSError:
        return False


def _measure(fn: Callable[[], object], repeats: int) -> tuple[object, dict]:
    """(last result, {seconds, cpu_seconds, peak_rss_mib, load_1min}): the best wall and CPU time of the
    runs, the peak resident memory of them all, and the 1-minute load average before the first."""
    reset = _reset_peak()
    load = os.getloadavg()[0]
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        result = None  # the previous run's result must not count towards this run's peak
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    timing = {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mib": round(_vm_hwm_kib() / 1024, 1),
        "load_1min": round(load, 2),
        "peak_reset": reset,
    }
    return result, timing


def matmul_bound(feats_a: torch.Tensor, feats_b: torch.Tensor, block_size: int = 1024) -> None:
    for feats in (feats_a, feats_b):
        unit = F.normalize(feats, dim=1)
        buffer = torch.empty((block_size, unit.shape[0]))
        for start in range(0, unit.shape[0], block_size):
            block = unit[start : start + block_size]
            torch.matmul(block, unit.T, out=buffer[: block.shape[0]])


def faiss_ivf_search(feats_a: torch.Tensor, feats_b: torch.Tensor, n_lists: int, n_train: int, n_probe: int):
    """faiss's IndexIVFFlat on both layers: [n, k] lists without the sample itself."""
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    lists = []
    for feats in (feats_a, feats_b):
        unit = np.ascontiguousarray(F.normalize(feats, dim=1).numpy())
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(unit.shape[1]), unit.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter, index.cp.seed = 5, 0
        index.cp.min_points_per_centroid = 1
        sample = np.random.default_rng(0).choice(unit.shape[0], n_train, replace=False)
        index.train(unit[np.sort(sample)])
        index.add(unit)
        index.nprobe = n_probe
        _, found = index.search(unit, K + 1)
        found = torch.from_numpy(found)
        keep = found != torch.arange(unit.shape[0])[:, None]
        # drop the sample itself (or the last entry when it is absent)
        first_k = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :K]
        lists.append(torch.gather(found, 1, first_k))
    return tuple(lists)


def child(n_samples: int) -> None:
    torch.manual_seed(0)
    feats_a, feats_b = structured_pair(n_samples)
    repeats = 3 if n_samples <= 10_000 else 1
    rss_inputs = _vm_hwm_kib() / 1024
    record: dict = {"n_samples": n_samples, "dim": DIM, "k": K, "rss_after_inputs_mib": round(rss_inputs, 1)}

    def both(**options):
        return tuple(search_neighbors(feats, K, **options) for feats in (feats_a, feats_b))

    _, record["matmul_bound"] = _measure(lambda: matmul_bound(feats_a, feats_b), repeats)
    exact, exact_score = None, 0.0
    for method, options in (
        ("exact_torch", {"exact_backend": "torch"}),
        ("exact_faiss", {"exact_backend": "faiss"}),
        ("approx", {"neighbors": "approx"}),
    ):
        found, timing = _measure(lambda options=options: both(**options), repeats)
        score = float(per_sample_overlap(found[0].indices, found[1].indices).mean())
        entry = {**timing, "score": score}
        if exact is None:
            exact, exact_score = found, score
        entry["abs_score_diff"] = abs(score - exact_score)
        entry["recall_at_10"] = [float(per_sample_overlap(f.indices, e.indices).mean()) for f, e in zip(found, exact)]
        entry["reports"] = [f.report.describe() for f in found]
        if method == "exact_faiss":
            entry["identical_rows"] = [
                float((f.indices == e.indices).all(dim=1).double().mean()) for f, e in zip(found, exact)
            ]
        if method == "approx":
            entry["reported_recall"] = [f.report.recall for f in found]
            entry["params"] = [dict(f.report.params) for f in found]
        record[method] = entry
    params = ann.choose_ivf_params(n_samples, DIM, K)
    if params is not None and n_samples <= FAISS_IVF_MAX:
        n_probe = int(max(dict(report.report.params)["n_probe"] for report in found))
        lists, timing = _measure(
            lambda: faiss_ivf_search(feats_a, feats_b, params.n_lists, params.n_train, n_probe), repeats
        )
        score = float(per_sample_overlap(lists[0], lists[1]).mean())
        record["faiss_ivf_search"] = {
            **timing,
            "score": score,
            "abs_score_diff": abs(score - exact_score),
            "recall_at_10": [float(per_sample_overlap(f, e.indices).mean()) for f, e in zip(lists, exact)],
            "params": {"n_lists": params.n_lists, "n_train": params.n_train, "nprobe": n_probe, "niter": 5},
        }
    print(json.dumps(record))


def _exponents(sizes: list[dict], method: str, only_approx: bool = False, clock: str = "cpu_seconds") -> dict:
    points = [
        (rec["n_samples"], rec[method][clock])
        for rec in sizes
        if method in rec and (not only_approx or rec[method]["reports"][0].startswith("approx"))
    ]
    out = {}
    for label, chosen in (("all_sizes", points), ("n_ge_10000", [p for p in points if p[0] >= 10_000])):
        if len(chosen) >= 2:
            slope = np.polyfit(np.log([p[0] for p in chosen]), np.log([p[1] for p in chosen]), 1)[0]
            out[label] = round(float(slope), 2)
    return out


def _ratios(rec: dict, clock: str) -> dict:
    def ratio(top: str, bottom: str, digits: int = 2) -> float:
        return round(rec[top][clock] / rec[bottom][clock], digits)

    return {
        "exact_torch_over_matmul_bound": ratio("exact_torch", "matmul_bound"),
        "exact_faiss_over_matmul_bound": ratio("exact_faiss", "matmul_bound"),
        "exact_torch_over_exact_faiss": ratio("exact_torch", "exact_faiss"),
        "approx_speedup_over_exact_torch": ratio("exact_torch", "approx", 1),
    }


def summarise(sizes: list[dict]) -> dict:
    methods = ("matmul_bound", "exact_torch", "exact_faiss")
    summary: dict = {"clocks": CLOCKS}
    for clock, label in (("cpu_seconds", "cpu"), ("seconds", "wall")):
        summary[f"exponents_{label}"] = {
            **{method: _exponents(sizes, method, clock=clock) for method in methods},
            "approx (sizes where IVF ran)": _exponents(sizes, "approx", only_approx=True, clock=clock),
        }
    summary["per_size"] = [
        {
            "n_samples": rec["n_samples"],
            "cpu": _ratios(rec, "cpu_seconds"),
            "wall": _ratios(rec, "seconds"),
            "approx_recall_at_10_min": round(min(rec["approx"]["recall_at_10"]), 4),
            "approx_abs_score_diff": round(rec["approx"]["abs_score_diff"], 4),
            "exact_torch_peak_rss_mib": rec["exact_torch"]["peak_rss_mib"],
            "exact_faiss_identical_rows_min": min(rec["exact_faiss"]["identical_rows"]),
        }
        for rec in sizes
    ]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=int, metavar="N")
    parser.add_argument("--sizes", nargs="*", type=int, default=list(SIZES))
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    by_size = {rec["n_samples"]: rec for rec in previous.get("sizes", [])}
    for n_samples in args.sizes:
        command = [sys.executable, __file__, "--child", str(n_samples)]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        by_size[n_samples] = json.loads(completed.stdout.strip().splitlines()[-1])
        print(json.dumps(by_size[n_samples]), flush=True)
    sizes = [by_size[n] for n in sorted(by_size)]
    results = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "faiss": getattr(ann.faiss_module(), "__version__", None),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "2 CPU cores shared with other work: absolute times are noisy, ratios less so",
        },
        "setup": {"metric": "mutual_knn", "similarity": "cosine", "k": K, "dim": DIM, "data": DATA},
        "summary": summarise(sizes),
        "sizes": sizes,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
