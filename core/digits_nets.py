"""Small CNNs trained here on scikit-learn's digits: the Convergent Learning setting.

The same architecture trained from different seeds; comparing their layers is the classic sanity
check (matching layers should align best). Training is deterministic per seed, takes a few seconds on
CPU, and the weights are stored in the cache as safetensors, trained once under a file lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file
from torch import nn

from alignscope.core.settings import Settings, get_settings

RECIPE = "v1"
LAYERS = ("conv1", "conv2", "conv3", "fc1", "logits")
TRAIN_FRACTION = 0.7
EPOCHS = 30
SPLIT_SEED = 1234  # one fixed train/test split for every net, so seeds differ only in their init and order


class DigitsCNN(nn.Module):
    """``[b, 1, 8, 8]`` in [0, 1] -> 10 logits. conv16 -> conv32 -> pool -> conv64 -> GAP -> fc64 -> fc10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64, 64)
        self.logits = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.conv3(x))
        x = x.mean(dim=(2, 3))
        x = torch.relu(self.fc1(x))
        return self.logits(x)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1,797 digits as ``[n, 8, 8]`` float32 in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def train_test_split_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_train = int(round(TRAIN_FRACTION * n))
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def train(seed: int) -> tuple[DigitsCNN, dict]:
    """Train one net from ``seed``; returns the net and ``{"test_accuracy": ..., ...}``."""
    images, labels = digits_arrays()
    train_idx, test_idx = train_test_split_indices(len(labels))
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # Tiny convolutions: one thread is fastest (several threads thrash on a busy 2-core machine) and
    # keeps the float reductions, hence the weights, identical across machines with different core counts.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(seed, images, labels, train_idx, test_idx, generator)
    finally:
        torch.set_num_threads(threads)


def _fit(seed, images, labels, train_idx, test_idx, generator) -> tuple[DigitsCNN, dict]:
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    net = DigitsCNN()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    x_train, y_train = x[train_idx], y[train_idx]
    for _ in range(EPOCHS):
        order = torch.randperm(len(train_idx), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(net(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
    net.eval()
    with torch.inference_mode():
        accuracy = (net(x[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
    return net, {"seed": seed, "recipe": RECIPE, "epochs": EPOCHS, "test_accuracy": accuracy}


def recipe_fingerprint() -> str:
    """Hash of everything that determines a trained net besides its seed: the architecture's and the
    training loop's source, and the recipe constants. Part of the feature cache key and the file name."""
    import hashlib
    import inspect

    parts = [inspect.getsource(DigitsCNN), inspect.getsource(train), inspect.getsource(_fit),
             repr((RECIPE, EPOCHS, TRAIN_FRACTION, SPLIT_SEED, LAYERS))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def weights_path(seed: int, settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.models_dir / f"digits-cnn-{RECIPE}-{recipe_fingerprint()}-seed{seed}.safetensors"


def load_or_train(seed: int, settings: Settings | None = None) -> DigitsCNN:
    """The net for ``seed`` from the cache, trained (once, under a lock) if absent or unreadable."""
    path = weights_path(seed, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        net = DigitsCNN()
        if path.exists():
            try:
                net.load_state_dict(load_file(path))
                return net.eval()
            except Exception:  # truncated or corrupt weights: retrain rather than serve them
                path.unlink()
        net, info = train(seed)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata={"recipe": RECIPE})
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps(info, indent=2))
        return net.eval()


def preprocess(batch: Sequence) -> torch.Tensor:
    """Images (PIL or arrays) -> ``[b, 1, 8, 8]`` grey levels in [0, 1]; other sizes are resized."""
    from PIL import Image

    arrays = []
    for item in batch:
        if isinstance(item, Image.Image):
            grey = item.convert("L")
            if grey.size != (8, 8):
                grey = grey.resize((8, 8), Image.BILINEAR)
            arrays.append(np.asarray(grey, dtype=np.float32) / 255.0)
        else:
            arrays.append(np.asarray(item, dtype=np.float32).reshape(8, 8))
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1)
