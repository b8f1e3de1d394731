"""The result store: every computed result on disk, content-addressed, shared by the CLI and the dashboard.

A result's key is a hash of its request (canonical JSON), the feature cache keys it read, and
:data:`ANALYSIS_VERSION` (bumped when a computation changes). An entry is ``<key>.safetensors`` (the
result's arrays) plus ``<key>.json`` (the request, the result's other fields, the feature keys, and a
sha256 over the arrays file *and* the JSON content itself), written temp-file-then-rename under a
per-key lock, the JSON last. An entry whose checksums do not match is never served: it is removed and
recomputed. Entries live beside the features, under ``<cache_dir>/results``; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from alignscope.core.analysis.results import decode, encode
from alignscope.core.errors import CacheError
from alignscope.core.files import atomic_write_bytes
from alignscope.core.settings import Settings, get_settings

ANALYSIS_VERSION = 1
STORE_FORMAT = 1
_KEY_LENGTH = 32


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def result_key(request_json: dict[str, Any], feature_keys: Sequence[str]) -> str:
    """The store key of a request that read ``feature_keys`` (stable across processes and machines)."""
    blob = canonical_json({"version": ANALYSIS_VERSION, "request": request_json, "features": list(feature_keys)})
    return hashlib.sha256(blob.encode()).hexdigest()[:_KEY_LENGTH]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredResult:
    """One entry of the store, as listed by :meth:`ResultStore.entries`."""

    key: str
    kind: str
    label: str
    bytes: int
    created: str
    seconds: float


class ResultStore:
    """Results on disk under ``root`` (default ``<cache_dir>/results``)."""

    def __init__(self, root: Path | str | None = None, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        self.root = Path(root) if root is not None else settings.results_dir

    def _check_key(self, key: str) -> str:
        if not (isinstance(key, str) and self._is_key(key)):
            raise CacheError(f"{key!r} is not a result key ({_KEY_LENGTH} hex digits)")
        return key

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / self._check_key(key)[:2]
        return folder / f"{key}.json", folder / f"{key}.safetensors"

    def _lock(self, key: str) -> FileLock:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{key}.lock"), timeout=600)

    def contains(self, key: str) -> bool:
        sidecar, _ = self._paths(key)
        return sidecar.exists()

    def _checked(self, key: str, text: str) -> tuple[dict[str, Any], bytes | None]:
        """The body of a sidecar ``text`` and its arrays' bytes, both checksummed; raises ValueError (or
        OSError, KeyError, TypeError) naming what is wrong."""
        sidecar = json.loads(text)
        body = sidecar["body"]
        if _sha256(canonical_json(body).encode()) != sidecar["body_sha256"]:
            raise ValueError("metadata checksum mismatch")
        if body["key"] != key:  # a whole entry copied under another key: another request's result
            raise ValueError("the result of another request (stored under another key)")
        if body["arrays_sha256"] is None:
            return body, None
        blob = self._paths(key)[1].read_bytes()
        if _sha256(blob) != body["arrays_sha256"]:
            raise ValueError("arrays checksum mismatch")
        return body, blob

    def get(self, key: str) -> Any | None:
        """The stored result, or None when absent or damaged (a damaged entry is removed)."""
        sidecar_path, _ = self._paths(key)
        try:
            text = sidecar_path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        try:
            body, blob = self._checked(key, text)
            arrays: dict[str, np.ndarray] = {}
            if blob is not None:
                from safetensors.numpy import load

                arrays = load(blob)
            return decode(body["result"], arrays)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            self._discard_if_still_bad(key, text)
            return None

    def problem(self, key: str) -> str | None:
        """Why the stored entry ``key`` is damaged, or None when both checksums hold; removes nothing."""
        try:
            self._checked(key, self._paths(key)[0].read_text())
        except FileNotFoundError as error:
            return f"missing {Path(error.filename or '').name or 'file'}"
        except (OSError, UnicodeDecodeError) as error:
            return f"unreadable ({type(error).__name__})"
        except json.JSONDecodeError:
            return "metadata is not JSON"
        except KeyError as error:
            return f"metadata lacks {error}"
        except TypeError:
            return "metadata is malformed"
        except ValueError as error:  # the checks of _checked, by name
            return str(error)
        return None

    def _is_key(self, name: str) -> bool:
        return len(name) == _KEY_LENGTH and all(c in "0123456789abcdef" for c in name)

    def _in_place(self, path: Path) -> bool:
        """A file named by a key, in that key's folder (where :meth:`_paths` puts it)."""
        return self._is_key(path.stem) and path.parent.name == path.stem[:2] and path.is_file()

    def keys(self) -> list[str]:
        """Keys of the complete entries (their JSON in its place), sorted; other files are not entries."""
        paths = self.root.glob("??/*.json") if self.root.exists() else []
        return sorted(path.stem for path in paths if self._in_place(path))

    def orphans(self) -> list[Path]:
        """Files named like an entry's that no entry accounts for and no writer holds: arrays without their
        JSON (a writer killed between its two writes: the arrays go first), and entry files outside their
        key's folder (moved there by hand: never read, so never checked)."""
        paths = self.root.glob("??/*.*") if self.root.exists() else []
        found = []
        for path in sorted(paths):
            if path.suffix not in (".json", ".safetensors") or not self._is_key(path.stem) or not path.is_file():
                continue
            if not self._in_place(path):
                found.append(path)
                continue
            if path.suffix == ".json" or path.with_suffix(".json").exists():
                continue
            lock = self._lock(path.stem)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # being written now
            try:
                if not path.with_suffix(".json").exists():
                    found.append(path)
            finally:
                lock.release()
        return found

    def verify(self) -> dict[str, str]:
        """``{key: "ok" | what is wrong}`` for every entry; removes nothing (a damaged entry is removed, and
        recomputed, when next asked for, or by :meth:`remove_damaged`)."""
        return {key: self.problem(key) or "ok" for key in self.keys()}

    def remove_damaged(self) -> list[tuple[str, int]]:
        """Remove every entry whose checksums fail (checked again under its lock, so not one a writer has just
        replaced) and every :meth:`orphans` file; returns (name under the store, bytes) of each file removed."""
        removed = []
        for key in self.keys():
            if self.problem(key) is None:
                continue
            with self._lock(key):
                if self.problem(key) is None:
                    continue
                for path in self._paths(key):
                    if path.exists():
                        size = path.stat().st_size
                        path.unlink(missing_ok=True)
                        removed.append((path.relative_to(self.root).as_posix(), size))
        for path in self.orphans():
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            removed.append((path.relative_to(self.root).as_posix(), size))
        return removed

    def put(
        self,
        key: str,
        request_json: dict[str, Any],
        feature_keys: Sequence[str],
        result: Any,
        *,
        kind: str,
        label: str,
        seconds: float,
    ) -> None:
        """Store ``result`` atomically: the arrays first, then the JSON that marks the entry complete."""
        from safetensors.numpy import save

        sidecar_path, arrays_path = self._paths(key)
        sidecar_path.parent.mkdir(parents=True, exist_ok=True)
        meta, arrays = encode(result)
        arrays_sha = None
        with self._lock(key):
            if arrays:
                blob = save(arrays)
                arrays_sha = _sha256(blob)
                atomic_write_bytes(arrays_path, blob)
            body = {
                "format": STORE_FORMAT,
                "version": ANALYSIS_VERSION,
                "key": key,
                "kind": kind,
                "label": label,
                "request": request_json,
                "features": list(feature_keys),
                "result": meta,
                "arrays_sha256": arrays_sha,
                "seconds": round(float(seconds), 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            sidecar = {"body": body, "body_sha256": _sha256(canonical_json(body).encode())}
            atomic_write_bytes(sidecar_path, json.dumps(sidecar, allow_nan=True).encode())

    def _discard_if_still_bad(self, key: str, seen: str) -> None:
        sidecar_path, arrays_path = self._paths(key)
        with self._lock(key):
            try:
                if sidecar_path.read_text() != seen:  # a writer replaced it meanwhile
                    return
            except (FileNotFoundError, UnicodeDecodeError):
                pass
            sidecar_path.unlink(missing_ok=True)
            arrays_path.unlink(missing_ok=True)

    def entries(self) -> list[StoredResult]:
        out = []
        for path in sorted(self.root.glob("??/*.json")) if self.root.exists() else []:
            try:
                body = json.loads(path.read_text())["body"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            arrays = path.with_suffix(".safetensors")
            size = path.stat().st_size + (arrays.stat().st_size if arrays.exists() else 0)
            out.append(
                StoredResult(
                    path.stem,
                    body.get("kind", "?"),
                    body.get("label", ""),
                    size,
                    body.get("created", "?"),
                    float(body.get("seconds", 0.0)),
                )
            )
        return out

    def remove(self, key: str) -> None:
        sidecar_path, arrays_path = self._paths(key)
        with self._lock(key):
            sidecar_path.unlink(missing_ok=True)
            arrays_path.unlink(missing_ok=True)

    def clear(self) -> int:
        entries = self.entries()
        for entry in entries:
            self.remove(entry.key)
        return len(entries)
