"""Feature cache: content-addressed keys, hits, atomic writes, corruption, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
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
    # the tensors get the permissions of any file written here (0666 less the umask), as the sidecar does:
    # safetensors wrote them 0600, unreadable to a group sharing the cache (Ray workers on a shared disk)
    mode = cache.tensor_path(hit.key).stat().st_mode & 0o777
    assert mode == cache.sidecar_path(hit.key).stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    monkeypatch.setattr(
        huggingface_hub,
        "snapshot_download",
        _fake_hub_download(hub_cache, save_tiny_bert(tmp_path / "bert"), "c0ffee" * 6 + "abcd"),
    )
    spec = hub_model_spec("org/tiny-bert", modality="text")
    dataset = load_dataset("sentences", n=10)
    before_download = feature_key(spec, dataset)
    features, first = FeatureCache().get_or_extract(spec, dataset)
    assert not first.hit and first.key != before_download
    assert first.key == feature_key(spec, dataset)  # what every later lookup computes
    _, again = FeatureCache().get_or_extract(spec, dataset)
    assert again.hit and again.key == first.key
    assert features.layer_names[0] == "embeddings"


# -- the sidecar is checksummed and validated (issue "Hardening", point 3) ---------------------------------


def _rewrite_sidecar(cache: FeatureCache, key: str, edit, *, forge_checksum: bool = False) -> None:
    """Edit the sidecar of ``key`` as an attacker (or a bad disk) would; ``forge_checksum``: recompute its
    checksum afterwards, so only the structural checks can catch the edit."""
    path = cache.sidecar_path(key)
    sidecar = edit(json.loads(path.read_text()))
    if forge_checksum and isinstance(sidecar, dict):
        from alignscope.core.cache import _sidecar_checksum

        sidecar["sidecar_sha256"] = _sidecar_checksum(sidecar)
    path.write_text(json.dumps(sidecar))


def _duplicate_an_id(s):
    s["sample_ids"][1] = s["sample_ids"][0]
    return s


def _swap_two_ids(s):
    s["sample_ids"][0], s["sample_ids"][1] = s["sample_ids"][1], s["sample_ids"][0]
    return s


def _rename_a_layer(s):
    s["layer_names"][0] = "renamed"
    return s


def _drop_a_layer(s):
    s["layer_names"].pop()
    s["shapes"].pop()
    return s


def _change_a_shape(s):
    s["shapes"][0][1] += 1
    return s


def _strip_the_checksum(s):  # what a format-1 sidecar (written before this change) looks like
    s.pop("sidecar_sha256", None)
    s.pop("sidecar_format", None)
    return s


SIDECAR_EDITS = {
    "duplicated id": _duplicate_an_id,
    "swapped ids": _swap_two_ids,
    "renamed layer": _rename_a_layer,
    "dropped layer": _drop_a_layer,
    "changed shape": _change_a_shape,
    "a list": lambda s: [],
    "a string": lambda s: "features",
    "older format": _strip_the_checksum,
}


@pytest.mark.parametrize("edit", list(SIDECAR_EDITS))
def test_an_edited_sidecar_is_reported_never_served_and_recomputed(tmp_path, edit):
    """Regression (issue "Hardening", point 3). The sidecar had no checksum: a duplicated or swapped sample
    id, a renamed or dropped layer or a changed shape was served and ``verify`` said ok (a duplicated id
    then broke the view with a KeyError); a sidecar holding ``[]`` crashed ``get`` and ``verify`` with
    AttributeError. Now every one is reported, removed and recomputed to the original values."""
    cache = FeatureCache(tmp_path)
    dataset = load_dataset("digits", n=40)
    original, first = cache.get_or_extract("digits-cnn-s0", dataset)
    _rewrite_sidecar(cache, first.key, SIDECAR_EDITS[edit])
    assert cache.verify()[first.key] != "ok"
    assert first.key in {entry.key for entry in cache.entries()}  # listed, not a crash
    assert cache.read_sidecar(first.key) is None  # what plans read: "not cached"
    assert cache.get(first.key) is None
    assert not cache.sidecar_path(first.key).exists() and not cache.tensor_path(first.key).exists()
    again, second = cache.get_or_extract("digits-cnn-s0", dataset)
    assert not second.hit and second.key == first.key  # same key: CACHE_FORMAT did not change
    assert again.sample_ids == dataset.sample_ids and again.layer_names == original.layer_names
    assert all(torch.equal(a, b) for a, b in zip(original.values, again.values))
    assert cache.verify() == {first.key: "ok"}


@pytest.mark.parametrize("edit", ["duplicated id", "dropped layer", "changed shape", "swapped ids"])
def test_a_sidecar_with_a_forged_checksum_is_still_checked_against_its_tensors_and_samples(tmp_path, edit):
    """Regression (point 3): even with its checksum recomputed, a sidecar must be well formed (unique ids),
    match the tensor file (layer count, shapes) and name the samples the key was computed from."""
    cache = FeatureCache(tmp_path)
    dataset = load_dataset("digits", n=40)
    original, first = cache.get_or_extract("digits-cnn-s0", dataset)
    _rewrite_sidecar(cache, first.key, SIDECAR_EDITS[edit], forge_checksum=True)
    if edit != "swapped ids":  # well formed and matching its tensors; only the request can tell
        assert cache.verify()[first.key] != "ok" and cache.get(first.key) is None
    served, second = cache.get_or_extract("digits-cnn-s0", dataset)
    assert not second.hit and served.sample_ids == dataset.sample_ids
    assert all(torch.equal(a, b) for a, b in zip(original.values, served.values))
    assert cache.get(first.key).sample_ids == dataset.sample_ids


def test_features_with_repeated_sample_ids_are_refused_before_anything_is_written(tmp_path):
    """An entry the reader would refuse must not be written (it would be recomputed on every use)."""
    from alignscope.core.extract import Features

    dataset = load_dataset("digits", n=5)
    features = Features("digits-cnn-s0", "digits", ("a",), (torch.ones(3, 2),), ("x", "y", "x"))
    cache = FeatureCache(tmp_path / "features")
    with pytest.raises(CacheError, match="lists sample id 'x' more than once"):
        cache.put("ab" * 16, features, model_spec=get_model_spec("digits-cnn-s0"), dataset=dataset)
    assert not [p for p in cache.root.rglob("*") if p.is_file()]


# -- killed writers: leftovers shown, listed and collected (point 5) ----------------------------------------

_BLOCKED_WRITER = textwrap.dedent(
    """
    import os, sys, threading
    import alignscope.core.cache as cache_module
    from alignscope.core.cache import FeatureCache
    from alignscope.core.datasets import load_dataset

    def wait_to_be_killed(*args, **kwargs):
        threading.Event().wait()

    if sys.argv[1] == "tensor":
        os.fsync = wait_to_be_killed  # the tensor file's temp file is written, not yet renamed into place
    else:
        cache_module.atomic_write_bytes = wait_to_be_killed  # the tensor file is in place, its sidecar not
    FeatureCache().get_or_extract("digits-cnn-s1", load_dataset("digits", n=int(sys.argv[2])))
    """
)


def _start_writer(stage: str, n: int, cache_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "ALIGNSCOPE_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen([sys.executable, "-c", _BLOCKED_WRITER, stage, str(n)], env=env, stderr=subprocess.PIPE)


def _wait_for(find, writer: subprocess.Popen, deadline_s: float = 180.0):
    """Poll (no fixed sleep) until ``find()`` returns something, while the writer still runs."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        if writer.poll() is not None:
            pytest.fail(f"the writer exited ({writer.returncode}): {writer.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    pytest.fail("the writer did not reach the write in time")


def _kill(writer: subprocess.Popen) -> None:
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stderr.close()


def _temp_files(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.tmp"))


def test_killed_writers_leave_leftovers_that_ls_shows_verify_lists_and_gc_removes(warm_cache_dir, capsys):
    """Regression (issue "Hardening", point 5). Writers killed (SIGKILL) mid-write left temp files (sixteen
    kills: 686 MiB on disk for one 137 MiB entry) and a tensor file renamed without its sidecar;
    ``cache ls | verify | rm`` neither showed nor removed them, and ``ls`` counted tensor files only. Now a
    new write sweeps a dead writer's temp file, ``ls`` adds a line for leftovers and counts sidecars,
    ``verify`` lists them (exit 1), and ``gc`` removes them, never a complete entry or a live writer's file."""
    from filelock import FileLock

    from alignscope.core.cli import main

    cache = FeatureCache()
    _, kept = cache.get_or_extract("digits-cnn-s0", load_dataset("digits", n=40))
    (kept_entry,) = cache.entries()
    assert kept_entry.bytes == cache.tensor_path(kept.key).stat().st_size + cache.sidecar_path(kept.key).stat().st_size

    for _ in range(2):  # killed while writing the tensor file, twice, on one key
        writer = _start_writer("tensor", 300, warm_cache_dir)
        _wait_for(lambda: _temp_files(cache.root), writer)
        _kill(writer)
    assert len(_temp_files(cache.root)) == 1  # the second writer swept the first one's temp file
    writer = _start_writer("sidecar", 200, warm_cache_dir)  # killed between the tensor file and its sidecar
    orphan_key = _wait_for(cache._orphan_tensor_keys, writer)[0]
    _kill(writer)
    live = _start_writer("tensor", 500, warm_cache_dir)  # still writing while gc runs: must be left alone
    try:
        (live_tmp,) = _wait_for(lambda: [p for p in _temp_files(cache.root) if str(live.pid) in p.name], live)
        stale_lock = cache.settings.results_dir / ".locks" / f"{'c' * 32}.lock"
        stale_lock.parent.mkdir(parents=True)
        stale_lock.touch()
        held_lock = FileLock(str(stale_lock.with_name(f"{'d' * 32}.lock")))
        held_lock.acquire()
        dead = [p for p in _temp_files(cache.root) if p != live_tmp] + [cache.tensor_path(orphan_key)]
        dead_bytes = sum(p.stat().st_size for p in dead)

        capsys.readouterr()
        assert main(["cache", "ls"]) == 0
        out = capsys.readouterr().out
        assert f"1 entries, {kept_entry.bytes / 2**20:.1f} MiB" in out
        assert f"plus 2 leftover files, {dead_bytes / 2**20:.1f} MiB" in out and "cache gc" in out
        assert main(["cache", "verify"]) == 1
        out = capsys.readouterr().out
        assert f"{kept.key}  ok" in out and f"{orphan_key}  tensor file without its sidecar" in out
        assert f"{dead[0].name}  temp file of a writer that died" in out and live_tmp.name not in out
        assert main(["cache", "gc"]) == 0
        out = capsys.readouterr().out
        assert f"freed {dead_bytes / 2**20:.1f} MiB ({dead_bytes} bytes)" in out
        assert not any(p.exists() for p in dead) and not stale_lock.exists()
        assert live_tmp.exists() and held_lock.is_locked and Path(held_lock.lock_file).exists()
        assert cache.get(kept.key) is not None
        held_lock.release()
    finally:
        _kill(live)
    assert main(["cache", "gc"]) == 0 and not _temp_files(cache.root)
    capsys.readouterr()
    assert main(["cache", "verify"]) == 0 and "0 bad" in capsys.readouterr().out
    assert cache.keys() == [kept.key]


def test_gc_leaves_an_orphan_alone_while_its_writer_holds_the_lock(tmp_path):
    """Between its two renames a live writer's tensor file has no sidecar yet; its lock says it is busy."""
    from filelock import FileLock

    cache = FeatureCache(tmp_path)
    _, result = cache.get_or_extract("digits-cnn-s0", load_dataset("digits", n=20))
    orphan = "ef" * 16
    cache.tensor_path(orphan).parent.mkdir(parents=True, exist_ok=True)
    cache.tensor_path(orphan).write_bytes(cache.tensor_path(result.key).read_bytes())
    with FileLock(str(cache._lock_path(orphan))):
        assert cache.leftovers() == [] and cache.tensor_path(orphan).exists()
        removed = cache.gc()  # the unused lock of the complete entry only
        assert [item.what for item in removed] == ["lock file nobody holds"] and cache.tensor_path(orphan).exists()
    (leftover,) = cache.leftovers()
    assert (leftover.key, leftover.name) == (orphan, f"ef/{orphan}.safetensors")
    assert cache.remove(orphan[:6]) == [orphan] and not cache.tensor_path(orphan).exists()  # rm finds it too
    assert cache.verify() == {result.key: "ok"}


# -- a full disk (point 6) ---------------------------------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 1 MiB file system (tmpfs; needs the right to mount, as root in a container)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()} (the simulated test still runs)")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _free_bytes(path: Path) -> int:
    import shutil

    return shutil.disk_usage(path).free


@pytest.mark.parametrize("found", ["before writing", "while writing the tensor", "while writing the sidecar"])
def test_a_full_disk_is_one_clear_error_and_leaves_nothing_behind(
    small_filesystem, trained_models_dir, monkeypatch, capsys, found
):
    """Regression (issue "Hardening", point 6), on a real full file system. A full disk used to give
    "unexpected OSError/SafetensorError" with exit code 1 and leave a partial temp file and an orphaned
    tensor file. Now: "no space left in <cache dir>, needed ~X MB", exit code 2, nothing left behind, and
    the entry already there intact. ``before writing``: refused from the free space; the two others find
    the full disk while writing (the free-space check is skipped; for the sidecar the disk is filled so
    that exactly the tensor file fits)."""
    from alignscope.core import cache as cache_module
    from alignscope.core.cli import main
    from alignscope.core.devices import effective_dtype
    from alignscope.core.settings import get_settings

    cache_dir = small_filesystem / "cache"
    (cache_dir / "models").mkdir(parents=True)
    for path in trained_models_dir.glob("digits-cnn-*-seed0.*"):
        if path.suffix in (".safetensors", ".json"):
            (cache_dir / "models" / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("ALIGNSCOPE_CACHE_DIR", str(cache_dir))
    get_settings.cache_clear()
    assert main(["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", "30"]) == 0
    cache = FeatureCache()
    (kept,) = cache.keys()
    n = 1797
    if found != "before writing":
        monkeypatch.setattr(cache_module, "check_free_space", lambda folder, needed: None, raising=False)
    if found == "while writing the sidecar":
        n = 200  # tensor file: 200 x 186 float32 + header, in 37 pages of 4 KiB; its sidecar needs 2 more
        spec, dataset = get_model_spec("digits-cnn-s0"), load_dataset("digits", n=n)
        key = feature_key(spec, dataset, dtype=effective_dtype(spec.dtype, get_settings().device))
        cache.tensor_path(key).parent.mkdir(exist_ok=True)
        (cache_dir / "filler").write_bytes(b"\0" * (_free_bytes(cache_dir) - 37 * 4096))
    capsys.readouterr()
    assert main(["extract", "--model", "digits-cnn-s0", "--dataset", "digits", "--n", str(n)]) == 2
    err = capsys.readouterr().err.strip().split("\r")[-1].splitlines()[-1]
    assert err.startswith(f"error: no space left in {cache.root} (") and "Traceback" not in err
    assert re.search(r"needed ~\d+\.\d MB; nothing was written$", err), err
    assert not _temp_files(cache_dir) and cache.leftovers() == []
    assert sorted(p.name for p in cache.root.rglob("*.safetensors")) == [f"{kept}.safetensors"]
    assert cache.verify() == {
        kept: "ok",
        **{f"models/{p.name}": "ok" for p in (cache_dir / "models").glob("*.safetensors")},
    }


def test_a_disk_that_fills_while_the_sidecar_is_written_leaves_no_orphan(tmp_path, monkeypatch):
    """Point 6, simulated for machines that cannot mount a small file system: ``os.fsync`` lets the tensor
    file through and reports ENOSPC for the sidecar (as delayed allocation does). The tensor file used to
    stay behind without its sidecar, and the error was a bare OSError."""
    import errno

    real_fsync, calls = os.fsync, []

    def full_on_second_call(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    cache = FeatureCache(tmp_path / "features")
    dataset = load_dataset("digits", n=30)
    monkeypatch.setattr(os, "fsync", full_on_second_call)
    with pytest.raises(CacheError) as raised:  # a NoSpaceError; it used to be a bare OSError
        cache.get_or_extract("digits-cnn-s0", dataset)
    monkeypatch.undo()
    assert len(calls) == 2 and str(tmp_path) not in str(raised.value) and "no space left" in str(raised.value)
    assert raised.value.with_folder().startswith(f"no space left in {cache.root}")
    assert not [p for p in cache.root.rglob("*") if p.is_file() and ".locks" not in p.parts]
    _, again = cache.get_or_extract("digits-cnn-s0", dataset)
    assert not again.hit and cache.verify() == {again.key: "ok"}


def test_a_sidecars_layout_is_parsed_once_per_version_of_the_file(tmp_path, monkeypatch):
    """Plans read an entry's layers from its sidecar several times per page run; at 100,000 samples each
    read parsed and checked ~0.2 s of JSON. The layout is remembered per version of the file (a rename
    into place, or an edit, is a new version): read again then, and an edited sidecar is not cached."""
    from alignscope.core import cache as cache_module

    cache = FeatureCache(tmp_path)
    features, first = cache.get_or_extract("digits-cnn-s0", load_dataset("digits", n=40))
    parses = []
    original = cache_module._load_json
    monkeypatch.setattr(cache_module, "_load_json", lambda path: parses.append(path) or original(path))
    layouts = [cache.layout(first.key) for _ in range(5)]
    assert len(parses) == 1 and all(layout == layouts[0] for layout in layouts)
    assert layouts[0].layer_names == features.layer_names
    assert layouts[0].widths == tuple(int(values.shape[1]) for values in features.values)
    _rewrite_sidecar(cache, first.key, lambda s: {**s, "layer_names": s["layer_names"][::-1]})
    assert cache.layout(first.key) is None and len(parses) == 2  # the edit broke its checksum
    cache.sidecar_path(first.key).unlink()
    assert cache.layout(first.key) is None
    again, second = cache.get_or_extract("digits-cnn-s0", load_dataset("digits", n=40))
    assert not second.hit and cache.layout(first.key) == layouts[0] and len(parses) == 3
