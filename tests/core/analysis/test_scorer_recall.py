"""An approximate k-NN score carries the recall@k its neighbour searches measured; an exact one none."""

from __future__ import annotations

import numpy as np
import pytest

from alignscope.core.analysis.features import ViewFeatures
from alignscope.core.analysis.report import format_scores
from alignscope.core.analysis.requests import PairRequest, metric_params
from alignscope.core.analysis.scorer import score_pair
from alignscope.core.ann import faiss_module
from alignscope.core.metrics.registry import compute

pytestmark = pytest.mark.skipif(faiss_module() is None, reason="faiss (faiss-cpu) is not installed")
N = 6000  # above the size where the IVF index is used


def _views() -> tuple[ViewFeatures, ViewFeatures]:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=2.0, size=(40, 16))
    latent = centres[rng.integers(0, 40, N)] + rng.normal(size=(N, 16))
    a = (latent @ rng.normal(size=(16, 64)) + 0.3 * rng.normal(size=(N, 64))).astype(np.float32)
    b = (np.tanh(latent) @ rng.normal(size=(16, 48)) + 0.3 * rng.normal(size=(N, 48))).astype(np.float32)
    ids = tuple(f"s{i}" for i in range(N))
    return (
        ViewFeatures("a", "synthetic", ("x",), (a,), ids, None, "ka"),
        ViewFeatures("b", "synthetic", ("y",), (b,), ids, None, "kb"),
    )


def test_the_approximate_score_reports_its_recall_and_stays_close_to_exact():
    view_a, view_b = _views()
    request = PairRequest(
        "a", "b", "synthetic", N, 0, "mutual_knn", metric_params("mutual_knn", k=10, neighbors="approx"), "0,0"
    )
    approx = score_pair(request, view_a, view_b)
    exact = score_pair(request.replace(params=metric_params("mutual_knn", k=10)), view_a, view_b)
    assert exact.recall is None
    assert approx.recall is not None and 0.9 <= approx.recall <= 1.0
    assert abs(approx.value - exact.value) <= 0.02
    assert exact.value == pytest.approx(compute("mutual_knn", view_a.values[0], view_b.values[0], k=10))
    assert "recall@k against exact search" in format_scores([approx], "table")


def test_an_approximate_request_below_the_ivf_minimum_says_its_neighbours_are_exact():
    view_a, view_b = (
        ViewFeatures(v.model, v.dataset, v.layer_names, (v.values[0][:300],), v.sample_ids[:300], None, v.cache_key)
        for v in _views()
    )
    request = PairRequest(
        "a", "b", "synthetic", 300, 0, "mutual_knn", metric_params("mutual_knn", k=10, neighbors="approx"), "0,0"
    )
    small = score_pair(request, view_a, view_b)
    assert small.recall is None  # exact lists, nothing measured
    assert small.value == pytest.approx(compute("mutual_knn", view_a.values[0], view_b.values[0], k=10))
    table = format_scores([small], "table")
    assert "exact for mutual_knn although approximate search was asked for: at n = 300" in table
