"""Installed versions of Python distributions, for result cards, run cards, sidecars and fingerprints.

``importlib.metadata.version`` scans every path entry and parses the distribution's METADATA on each
call; pages, cache writes and model fingerprints asked for the same few names on every run. A running
process keeps the code it imported, so the version it reports is looked up once per process.
"""

from __future__ import annotations

import functools
from importlib import metadata


@functools.lru_cache(maxsize=256)
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions_of(*distributions: str) -> dict[str, str]:
    """``{name: version}`` for those of ``distributions`` that are installed, in the order given."""
    found = {name: installed_version(name) for name in distributions}
    return {name: version for name, version in found.items() if version is not None}
