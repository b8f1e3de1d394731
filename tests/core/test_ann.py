"""Approximate neighbours: the IVF-Flat index, its parameter rule, and the recall every search reports."""

import dataclasses

import numpy as np
import pytest
import torch

from alignscope.core import ann
from alignscope.core.errors import InputError
from alignscope.core.neighbors import SIMILARITIES, per_sample_overlap, search_neighbors

pytestmark = pytest.mark.skipif(ann.faiss_module() is None, reason="faiss (faiss-cpu) is not installed")


def clustered(n, d=24, clusters=40, seed=0):
    """Features with structure (a mixture of clusters in a few latent dimensions), like embeddings."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, 8, generator=generator) * 2
    latent = centres[torch.randint(clusters, (n,), generator=generator)] + torch.randn(n, 8, generator=generator)
    embed = torch.linalg.qr(torch.randn(d, 8, generator=generator))[0].T
    return (latent @ embed + 0.05 * torch.randn(n, d, generator=generator)).contiguous()


def test_the_parameter_rule():
    assert ann.choose_ivf_params(100_000, 768, 10) == ann.IvfParams(
        n_lists=632, n_probe=10, max_probe=158, n_train=20224
    )
    # about 2·sqrt(n) lists, at least 4k rows per list, 32 training rows per list; d does not enter
    for n_samples in (4096, 10_000, 30_000, 1_000_000):
        params = ann.choose_ivf_params(n_samples, 64, 10)
        assert params == ann.choose_ivf_params(n_samples, 4096, 10)
        assert params.n_lists == min(round(2 * np.sqrt(n_samples)), n_samples // 40)
        assert params.n_train == min(n_samples, 32 * params.n_lists)
        assert params.n_probe == max(4, int(np.ceil(params.n_lists / 64))) <= params.max_probe
    assert ann.choose_ivf_params(4095, 768, 10) is None  # below the minimum: exact is as cheap
    assert ann.choose_ivf_params(10_000, 768, 200) is None  # lists could not hold k neighbours each
    with pytest.raises(InputError, match="n_probe <= max_probe <= n_lists"):
        ann.IvfParams(n_lists=8, n_probe=9, max_probe=9, n_train=100)


def test_every_row_is_stored_in_exactly_one_list_its_nearest_centroid():
    rows = torch.nn.functional.normalize(clustered(3000), dim=1)
    params = ann.IvfParams(n_lists=20, n_probe=2, max_probe=5, n_train=1000)
    index = ann.build_ivf(rows, None, params, spherical=True)
    assert torch.equal(torch.sort(index.order).values, torch.arange(3000))
    assert index.offsets[0] == 0 and index.offsets[-1] == 3000 and len(index.offsets) == 21
    assert torch.equal(index.home, (rows @ index.centroids.T).argmax(dim=1))
    for list_id in range(20):
        members = index.order[index.offsets[list_id] : index.offsets[list_id + 1]]
        assert bool((index.home[members] == list_id).all()) and bool((members[1:] > members[:-1]).all())
    assert torch.equal(index.sorted_rows, rows[index.order])
    probes = ann.probe_sets(index, 5)
    assert torch.equal(probes[:, 0], torch.arange(20))  # a list always scans itself first


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_probing_every_list_is_the_exact_search(similarity):
    # with n_probe = n_lists every row is scanned, so the lists are exact; float64, because a list's
    # product rounds float32 differently from an exact block's (ulp-level near ties could swap)
    feats = clustered(1200, seed=1).double() + 0.3
    params = ann.IvfParams(n_lists=12, n_probe=12, max_probe=12, n_train=600)
    found = search_neighbors(feats, 6, similarity=similarity, neighbors="approx", ivf_params=params)
    assert torch.equal(found.indices, search_neighbors(feats, 6, similarity=similarity).indices)
    assert found.report.mode == "approx" and found.report.recall == 1.0
    # with copies of samples (a bootstrap resample) the copies tie: the values found are the exact ones,
    # though a tie at the k-th place may keep a different copy than the exact search's lower index
    rows = np.concatenate([np.arange(1200), np.arange(0, 1200, 5)])
    common = dict(similarity=similarity, sample_ids=torch.from_numpy(rows), return_values=True)
    found = search_neighbors(feats[rows], 6, neighbors="approx", ivf_params=params, **common)
    exact = search_neighbors(feats[rows], 6, **common)
    assert torch.allclose(found.values, exact.values, rtol=1e-12, atol=1e-12)
    assert float(per_sample_overlap(found.indices, exact.indices).mean()) > 0.97


def test_the_reported_recall_is_measured_against_exact_search_and_is_close_to_the_true_recall():
    feats = clustered(8000, seed=2)
    found = search_neighbors(feats, 10, neighbors="approx")
    exact = search_neighbors(feats, 10)
    report = found.report
    settings = dict(report.params)
    assert (report.mode, report.method, report.k, report.recall_queries) == ("approx", "ivf_flat", 10, 512)
    assert settings["n_lists"] == 179 and settings["n_probe"] >= 4 and settings["target_recall"] == 0.97
    true_recall = float(per_sample_overlap(found.indices, exact.indices).mean())
    assert 0.9 <= true_recall < 1.0  # approximate, and not by much
    assert abs(report.recall - true_recall) < 0.03  # 512 queries: standard error about 0.005
    assert settings["tune_recall"] >= 0.97 or settings["n_probe"] == ann.choose_ivf_params(8000, 24, 10).max_probe
    assert report.describe() == (
        f"approx (ivf_flat, 179 lists, {settings['n_probe']} probed), recall@10 = {report.recall:.3f} on 512 queries"
    )
    # self never listed, lists ordered by similarity, and the same seed gives the same lists
    assert not (found.indices == torch.arange(8000)[:, None]).any()
    again = search_neighbors(feats, 10, neighbors="approx", return_values=True)
    assert torch.equal(again.indices, found.indices) and again.report == report
    assert bool((again.values[:, :-1] >= again.values[:, 1:]).all())


def test_n_probe_grows_until_the_tuning_queries_reach_the_target_recall():
    feats = clustered(6000, seed=3)
    params = ann.IvfParams(n_lists=60, n_probe=1, max_probe=30, n_train=1920)
    low = search_neighbors(feats, 10, neighbors="approx", ivf_params=params, target_recall=0.5).report
    high = search_neighbors(feats, 10, neighbors="approx", ivf_params=params, target_recall=0.99).report
    low_probe, high_probe = dict(low.params)["n_probe"], dict(high.params)["n_probe"]
    assert low_probe < high_probe and high.recall > low.recall
    assert dict(high.params)["tune_recall"] >= 0.99 or high_probe == 30
    capped = dataclasses.replace(params, max_probe=2)  # the cap holds even when the target is missed
    assert dict(search_neighbors(feats, 10, neighbors="approx", ivf_params=capped).report.params)["n_probe"] <= 2


def test_copies_of_the_query_are_excluded_from_approximate_lists_too():
    feats = clustered(5000, seed=4)
    rows = np.concatenate([np.arange(5000), np.arange(0, 5000, 2)])
    ids = torch.from_numpy(rows)
    found = search_neighbors(feats[rows], 8, neighbors="approx", sample_ids=ids)
    assert found.report.mode == "approx"
    assert not (ids[found.indices] == ids[:, None]).any()
    exact = search_neighbors(feats[rows], 8, sample_ids=ids)
    assert float(per_sample_overlap(found.indices, exact.indices).mean()) > 0.85


def test_too_few_samples_for_an_index_give_an_exact_search_that_says_so():
    feats = clustered(500, seed=5)
    found = search_neighbors(feats, 5, neighbors="approx")
    assert (found.report.mode, found.report.method, found.report.recall) == ("exact", "torch_blocks", 1.0)
    assert "too few for an approximate index" in found.report.describe()
    assert torch.equal(found.indices, search_neighbors(feats, 5).indices)


def test_lists_scanned_on_several_threads_are_those_of_one_thread():
    """The lists are shared out over torch's threads (each product on one thread): the candidates are
    exactly those of a single-threaded scan."""
    from alignscope.core.devices import torch_threads

    rows = torch.nn.functional.normalize(clustered(3000, seed=4), dim=1)
    params = ann.IvfParams(n_lists=24, n_probe=3, max_probe=6, n_train=1000)
    index = ann.build_ivf(rows, None, params, spherical=True)
    with torch_threads(1):
        alone = ann.ivf_candidates(index, None, 3, 5)
    with torch_threads(3):
        shared = ann.ivf_candidates(index, None, 3, 5)
    assert torch.equal(alone[0], shared[0]) and torch.equal(alone[1], shared[1])
