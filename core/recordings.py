"""Recordings: measured responses to a dataset's stimuli (brain data), stored for model-vs-data RSA.

A recording is one float array with stimuli on axis -2 (see
:func:`alignscope.core.brain.rdms_from_measurements`): ``[n, d]`` (one subject), ``[n_units, n, d]``
(subjects, or repeats of one subject with ``over="repeats"``) or ``[n_subjects, n_repeats, n, d]``
(repeats per subject: crossnobis folds, else averaged), and the sample id of each stimulus: a subset of
the dataset's samples in any order (all of them, in the dataset's order, when no ids are given).

Stored as ``<cache>/uploads/recordings/<name>.safetensors``: the tensor ``measurements`` and, in the
header, the dataset, ``over`` and the sample ids. The sha256 of that content (:attr:`Recording.digest`) keys
the results computed from it, so replacing a recording never serves a score of the old one. No pickle is
loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alignscope.core.errors import InputError, UploadError
from alignscope.core.files import atomic_write_bytes
from alignscope.core.names import check_name
from alignscope.core.settings import Settings, get_settings

SUFFIXES = (".npy", ".safetensors")
OVER = ("subjects", "repeats")


@dataclass(frozen=True)
class Recording:
    """A stored recording.

    Attributes:
        measurements: float32 [..., n, d], stimuli on axis -2.
        sample_ids: the dataset sample id of each stimulus [n].
        over: what the leading axis of a 3-D array is: ``"subjects"`` or ``"repeats"``.
        digest: sha256 of its content, metadata and values (part of every result key computed from it).
        dataset_revision: the dataset's revision when it was uploaded ("" for recordings stored before it was
            kept): a dataset replaced since holds other samples under the same ids.
    """

    name: str
    dataset: str
    over: str
    sample_ids: tuple[str, ...]
    digest: str
    measurements: np.ndarray = field(repr=False, compare=False)
    dataset_revision: str = ""

    def check_dataset_unchanged(self) -> None:
        """InputError when the dataset was replaced since this recording was uploaded against it."""
        from alignscope.core.datasets import get_dataset_spec

        current = get_dataset_spec(self.dataset).revision or ""
        if self.dataset_revision and self.dataset_revision != current:
            raise InputError(
                f"recording {self.name!r} was uploaded against an earlier {self.dataset!r} (replaced since): its "
                "stimuli's ids may now name other samples; upload the recording again"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.measurements.shape)

    def describe(self) -> str:
        """e.g. ``"3 subjects × 4 repeats × 120 stimuli × 50 channels"``."""
        shape = self.shape
        names = {
            2: ("stimuli", "channels"),
            3: (self.over, "stimuli", "channels"),
            4: ("subjects", "repeats", "stimuli", "channels"),
        }
        return " × ".join(f"{size} {name}" for size, name in zip(shape, names[len(shape)]))


def recordings_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).uploads_dir / "recordings"


def _path(name: str, settings: Settings | None) -> Path:
    return recordings_dir(settings) / f"{check_name(name, what='recording')}.safetensors"


def _read_array(filename: str, data: bytes) -> np.ndarray:
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise UploadError(
            f"{Path(filename).name!r}: a recording is a .npy or .safetensors array (got {suffix or 'no suffix'})"
        )
    from alignscope.core.uploads import read_array

    array = read_array(Path(filename).name, data)
    if array.dtype.kind not in "fiu" or array.ndim not in (2, 3, 4) or 0 in array.shape:
        raise UploadError(
            f"a recording is a real array [n, d], [units, n, d] or [subjects, repeats, n, d]; got {array.dtype} "
            f"of shape {array.shape}"
        )
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UploadError("the recording holds NaN or infinite values; fill or drop them before uploading")
    return np.ascontiguousarray(array)


def parse_sample_ids(filename: str, data: bytes) -> tuple[str, ...]:
    """A CSV with a ``sample_id`` column, or one id per line (a text file or a one-column CSV)."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except Exception as exc:
        raise UploadError(f"{Path(filename).name!r}: the sample ids could not be read: {exc}") from exc
    if "sample_id" in frame.columns:
        values = frame["sample_id"].tolist()
    else:
        values = [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return tuple(str(value) for value in values)


def add_recording(
    name: str,
    filename: str,
    data: bytes,
    *,
    dataset: str,
    sample_ids: tuple[str, ...] | None = None,
    over: str | None = None,
    settings: Settings | None = None,
) -> Recording:
    """Validate and store a recording of ``dataset``'s stimuli; refuse ids the dataset does not hold.
    ``over``: what a 3-D array's first axis is (None: subjects); given for a 2-D array, it is refused
    rather than ignored."""
    from safetensors.numpy import save

    from alignscope.core.datasets import get_dataset_spec, load_dataset
    from alignscope.core.uploads import check_upload_size

    settings = settings or get_settings()
    path = _path(name, settings)
    check_upload_size(len(data), Path(filename).name, settings)
    if over is not None and over not in OVER:
        raise UploadError(f"over must be one of {', '.join(OVER)}, got {over!r}")
    array = _read_array(filename, data)
    if array.ndim == 2 and over is not None:
        raise UploadError(
            f"{Path(filename).name!r} has shape {array.shape}: one [stimuli, channels] matrix, with no subjects or "
            f"repeats axis for over={over!r} to name; leave it out"
        )
    over = over or "subjects"
    if array.ndim == 4 and over == "repeats":  # else stored, and every RSA of it refused later
        raise UploadError(
            f"{Path(filename).name!r} has shape {array.shape}, read as [subjects, repeats, stimuli, channels]; "
            "over='repeats' is for one subject's repeats, a 3-D [repeats, stimuli, channels] array"
        )
    if array.shape[-2] < 3:  # stored, it could never be scored: an RDM of fewer than 3 stimuli has no order
        raise UploadError(f"{Path(filename).name!r} has {array.shape[-2]} stimuli; RSA needs at least 3")
    known = load_dataset(dataset).sample_ids
    ids = tuple(known) if sample_ids is None else tuple(sample_ids)
    if len(ids) != array.shape[-2]:
        raise UploadError(
            f"the recording has {array.shape[-2]} stimuli (axis -2 of shape {array.shape}) but {len(ids)} sample ids "
            f"{'(the whole dataset)' if sample_ids is None else 'were given'}; give one id per stimulus"
        )
    if len(set(ids)) != len(ids):
        raise UploadError("the sample ids hold duplicates; each stimulus needs its own id")
    unknown = sorted(set(ids) - set(known))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:3])
        raise UploadError(
            f"{len(unknown)} sample ids are not in {dataset!r} (e.g. {shown}); ids look like {known[0]!r}"
        )
    stimuli = np.moveaxis(array, -2, 0).reshape(array.shape[-2], -1)
    if (stimuli == stimuli[0]).all():  # no RDM has a rank order then: every RSA score would be undefined
        raise UploadError(
            f"{Path(filename).name!r}: every stimulus has the same measurements; a recording that does not vary "
            "across stimuli cannot be compared with any model"
        )
    metadata = {
        "dataset": dataset,
        "dataset_revision": get_dataset_spec(dataset).revision or "",
        "over": over,
        "sample_ids": json.dumps(list(ids)),
    }
    checksum = {CHECKSUM_KEY: _content_digest(metadata, array)}  # so a damaged file is told, not scored
    blob = save({"measurements": array}, metadata={**metadata, **checksum})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, blob)
    return load_recording(name, settings)


def _content_digest(metadata: dict[str, str], array: np.ndarray) -> str:
    """sha256 of what a recording holds: its metadata (sorted), dtype, shape and values. Not of the file,
    whose header lists the metadata in an order that changes from one write to the next."""
    header = json.dumps({"metadata": metadata, "dtype": str(array.dtype), "shape": list(array.shape)}, sort_keys=True)
    return hashlib.sha256(header.encode() + np.ascontiguousarray(array).tobytes()).hexdigest()


CHECKSUM_KEY = "content_sha256"  # in a recording's header: the digest of the rest, checked on every load


def load_recording(name: str, settings: Settings | None = None) -> Recording:
    """The stored recording ``name`` (InputError naming the stored ones when there is none)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load

    path = _path(name, settings)
    if not path.is_file():
        stored = ", ".join(list_recordings(settings)) or "none"
        raise InputError(f"no recording named {name!r} (stored: {stored})")
    damaged = InputError(
        f"the stored recording {name!r} is damaged (unreadable, or not what was written); upload it again"
    )
    try:
        blob = path.read_bytes()
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        array = load(blob)["measurements"]
    except (OSError, ValueError, KeyError, SafetensorError):
        raise damaged from None
    recorded = metadata.pop(CHECKSUM_KEY, None)  # absent in recordings stored before it was written
    digest = _content_digest(metadata, array)
    if recorded is not None and recorded != digest:
        raise damaged
    return Recording(
        name=name,
        dataset=metadata.get("dataset", ""),
        over=metadata.get("over", "subjects"),
        sample_ids=tuple(json.loads(metadata.get("sample_ids", "[]"))),
        digest=digest,
        measurements=array,
        dataset_revision=metadata.get("dataset_revision", ""),
    )


def recording_size(name: str, settings: Settings | None = None) -> int:
    """Stimuli in the stored recording ``name`` (a header read; 0 when there is none)."""
    from safetensors import safe_open

    path = _path(name, settings)
    if not path.is_file():
        return 0
    with safe_open(str(path), framework="numpy") as handle:
        return len(json.loads((handle.metadata() or {}).get("sample_ids", "[]")))


def list_recordings(settings: Settings | None = None, *, dataset: str | None = None) -> list[str]:
    """Names of the stored recordings (of ``dataset`` only, when given), sorted."""
    folder = recordings_dir(settings)
    names = sorted(path.stem for path in folder.glob("*.safetensors")) if folder.is_dir() else []
    if dataset is None:
        return names
    return [name for name in names if _dataset_of(name, settings) == dataset]


def _dataset_of(name: str, settings: Settings | None) -> str:
    from safetensors import safe_open

    with safe_open(str(_path(name, settings)), framework="numpy") as handle:
        return (handle.metadata() or {}).get("dataset", "")


def remove_recording(name: str, settings: Settings | None = None) -> None:
    path = _path(name, settings)
    if not path.is_file():
        raise InputError(f"no recording named {name!r}")
    path.unlink()
