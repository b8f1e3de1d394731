"""Files written so that a crash, a kill or a full disk never leaves a half-written one in place.

Every write goes to a temp file in the target's folder (``.<name>.<pid>-<host>.<n>.tmp``), is flushed and
fsynced, then renamed over the target; on any error the temp file is removed and the target is
untouched. A full disk is a :class:`NoSpaceError` (a :class:`CacheError`), never a bare ``OSError``.
Temp files (and ``.staging`` folders) of writers that died (kill -9) are found by :func:`stale_temp_files`:
their name says which process on which host wrote them, so a dead writer's leftovers are recognised at
once and anyone else's after :data:`STALE_TEMP_SECONDS`.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import re
import shutil
import socket
import time
from pathlib import Path

from alignscope.core.errors import CacheError

TEMP_SUFFIX = ".tmp"
STAGING_SUFFIX = ".staging"  # a folder written whole, then renamed into place (uploads)
STALE_TEMP_SECONDS = 3600.0  # a temp file this old is a dead writer's, whoever wrote it
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_WRITER = re.compile(r"\.(\d+)-([0-9a-f]{8})\.\d+(?:\.tmp|\.staging)$")
_counter = itertools.count()


class NoSpaceError(CacheError, OSError):
    """A write that ran out of disk space; whatever it had written is removed.

    ``str()`` names no folder (the dashboard shows it to people who do not own the server);
    :meth:`with_folder` does, for the command line.
    """

    def __init__(self, folder: Path, needed_bytes: int) -> None:
        self.folder = folder
        self.needed_bytes = int(needed_bytes)
        super().__init__(errno.ENOSPC, self._describe("the cache folder"))

    def _describe(self, where: str) -> str:
        try:
            free = f" ({shutil.disk_usage(self.folder).free / 1e6:.1f} MB free)"
        except OSError:
            free = ""
        return (
            f"no space left in {where}{free}, needed ~{max(self.needed_bytes / 1e6, 0.1):.1f} MB; nothing was written"
        )

    def with_folder(self) -> str:
        return self._describe(str(self.folder))

    def __str__(self) -> str:
        return str(self.args[1])

    def __reduce__(self):  # rebuilt from its own arguments (a job may carry it across processes)
        return (type(self), (self.folder, self.needed_bytes))


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` reports a full disk or quota (safetensors reports the OS error only in its text)."""
    if isinstance(error, NoSpaceError):
        return True
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(error)
    return "os error 28" in text or "No space left on device" in text or "os error 122" in text


def check_free_space(folder: Path, needed_bytes: int) -> None:
    """Raise :class:`NoSpaceError` before writing ``needed_bytes`` into ``folder`` when they cannot fit."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # unknown: try the write, which reports a full disk itself
    if needed_bytes > free:
        raise NoSpaceError(folder, needed_bytes)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temp_path(path: Path, suffix: str = TEMP_SUFFIX) -> Path:
    """A fresh temp name beside ``path``, unique per process and call, naming this process and host."""
    return path.with_name(f".{path.name}.{os.getpid()}-{_HOST}.{next(_counter)}{suffix}")


def writer_is_gone(path: Path) -> bool:
    """Whether the process that named ``path`` (see :func:`temp_path`) ran on this host and has exited.

    False when unknown: another host's (or an older name's) writer may still be running.
    """
    match = _WRITER.search(path.name)
    if match is None or match.group(2) != _HOST:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    return False


def remove_quietly(path: Path) -> None:
    """Remove a file or folder if it is there (cleanup after a failed write must not mask its error)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _process_umask() -> int:
    mask = os.umask(0o022)  # read by setting: restored at once (done once, at import)
    os.umask(mask)
    return mask


_UMASK = _process_umask()


def permissions_as_created(path: Path) -> None:
    """Give a file the permissions ``open`` would (0666 less the umask): safetensors writes 0600, so a cache
    folder shared by a group (Ray workers on a shared filesystem) could not read each other's entries."""
    os.chmod(path, 0o666 & ~_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename); nothing is left on failure.

    Raises:
        NoSpaceError: the disk (or quota) is full.
    """
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as error:
        if is_disk_full(error) and not isinstance(error, NoSpaceError):
            raise NoSpaceError(path.parent, len(data)) from error
        raise
    finally:
        remove_quietly(tmp)


def disk_bytes(path: Path) -> int:
    """Bytes a file (or a folder, summed) takes on disk as its size says; 0 when it is gone."""
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        return path.lstat().st_size
    except OSError:
        return 0


def stale_temp_files(folder: Path, older_than_seconds: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Temp files and staging folders under ``folder`` (any depth) that no live writer owns: their writer
    (on this host) has exited, or they are older than ``older_than_seconds``."""
    if not folder.exists():
        return []
    cutoff = time.time() - older_than_seconds
    found = []
    for suffix in (TEMP_SUFFIX, STAGING_SUFFIX):
        for path in folder.rglob(f".*{suffix}"):
            if any(parent.name.endswith(STAGING_SUFFIX) for parent in path.relative_to(folder).parents):
                continue  # inside a staging folder: goes with it
            try:
                if path.is_symlink() or not (path.is_file() or (suffix == STAGING_SUFFIX and path.is_dir())):
                    continue
                if writer_is_gone(path) or path.stat().st_mtime <= cutoff:
                    found.append(path)
            except OSError:
                continue
    return sorted(found)
