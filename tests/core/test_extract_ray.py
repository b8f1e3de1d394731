"""`alignscope extract --ray` on a real local Ray instance: the same cache keys and features as a local
extraction, and a rerun is a cache hit."""

from __future__ import annotations

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
