"""Content-addressed on-disk feature cache.

The key is a hash of everything that determines the features: the model spec (with its revision and
a fingerprint of local weights), the dataset spec (with its revision), the sample ids, the text
inputs, the layers, pooling, effective dtype and :data:`core.extract.EXTRACT_VERSION`. An entry is
``<key>.safetensors`` (one tensor per layer) plus ``<key>.json`` (spec, shapes, sample ids, sha256 of
the tensor file, package versions, timestamps). The sidecar is written last, so it marks a complete
entry; both files are written to a temp file in the same folder and renamed into place, under a
per-key file lock, so two processes asking for one key compute it once. An entry whose tensor file
does not match the sidecar's checksum is never served: it is removed and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from alignscope.core.datasets import Dataset
from alignscope.core.devices import effective_dtype
from alignscope.core.errors import CacheError
from alignscope.core.extract import EXTRACT_VERSION, Features, ProgressCallback, extract_features
from alignscope.core.files import atomic_write_bytes, sha256_file
from alignscope.core.models import ModelSpec, get_model_spec, load_model
from alignscope.core.settings import Settings, get_settings
from alignscope.core.sources import needs_download

CACHE_FORMAT = 1
_KEY_LENGTH = 32
LOCK_TIMEOUT_SECONDS = 3600.0  # longer than any extraction we expect; then a clear error, not a hang
STALE_TMP_SECONDS = 3600.0  # temp files of writers that died this long ago are swept


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
        hashlib.sha256("\x1e".join(dataset.texts).encode()).hexdigest()
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


@dataclass(frozen=True)
class CacheResult:
    """How a :meth:`FeatureCache.get_or_extract` call was served."""

    key: str
    hit: bool
    seconds: float


@dataclass(frozen=True)
class CacheEntry:
    key: str
    model: str
    dataset: str
    n_samples: int
    n_layers: int
    bytes: int
    created: str


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in ("alignscope", "torch", "transformers", "safetensors", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


class FeatureCache:
    """Features on disk under ``root`` (default: ``<cache_dir>/features``)."""

    def __init__(self, root: Path | str | None = None, settings: Settings | None = None):
        settings = settings or get_settings()
        self.root = Path(root) if root is not None else settings.features_dir
        self.settings = settings

    # -- paths ---------------------------------------------------------------------------------------

    def _check_key(self, key: str) -> str:
        if not (isinstance(key, str) and len(key) == _KEY_LENGTH and all(c in "0123456789abcdef" for c in key)):
            raise CacheError(f"{key!r} is not a cache key ({_KEY_LENGTH} hex digits)")
        return key

    def tensor_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{self._check_key(key)}.safetensors"

    def sidecar_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{self._check_key(key)}.json"

    def _lock(self, key: str) -> FileLock:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(lock_dir / f"{key}.lock"), timeout=LOCK_TIMEOUT_SECONDS)

    # -- read / write --------------------------------------------------------------------------------

    def read_sidecar(self, key: str) -> dict | None:
        try:
            return json.loads(self.sidecar_path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def get(self, key: str) -> Features | None:
        """The entry for ``key`` if complete and intact; a corrupt one is removed and ``None`` returned."""
        return self._read(key, on_corrupt=self._discard_if_still_corrupt)

    def _get_unlocked(self, key: str) -> Features | None:
        """:meth:`get` for a caller that already holds the key's lock."""
        return self._read(key, on_corrupt=self._discard)

    def _read(self, key: str, on_corrupt) -> Features | None:
        sidecar = self.read_sidecar(key)
        tensor_path = self.tensor_path(key)
        if sidecar is None or not tensor_path.exists():
            return None
        if sha256_file(tensor_path) != sidecar.get("sha256"):
            on_corrupt(key)
            return None
        try:
            tensors = load_file(tensor_path)
            names = sidecar["layer_names"]
            values = tuple(tensors[f"layer_{i:03d}"] for i in range(len(names)))
            return Features(
                model=sidecar["model_name"],
                dataset=sidecar["dataset_name"],
                layer_names=tuple(names),
                values=values,
                sample_ids=tuple(sidecar["sample_ids"]),
                meta={"cache_key": key, **sidecar.get("meta", {})},
            )
        except (SafetensorError, KeyError, ValueError, OSError):
            on_corrupt(key)
            return None

    def put(self, key: str, features: Features, *, model_spec: ModelSpec, dataset: Dataset) -> None:
        """Store ``features`` atomically: tensor file first, then the sidecar that marks it complete."""
        folder = self.tensor_path(key).parent
        folder.mkdir(parents=True, exist_ok=True)
        self._sweep_stale_temp_files(folder)
        tensors = {f"layer_{i:03d}": v.contiguous() for i, v in enumerate(features.values)}
        tmp = folder / f".{key}.{os.getpid()}.safetensors.tmp"
        try:
            # One metadata entry only: safetensors writes a hash map, so several keys come out in a random
            # order and the same features would not give the same bytes.
            save_file(tensors, str(tmp), metadata={"alignscope": f"format={CACHE_FORMAT};key={key}"})
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            checksum = sha256_file(tmp)
            tmp.replace(self.tensor_path(key))
        finally:
            tmp.unlink(missing_ok=True)
        sidecar = {
            "key": key,
            "format": CACHE_FORMAT,
            "model_name": features.model,
            "dataset_name": features.dataset,
            "model_spec": model_spec.fingerprint(),
            "dataset_spec": dataset.spec.fingerprint(),
            "layer_names": list(features.layer_names),
            "shapes": [list(v.shape) for v in features.values],
            "sample_ids": list(features.sample_ids),
            "sha256": checksum,
            "bytes": self.tensor_path(key).stat().st_size,
            "packages": _package_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "meta": {k: v for k, v in features.meta.items() if k != "cache_key"},
        }
        atomic_write_bytes(self.sidecar_path(key), json.dumps(sidecar, indent=1, default=_json_default).encode())
        seconds = features.meta.get("seconds")
        if seconds and features.n_samples:
            self._record_throughput(features.model, float(seconds) / features.n_samples)

    # -- throughput: seconds per sample of each model on this machine (extraction estimates) ---------

    def _throughput_path(self) -> Path:
        return self.root / "throughput.json"

    def _record_throughput(self, model: str, seconds_per_sample: float) -> None:
        path = self._throughput_path()
        with FileLock(str(path) + ".lock", timeout=30):
            rates = self._read_throughput()
            rates[model] = seconds_per_sample
            atomic_write_bytes(path, json.dumps(rates, indent=1, sort_keys=True).encode())

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

    def _discard_if_still_corrupt(self, key: str) -> None:
        """Remove a bad entry under its lock, unless a writer replaced it with a good one meanwhile."""
        with self._lock(key):
            sidecar = self.read_sidecar(key)
            tensor = self.tensor_path(key)
            if sidecar is not None and tensor.exists() and sha256_file(tensor) == sidecar.get("sha256"):
                return
            self._discard(key)

    def _sweep_stale_temp_files(self, folder: Path) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for tmp in folder.glob(".*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass

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
        if cached is not None:
            return cached, CacheResult(key, True, time.perf_counter() - started)
        try:
            lock = self._lock(key).acquire()
        except Timeout as exc:
            raise CacheError(
                f"another process has held the lock of cache entry {key} for over "
                f"{LOCK_TIMEOUT_SECONDS:.0f} s; remove {self.root / '.locks'} if it died"
            ) from exc
        with lock:
            cached = self._get_unlocked(key)  # another process may have finished it while we waited
            if cached is not None:
                return cached, CacheResult(key, True, time.perf_counter() - started)
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
        return features, CacheResult(key, False, time.perf_counter() - started)

    # -- management ----------------------------------------------------------------------------------

    def keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.stem for p in self.root.glob("??/*.json") if len(p.stem) == _KEY_LENGTH)

    def entries(self) -> list[CacheEntry]:
        out = []
        for key in self.keys():
            sidecar = self.read_sidecar(key) or {}
            shapes = sidecar.get("shapes") or [[0]]
            tensor = self.tensor_path(key)
            out.append(
                CacheEntry(
                    key=key,
                    model=sidecar.get("model_name", "?"),
                    dataset=sidecar.get("dataset_name", "?"),
                    n_samples=int(shapes[0][0]) if shapes and shapes[0] else 0,
                    n_layers=len(shapes),
                    bytes=tensor.stat().st_size if tensor.exists() else 0,
                    created=sidecar.get("created", "?"),
                )
            )
        return out

    def verify(self) -> dict[str, str]:
        """``{key: "ok" | reason}`` for every entry, without removing anything."""
        report = {}
        for key in self.keys():
            sidecar = self.read_sidecar(key)
            tensor = self.tensor_path(key)
            if sidecar is None:
                report[key] = "sidecar unreadable"
            elif not tensor.exists():
                report[key] = "tensor file missing"
            elif sha256_file(tensor) != sidecar.get("sha256"):
                report[key] = "checksum mismatch (corrupt or truncated)"
            else:
                report[key] = "ok"
        return report

    def remove(self, key_prefix: str) -> list[str]:
        """Remove entries whose key starts with ``key_prefix`` (at least 4 hex digits); returns them."""
        if len(key_prefix) < 4 or any(c not in "0123456789abcdef" for c in key_prefix):
            raise CacheError("give at least 4 hex digits of the key to remove")
        removed = [k for k in self.keys() if k.startswith(key_prefix)]
        for key in removed:
            with self._lock(key):
                self._discard(key)
        return removed

    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.entries())


def _check_finite(features: Features) -> None:
    for name, values in zip(features.layer_names, features.values):
        if not torch.isfinite(values).all():
            raise CacheError(
                f"model {features.model!r} produced NaN/Inf at layer {name!r} on {features.dataset!r}; "
                "nothing was cached. Try float32 (dtype) or another pooling."
            )
