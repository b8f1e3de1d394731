"""Atomic writes: temp files that name their writer, dead writers' leftovers, a full disk as one clear error."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
import time

import pytest

from alignscope.core import files
from alignscope.core.errors import CacheError
from alignscope.core.files import (
    NoSpaceError,
    atomic_write_bytes,
    stale_temp_files,
    temp_path,
    writer_is_gone,
)


def _temp_name_of_a_finished_process(target) -> str:
    """The temp name another process (now exited and reaped) would have used for ``target``."""
    code = "import sys; from pathlib import Path; from alignscope.core.files import temp_path; "
    code += "print(temp_path(Path(sys.argv[1])).name)"
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_dead_writers_temp_file_is_stale_at_once_a_live_ones_only_when_old(tmp_path):
    """Regression (issue "Hardening", point 5). ``stale_temp_files`` used to go by age alone (default 0 s),
    so it listed the temp file of a writer still writing, and a killed writer's file only an hour later;
    sixteen kills left sixteen temp files. Now the name says which process wrote it."""
    target = tmp_path / "entry.safetensors"
    dead = tmp_path / _temp_name_of_a_finished_process(target)
    dead.write_bytes(b"half an entry")
    live = temp_path(target)  # this process: alive
    live.write_bytes(b"being written")
    other_host = tmp_path / f".entry.safetensors.{os.getpid()}-00000000.0.tmp"
    other_host.write_bytes(b"someone else's, on another machine")
    assert writer_is_gone(dead) and not writer_is_gone(live) and not writer_is_gone(other_host)
    assert stale_temp_files(tmp_path) == [dead]
    an_hour_ago = time.time() - files.STALE_TEMP_SECONDS - 1
    os.utime(other_host, (an_hour_ago, an_hour_ago))
    assert stale_temp_files(tmp_path) == sorted([dead, other_host])  # whoever wrote it, it is long dead


def test_a_dead_writers_staging_folder_is_stale_as_one_item(tmp_path):
    """A killed upload used to leave ``.<name>.staging/`` behind for ever (no pid in the name, no sweep)."""
    staging = tmp_path / _temp_name_of_a_finished_process(tmp_path / "pics").replace(".tmp", files.STAGING_SUFFIX)
    (staging / "images").mkdir(parents=True)
    (staging / "images" / "a.png").write_bytes(b"png")
    (staging / "images" / ".a.png.1-00000000.0.tmp").write_bytes(b"inside: goes with the folder")
    assert stale_temp_files(tmp_path) == [staging]
    assert files.disk_bytes(staging) == len(b"png") + len(b"inside: goes with the folder")


def test_a_full_disk_is_a_no_space_error_and_the_target_is_untouched(tmp_path, monkeypatch):
    """Simulated full disk (``os.fsync`` raising ENOSPC, as delayed allocation reports it): the write used
    to surface as a bare OSError ("unexpected OSError", exit code 1). The old content stays, no temp file."""
    target = tmp_path / "registry.json"
    target.write_bytes(b"old")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(NoSpaceError) as raised:
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    error = raised.value
    assert isinstance(error, CacheError) and isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert str(tmp_path) not in str(error) and "no space left in the cache folder" in str(error)
    assert str(tmp_path) in error.with_folder() and "needed ~0.1 MB" in error.with_folder()


def test_a_no_space_error_survives_pickling():
    error = pickle.loads(pickle.dumps(NoSpaceError(files.Path("/x/cache/features"), 3_000_000)))
    assert isinstance(error, NoSpaceError) and error.needed_bytes == 3_000_000
    assert "needed ~3.0 MB" in str(error) and error.with_folder().startswith("no space left in /x/cache/features")
