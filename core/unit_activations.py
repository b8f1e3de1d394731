"""Unit activations for convergent learning (Li et al. 2016): one layer of a hooked torch module read
without global average pooling, optionally after a ReLU.

Li et al. match conv units over *images × spatial positions*: each position of each image is a sample
of every channel. :func:`unit_activations` reads a conv layer's map ``[b, c, h, w]`` and returns
``[n · p, c]`` rows (image-major, then position), where at most ``max_positions`` positions per image
are kept, the same seeded positions for every image and every net (a 112 × 112 map would otherwise give
12,544 rows per image). Layers that are not conv maps give ``[n, d]`` as extraction does (token
sequences mean-pooled).

``activation``: ``"output"`` reads the hooked module's output as it is (for a ``Conv2d`` / ``Linear``
followed by a ReLU, the pre-activation — what the feature cache stores); ``"relu"`` applies ReLU to it,
the post-activation of such a layer (the digits CNNs apply ReLU after every conv and ``fc1``).
"""

from __future__ import annotations

import numpy as np
import torch

from alignscope.core.datasets import Dataset
from alignscope.core.encoders import Encoder, HookEncoder, pool_tokens
from alignscope.core.errors import InputError

ACTIVATIONS = ("output", "relu")
MAX_POSITIONS = 64


def position_index(height: int, width: int, max_positions: int, seed: int) -> np.ndarray:
    """The flattened positions kept of an ``height × width`` map: all, or a seeded sorted subset."""
    total = height * width
    if total <= max_positions:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, max_positions, replace=False))


def unit_activations(
    encoder: Encoder,
    dataset: Dataset,
    layer_index: int,
    *,
    positions: bool,
    activation: str = "output",
    max_positions: int = MAX_POSITIONS,
    seed: int = 0,
    batch_size: int = 64,
) -> np.ndarray:
    """float32 ``[n · p, c]`` with ``positions`` (conv maps), else ``[n, c]`` (averaged over positions
    after the activation); rows in ``dataset``'s order."""
    if activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if not isinstance(encoder, HookEncoder):
        raise InputError(
            "unit activations over spatial positions are read from hooked torch modules (the digits CNNs, "
            "EfficientNet-Lite, register_torch_module); this model gives pooled features only"
        )
    inputs = dataset.inputs(encoder.modality)
    chunks: list[torch.Tensor] = []
    keep: np.ndarray | None = None
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            (output,) = encoder.encode_maps(list(inputs[start : start + batch_size]), [layer_index])
            output = output.detach().to("cpu", torch.float32)
            if activation == "relu":
                output = torch.relu(output)
            if output.dim() == 4 and positions:
                b, c, h, w = output.shape
                if keep is None:
                    keep = position_index(h, w, max_positions, seed)
                rows = output.reshape(b, c, h * w)[:, :, torch.as_tensor(keep)]  # [b, c, p]
                chunks.append(rows.permute(0, 2, 1).reshape(-1, c))
            elif output.dim() == 4:
                chunks.append(output.mean(dim=(2, 3)))
            elif output.dim() == 3:
                chunks.append(pool_tokens(output, None, "mean"))
            else:
                chunks.append(output.flatten(1))
    return torch.cat(chunks).numpy()
