"""User uploads and run-time additions, persisted under ``<cache_dir>/uploads``.

* Texts: CSV / Parquet (a ``text`` column, else the first string column; optional ``label``) or TXT
  (one sample per non-empty line) -> an ``upload:`` text dataset.
* Images: a zip or a local folder of images, optionally with ``captions.csv`` (columns ``image``,
  ``caption``), or a CSV of image path + caption pairs -> an image or image-text dataset.
* Representations: ``.npy`` / ``.safetensors`` / ``.csv`` holding one ``[N, D]`` matrix whose rows
  are a registered dataset's samples (e.g. brain recordings) -> a model of kind ``representation``
  with one layer.
* Hub models and hub datasets added by id.

Every upload is validated before anything is written (size, type, shape, finiteness, names), then
stored atomically; ``registry.json`` lists them so they come back after a restart. No pickle is ever
loaded (``np.load(allow_pickle=False)``).

Refused, each with its reason: texts or captions holding NUL bytes (a binary or UTF-16 file read as text;
nothing is stripped silently), a ``captions.csv`` naming one image twice (sample ids must be unique) or
leaving some image out (it would be dropped), zip members pointing outside the zip, zip members that clash
(``a.png`` and ``a.png/b.png``, the same name twice) or whose names no file system takes (a part over
255 bytes, control characters); matrices that are complex, empty, hold NaN/Inf, overflow float32, or have
every row the same (no metric can compare a constant representation).
A write that fails (a full disk, a name the file system refuses) leaves nothing behind, and no message
names a server path.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import threading
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from filelock import FileLock

from alignscope.core.datasets import DATASETS, DatasetSpec, get_dataset_spec, register_dataset
from alignscope.core.errors import AlignscopeError, UploadError
from alignscope.core.files import (
    STAGING_SUFFIX,
    NoSpaceError,
    atomic_write_bytes,
    check_free_space,
    is_disk_full,
    remove_quietly,
    temp_path,
)
from alignscope.core.models import MODELS, ModelProperty, ModelSpec, register_model
from alignscope.core.names import check_name
from alignscope.core.settings import Settings, get_settings
from alignscope.core.user_store import read_registry, registry_path, upload_folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TEXT_SUFFIXES = (".csv", ".parquet", ".txt")
REPRESENTATION_SUFFIXES = (".npy", ".safetensors", ".csv")
MAX_SAMPLES = 200_000
MAX_NAME_PART_BYTES = 255  # NAME_MAX of every common file system
MAX_MEMBER_BYTES = 1024  # a member's path inside the upload's folder, well under PATH_MAX


def check_upload_size(
    n_bytes: int,
    filename: str,
    settings: Settings | None = None,
    *,
    allow_empty: bool = False,
    at_least: bool = False,
) -> None:
    """Refuse an upload of ``n_bytes`` over ALIGNSCOPE_MAX_UPLOAD_MB (or empty, unless ``allow_empty``);
    ``at_least``: ``n_bytes`` is only what was read so far (a pipe has no size)."""
    limit = (settings or get_settings()).max_upload_bytes
    if n_bytes == 0 and not allow_empty:
        raise UploadError(f"{filename!r} is empty")
    if n_bytes > limit:
        size = "over the limit" if at_least else f"{n_bytes / 2**20:.1f} MiB"
        raise UploadError(f"{filename!r} is {size}; the limit is {limit / 2**20:.0f} MiB (ALIGNSCOPE_MAX_UPLOAD_MB)")


def _check_size(data: bytes, settings: Settings, filename: str) -> None:
    check_upload_size(len(data), filename, settings)


def _refuse_nul_bytes(data: bytes, where: str) -> None:
    """NUL bytes in a text file mean a binary (or UTF-16) file: refuse it rather than strip them."""
    position = data.find(b"\x00")
    if position >= 0:
        line = data.count(b"\n", 0, position) + 1
        raise UploadError(
            f"line {line} of {where} contains a NUL byte (\\x00): is it a binary or UTF-16 file? Save it as UTF-8 text"
        )


def _refuse_nul(values: pd.Series, filename: str, what: str) -> None:
    """NUL bytes in texts mean a binary (or UTF-16) file read as text: refuse rather than strip them."""
    has_nul = values.astype(str).str.contains("\x00", regex=False)
    if has_nul.any():
        first = values.index[has_nul.to_numpy()][0]
        raise UploadError(
            f"{what} {int(first) + 1} of {filename!r} contains a NUL byte (\\x00): is it a binary or UTF-16 file? "
            "Save it as UTF-8 text"
        )


MAX_METADATA_COLUMNS = 16


def _metadata(table: pd.DataFrame, known: Sequence[str], filename: str) -> pd.DataFrame:
    """A table's columns other than ``known`` as metadata (index reset): a column whose every non-empty
    cell is a number becomes float (NaN where empty), any other text ("" where empty). Refused: column
    names that are empty, over 64 characters, repeated or not printable (control, bidi, zero-width),
    and NUL bytes in values. Left out: pandas' unnamed columns (a written index, a trailing comma) and any
    columns past the first MAX_METADATA_COLUMNS."""
    extra = [c for c in table.columns if c not in known and not str(c).startswith("Unnamed: ")]
    out = pd.DataFrame(index=range(len(table)))
    for column in extra[:MAX_METADATA_COLUMNS]:
        name = str(column).strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise UploadError(f"{filename!r}: column name {name[:70]!r} must be 1–64 printable characters")
        if name in out.columns or name in known:
            raise UploadError(f"{filename!r} has two columns named {name!r}")
        values = table[column].reset_index(drop=True)
        present = values.notna() & (values.astype(str).str.strip() != "")
        numbers = pd.to_numeric(values.where(present), errors="coerce")
        if present.any() and numbers[present].notna().all():
            out[name] = numbers.astype(float)
        else:
            _refuse_nul(values[values.notna()], filename, f"column {name!r} of row")
            out[name] = values.where(present, "").astype(str)
    return out


def _suffix(filename: str, allowed: tuple[str, ...]) -> str:
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in allowed:
        raise UploadError(f"{filename!r}: expected one of {', '.join(allowed)}")
    return suffix


# --------------------------------------------------------------------------------------------------
# Parsing (pure: bytes in, validated arrays / tables out)
# --------------------------------------------------------------------------------------------------


def parse_texts(filename: str, data: bytes) -> pd.DataFrame:
    """Texts upload -> DataFrame with ``text`` and optional ``label``; raises UploadError."""
    suffix = _suffix(filename, TEXT_SUFFIXES)
    if suffix in (".txt", ".csv"):
        _refuse_nul_bytes(data, repr(filename))
    try:
        if suffix == ".txt":
            lines = [line.strip() for line in data.decode("utf-8").splitlines()]
            table = pd.DataFrame({"text": [line for line in lines if line]})
        elif suffix == ".csv":
            # only an empty cell is missing: a text that reads "NaN" or "null" is still a text
            table = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""], skip_blank_lines=False)
        else:
            table = pd.read_parquet(io.BytesIO(data))
    except UnicodeDecodeError as exc:
        raise UploadError(f"{filename!r} is not UTF-8 text") from exc
    except Exception as exc:
        raise UploadError(f"{filename!r} could not be read as {suffix[1:].upper()}: {exc}") from exc
    if {"image", "caption"} <= set(table.columns) and "text" not in table.columns:
        # its image paths were taken as the texts
        raise UploadError(
            f"{filename!r} has columns 'image' and 'caption': image-caption pairs are uploaded with --image-pairs "
            "(the page: 'Images + captions (CSV)'); for the captions alone, name their column 'text'"
        )
    text_column = (
        "text"
        if "text" in table.columns
        else next(
            (c for c in table.columns if pd.api.types.is_string_dtype(table[c]) or table[c].dtype == object), None
        )
    )
    if text_column is None:
        raise UploadError(f"{filename!r} has no text column (name one 'text'); columns: {list(table.columns)}")
    texts = table[text_column]
    _refuse_nul(texts[texts.notna()], filename, "row")
    if "label" in table.columns:
        _refuse_nul(table["label"][table["label"].notna()], filename, "the label of row")
    keep = texts.notna() & (texts.astype(str).str.strip() != "")
    out = pd.DataFrame({"text": texts[keep].astype(str).str.strip()})
    if "label" in table.columns:
        out["label"] = table["label"][keep].fillna("").astype(str)
    out = out.reset_index(drop=True)
    out = pd.concat([out, _metadata(table[keep], (text_column, "label"), filename)], axis=1)
    out.attrs["dropped_rows"] = int((~keep).sum())  # blank or missing texts, left out
    if len(out) < 3:
        raise UploadError(f"{filename!r} holds {len(out)} non-empty texts; at least 3 are needed")
    if len(out) > MAX_SAMPLES:
        raise UploadError(f"{filename!r} holds {len(out)} texts; the limit is {MAX_SAMPLES}")
    return out


def _check_npy_header(filename: str, data: bytes) -> None:
    """Refuse, from its header alone, a .npy that is not one, holds Python objects, or claims more data
    than the file has (numpy's own errors spoke of ``allow_pickle`` or tried to allocate terabytes)."""
    from numpy.lib import format as npy_format

    stream = io.BytesIO(data)
    if not data.startswith(b"\x93NUMPY"):
        raise UploadError(f"{filename!r} is not a .npy file (no NumPy header); save the array with numpy.save")
    try:
        major, _ = npy_format.read_magic(stream)
        read_header = npy_format.read_array_header_1_0 if major == 1 else npy_format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except Exception as exc:  # noqa: BLE001 - ValueError, EOFError, tokenize.TokenError, …: all a damaged header
        raise UploadError(f"{filename!r} has a damaged NumPy header ({type(exc).__name__}: {exc})") from exc
    if dtype.hasobject:
        raise UploadError(
            f"{filename!r} holds Python objects ({dtype}), which could only be unpickled, and Alignscope never "
            "loads pickles: save a numeric array"
        )
    claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    held = len(data) - stream.tell()
    if claimed > held:
        raise UploadError(
            f"{filename!r} says it holds shape {shape} of {dtype} ({claimed:,} bytes) but has {held:,}: "
            "the file is cut short or damaged"
        )


def read_array(filename: str, data: bytes) -> np.ndarray:
    """A ``.npy`` (never unpickled) or ``.safetensors`` (exactly one tensor) upload as an array; anything
    unreadable is an UploadError that says why."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".npy":
        _check_npy_header(filename, data)
    try:
        if suffix == ".npy":
            return np.load(io.BytesIO(data), allow_pickle=False)
        from safetensors.numpy import load as load_safetensors

        tensors = load_safetensors(data)
    except Exception as exc:
        raise UploadError(f"{filename!r} could not be read as {suffix[1:]}: {type(exc).__name__}: {exc}") from exc
    if len(tensors) != 1:
        raise UploadError(f"{filename!r} holds {len(tensors)} tensors {list(tensors)[:5]}; expected exactly one")
    return next(iter(tensors.values()))


def parse_representation(filename: str, data: bytes) -> np.ndarray:
    """``.npy`` / ``.safetensors`` (one tensor) / ``.csv`` (numbers only) -> finite float32 ``[N, D]``."""
    suffix = _suffix(filename, REPRESENTATION_SUFFIXES)
    if suffix != ".csv":
        return _check_matrix(filename, read_array(filename, data))
    _refuse_nul_bytes(data, repr(filename))
    try:
        array = pd.read_csv(io.BytesIO(data), header=None).to_numpy()
        if array.dtype == object:  # a header row or text cells
            array = pd.read_csv(io.BytesIO(data)).to_numpy()
    except UnicodeDecodeError as exc:
        raise UploadError(f"{filename!r} is not UTF-8 text") from exc
    except Exception as exc:
        raise UploadError(f"{filename!r} could not be read as csv: {type(exc).__name__}: {exc}") from exc
    return _check_matrix(filename, array)


def _check_matrix(filename: str, array: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(array):
        raise UploadError(
            f"{filename!r} holds complex numbers ({array.dtype}); store real features instead "
            "(e.g. the real and imaginary parts, or the magnitude, as columns)"
        )
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise UploadError(f"{filename!r} holds non-numeric values ({array.dtype})")
    if array.ndim != 2:
        raise UploadError(f"{filename!r} has shape {array.shape}; expected a 2-D [samples, features] matrix")
    if 0 in array.shape:
        missing = "rows (samples)" if array.shape[0] == 0 else "columns (features)"
        raise UploadError(f"{filename!r} has shape {array.shape}: no {missing}")
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
        raise UploadError(f"{filename!r} contains {int(bad.sum())} NaN/Inf values (first rows: {rows})")
    with np.errstate(over="ignore"):
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UploadError(f"{filename!r} holds values beyond float32's range (about ±3.4e38); rescale them")
    return array


def _refuse_constant(filename: str, array: np.ndarray) -> None:
    """Checked once the rows are known to be the dataset's (a wrong row count is the likelier mistake)."""
    if (array == array[0]).all():
        raise UploadError(
            f"{filename!r}: every row is the same ({array.shape[0]} copies of one vector); a constant "
            "representation cannot be compared with anything (every alignment metric is undefined for it)"
        )


def _member_problem(member: PurePosixPath) -> str | None:
    """Why ``member`` cannot become a file name on the server, or None."""
    text = str(member)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "has a control character in its name"
    longest = max(len(part.encode()) for part in member.parts)
    if longest > MAX_NAME_PART_BYTES:
        return f"has a name part of {longest} bytes (file systems allow {MAX_NAME_PART_BYTES})"
    if len(text.encode()) > MAX_MEMBER_BYTES:
        return f"has a path of {len(text.encode())} bytes (at most {MAX_MEMBER_BYTES})"
    return None


def _shown(member: PurePosixPath | str) -> str:
    text = str(member)
    return repr(text if len(text) <= 60 else text[:40] + "…" + text[-12:])


def _check_members(members: list[PurePosixPath], filename: str) -> None:
    """Refuse members that cannot all be written side by side: one name twice, or a file that is also
    the folder of another (``a.png`` and ``a.png/b.png``, in either order)."""
    seen: set[PurePosixPath] = set()
    for member in members:
        if member in seen:
            raise UploadError(f"{_shown(member)} appears twice in {filename!r}; each image needs its own name")
        seen.add(member)
    for member in members:
        clash = next((parent for parent in member.parents if parent in seen), None)
        if clash is not None:
            raise UploadError(
                f"{_shown(clash)} in {filename!r} is both an image and the folder of {_shown(member)}; rename one"
            )


def _safe_member(name: str, filename: str) -> PurePosixPath | None:
    """The member's path, or None for what an upload skips: folders, hidden files, macOS metadata. A member
    whose path leaves the folder it is unpacked into (absolute, or through '..', also written with '\\')
    refuses the whole zip."""
    escaping = PurePosixPath(name.replace("\\", "/"))
    if escaping.is_absolute() or ".." in escaping.parts:
        raise UploadError(
            f"{_shown(name)} in {filename!r} points outside the zip (an absolute path or '..'); nothing was unpacked"
        )
    path = PurePosixPath(name)
    if name.endswith("/"):
        return None
    if any(part.startswith(".") or part == "__MACOSX" for part in path.parts):
        return None
    return path


# --------------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------------


def _write_registry(registry: dict, settings: Settings) -> None:
    atomic_write_bytes(registry_path(settings), json.dumps(registry, indent=1).encode())


def _record(kind: str, spec: DatasetSpec | ModelSpec, settings: Settings) -> None:
    path = registry_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        registry = read_registry(settings)
        entries = [e for e in registry.get(kind, []) if e.get("name") != spec.name]
        entry = asdict(spec)
        if "options" in entry:
            entry["options"] = [list(pair) for pair in entry["options"]]
        registry[kind] = entries + [entry]
        _write_registry(registry, settings)


def _model_from_entry(entry: dict) -> ModelSpec:
    properties = tuple(ModelProperty(**p) for p in entry.get("properties", ()))
    options = tuple(tuple(p) for p in entry.get("options", ()))
    return ModelSpec(**{**entry, "options": options, "properties": properties})


def _load_entries(settings: Settings) -> set[tuple[str, str]]:
    """Register every persisted entry: the (kind, name) of each one registered."""
    registry = read_registry(settings)
    loaded = set()
    for entry in registry.get("datasets", []):
        try:
            loaded.add(("datasets", register_dataset(DatasetSpec(**entry), overwrite=True).name))
        except (TypeError, ValueError, AlignscopeError):
            continue  # an entry from an incompatible version: skip rather than fail start-up
    for entry in registry.get("models", []):
        try:
            loaded.add(("models", register_model(_model_from_entry(entry), overwrite=True).name))
        except (TypeError, ValueError, AlignscopeError):
            continue
    return loaded


def load_user_registry(settings: Settings | None = None) -> list[str]:
    """Register every persisted upload and run-time addition; returns the names registered."""
    return sorted(name for _, name in _load_entries(settings or get_settings()))


# registry.json of each cache dir as last read here: (its stamp, the entries registered from it)
_SYNCED: dict[Path, tuple[tuple[int, int] | None, set[tuple[str, str]]]] = {}
_SYNC_LOCK = threading.Lock()


def sync_user_registry(settings: Settings | None = None) -> bool:
    """Bring this process's registries in line with ``registry.json`` when it changed since the last call
    (another process — the CLI, another server — added or removed an entry): its entries registered, the
    ones it listed before and no longer does forgotten. One ``stat`` when nothing changed (a dashboard
    calls it on every rerun). Returns whether the file was read."""
    settings = settings or get_settings()
    path = registry_path(settings)
    try:
        info = path.stat()
        stamp: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
    except OSError:
        stamp = None
    with _SYNC_LOCK:
        previous = _SYNCED.get(path)
        if previous is not None and previous[0] == stamp:
            return False
        loaded = _load_entries(settings)
        for kind, name in (previous[1] if previous is not None else set()) - loaded:
            registry = MODELS if kind == "models" else DATASETS
            if not registry.is_builtin(name):
                registry.unregister(name)
        _SYNCED[path] = (stamp, loaded)
        return True


def forget(kind: str, name: str, settings: Settings | None = None) -> None:
    """Remove an upload or run-time addition (``kind``: "models" or "datasets"): its registry entry and
    its uploaded files. Built-in entries are refused. Cached features stay (``alignscope cache rm``)."""
    settings = settings or get_settings()
    if kind not in ("models", "datasets"):
        raise UploadError(f"kind must be 'models' or 'datasets', not {kind!r}")
    check_name(name, what=kind[:-1])
    registry_in_memory = MODELS if kind == "models" else DATASETS
    path = registry_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        registry = read_registry(settings)
        entries = registry.get(kind, [])
        kept = [e for e in entries if e.get("name") != name]
        if len(kept) == len(entries):
            built_in = " (built-in entries cannot be removed)" if registry_in_memory.is_builtin(name) else ""
            raise UploadError(f"{name!r} is not an uploaded or added {kind[:-1]}{built_in}")
        registry[kind] = kept
        if kind == "models":  # the user's numbers described the model removed, not the next of its name
            registry.get("properties", {}).pop(name, None)
        _write_registry(registry, settings)
    shutil.rmtree(upload_folder(kind, name, settings), ignore_errors=True)
    registry_in_memory.unregister(name)
    if kind == "models":
        from alignscope.core.properties import forget_measured

        forget_measured(name, settings)


def _claim_name(kind: str, name: str) -> None:
    """Refuse a name that belongs to a built-in entry; an earlier upload or run-time addition may be replaced."""
    check_name(name, what="dataset" if kind == "datasets" else "model")
    registry = DATASETS if kind == "datasets" else MODELS
    if registry.is_builtin(name):
        raise UploadError(f"{name!r} is a built-in {kind[:-1]}; choose another name")


def _write_folder(kind: str, name: str, files: dict[str, bytes], settings: Settings) -> Path:
    """Write ``files`` into a fresh staging folder of this process and rename it to the upload's folder;
    on any failure the staging folder is removed and an earlier upload of the name stays as it was.

    Raises:
        NoSpaceError: the disk is full.
        UploadError: the file system refused a file (the message names it relative to the upload).
    """
    final = upload_folder(kind, name, settings)
    needed = sum(len(blob) for blob in files.values())
    staging = temp_path(final, STAGING_SUFFIX)
    relative = "."
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        check_free_space(final.parent, needed)
        staging.mkdir()
        for relative, blob in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
        relative = "."
        with FileLock(str(registry_path(settings)) + ".lock"):
            _swap_into_place(staging, final)
    except OSError as error:
        if is_disk_full(error):
            raise NoSpaceError(settings.uploads_dir, needed) from error
        which = "" if relative == "." else f": the file system refused {_shown(relative)}"
        raise UploadError(
            f"the upload could not be stored{which} ({error.strerror or type(error).__name__}); nothing was written"
        ) from error
    finally:
        remove_quietly(staging)
    return final


def _swap_into_place(staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final``; an earlier ``final`` is moved aside first and removed after, or put
    back if the rename fails."""
    previous = None
    if final.exists():
        previous = temp_path(final, STAGING_SUFFIX)
        final.rename(previous)
    try:
        staging.rename(final)
    except OSError:
        if previous is not None:
            previous.rename(final)
        raise
    if previous is not None:
        remove_quietly(previous)


def add_text_dataset(name: str, filename: str, data: bytes, settings: Settings | None = None) -> DatasetSpec:
    """Validate and store a texts upload; register it as dataset ``name``."""
    settings = settings or get_settings()
    _claim_name("datasets", name)
    _check_size(data, settings, filename)
    table = parse_texts(filename, data)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
    _write_folder("datasets", name, {"texts.parquet": buffer.getvalue()}, settings)
    spec = DatasetSpec(
        name=name,
        modality="text",
        source=f"upload:{name}",
        revision=digest,
        label_column="label" if "label" in table.columns else None,
        description=f"uploaded texts from {PurePosixPath(filename).name} ({len(table)} samples"
        + (f"; {table.attrs['dropped_rows']} blank rows left out)" if table.attrs.get("dropped_rows") else ")"),
    )
    register_dataset(spec, overwrite=True)
    _record("datasets", spec, settings)
    return spec


def _image_problem(blob: bytes) -> str | None:
    """Why Pillow cannot read ``blob`` as an image, or None when it can."""
    from PIL import Image, UnidentifiedImageError

    try:
        Image.open(io.BytesIO(blob)).verify()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        return "not a format Pillow knows" if isinstance(exc, UnidentifiedImageError) else str(exc)
    return None


def add_image_dataset(name: str, filename: str, data: bytes, settings: Settings | None = None) -> DatasetSpec:
    """A zip of images (optionally ``captions.csv`` with ``image,caption[,label]``) -> a dataset."""
    settings = settings or get_settings()
    _claim_name("datasets", name)
    _check_size(data, settings, filename)
    _suffix(filename, (".zip",))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UploadError(f"{filename!r} is not a valid zip file") from exc
    files: dict[str, bytes] = {}
    members: list[PurePosixPath] = []
    captions_blob = None
    total = 0
    for info in archive.infolist():
        member = _safe_member(info.filename, filename)
        if member is None or info.is_dir():
            continue
        total += info.file_size
        if total > 4 * settings.max_upload_bytes:
            raise UploadError(f"{filename!r} unpacks to more than {4 * settings.max_upload_bytes / 2**20:.0f} MiB")
        is_captions = member.name.lower() == "captions.csv"
        if not is_captions and member.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        problem = _member_problem(member)
        if problem is not None:
            raise UploadError(f"{_shown(member)} in {filename!r} {problem}; rename it")
        try:
            blob = archive.read(info)
        except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError) as exc:
            raise UploadError(f"{member} in {filename!r} could not be unpacked: {exc}") from exc
        if is_captions:
            captions_blob = blob
            continue
        reason = _image_problem(blob)
        if reason is not None:
            raise UploadError(f"{member} in {filename!r} is not a readable image ({reason})")
        files[f"images/{member}"] = blob
        members.append(member)
    _check_members(members, filename)
    if len(files) < 3:
        raise UploadError(f"{filename!r} holds {len(files)} readable images; at least 3 are needed")
    table = pd.DataFrame({"image": sorted(k.removeprefix("images/") for k in files)})
    if captions_blob is not None:
        table = _paired_captions(captions_blob, set(table["image"]), filename)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    files["index.parquet"] = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    _write_folder("datasets", name, files, settings)
    spec = DatasetSpec(
        name=name,
        modality="image-text" if "caption" in table.columns else "image",
        source=f"upload:{name}",
        revision=digest,
        label_column="label" if "label" in table.columns else None,
        description=f"uploaded images from {PurePosixPath(filename).name} ({len(table)} samples)",
    )
    register_dataset(spec, overwrite=True)
    _record("datasets", spec, settings)
    return spec


def _paired_captions(blob: bytes, images: set[str], filename: str) -> pd.DataFrame:
    """``captions.csv`` (``image``, ``caption`` [, ``label``]) checked against the zip's ``images``: one row
    per image (the image is the sample id), every image present, no empty caption, no NUL byte."""
    _refuse_nul_bytes(blob, f"captions.csv in {filename!r}")
    try:
        captions = pd.read_csv(io.BytesIO(blob), keep_default_na=False, na_values=[""], dtype=str)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise UploadError(f"captions.csv in {filename!r} could not be read: {exc}") from exc
    if not {"image", "caption"} <= set(captions.columns):
        raise UploadError(f"captions.csv needs columns 'image' and 'caption'; it has {list(captions.columns)}")
    captions["image"] = captions["image"].fillna("").astype(str)
    repeated = captions["image"][captions["image"].duplicated(keep=False)]
    if len(repeated):
        image = repeated.iloc[0]
        lines = [int(i) + 2 for i in repeated.index[repeated == image]]  # line 1 is the header
        raise UploadError(
            f"captions.csv in {filename!r} lists image {image!r} {len(lines)} times (lines "
            f"{', '.join(map(str, lines[:5]))}); each image is one sample, so give it one caption"
        )
    missing = sorted(set(captions["image"]) - images)
    if missing:
        raise UploadError(f"captions.csv names images that are not in the zip: {missing[:5]}")
    uncaptioned = sorted(images - set(captions["image"]))
    if uncaptioned:  # they would be dropped silently: an image-text set pairs every image with its caption
        raise UploadError(
            f"captions.csv in {filename!r} has no row for {len(uncaptioned)} of the zip's {len(images)} images "
            f"({', '.join(map(repr, uncaptioned[:3]))}{', …' if len(uncaptioned) > 3 else ''}); caption every "
            "image, or leave captions.csv out for an image-only dataset"
        )
    empty = captions.index[captions["caption"].isna() | (captions["caption"].str.strip() == "")]
    if len(empty):
        raise UploadError(
            f"captions.csv in {filename!r} has no caption for image {captions['image'][empty[0]]!r} "
            f"(line {int(empty[0]) + 2})"
        )
    if "label" in captions.columns:
        captions["label"] = captions["label"].fillna("")
    known = [c for c in ("image", "caption", "label") if c in captions.columns]
    return pd.concat(
        [captions[known].reset_index(drop=True), _metadata(captions, ("image", "caption", "label"), filename)], axis=1
    )


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for member, blob in members.items():
            archive.writestr(member, blob)
    return buffer.getvalue()


def add_image_folder(name: str, folder: str | Path, settings: Settings | None = None) -> DatasetSpec:
    """A local folder of images (optionally ``captions.csv``) -> a dataset, validated like a zip upload."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UploadError(f"{str(folder)!r} is not a folder")
    paths = [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and (path.suffix.lower() in IMAGE_SUFFIXES or path.name.lower() == "captions.csv")
    ]
    # Sizes first: a folder over the limit is refused before any of it is read.
    check_upload_size(sum(path.stat().st_size for path in paths), f"{folder.name}/", settings, allow_empty=True)
    members = {str(path.relative_to(folder).as_posix()): path.read_bytes() for path in paths}
    return add_image_dataset(name, f"{folder.name}.zip", _zip_bytes(members), settings)


def add_image_caption_csv(name: str, csv_path: str | Path, settings: Settings | None = None) -> DatasetSpec:
    """A CSV of ``image`` (path, absolute or relative to the CSV's folder) + ``caption`` [+ ``label``] pairs.
    Every problem names the CSV's data row and the path as written there (not the zip it is packed into)."""
    csv_path = Path(csv_path).expanduser()
    try:
        check_upload_size(csv_path.stat().st_size, csv_path.name, settings)
        with warnings.catch_warnings():  # a row with more fields than the header shifted every column of it
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""], dtype=str, index_col=False)
    except pd.errors.ParserWarning as exc:
        raise UploadError(
            f"{csv_path.name!r} has a row with more fields than its header: quote a caption that holds a comma"
        ) from exc
    except (OSError, ValueError) as exc:
        raise UploadError(f"{str(csv_path)!r} could not be read as CSV: {exc}") from exc
    if not {"image", "caption"} <= set(table.columns):
        raise UploadError(f"{csv_path.name!r} needs columns 'image' and 'caption'; it has {list(table.columns)}")
    if table.empty:  # it said "'x.zip' holds 0 readable images", naming a zip the user never gave
        raise UploadError(f"{csv_path.name!r} has a header and no rows")
    table = table.fillna("")
    image_paths = []
    for index, row in enumerate(table.itertuples(index=False)):
        where = f"row {index + 1} of {csv_path.name!r}"  # data rows, header not counted (a caption can span lines)
        if not str(row.image).strip():
            raise UploadError(f"{where}: no image path")
        if not str(row.caption).strip():  # it was stored as the caption "nan"
            raise UploadError(f"{where}: no caption for image {row.image!r}")
        image_path = Path(str(row.image)).expanduser()
        image_path = image_path if image_path.is_absolute() else csv_path.parent / image_path
        if not image_path.is_file():
            raise UploadError(
                f"{where}: image {row.image!r} does not exist (a relative path is read from the CSV's folder, "
                f"{csv_path.parent.resolve()})"
            )
        if image_path.suffix.lower() not in IMAGE_SUFFIXES:  # it was left out of the zip, and the row with it
            raise UploadError(f"{where}: {row.image!r} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
        image_paths.append(image_path)
    # Sizes first: images over the limit are refused before any is read.
    check_upload_size(sum(path.stat().st_size for path in image_paths), csv_path.name, settings, allow_empty=True)
    members, rows = {}, []
    for index, (row, image_path) in enumerate(zip(table.itertuples(index=False), image_paths)):
        blob = image_path.read_bytes()
        reason = _image_problem(blob)
        if reason is not None:
            raise UploadError(f"row {index + 1} of {csv_path.name!r}: {row.image!r} is not a readable image ({reason})")
        member = f"{index:06d}{image_path.suffix.lower()}"
        members[member] = blob
        rows.append({**table.iloc[index].to_dict(), "image": member})  # other columns: the samples' metadata
    members["captions.csv"] = pd.DataFrame(rows).to_csv(index=False).encode()
    return add_image_dataset(name, f"{csv_path.stem}.zip", _zip_bytes(members), settings)


def add_representation(
    name: str, filename: str, data: bytes, *, dataset: str, settings: Settings | None = None
) -> ModelSpec:
    """Store an ``[N, D]`` matrix whose rows are ``dataset``'s samples; register it as a one-layer model. An
    earlier upload of that name is replaced, and what was measured of it (a probe's accuracy) dropped."""
    from safetensors.numpy import save

    from alignscope.core.datasets import load_dataset

    settings = settings or get_settings()
    _claim_name("models", name)
    _check_size(data, settings, filename)
    array = parse_representation(filename, data)
    spec_dataset = get_dataset_spec(dataset)
    n_total = load_dataset(spec_dataset).n_total
    if array.shape[0] != n_total:
        raise UploadError(
            f"{filename!r} has {array.shape[0]} rows but dataset {dataset!r} has {n_total} samples; "
            "row i must be the representation of sample i"
        )
    _refuse_constant(filename, array)
    blob = save({"features": np.ascontiguousarray(array)})
    digest = hashlib.sha256(blob).hexdigest()
    _write_folder("models", name, {"features.safetensors": blob}, settings)
    spec = ModelSpec(
        name=name,
        family="upload",
        kind="representation",
        source=f"upload:{name}",
        modality="any",
        options=(("dataset", dataset), ("rows", str(array.shape[0])), ("sha256", digest)),
        description=f"precomputed {array.shape[0]}×{array.shape[1]} from {PurePosixPath(filename).name} "
        f"(rows = {dataset})",
    )
    return remember_model(spec, settings)  # another matrix under an upload's name: its probe accuracy goes


def remember_model(spec: ModelSpec, settings: Settings | None = None) -> ModelSpec:
    """Register a run-time model (e.g. a hub id) and keep it across restarts. Replacing an entry of that name
    by other weights drops what was measured for it (its parameter count, a probe's accuracy)."""
    from alignscope.core.properties import forget_measured

    _claim_name("models", spec.name)
    settings = settings or get_settings()
    earlier = MODELS.get(spec.name) if spec.name in MODELS else None
    if earlier is not None and (earlier.kind, earlier.source, earlier.revision, earlier.options) != (
        spec.kind,
        spec.source,
        spec.revision,
        spec.options,
    ):
        forget_measured(spec.name, settings)
    register_model(spec, overwrite=True)
    _record("models", spec, settings)
    return spec


@dataclass(frozen=True)
class AddedModel:
    """What :func:`add_hub_model` did: the ``spec`` kept, the ``previous`` entry of that name it replaced
    (None if none or the same), the hub's ``hub_warning`` (unverified offline, gated), ``modality_note``:
    how the modality was decided when none was given, ``modality_warning``: a given one the model's hub
    metadata or files contradict ("" when none)."""

    spec: ModelSpec
    previous: ModelSpec | None
    hub_warning: str | None
    modality_note: str
    modality_warning: str


def add_hub_model(
    hub_id: str,
    *,
    modality: str | None,
    name: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_local: bool = True,
    settings: Settings | None = None,
) -> AddedModel:
    """Check and keep a ``transformers`` model by hub id (or local folder); ``modality`` None: from the hub's
    pipeline tag or the files (see ``model_modality``), and nothing is added where they do not say.

    Raises:
        InvalidNameError, UnknownModelError: a bad id, or one the hub does not have (nothing is added).
        ModalityError: no modality given and none can be told.
    """
    from alignscope.core.errors import ModalityError
    from alignscope.core.model_modality import DUAL_ENCODER_TYPES
    from alignscope.core.models import hub_model_spec, list_models
    from alignscope.core.sources import check_hub_model

    def spec_for(chosen: str, dual_encoder: bool = False) -> ModelSpec:
        return hub_model_spec(
            hub_id,
            modality=chosen,
            name=name,
            revision=revision,
            trust_remote_code=trust_remote_code,
            allow_local=allow_local,
            dual_encoder=dual_encoder,
        )

    spec = spec_for(modality or "text")  # the id is checked before any request
    check = check_hub_model(spec)  # raises, before anything is saved, when the hub says "no such model"
    guess = check.modality
    if check.model_type in DUAL_ENCODER_TYPES:  # read as one tower: a plain text or vision model fails on it
        if modality is None:
            raise ModalityError(
                f"{hub_id!r} is a {check.model_type} dual encoder (a text and an image tower): choose its text or "
                "image tower (--modality in the CLI); add it twice, with a name each, for both. Nothing was added"
            )
        spec = spec_for(modality, dual_encoder=True)
    elif modality is None:
        if guess.modality is None:
            raise ModalityError(
                f"cannot tell whether {hub_id!r} reads text or images: {guess.evidence}; choose text or image "
                "(--modality in the CLI). Nothing was added"
            )
        spec = spec_for(guess.modality)
    previous = next((s for s in list_models() if s.name == spec.name), None)
    spec = remember_model(spec, settings)
    warning = ""
    if modality is not None and guess.modality not in (None, modality) and check.model_type not in DUAL_ENCODER_TYPES:
        warning = (
            f"added as {'an image' if modality == 'image' else 'a text'} model as asked, but {guess.evidence}: "
            "check the modality"
        )
    return AddedModel(
        spec,
        previous if previous != spec else None,
        check.warning,
        f"reads {spec.modality} ({guess.evidence})" if modality is None else "",
        warning,
    )


def remember_dataset(spec: DatasetSpec, settings: Settings | None = None) -> DatasetSpec:
    _claim_name("datasets", spec.name)
    register_dataset(spec, overwrite=True)
    _record("datasets", spec, settings or get_settings())
    return spec


__all__ = [
    "AlignscopeError",
    "check_upload_size",
    "AddedModel",
    "add_hub_model",
    "add_image_caption_csv",
    "add_image_dataset",
    "add_image_folder",
    "add_representation",
    "add_text_dataset",
    "load_user_registry",
    "sync_user_registry",
    "parse_representation",
    "parse_texts",
    "remember_dataset",
    "remember_model",
    "forget",
]
