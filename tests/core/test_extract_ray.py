"""`alignscope extract --ray` on a real local Ray instance: the same cache keys and features as a local
extraction, and a rerun is a cache hit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignscope.core.cache import FeatureCache
from alignscope.core.cli import main
from alignscope.core.datasets import load_dataset
from alignscope.core.extract import extract_features


def test_ray_workers_write_the_entries_a_local_extraction_computes(local_ray, warm_cache_dir, capsys):
    command = ["extract", "--model", "digits-cnn-s0", "--model", "digits-cnn-s1", "--dataset", "digits", "--n", "120"]
    assert main([*command, "--ray", "--ray-cpus", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("hit", "miss"))]
    assert len(lines) == 2 and all(line.startswith("miss") and line.endswith("(ray)") for line in lines)
    cache = FeatureCache()
    dataset = load_dataset("digits", n=120, seed=0)
    for model in ("digits-cnn-s0", "digits-cnn-s1"):
        stored, result = cache.get_or_extract(model, dataset)
        assert result.hit  # the worker's entry, under the key this process computes
        local = extract_features(model, dataset)
        assert stored.layer_names == local.layer_names and stored.sample_ids == local.sample_ids
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(stored.values, local.values))
    assert main([*command, "--ray", "--ray-cpus", "1"]) == 0
    assert all(line.startswith("hit") for line in capsys.readouterr().out.splitlines() if "(ray)" in line)


def test_ray_workers_know_the_models_this_cache_holds_uploads_of(local_ray, cache_dir, tmp_path, capsys):
    """`run --ray` and `extract --ray` failed with "unknown model" for every model the user had added: the
    workers never read this cache's registry of uploads (and a worker outlives the test that started it,
    so it must take its cache directory from the task, not from its environment)."""
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(1797, 8))
    for name, matrix in (("rep-a", pixels), ("rep-b", pixels @ np.linalg.qr(rng.normal(size=(8, 8)))[0])):
        np.save(tmp_path / f"{name}.npy", matrix.astype(np.float32))
        assert main(["upload-representation", str(tmp_path / f"{name}.npy"), "--dataset", "digits"]) == 0
    assert main(["extract", "--model", "rep-a", "--model", "rep-b", "--dataset", "digits", "--n", "200", "--ray"]) == 0
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'name = "uploads"\nmodels = ["rep-a", "rep-b"]\ndataset = "digits"\nmetrics = ["linear_cka"]\n'
        'layers = "last"\nn = 200\npermutations = 0\nbootstrap = 0\n'
    )
    capsys.readouterr()
    assert main(["run", str(plan), "--out", str(tmp_path / "out"), "--ray", "local", "--ray-cpus", "2"]) == 0
    table = (tmp_path / "out" / "table.csv").read_text().splitlines()
    assert len(table) == 2 and float(table[1].split(",")[table[0].split(",").index("score")]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1"),  # Ray alone retried for minutes, silently
        ("ray://127.0.0.1:1", "cannot reach a Ray cluster at ray://127.0.0.1:1"),
        ("headnode", "give local, auto, or a cluster's HOST:PORT"),
    ],
)
def test_a_cluster_address_nothing_answers_at_is_refused_at_once(cache_dir, address, message, capsys):
    argv = ["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "50", "--ray", address]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
