"""Reading what users stored: uploaded datasets and representations under ``<cache>/uploads``.

Layout (written by :mod:`alignscope.core.uploads`, which validates every upload first)::

    uploads/registry.json                      uploaded and run-time-added specs, restored at start
    uploads/datasets/<name>/texts.parquet      a texts upload: ``text`` [, ``label``, metadata columns]
    uploads/datasets/<name>/index.parquet      an images upload: ``image`` [, ``caption``, ``label``, metadata]
    uploads/datasets/<name>/images/...         its image files
    uploads/models/<name>/features.safetensors an uploaded representation ``features`` [N, D]

This module only reads; it knows nothing of the registries, so both the dataset loaders and the model
loaders can use it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alignscope.core.errors import DatasetLoadError, ModelLoadError
from alignscope.core.metadata import MetadataColumn
from alignscope.core.names import check_name
from alignscope.core.settings import Settings, get_settings

KINDS = ("datasets", "models")


def upload_folder(kind: str, name: str, settings: Settings | None = None) -> Path:
    """``uploads/datasets/<name>`` or ``uploads/models/<name>``: the two kinds never share a folder."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    settings = settings or get_settings()
    return settings.uploads_dir / kind / check_name(name, what="upload")


def registry_path(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).uploads_dir / "registry.json"


def read_registry(settings: Settings | None = None) -> dict:
    """The persisted entries ``{"datasets": [...], "models": [...], "properties": {model: {name: {...}}},
    "families": {name: [models]}}`` (empty when absent or unreadable)."""
    try:
        registry = json.loads(registry_path(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        registry = {}
    if not isinstance(registry, dict):
        registry = {}
    out: dict = {kind: [e for e in registry.get(kind, []) if isinstance(e, dict)] for kind in KINDS}
    for key in ("properties", "families"):
        value = registry.get(key, {})
        out[key] = value if isinstance(value, dict) else {}
    return out


@dataclass(frozen=True)
class UploadedSamples:
    """The stored samples of an uploaded dataset, in order.

    Attributes:
        sample_ids: one unique id per sample.
        texts: one string per sample, or None.
        image_paths: one absolute path per sample, or None.
        labels: one label per sample, or None.
        metadata: the table's other columns (see :func:`metadata_columns`).
    """

    sample_ids: tuple[str, ...]
    texts: tuple[str, ...] | None
    image_paths: tuple[Path, ...] | None
    labels: tuple[str, ...] | None
    metadata: tuple[MetadataColumn, ...] = ()


def metadata_columns(table: pd.DataFrame, known: Sequence[str]) -> tuple[MetadataColumn, ...]:
    """The columns of a stored table other than ``known`` ones: numeric columns as floats, others as text."""
    columns = []
    for name in table.columns:
        if name in known:
            continue
        values = table[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            columns.append(MetadataColumn(str(name), tuple(values.astype(float)), numeric=True))
        else:
            columns.append(MetadataColumn(str(name), tuple(values.fillna("").astype(str)), numeric=False))
    return tuple(columns)


def read_uploaded_samples(name: str, settings: Settings | None = None) -> UploadedSamples:
    """The samples of uploaded dataset ``name`` (its folder under ``uploads/datasets``)."""
    folder = upload_folder("datasets", name, settings)
    try:
        if (folder / "texts.parquet").exists():
            table = pd.read_parquet(folder / "texts.parquet")
            return UploadedSamples(
                tuple(f"row-{i}" for i in range(len(table))),
                tuple(table["text"].astype(str)),
                None,
                tuple(table["label"].astype(str)) if "label" in table.columns else None,
                metadata_columns(table, ("text", "label")),
            )
        table = pd.read_parquet(folder / "index.parquet")
    except (FileNotFoundError, OSError, ValueError, KeyError) as exc:
        raise DatasetLoadError(f"the files of uploaded dataset {name!r} are missing or unreadable") from exc
    repeated = table["image"][table["image"].duplicated()] if "image" in table.columns else None
    if repeated is None or len(repeated):
        # Stored before captions.csv was checked: the image names are the sample ids and must be unique.
        problem = "has no image column" if repeated is None else f"lists image {str(repeated.iloc[0])!r} twice"
        raise DatasetLoadError(f"uploaded dataset {name!r} {problem}; upload it again (one caption per image)")
    return UploadedSamples(
        tuple(str(p) for p in table["image"]),
        tuple(table["caption"].astype(str)) if "caption" in table.columns else None,
        tuple(folder / "images" / str(p) for p in table["image"]),
        tuple(table["label"].astype(str)) if "label" in table.columns else None,
        metadata_columns(table, ("image", "caption", "label")),
    )


def read_representation(name: str, sha256: str | None, settings: Settings | None = None) -> np.ndarray:
    """The stored ``[N, D]`` float32 matrix of uploaded representation ``name``, checked against its hash."""
    from safetensors.numpy import load as load_safetensors

    path = upload_folder("models", name, settings) / "features.safetensors"
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"the stored matrix of {name!r} is missing; upload it again") from exc
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise ModelLoadError(f"the stored matrix of {name!r} does not match its checksum; upload it again")
    return load_safetensors(blob)["features"]
