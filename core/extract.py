"""Layer-wise feature extraction: ``extract_features(model, dataset) -> Features``.

Pure: no cache and no I/O besides loading the model. Batched under ``torch.inference_mode``, each
batch's pooled outputs moved to CPU float32 at once, so memory is bounded by the batch, not by n.
Text batches are sorted by length (less padding) and put back in dataset order afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from alignscope.core.datasets import Dataset
from alignscope.core.encoders import POOLINGS, Encoder, count_parameters
from alignscope.core.errors import InputError, ModalityError
from alignscope.core.models import ModelSpec, get_model_spec, load_model

EXTRACT_VERSION = 1

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(samples_done, samples_total)`` after each batch."""


@dataclass(frozen=True, eq=False)
class Features:
    """Pooled features of one model on one dataset, one ``[n, d_layer]`` float32 tensor per layer.

    Layers of one model may differ in width (CNN blocks), so ``values`` is a tuple; use
    :meth:`stacked` for the ``[n_layers, n, d]`` tensor when all widths agree.
    """

    model: str
    dataset: str
    layer_names: tuple[str, ...]
    values: tuple[torch.Tensor, ...]
    sample_ids: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.layer_names) != len(self.values):
            raise ValueError(f"{len(self.layer_names)} layer names for {len(self.values)} arrays")
        for name, values in zip(self.layer_names, self.values):
            if values.dim() != 2 or values.shape[0] != len(self.sample_ids):
                raise ValueError(
                    f"layer {name!r} has shape {tuple(values.shape)}; expected [{len(self.sample_ids)}, d]"
                )

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(int(v.shape[1]) for v in self.values)

    def layer(self, index_or_name: int | str) -> torch.Tensor:
        index = self.layer_names.index(index_or_name) if isinstance(index_or_name, str) else index_or_name
        return self.values[index]

    def stacked(self) -> torch.Tensor:
        """``[n_layers, n, d]``; raises if layer widths differ."""
        if len(set(self.dims)) != 1:
            raise ValueError(f"layers of {self.model!r} differ in width {self.dims}; use .values")
        return torch.stack(self.values)

    def take(self, indices: Sequence[int]) -> Features:
        """The same layers for a subset of samples (e.g. a nested n-sweep)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return Features(
            self.model,
            self.dataset,
            self.layer_names,
            tuple(v[index] for v in self.values),
            tuple(self.sample_ids[i] for i in index.tolist()),
            dict(self.meta),
        )


def select_layers(layer_names: Sequence[str], layers: str | Sequence[int | str]) -> list[int]:
    """``"all"``, ``"last"``, or a list of indices / names (negative indices count from the end)."""
    if layers == "all":
        return list(range(len(layer_names)))
    if layers == "last":
        return [len(layer_names) - 1]
    chosen = []
    for layer in layers:
        if isinstance(layer, str) and layer in layer_names:
            chosen.append(layer_names.index(layer))
        elif isinstance(layer, (int, np.integer)) and -len(layer_names) <= int(layer) < len(layer_names):
            chosen.append(int(layer) % len(layer_names))
        else:
            raise InputError(f"layer {layer!r} does not exist; this model has {list(layer_names)}")
    return chosen


def extract_features(
    model: ModelSpec | Encoder | str,
    dataset: Dataset,
    *,
    layers: str | Sequence[int | str] = "all",
    pooling: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str | None = None,
    progress: ProgressCallback | None = None,
) -> Features:
    """Encode every sample of ``dataset`` with ``model`` and pool every requested layer.

    Args:
        model: a spec, a registered name, or an already loaded encoder.
        dataset: samples to encode; its modality must suit the model.
        layers: ``"all"``, ``"last"`` or indices / names.
        pooling: ``mean`` / ``cls`` / ``last``; default: the spec's pooling (``mean`` for encoders).
        batch_size: samples per forward pass; bounds memory.
        device: ``auto`` (cuda, mps, cpu), ``cpu``, ``cuda``, ...
        dtype: ``float32`` / ``float16`` / ``bfloat16`` (half precision only on GPU).
        progress: ``progress(done, total)`` after each batch.

    Returns:
        :class:`Features` with ``[len(dataset), d_layer]`` float32 CPU tensors, in dataset order.
    """
    spec: ModelSpec | None = None
    if isinstance(model, (str, ModelSpec)):
        spec = get_model_spec(model) if isinstance(model, str) else model
        if not dataset.spec.supports(spec.modality):  # before loading any weights
            raise ModalityError(
                f"model {spec.name!r} encodes {spec.modality} but dataset {dataset.spec.name!r} holds "
                f"{dataset.spec.modality} samples"
            )
        encoder: Encoder = load_model(spec, device=device, dtype=dtype)
    else:
        encoder = model
    pooling = pooling or (spec.pooling if spec else "mean")
    if pooling not in POOLINGS:
        raise InputError(f"pooling {pooling!r} is not one of {POOLINGS}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if len(dataset) == 0:
        raise InputError(f"dataset {dataset.spec.name!r} has no samples")
    if not dataset.spec.supports(encoder.modality):
        raise ModalityError(
            f"model {getattr(spec, 'name', 'model')!r} encodes {encoder.modality} but dataset "
            f"{dataset.spec.name!r} holds {dataset.spec.modality} samples"
        )
    bound_to = spec.option("dataset") if spec is not None and spec.kind == "representation" else None
    if spec is not None and bound_to is not None and bound_to != dataset.spec.name:
        raise ModalityError(
            f"{spec.name!r} is a precomputed representation of dataset {bound_to!r}; "
            f"it has no rows for {dataset.spec.name!r}"
        )
    layer_indices = select_layers(encoder.layer_names, layers)
    inputs = dataset.inputs(encoder.modality, text=spec.text_index if spec is not None else 1)
    order = _batch_order(inputs, encoder.modality)
    chunks: list[list[torch.Tensor]] = [[] for _ in layer_indices]
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch_index = order[start : start + batch_size]
            batch = [inputs[i] for i in batch_index]
            pooled = encoder.encode(batch, layer_indices, pooling)
            for chunk, values in zip(chunks, pooled):
                chunk.append(values.detach().to("cpu", torch.float32))
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.as_tensor(order)] = torch.arange(len(order))
    layer_values = tuple(torch.cat(chunk)[inverse].contiguous() for chunk in chunks)
    return Features(
        model=getattr(spec, "name", "model"),
        dataset=dataset.spec.name,
        layer_names=tuple(encoder.layer_names[i] for i in layer_indices),
        values=layer_values,
        sample_ids=dataset.sample_ids,
        meta={
            "pooling": pooling,
            "seconds": round(time.perf_counter() - started, 3),
            "extract_version": EXTRACT_VERSION,
            "parameters": count_parameters(encoder),
        },
    )


def _batch_order(inputs: Sequence, modality: str) -> list[int]:
    """Text: longest first (less padding per batch, and an early OOM if any); others: as given."""
    if modality == "text":
        return sorted(range(len(inputs)), key=lambda i: (-len(inputs[i]), i))
    return list(range(len(inputs)))


def record_parameters(features: Features) -> None:
    """Keep the parameter count an extraction measured (``meta["parameters"]``) as the ``params`` property."""
    from alignscope.core.models import ModelProperty
    from alignscope.core.properties import record_measured

    count = features.meta.get("parameters")
    if count:
        record_measured(features.model, ModelProperty("params", float(count), "count", "counted on load"))
