"""What the linked maps show (see linked_maps.py), as files the frame fetches over HTTP: one per view,
named by its content, kept least recently used first within :data:`MAX_VIEW_BYTES`.

A view file ``<folder>/views/<digest>.maps.gz``, once gunzipped: a little-endian uint32 ``h``, an ``h``-byte
UTF-8 JSON header (padded with spaces so the sections start 8-byte aligned)
``{"format": 1, "n": n, "sections": {name: [offset, length]}}`` with offsets from the end of the header,
then the sections (each padded to 8 bytes), the fields of :class:`MapsView`:

- ``figure_a`` / ``figure_b``: plotly JSON without a selection (trace 0 = the drawn samples), UTF-8;
- ``coords_a`` / ``coords_b``: float64 [n, 2] of all samples (a box or lasso selects over all of them);
- ``drawn``: int32 ascending sample indices that trace 0 holds (trace point j = sample ``drawn[j]``);
- ``colour``: float64 [n] each sample's value on trace 0's colour scale (NaN: one colour for all);
- ``ids``: the n sample ids as a UTF-8 JSON list.

It is gzipped once when written (level 1): Streamlit's server sends a ``.gz`` file as it is, where it
would gzip anything else at level 9 on every request. Views hold the dataset's ids and texts: they are
served, like the page, to whoever can open the dashboard.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from alignscope.core.files import atomic_write_bytes

VIEWS = "views"  # the views' folder, under the frame's folder
VIEW_NAME = re.compile(r"^[0-9a-f]{32}\.maps\.gz$")
MAX_VIEW_BYTES = 512 * 2**20  # the views kept on disk, the least recently used removed first
RECENT_SECONDS = 600.0  # a view used this recently is kept even beyond MAX_VIEW_BYTES (a page may fetch it)
FORMAT = 1
_ALIGN = 8


@dataclasses.dataclass(frozen=True)
class MapsView:
    """What both maps show, whatever is selected."""

    figure_jsons: tuple[str, str]  # maps A and B, plotly JSON
    coords: tuple[np.ndarray, np.ndarray]  # [n, 2] float64 each
    drawn: np.ndarray  # [m] int32, ascending
    colour: np.ndarray  # [n] float64
    sample_ids: list[str]  # [n]

    def content(self) -> bytes:
        """The file's content before gzip (see the module docstring)."""
        sections = {
            "figure_a": self.figure_jsons[0].encode(),
            "figure_b": self.figure_jsons[1].encode(),
            "coords_a": np.ascontiguousarray(self.coords[0], dtype="<f8").tobytes(),
            "coords_b": np.ascontiguousarray(self.coords[1], dtype="<f8").tobytes(),
            "drawn": np.ascontiguousarray(self.drawn, dtype="<i4").tobytes(),
            "colour": np.ascontiguousarray(self.colour, dtype="<f8").tobytes(),
            "ids": json.dumps([str(sample_id) for sample_id in self.sample_ids]).encode(),
        }
        offsets, offset = {}, 0
        for name, data in sections.items():
            offsets[name] = [offset, len(data)]
            offset += -(-len(data) // _ALIGN) * _ALIGN
        header = json.dumps({"format": FORMAT, "n": len(self.coords[0]), "sections": offsets}).encode()
        header += b" " * (-(4 + len(header)) % _ALIGN)
        body = b"".join(data + b"\0" * (-len(data) % _ALIGN) for data in sections.values())
        return len(header).to_bytes(4, "little") + header + body


def write_view(folder: Path, view: MapsView) -> str:
    """Write ``view`` to ``folder/views/`` unless there (atomically), first dropping the least recently
    used views beyond :data:`MAX_VIEW_BYTES`; the file's name (its content's digest).

    Raises:
        NoSpaceError: the disk is full.
        OSError: the cache cannot be written (read-only, another user's).
    """
    content = view.content()
    name = hashlib.sha256(content).hexdigest()[:32] + ".maps.gz"
    if touch_view(folder, name):
        return name
    packed = gzip.compress(content, compresslevel=1, mtime=0)
    views = folder / VIEWS
    views.mkdir(parents=True, exist_ok=True)
    drop_old_views(views, room=len(packed))
    atomic_write_bytes(views / name, packed)
    return name


def touch_view(folder: Path, name: str) -> bool:
    """Whether view ``name`` is on disk (another session may have dropped it); marks it used."""
    path = folder / VIEWS / name
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError:  # a read-only cache, another user's file: there, but not to be marked
        return path.is_file()
    return True


def read_view(folder: Path, name: str) -> MapsView:
    """View ``name`` read back as the frame reads it (for tests and tools)."""
    if not VIEW_NAME.match(name):
        raise ValueError(f"not a view name: {name!r}")
    content = gzip.decompress((folder / VIEWS / name).read_bytes())
    size = int.from_bytes(content[:4], "little")
    header = json.loads(content[4 : 4 + size])
    body = memoryview(content)[4 + size :]
    part = {key: bytes(body[start : start + length]) for key, (start, length) in header["sections"].items()}
    n = header["n"]
    return MapsView(
        figure_jsons=(part["figure_a"].decode(), part["figure_b"].decode()),
        coords=(
            np.frombuffer(part["coords_a"], dtype="<f8").reshape(n, 2),
            np.frombuffer(part["coords_b"], dtype="<f8").reshape(n, 2),
        ),
        drawn=np.frombuffer(part["drawn"], dtype="<i4"),
        colour=np.frombuffer(part["colour"], dtype="<f8"),
        sample_ids=json.loads(part["ids"]),
    )


def drop_old_views(views: Path, *, room: int = 0) -> None:
    """Remove the least recently used view files in ``views`` until they and ``room`` more bytes fit in
    :data:`MAX_VIEW_BYTES`; views used within :data:`RECENT_SECONDS` stay (a page may be fetching them)."""
    found = []
    for path in views.iterdir():
        try:
            if VIEW_NAME.match(path.name):
                stat = path.stat()
                found.append((stat.st_mtime, stat.st_size, path))
        except OSError:
            continue  # dropped by another session meanwhile
    total = room + sum(size for _, size, _ in found)
    recent = time.time() - RECENT_SECONDS
    for used, size, path in sorted(found):
        if total <= MAX_VIEW_BYTES or used >= recent:
            break
        path.unlink(missing_ok=True)
        total -= size
