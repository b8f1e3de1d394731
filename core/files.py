"""Files written so that a crash, a kill or a full disk never leaves a half-written one in place.

Every write goes to a temp file in the target's folder (``.<name>.<pid>.<n>.tmp``), is flushed and
fsynced, then renamed over the target; on any error the temp file is removed and the target is
untouched. Temp files of writers that died (kill -9) are found by :func:`stale_temp_files`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from pathlib import Path

TEMP_SUFFIX = ".tmp"
_counter = itertools.count()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temp_path(path: Path) -> Path:
    """A fresh temp file name beside ``path`` (unique per process and call)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}{TEMP_SUFFIX}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename); nothing is left on failure."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def stale_temp_files(folder: Path, older_than_seconds: float = 0.0) -> list[Path]:
    """Temp files under ``folder`` (any depth) older than the given age: writers that died mid-write."""
    if not folder.exists():
        return []
    cutoff = time.time() - older_than_seconds
    found = []
    for path in folder.rglob(f".*{TEMP_SUFFIX}"):
        try:
            if path.is_file() and path.stat().st_mtime <= cutoff:
                found.append(path)
        except OSError:
            continue
    return sorted(found)
