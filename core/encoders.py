"""Encoders: a loaded model that maps a batch of inputs to one pooled ``[batch, d]`` tensor per layer.

* :class:`HFTextEncoder`: any ``transformers`` text model, all hidden states; pooling ``mean`` over
  non-padding tokens, ``cls`` (first token) or ``last`` (last non-padding token).
* :class:`HFVisionEncoder`: ViT / DINO / CNN through ``AutoModel`` + ``AutoImageProcessor``, all
  hidden states; ``cls`` or ``mean`` over patches; 4-D conv maps are global-average-pooled.
* :class:`CLIPTowerEncoder`: one tower of a CLIP-style dual encoder, its hidden states plus the
  projected embedding.
* :class:`HookEncoder`: any ``torch.nn.Module`` read out by forward hooks on named submodules.
* :class:`EmbeddingEncoder`: a model with only a final embedding (one layer), or stored rows.

Transformers models load from an absolute folder (:func:`alignscope.core.sources.loadable_folder`),
never from a path relative to the working directory. ``trust_remote_code`` stays off unless the spec
asks for it *and* the user allowed that hub id (``ALIGNSCOPE_TRUST_REMOTE_CODE``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from alignscope.core.errors import ModelLoadError
from alignscope.core.settings import Settings
from alignscope.core.sources import SourceSpec, loadable_folder

POOLINGS = ("mean", "cls", "last")


class Encoder(Protocol):
    """A loaded model: a batch of inputs -> one pooled ``[batch, d]`` float tensor per layer."""

    layer_names: tuple[str, ...]
    modality: str

    def encode(self, batch: Sequence, layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]: ...


class HFSpec(SourceSpec, Protocol):
    @property
    def trust_remote_code(self) -> bool: ...


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


def _hf_kwargs(spec: HFSpec, settings: Settings) -> dict[str, Any]:
    trust = spec.trust_remote_code and spec.source in settings.trust_remote_code_for
    return {"trust_remote_code": trust}


def _hf_load(loader: Callable, spec: HFSpec, settings: Settings, what: str) -> Any:
    folder = loadable_folder(spec)
    try:
        return loader(folder, **_hf_kwargs(spec, settings))
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, HTTP errors, ...
        detail = (str(exc).splitlines()[0] if str(exc) else "").rstrip(".")
        check = "the folder's files" if Path(spec.source).is_absolute() else "the id, your network"
        raise ModelLoadError(
            f"could not load the {what} of model {spec.name!r} from {spec.source!r}"
            f"{' at revision ' + spec.revision if spec.revision else ''}: {type(exc).__name__}: {detail}. "
            f"Check {check}, and whether the model needs trust_remote_code (off unless you allow it)."
        ) from exc


class HFTextEncoder:
    """``transformers`` text model: embeddings output + every transformer layer's hidden state."""

    modality = "text"

    def __init__(self, spec: HFSpec, settings: Settings, device: torch.device, dtype: torch.dtype):
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

    def __init__(self, spec: HFSpec, settings: Settings, device: torch.device, dtype: torch.dtype):
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

    def __init__(self, spec: HFSpec, settings: Settings, device: torch.device, dtype: torch.dtype):
        from transformers import AutoModel, AutoProcessor

        self.modality = "text" if spec.kind == "clip-text" else "image"
        self.processor = _hf_load(AutoProcessor.from_pretrained, spec, settings, "processor")
        model = _hf_load(AutoModel.from_pretrained, spec, settings, "weights")
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype
        config = model.config.text_config if self.modality == "text" else model.config.vision_config
        n_layers = int(config.num_hidden_layers)
        self.layer_names = ("embeddings",) + tuple(f"layer_{i}" for i in range(1, n_layers + 1)) + ("projection",)

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

    def encode_maps(self, batch: Sequence, layer_indices: Sequence[int]) -> list[torch.Tensor]:
        """The hooked outputs as they are: ``[b, c, h, w]`` conv maps, ``[b, t, d]`` or ``[b, d]``."""
        self._captured.clear()
        inputs = self.preprocess(batch).to(self.device, self.dtype)
        self.module(inputs)
        return [self._captured[self.layer_names[i]] for i in layer_indices]

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
    return torch.stack(
        [
            item.to(torch.float32)
            if isinstance(item, torch.Tensor)
            else torch.as_tensor(np.asarray(item, dtype=np.float32))
            for item in batch
        ]
    )


class EmbeddingEncoder:
    """A model that only exposes its final embedding: one layer named ``embedding``."""

    layer_names: tuple[str, ...] = ("embedding",)

    def __init__(self, embed: Callable[[list], np.ndarray], modality: str):
        self._embed = embed
        self.modality = modality

    def encode(self, batch: Sequence, layer_indices: Sequence[int], pooling: str) -> list[torch.Tensor]:
        values = torch.as_tensor(np.asarray(self._embed(list(batch)), dtype=np.float32))
        return [values for _ in layer_indices]


def count_parameters(encoder: object) -> int | None:
    """Parameters of a loaded model (a torch module inside the encoder), or None when it has none here."""
    module = getattr(encoder, "module", None) or getattr(encoder, "model", None)
    if not isinstance(module, torch.nn.Module):
        return None
    return int(sum(parameter.numel() for parameter in module.parameters()))
