"""A dataset's further per-sample columns (an uploaded table's other columns): typed, subset with the samples."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class MetadataColumn:
    """One more column of a dataset's samples (an uploaded table's other columns): ``values[i]`` is
    sample i's, a float (NaN where missing) when ``numeric``, else a string ("" where missing)."""

    name: str
    values: tuple
    numeric: bool

    def take(self, indices: Sequence[int]) -> MetadataColumn:
        return dataclasses.replace(self, values=tuple(self.values[i] for i in indices))
