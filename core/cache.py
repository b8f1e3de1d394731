"""Content-addressed on-disk feature cache.

The key is a hash of everything that determines the features: the model spec (with its revision and
a fingerprint of local weights), the dataset spec (with its revision), the sample ids, the text
inputs, the layers, pooling, effective dtype and :data:`core.extract.EXTRACT_VERSION`. An entry is
``<key>.safetensors`` (one tensor per layer) plus ``<key>.json`` (spec, shapes, sample ids, sha256 of
the tensor file, package versions, timestamps, and a sha256 of the sidecar's own content). The sidecar
is written last, so it marks a complete entry; both files are written to a temp file in the same folder
and renamed into place, under a per-key file lock, so two processes asking for one key compute it once.

An entry is served only when both checksums match and the sidecar is well formed (unique string sample
ids, one shape per layer, every tensor of the shape its sidecar states); anything else is removed and
recomputed. Sidecars of format 1 (no checksum of their own) cannot be vouched for, so they are recomputed
once under the same key (the key did not change: :data:`CACHE_FORMAT` is still 1).

A writer killed mid-write leaves a temp file or a tensor without its sidecar; :meth:`FeatureCache.leftovers`
finds them (``cache ls`` and ``cache verify`` show them) and :meth:`FeatureCache.gc` removes them, with the
unused lock files. A full disk is a :class:`~alignscope.core.files.NoSpaceError` and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from alignscope.core.datasets import Dataset
from alignscope.core.devices import effective_dtype
from alignscope.core.digits_nets import verify_trained_weights
from alignscope.core.errors import CacheError
from alignscope.core.extract import EXTRACT_VERSION, Features, ProgressCallback, extract_features, record_parameters
from alignscope.core.files import (
    NoSpaceError,
    atomic_write_bytes,
    check_free_space,
    disk_bytes,
    is_disk_full,
    permissions_as_created,
    remove_quietly,
    sha256_file,
    stale_temp_files,
    temp_path,
)
from alignscope.core.memo import Lru
from alignscope.core.models import ModelSpec, get_model_spec, load_model
from alignscope.core.settings import Settings, get_settings
from alignscope.core.sources import needs_download
from alignscope.core.versions import versions_of

CACHE_FORMAT = 1  # part of every key: bump when the features stored under a key change
SIDECAR_FORMAT = 2  # 2: the sidecar carries a sha256 of its own content; older sidecars are recomputed
_KEY_LENGTH = 32
_HEX = frozenset("0123456789abcdef")
LOCK_TIMEOUT_SECONDS = 3600.0  # longer than any extraction we expect; then a clear error, not a hang
_SIDECAR_SLACK_BYTES = 64 * 1024  # besides the sample ids: specs, versions, JSON punctuation


def _json_default(value):
    return sorted(value) if isinstance(value, (set, frozenset)) else str(value)


def feature_key(
    spec: ModelSpec,
    dataset: Dataset,
    *,
    layers: str | Sequence[int | str] = "all",
    pooling: str | None = None,
    dtype: str = "float32",
) -> str:
    """A stable hex key for (model, dataset samples, layers, pooling, dtype); no time or ``id()`` in it."""
    texts_digest = (
        hashlib.sha256("\x1e".join(dataset.texts_at(spec.text_index)).encode()).hexdigest()
        if dataset.texts is not None and spec.modality == "text"
        else None
    )
    payload = {
        "format": CACHE_FORMAT,
        "extract_version": EXTRACT_VERSION,
        "model": spec.fingerprint(),
        "dataset": dataset.spec.fingerprint(),
        "sample_ids": dataset.ids_digest(),
        "texts": texts_digest,
        "layers": layers if isinstance(layers, str) else [str(x) for x in layers],
        "pooling": pooling or spec.pooling,
        "dtype": dtype,
    }
    blob = json.dumps(payload, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:_KEY_LENGTH]


def _is_key(text: str) -> bool:
    return len(text) == _KEY_LENGTH and set(text) <= _HEX


def _sidecar_checksum(sidecar: dict) -> str:
    """sha256 of the sidecar's content without its own checksum field (canonical JSON)."""
    body = {k: v for k, v in sidecar.items() if k != "sidecar_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def sidecar_problem(key: str, sidecar: Any) -> str | None:
    """Why ``sidecar`` (parsed JSON) cannot describe entry ``key``, or None when it is well formed and its
    own checksum matches. Cheap: never opens the tensor file."""
    if not isinstance(sidecar, dict):
        return f"sidecar is not a JSON object ({type(sidecar).__name__})"
    if "sidecar_sha256" not in sidecar:
        return "written by an older version (its sidecar has no checksum); recomputed on next use"
    if sidecar.get("sidecar_sha256") != _sidecar_checksum(sidecar):
        return "sidecar checksum mismatch (the sidecar was edited or damaged)"
    if sidecar.get("sidecar_format") != SIDECAR_FORMAT or sidecar.get("key") != key:
        return "sidecar of another format or another key"
    return _content_problem(sidecar)


def _content_problem(sidecar: dict) -> str | None:
    names, shapes, ids = sidecar.get("layer_names"), sidecar.get("shapes"), sidecar.get("sample_ids")
    if not (isinstance(names, list) and names and all(isinstance(name, str) for name in names)):
        return "sidecar layer names are missing or not strings"
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        return "sidecar sample ids are missing or not strings"
    if len(set(ids)) != len(ids):
        return f"sidecar lists {len(ids) - len(set(ids))} sample ids more than once"
    if not isinstance(shapes, list) or len(shapes) != len(names):
        return f"sidecar has {len(shapes) if isinstance(shapes, list) else 'no'} shapes for {len(names)} layers"
    for name, shape in zip(names, shapes):
        if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(d) for d in shape)):
            return f"sidecar shape of layer {name!r} is not [samples, features]"
        if shape[0] != len(ids):
            return f"layer {name!r} has {shape[0]} rows for {len(ids)} sample ids"
    for field in ("model_name", "dataset_name", "sha256", "created"):
        if not isinstance(sidecar.get(field), str):
            return f"sidecar field {field!r} is missing or not a string"
    if not isinstance(sidecar.get("meta", {}), dict):
        return "sidecar field 'meta' is not an object"
    return None


def _tensor_problem(sidecar: dict, shapes: dict[str, list[int]]) -> str | None:
    """Why the tensors (name -> shape) do not match what ``sidecar`` states, or None."""
    expected = {f"layer_{i:03d}": list(shape) for i, shape in enumerate(sidecar["shapes"])}
    if set(shapes) != set(expected):
        return f"tensor file holds {len(shapes)} layers, its sidecar {len(expected)}"
    for name, shape in expected.items():
        if shapes[name] != shape:
            return f"tensor {name} has shape {shapes[name]}, its sidecar says {shape}"
    return None


@dataclass(frozen=True)
class EntryLayout:
    """What a well-formed sidecar says of its entry's layers: names and widths (features per sample)."""

    layer_names: tuple[str, ...]
    widths: tuple[int, ...]


# Layouts of sidecars already parsed and checked, by file version (path, inode, size, mtime, ctime). A
# page run plans its features several times, and a sidecar of 100,000 samples takes ~0.2 s to parse and
# check; a replaced sidecar (writers rename a new file into place) is another version and read again. Only
# plans read this: FeatureCache.get checks both checksums before serving anything.
_LAYOUTS: Lru[EntryLayout | None] = Lru(capacity=512)


@dataclass(frozen=True)
class CacheResult:
    """How a :meth:`FeatureCache.get_or_extract` call was served."""

    key: str
    hit: bool
    seconds: float


@dataclass(frozen=True)
class CacheEntry:
    """One entry as ``cache ls`` lists it; ``bytes`` is its disk use (tensor file + sidecar)."""

    key: str
    model: str
    dataset: str
    n_samples: int
    n_layers: int
    bytes: int
    created: str


UNUSED_LOCK = "lock file nobody holds"


@dataclass(frozen=True)
class Leftover:
    """A file no complete entry accounts for: a dead writer's temp file, an orphaned half of an entry, or
    (found by :meth:`FeatureCache.gc` only) an unused lock file.

    Attributes:
        path: where it is.
        name: ``path`` relative to the cache folder (what the CLI and the dashboard show).
        what: why it is a leftover, in words.
        bytes: its size.
        key: the cache key of an orphaned tensor file or sidecar, else None.
    """

    path: Path
    name: str
    what: str
    bytes: int
    key: str | None = None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    except OSError:
        return None


def _lock_is_held(path: Path) -> bool:
    """Whether some process holds the file lock at ``path`` right now (never waits)."""
    if not path.exists():
        return False
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        return True  # cannot tell: leave it alone
    lock.release()
    return False


def _remove_lock_if_unused(path: Path) -> bool:
    """Delete the lock file at ``path`` if nobody holds it; a process that opened it meanwhile notices that
    its inode was unlinked and opens a new one (filelock checks), so no two processes ever hold one key."""
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except (Timeout, OSError):
        return False
    try:
        path.unlink(missing_ok=True)
    finally:
        lock.release()
    return True


class FeatureCache:
    """Features on disk under ``root`` (default: ``<cache_dir>/features``).

    The default cache also looks after the rest of the cache folder: :meth:`verify` checks the trained
    digits nets' weights (``models/...``) and :meth:`leftovers` / :meth:`gc` cover the result store,
    the trained weights and the uploads too. A cache with another ``root`` keeps to that folder.
    """

    def __init__(self, root: Path | str | None = None, settings: Settings | None = None):
        settings = settings or get_settings()
        self.root = Path(root) if root is not None else settings.features_dir
        self.settings = settings
        self.owns_cache_dir = root is None or self.root == settings.features_dir

    # -- paths ---------------------------------------------------------------------------------------

    def _check_key(self, key: str) -> str:
        if not (isinstance(key, str) and _is_key(key)):
            raise CacheError(f"{key!r} is not a cache key ({_KEY_LENGTH} hex digits)")
        return key

    def tensor_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{self._check_key(key)}.safetensors"

    def sidecar_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{self._check_key(key)}.json"

    def _lock_path(self, key: str) -> Path:
        return self.root / ".locks" / f"{key}.lock"

    def _lock(self, key: str) -> FileLock:
        try:
            (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            if is_disk_full(error):
                raise NoSpaceError(self.root, 4096) from error
            raise
        return FileLock(str(self._lock_path(key)), timeout=LOCK_TIMEOUT_SECONDS)

    def _base(self) -> Path:
        """The folder leftovers are named relative to: the cache folder, or ``root`` for another root."""
        return self.settings.cache_dir if self.owns_cache_dir else self.root

    # -- read / write --------------------------------------------------------------------------------

    def read_sidecar(self, key: str) -> dict | None:
        """The sidecar of ``key`` if it is well formed and its checksum matches, else None (cheap)."""
        sidecar = _load_json(self.sidecar_path(key))
        return sidecar if sidecar_problem(key, sidecar) is None else None

    def layout(self, key: str) -> EntryLayout | None:
        """:meth:`read_sidecar`'s layer names and widths, parsed once per version of the sidecar file;
        None when there is no well-formed sidecar."""
        path = self.sidecar_path(key)
        try:
            stat = path.stat()
        except OSError:
            return None
        version = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

        def read() -> EntryLayout | None:
            sidecar = self.read_sidecar(key)
            if sidecar is None:
                return None
            return EntryLayout(tuple(sidecar["layer_names"]), tuple(shape[1] for shape in sidecar["shapes"]))

        return _LAYOUTS.get(version, read)

    def get(self, key: str) -> Features | None:
        """The entry for ``key`` if complete and intact; a damaged one is removed and ``None`` returned."""
        return self._read(key, on_corrupt=self._discard_if_still_corrupt)

    def _get_unlocked(self, key: str) -> Features | None:
        """:meth:`get` for a caller that already holds the key's lock."""
        return self._read(key, on_corrupt=self._discard)

    def _read(self, key: str, on_corrupt: Callable[[str], None]) -> Features | None:
        sidecar_path, tensor_path = self.sidecar_path(key), self.tensor_path(key)
        if not sidecar_path.exists() or not tensor_path.exists():
            return None  # absent, or a writer is between its two renames (or died there: gc)
        sidecar = _load_json(sidecar_path)
        if sidecar is None and not sidecar_path.exists():
            return None  # a writer replacing it removed it a moment ago
        try:
            intact = sidecar_problem(key, sidecar) is None and sha256_file(tensor_path) == sidecar["sha256"]
        except OSError:
            return None  # removed (rm, gc) since it was found
        if not intact:
            on_corrupt(key)
            return None
        try:
            tensors = load_file(tensor_path)
            if _tensor_problem(sidecar, {name: list(t.shape) for name, t in tensors.items()}) is not None:
                raise ValueError("tensors do not match the sidecar")
            names = sidecar["layer_names"]
            return Features(
                model=sidecar["model_name"],
                dataset=sidecar["dataset_name"],
                layer_names=tuple(names),
                values=tuple(tensors[f"layer_{i:03d}"] for i in range(len(names))),
                sample_ids=tuple(sidecar["sample_ids"]),
                meta={"cache_key": key, **sidecar.get("meta", {})},
            )
        except (SafetensorError, KeyError, ValueError, OSError):
            on_corrupt(key)
            return None

    def problem(self, key: str) -> str | None:
        """Why entry ``key`` would not be served, or None when it is intact (hashes the tensor file, reads
        only its header)."""
        sidecar = _load_json(self.sidecar_path(key))
        if sidecar is None:
            return "sidecar unreadable"
        problem = sidecar_problem(key, sidecar)
        if problem is not None:
            return problem
        tensor = self.tensor_path(key)
        if not tensor.exists():
            return "tensor file missing (an orphaned sidecar; `alignscope cache gc` removes it)"
        try:
            if sha256_file(tensor) != sidecar["sha256"]:
                return "checksum mismatch (corrupt or truncated)"
            with safe_open(str(tensor), framework="pt") as handle:
                shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
        except (SafetensorError, OSError, ValueError) as error:
            return f"tensor file unreadable ({type(error).__name__})"
        return _tensor_problem(sidecar, shapes)

    def put(self, key: str, features: Features, *, model_spec: ModelSpec, dataset: Dataset) -> None:
        """Store ``features`` atomically: tensor file first, then the sidecar that marks it complete.

        Raises:
            NoSpaceError: the disk is full; nothing of the entry is left behind.
            CacheError: the features cannot be described by a valid sidecar (e.g. repeated sample ids).
        """
        _check_unique_ids(features.dataset, features.sample_ids)
        tensor_path, sidecar_path = self.tensor_path(key), self.sidecar_path(key)
        folder = tensor_path.parent
        tensors = {f"layer_{i:03d}": v.contiguous() for i, v in enumerate(features.values)}
        needed = sum(t.numel() * t.element_size() for t in tensors.values())
        needed += 2 * sum(len(i) + 4 for i in features.sample_ids) + _SIDECAR_SLACK_BYTES
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            if is_disk_full(error):
                raise NoSpaceError(self.root, needed) from error
            raise
        for leftover in stale_temp_files(folder):
            remove_quietly(leftover)
        check_free_space(self.root, needed)
        # The old sidecar no longer describes what is about to be written; without it, a crash between the
        # two renames leaves an orphaned tensor file (never served, removed by gc), not a mismatched pair.
        sidecar_path.unlink(missing_ok=True)
        tmp = temp_path(tensor_path)
        try:
            # One metadata entry only: safetensors writes a hash map, so several keys come out in a random
            # order and the same features would not give the same bytes.
            save_file(tensors, str(tmp), metadata={"alignscope": f"format={CACHE_FORMAT};key={key}"})
            permissions_as_created(tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            checksum = sha256_file(tmp)
            tmp.replace(tensor_path)
            sidecar = self._sidecar(key, features, model_spec, dataset, checksum, tensor_path.stat().st_size)
            atomic_write_bytes(sidecar_path, json.dumps(sidecar, indent=1).encode())
        except BaseException as error:  # a full disk, a bad sidecar, Ctrl+C: never half an entry
            remove_quietly(tensor_path)
            remove_quietly(sidecar_path)
            if is_disk_full(error) and not isinstance(error, NoSpaceError):
                raise NoSpaceError(self.root, needed) from error
            if isinstance(error, NoSpaceError):
                raise NoSpaceError(self.root, needed) from error.__cause__
            raise
        finally:
            remove_quietly(tmp)
        seconds = features.meta.get("seconds")
        if seconds and features.n_samples:
            self._record_throughput(features.model, float(seconds) / features.n_samples)

    def _sidecar(
        self, key: str, features: Features, model_spec: ModelSpec, dataset: Dataset, checksum: str, size: int
    ) -> dict:
        sidecar = {
            "key": key,
            "format": CACHE_FORMAT,
            "sidecar_format": SIDECAR_FORMAT,
            "model_name": features.model,
            "dataset_name": features.dataset,
            "model_spec": model_spec.fingerprint(),
            "dataset_spec": dataset.spec.fingerprint(),
            "layer_names": list(features.layer_names),
            "shapes": [list(v.shape) for v in features.values],
            "sample_ids": list(features.sample_ids),
            "sha256": checksum,
            "bytes": size,
            "packages": versions_of("alignscope", "torch", "transformers", "safetensors", "numpy"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "meta": {k: v for k, v in features.meta.items() if k != "cache_key"},
        }
        sidecar = json.loads(json.dumps(sidecar, default=_json_default))  # exactly what a reader will parse
        sidecar["sidecar_sha256"] = _sidecar_checksum(sidecar)
        problem = sidecar_problem(key, sidecar)
        if problem is not None:  # it would never be served, and be recomputed on every use
            raise CacheError(f"features of {features.model!r} cannot be cached ({problem}); nothing was cached")
        return sidecar

    # -- throughput: seconds per sample of each model on this machine (extraction estimates) ---------

    def _throughput_path(self) -> Path:
        return self.root / "throughput.json"

    def _record_throughput(self, model: str, seconds_per_sample: float) -> None:
        path = self._throughput_path()
        try:
            with FileLock(str(path) + ".lock", timeout=30):
                rates = self._read_throughput()
                rates[model] = seconds_per_sample
                atomic_write_bytes(path, json.dumps(rates, indent=1, sort_keys=True).encode())
        except (OSError, Timeout):  # a full disk or a busy lock: the entry is stored, the estimate can wait
            pass

    def _read_throughput(self) -> dict[str, float]:
        try:
            rates = json.loads(self._throughput_path().read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(rates, dict):
            return {}
        return {str(k): float(v) for k, v in rates.items() if isinstance(v, (int, float))}

    def throughput(self, model: str) -> float | None:
        """Seconds per sample of the last extraction of ``model`` here (one small file read), or None."""
        return self._read_throughput().get(model)

    def throughputs(self) -> dict[str, float]:
        """:meth:`throughput` of every model extracted here, by name (one small file read)."""
        return dict(self._read_throughput())

    def _discard_if_still_corrupt(self, key: str) -> None:
        """Remove a bad entry under its lock, unless a writer replaced it with a good one meanwhile."""
        with self._lock(key):
            if self.problem(key) is None:
                return
            self._discard(key)

    def _discard(self, key: str) -> None:
        for path in (self.sidecar_path(key), self.tensor_path(key)):
            path.unlink(missing_ok=True)

    def get_or_extract(
        self,
        model: ModelSpec | str,
        dataset: Dataset,
        *,
        layers: str | Sequence[int | str] = "all",
        pooling: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
        dtype: str | None = None,
        progress: ProgressCallback | None = None,
        encoder=None,
    ) -> tuple[Features, CacheResult]:
        """Features from the cache, or extracted once (under the key's lock) and stored.

        ``encoder``: an already loaded model for ``model`` (the dashboard keeps them in memory).
        """
        spec = get_model_spec(model) if isinstance(model, str) else model
        device = device or self.settings.device
        if encoder is None and needs_download(spec):
            # A hub model's content (its commit) is known only once it is in the local hub cache: load it
            # first, so its features are stored under the key that every later lookup computes.
            encoder = load_model(spec, device=device, dtype=dtype)
        dtype_name = effective_dtype(dtype or spec.dtype, device)
        key = feature_key(spec, dataset, layers=layers, pooling=pooling, dtype=dtype_name)
        started = time.perf_counter()
        cached = self.get(key)
        if cached is not None and cached.sample_ids == dataset.sample_ids:
            return cached, CacheResult(key, True, time.perf_counter() - started)
        try:
            lock = self._lock(key).acquire()
        except Timeout as exc:
            raise CacheError(
                f"another process has held the lock of cache entry {key} for over {LOCK_TIMEOUT_SECONDS:.0f} s; "
                "is another extraction of it still running?"
            ) from exc
        with lock:
            cached = self._get_unlocked(key)  # another process may have finished it while we waited
            # The key hashes the sample ids, so an entry for other samples is damaged: recompute it.
            if cached is not None and cached.sample_ids == dataset.sample_ids:
                return cached, CacheResult(key, True, time.perf_counter() - started)
            _check_unique_ids(dataset.spec.name, dataset.sample_ids)  # before spending the extraction
            features = extract_features(
                encoder if encoder is not None else spec,
                dataset,
                layers=layers,
                pooling=pooling or spec.pooling,
                batch_size=batch_size,
                device=device,
                dtype=dtype,
                progress=progress,
            )
            features = Features(
                spec.name,
                features.dataset,
                features.layer_names,
                features.values,
                features.sample_ids,
                {**features.meta, "cache_key": key},
            )
            _check_finite(features)
            self.put(key, features, model_spec=spec, dataset=dataset)
        record_parameters(features)  # after publishing: a failure here never costs the extraction
        return features, CacheResult(key, False, time.perf_counter() - started)

    # -- management ----------------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """Keys of the entries that have a sidecar (complete, or damaged: see :meth:`verify`)."""
        if not self.root.exists():
            return []
        return sorted(p.stem for p in self.root.glob("??/*.json") if _is_key(p.stem))

    def _orphan_tensor_keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            p.stem
            for p in self.root.glob("??/*.safetensors")
            if _is_key(p.stem) and not p.with_suffix(".json").exists()
        )

    def entries(self) -> list[CacheEntry]:
        out = []
        for key in self.keys():
            sidecar = _load_json(self.sidecar_path(key))
            sidecar = sidecar if isinstance(sidecar, dict) else {}
            ids, shapes = sidecar.get("sample_ids"), sidecar.get("shapes")
            out.append(
                CacheEntry(
                    key=key,
                    model=str(sidecar.get("model_name", "?")),
                    dataset=str(sidecar.get("dataset_name", "?")),
                    n_samples=len(ids) if isinstance(ids, list) else 0,
                    n_layers=len(shapes) if isinstance(shapes, list) else 0,
                    bytes=disk_bytes(self.tensor_path(key)) + disk_bytes(self.sidecar_path(key)),
                    created=str(sidecar.get("created", "?")),
                )
            )
        return out

    def _housekeeping_roots(self) -> list[Path]:
        if not self.owns_cache_dir:
            return [self.root]
        settings = self.settings
        return [self.root, settings.results_dir, settings.models_dir, settings.uploads_dir]

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self._base()).as_posix()
        except ValueError:
            return path.name

    def leftovers(self) -> list[Leftover]:
        """Files no complete entry accounts for and no live writer owns: temp files (and upload staging
        folders) of writers that died, tensor files without their sidecar, sidecars without their tensor
        file. Entries being written (their lock held) are not leftovers."""
        found = []
        for root in self._housekeeping_roots():
            for path in stale_temp_files(root):
                found.append(Leftover(path, self._name(path), "temp file of a writer that died", disk_bytes(path)))
        for key in self._orphan_tensor_keys():
            if not _lock_is_held(self._lock_path(key)):
                path = self.tensor_path(key)
                found.append(Leftover(path, self._name(path), "tensor file without its sidecar", disk_bytes(path), key))
        for key in self.keys():
            if not self.tensor_path(key).exists() and not _lock_is_held(self._lock_path(key)):
                path = self.sidecar_path(key)
                found.append(Leftover(path, self._name(path), "sidecar without its tensor file", disk_bytes(path), key))
        return found

    def gc(self) -> list[Leftover]:
        """Remove every :meth:`leftovers` file, the entries that fail their checks (:meth:`problem`: recomputed
        when next asked for) and the lock files nobody holds (of the features and of the result store); returns
        what was removed. Intact entries and live writers' files are untouched."""
        removed = []
        for key in self.keys():
            if self.problem(key) is None:
                continue
            lock = FileLock(str(self._lock_path(key)), timeout=0)
            try:
                lock.acquire()
            except (Timeout, OSError):
                continue  # a writer is replacing it right now
            try:
                problem = self.problem(key)  # again, under the lock
                if problem is not None:
                    size = sum(p.stat().st_size for p in (self.tensor_path(key), self.sidecar_path(key)) if p.exists())
                    self._discard(key)
                    path = self.tensor_path(key)
                    removed.append(Leftover(path, self._name(path), f"damaged entry: {problem}", size, key))
            finally:
                lock.release()
        for leftover in self.leftovers():
            if leftover.key is None:
                remove_quietly(leftover.path)
                removed.append(leftover)
                continue
            lock = FileLock(str(self._lock_path(leftover.key)), timeout=0)
            try:
                lock.acquire()
            except (Timeout, OSError):
                continue  # a writer started on it meanwhile
            try:
                tensor, sidecar = self.tensor_path(leftover.key), self.sidecar_path(leftover.key)
                if tensor.exists() != sidecar.exists():  # still one half only
                    leftover.path.unlink(missing_ok=True)
                    removed.append(leftover)
            finally:
                lock.release()
        lock_dirs = [self.root / ".locks"] + ([self.settings.results_dir / ".locks"] if self.owns_cache_dir else [])
        for lock_dir in lock_dirs:
            for path in sorted(lock_dir.glob("*.lock")) if lock_dir.is_dir() else []:
                if _remove_lock_if_unused(path):
                    removed.append(Leftover(path, self._name(path), UNUSED_LOCK, 0))
        return removed

    def verify(self) -> dict[str, str]:
        """``{name: "ok" | reason}`` for every entry (by key), every trained digits net's weights (as
        ``models/<file>``, for the default cache) and every leftover (by key, or by its path in the
        cache folder); removes nothing."""
        report = {key: self.problem(key) or "ok" for key in self.keys()}
        if self.owns_cache_dir:
            for name, status in verify_trained_weights(self.settings).items():
                report[f"models/{name}"] = status
        for leftover in self.leftovers():
            if leftover.key is None or leftover.key not in report:
                report[leftover.key or leftover.name] = f"{leftover.what}; `alignscope cache gc` removes it"
        return report

    def remove(self, key_prefix: str) -> list[str]:
        """Remove entries (or orphaned halves of entries) whose key starts with ``key_prefix`` (at least 4
        hex digits); returns their keys."""
        if len(key_prefix) < 4 or any(c not in _HEX for c in key_prefix):
            raise CacheError(f"{key_prefix!r} is not a key: give a key, or its first 4 or more hex digits (0-9, a-f)")
        removed = sorted(k for k in {*self.keys(), *self._orphan_tensor_keys()} if k.startswith(key_prefix))
        for key in removed:
            with self._lock(key):
                self._discard(key)
        return removed

    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.entries())


def _check_unique_ids(dataset_name: str, sample_ids: Sequence[str]) -> None:
    """Refuse samples whose ids repeat: no view could tell them apart, and no sidecar could describe them."""
    repeated = [i for i, count in Counter(sample_ids).items() if count > 1]
    if repeated:
        raise CacheError(
            f"dataset {dataset_name!r} lists sample id {repeated[0]!r} more than once ({len(repeated)} ids "
            "repeat); every sample needs its own id. Nothing was cached."
        )


def _check_finite(features: Features) -> None:
    for name, values in zip(features.layer_names, features.values):
        if not torch.isfinite(values).all():
            raise CacheError(
                f"model {features.model!r} produced NaN/Inf at layer {name!r} on {features.dataset!r}; "
                "nothing was cached. Try float32 (dtype) or another pooling."
            )
