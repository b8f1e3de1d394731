"""What ``alignscope cache verify`` and the Data & models page's *Verify* check, in one place: the feature
entries and trained nets (:meth:`FeatureCache.verify`), the computed results (:meth:`ResultStore.verify`,
and files no result accounts for), and what users uploaded (:func:`verify_uploads`). Changes nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from alignscope.core.cache import FeatureCache
from alignscope.core.errors import AlignscopeError, DatasetLoadError
from alignscope.core.recordings import list_recordings, load_recording
from alignscope.core.settings import Settings, get_settings
from alignscope.core.user_store import read_registry, read_representation, read_uploaded_samples, upload_folder


@dataclass(frozen=True)
class CacheHealth:
    """``{name: "ok" | reason}`` per part of the cache folder.

    Attributes:
        features: feature entries by key, the digits nets as ``models/<file>``, leftovers by path.
        results: computed results by key (empty for a feature cache kept outside the cache folder).
        result_leftovers: result-store files no entry accounts for, as paths below ``results/``.
        uploads: ``uploads/<kind>/<name>`` for representations, datasets and recordings.
    """

    features: dict[str, str]
    results: dict[str, str] = field(default_factory=dict)
    result_leftovers: list[str] = field(default_factory=list)
    uploads: dict[str, str] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.result_leftovers and all(
            status == "ok" for part in (self.features, self.results, self.uploads) for status in part.values()
        )


def check_cache(cache: FeatureCache) -> CacheHealth:
    """Every check of :class:`CacheHealth` on ``cache`` (results and uploads only where ``cache`` is the
    cache folder's own feature cache)."""
    from alignscope.core.analysis.store import ResultStore

    if not cache.owns_cache_dir:
        return CacheHealth(cache.verify())
    store = ResultStore(settings=cache.settings)
    return CacheHealth(
        features=cache.verify(),
        results=store.verify(),
        result_leftovers=[Path(path).relative_to(store.root).as_posix() for path in store.orphans()],
        uploads=verify_uploads(cache.settings),
    )


def verify_uploads(settings: Settings | None = None) -> dict[str, str]:
    """``{"uploads/<kind>/<name>": "ok" | reason}`` (kind: models, datasets, recordings) for everything
    users stored, which no recomputation can bring back: representations and text datasets against their
    checksums, image datasets' index and files, recordings read back and checked. Changes nothing."""
    settings = settings or get_settings()
    registry = read_registry(settings)
    report: dict[str, str] = {}
    for entry in registry.get("models", []):
        options = dict(tuple(pair) for pair in entry.get("options", ()) if len(pair) == 2)
        if entry.get("kind") == "representation" and "sha256" in options:
            try:
                read_representation(str(entry["name"]), options["sha256"], settings)
                report[f"uploads/models/{entry['name']}"] = "ok"
            except AlignscopeError as error:
                report[f"uploads/models/{entry['name']}"] = str(error)
    for entry in registry.get("datasets", []):
        if str(entry.get("source", "")).startswith("upload:"):
            name = str(entry["name"])
            report[f"uploads/datasets/{name}"] = _dataset_problem(name, entry.get("revision"), settings) or "ok"
    for name in list_recordings(settings):
        try:
            load_recording(name, settings)
            report[f"uploads/recordings/{name}"] = "ok"
        except AlignscopeError as error:
            report[f"uploads/recordings/{name}"] = str(error)
    return report


def _dataset_problem(name: str, revision: str | None, settings: Settings) -> str | None:
    """Why uploaded dataset ``name`` cannot be read as stored, or None."""
    folder = upload_folder("datasets", name, settings)
    texts = folder / "texts.parquet"
    if texts.exists():
        if revision and hashlib.sha256(texts.read_bytes()).hexdigest()[: len(revision)] != revision:
            return f"the stored texts of {name!r} do not match their checksum; upload them again"
        return None
    try:
        samples = read_uploaded_samples(name, settings)
    except DatasetLoadError as error:
        return str(error)
    missing = [path for path in samples.image_paths or () if not path.is_file()]
    if missing:
        return f"{len(missing)} images of {name!r} are missing (e.g. {missing[0].name!r}); upload it again"
    return None
