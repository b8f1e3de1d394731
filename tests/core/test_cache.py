"""Feature cache: content-addressed keys, hits, atomic writes, corruption, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from alignscope.core.cache import FeatureCache, feature_key
from alignscope.core.datasets import load_dataset
from alignscope.core.errors import CacheError
from alignscope.core.models import get_model_spec

pytestmark = pytest.mark.usefixtures("warm_cache_dir")


def test_same_spec_gives_same_key_and_same_bytes(tmp_path):
    dataset = load_dataset("digits", n=60, seed=1)
    first, second = FeatureCache(tmp_path / "a"), FeatureCache(tmp_path / "b")
    _, result_a = first.get_or_extract("digits-cnn-s0", dataset)
    _, result_b = second.get_or_extract("digits-cnn-s0", load_dataset("digits", n=60, seed=1))
    assert result_a.key == result_b.key
    assert first.tensor_path(result_a.key).read_bytes() == second.tensor_path(result_b.key).read_bytes()


def test_key_changes_with_everything_that_changes_the_features():
    spec = get_model_spec("digits-cnn-s0")
    base = load_dataset("digits", n=60, seed=1)
    key = feature_key(spec, base)
    assert key == feature_key(spec, load_dataset("digits", n=60, seed=1))
    assert key != feature_key(spec, load_dataset("digits", n=60, seed=2))
    assert key != feature_key(spec, load_dataset("digits", n=61, seed=1))
    assert key != feature_key(get_model_spec("digits-cnn-s1"), base)
    assert key != feature_key(spec, base, pooling="cls")
    assert key != feature_key(spec, base, layers=["conv1"])
    assert key != feature_key(spec, base, dtype="bfloat16")


def test_second_request_is_a_hit_with_identical_values(cache_dir):
    cache = FeatureCache()
    dataset = load_dataset("digits", n=50)
    computed, miss = cache.get_or_extract("digits-cnn-s1", dataset)
    served, hit = cache.get_or_extract("digits-cnn-s1", dataset)
    assert (miss.hit, hit.hit) == (False, True) and miss.key == hit.key
    for a, b in zip(computed.values, served.values):
        assert torch.equal(a, b)
    assert served.sample_ids == dataset.sample_ids and served.layer_names == computed.layer_names
    sidecar = json.loads(cache.sidecar_path(hit.key).read_text())
    assert sidecar["shapes"][0] == [50, 16] and "torch" in sidecar["packages"]
    assert str(cache.root).startswith(str(cache_dir))


@pytest.mark.parametrize("damage", ["flip", "truncate", "sidecar"])
def test_corrupt_entries_are_detected_never_served_and_recomputed(tmp_path, damage):
    cache = FeatureCache(tmp_path)
    dataset = load_dataset("digits", n=40)
    original, result = cache.get_or_extract("digits-cnn-s0", dataset)
    tensor = cache.tensor_path(result.key)
    if damage == "flip":
        blob = bytearray(tensor.read_bytes())
        blob[-5] ^= 0xFF
        tensor.write_bytes(bytes(blob))
    elif damage == "truncate":
        tensor.write_bytes(tensor.read_bytes()[:100])
    else:
        cache.sidecar_path(result.key).write_text("{not json")
    if damage != "sidecar":
        assert cache.verify()[result.key].startswith("checksum mismatch")
    assert cache.get(result.key) is None
    again, second = cache.get_or_extract("digits-cnn-s0", dataset)
    assert not second.hit
    assert all(torch.equal(a, b) for a, b in zip(original.values, again.values))
    assert cache.verify() == {result.key: "ok"}


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    import alignscope.core.cache as cache_module
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset

    real_replace = os.replace
    def die_after_tensor_file(*args, **kwargs):
        os._exit(17)  # the process dies between writing the tensor file and publishing it
    cache_module.Path.replace = lambda self, target: die_after_tensor_file()
    FeatureCache(sys.argv[1]).get_or_extract("digits-cnn-s0", load_dataset("digits", n=30))
    """
)


def test_a_writer_killed_mid_write_leaves_nothing_that_is_served(tmp_path, warm_cache_dir):
    env = {**os.environ, "ALIGNSCOPE_CACHE_DIR": str(warm_cache_dir)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], env=env, capture_output=True)
    assert proc.returncode == 17, proc.stderr.decode()[-2000:]
    cache = FeatureCache(tmp_path)
    assert cache.keys() == []
    assert list(tmp_path.rglob("*.tmp"))  # the half-written file is there, but nothing points to it
    _, result = cache.get_or_extract("digits-cnn-s0", load_dataset("digits", n=30))
    assert not result.hit and cache.verify() == {result.key: "ok"}


def _race(root: str, counter: str, cache_dir: str) -> str:
    os.environ["ALIGNSCOPE_CACHE_DIR"] = cache_dir
    import alignscope.core.extract as extract_module
    from alignscope.core import cache as cache_module

    real = extract_module.extract_features

    def counting(*args, **kwargs):
        with open(counter, "a") as handle:
            handle.write("x")
        return real(*args, **kwargs)

    cache_module.extract_features = counting
    features, result = FeatureCache(root).get_or_extract("digits-cnn-s2", load_dataset("digits", n=400))
    return result.key + ":" + str(float(features.values[-1].sum()))


def test_two_processes_racing_on_one_key_compute_it_once(tmp_path, warm_cache_dir):
    counter = tmp_path / "extractions.txt"
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        outcomes = pool.starmap(_race, [(str(tmp_path / "c"), str(counter), str(warm_cache_dir))] * 2)
    assert counter.read_text() == "x"
    assert outcomes[0] == outcomes[1]


def test_ls_verify_and_rm(tmp_path):
    cache = FeatureCache(tmp_path)
    _, a = cache.get_or_extract("digits-cnn-s0", load_dataset("digits", n=20))
    _, b = cache.get_or_extract("digits-cnn-s1", load_dataset("digits", n=20))
    assert {e.key for e in cache.entries()} == {a.key, b.key}
    assert {e.model for e in cache.entries()} == {"digits-cnn-s0", "digits-cnn-s1"}
    assert cache.remove(a.key[:6]) == [a.key]
    assert cache.keys() == [b.key] and not cache.tensor_path(a.key).exists()
    with pytest.raises(CacheError):
        cache.remove("zz")
    with pytest.raises(CacheError):
        cache.tensor_path("../../etc/passwd")


def test_non_finite_features_are_refused_and_nothing_is_written(tmp_path):
    from alignscope.core.models import register_torch_module

    class Exploding(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1) / 0.0 * 0.0  # NaN everywhere

    register_torch_module("exploding", Exploding, [""], modality="image")
    with pytest.raises(CacheError, match="NaN"):
        FeatureCache(tmp_path / "features").get_or_extract("exploding", load_dataset("digits", n=10))
    assert FeatureCache(tmp_path / "features").keys() == []
    assert not list(Path(tmp_path / "features").rglob("*.safetensors"))


def test_changing_the_digits_recipe_changes_the_key(monkeypatch):
    from alignscope.core import digits_nets

    spec, dataset = get_model_spec("digits-cnn-s0"), load_dataset("digits", n=30)
    before = feature_key(spec, dataset)
    monkeypatch.setattr(digits_nets, "EPOCHS", digits_nets.EPOCHS + 1)
    assert feature_key(spec, dataset) != before


def test_swapping_local_weights_of_the_same_size_and_mtime_changes_the_key(tmp_path):
    from tiny_models import save_tiny_bert

    from alignscope.core.models import hub_model_spec

    folder = save_tiny_bert(tmp_path / "bert")
    spec = hub_model_spec(str(folder), modality="text")
    dataset = load_dataset("sentences", n=10)
    before = feature_key(spec, dataset)
    weights = folder / "model.safetensors"
    stat = weights.stat()
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0x01
    weights.write_bytes(bytes(blob))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # like `cp -p`
    assert feature_key(spec, dataset) != before


def test_hub_ids_key_on_the_downloaded_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from alignscope.core.models import hub_model_spec

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    spec = hub_model_spec("org/some-model", modality="text")
    dataset = load_dataset("sentences", n=10)
    refs = tmp_path / "models--org--some-model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("aaaa")
    first = feature_key(spec, dataset)
    (refs / "main").write_text("bbbb")  # upstream moved on and was downloaded again
    assert feature_key(spec, dataset) != first


def _fake_hub_download(hub_cache: Path, source_folder: Path, commit: str):
    """What huggingface_hub's snapshot_download leaves behind (no network here): the files in
    ``snapshots/<commit>/`` and ``refs/main`` naming that commit; returns the snapshot folder."""

    def download(repo_id: str, revision: str | None = None, **_: object) -> str:
        repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        for path in source_folder.iterdir():
            (snapshot / path.name).write_bytes(path.read_bytes())
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / (revision or "main")).write_text(commit)
        return str(snapshot)

    return download


def test_a_hub_models_first_extraction_is_stored_under_the_key_later_lookups_compute(tmp_path, monkeypatch, cache_dir):
    """The commit of a hub model is known only once it is downloaded. The first extraction used to be
    keyed before the download (commit unknown) and stored under a key no later lookup computes."""
    import huggingface_hub
    from huggingface_hub import constants
    from tiny_models import save_tiny_bert

    from alignscope.core import sources
    from alignscope.core.models import hub_model_spec

    hub_cache = tmp_path / "hub"
    hub_cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(sources, "check_hub_id", lambda *args, **kwargs: None)  # the hub says: it exists
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        _fake_hub_download(hub_cache, save_tiny_bert(tmp_path / "bert"), "c0ffee" * 6 + "abcd"))  # fmt: skip
    spec = hub_model_spec("org/tiny-bert", modality="text")
    dataset = load_dataset("sentences", n=10)
    before_download = feature_key(spec, dataset)
    features, first = FeatureCache().get_or_extract(spec, dataset)
    assert not first.hit and first.key != before_download
    assert first.key == feature_key(spec, dataset)  # what every later lookup computes
    _, again = FeatureCache().get_or_extract(spec, dataset)
    assert again.hit and again.key == first.key
    assert features.layer_names[0] == "embeddings"
