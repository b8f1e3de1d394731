"""Small CNNs trained here on scikit-learn's digits: the Convergent Learning setting, and a ladder.

The same architecture trained from different seeds; comparing their layers is the classic sanity
check (matching layers should align best). Training is deterministic per seed, takes a few seconds on
CPU, and the weights are stored in the cache as safetensors, trained once under a file lock.

The *digits ladder* (:data:`LADDER`) is the same five-layer net at other widths and training budgets
(epochs, training samples), from clearly weak (~54%) to ~98.5% held-out accuracy, for trends of alignment
against task performance and size. A :class:`DigitsRecipe` says how one net is trained;
:func:`load_or_train_recipe` trains it on first use.

Every weights file has a JSON sidecar holding its sha256, written after the weights (temp file +
rename, as the feature cache does). Loading checks it: weights whose checksum does not match, or that
have no valid sidecar, are retrained (deterministic, so intact weights come back bit for bit) with a
warning. That includes weights written before checksums (a sidecar without ``sha256``): rather than
bless a file nobody can vouch for, they are retrained once, which costs seconds and gives the same bytes
back when the file was intact (a second warning says so when it was not: features cached from it are
stale). :func:`verify_trained_weights` reports on them without changing anything.

The three seed nets predate the ladder: :class:`DigitsCNN`, :func:`train` and :func:`_fit` stay
exactly as they were, because :func:`recipe_fingerprint` hashes their source into the seed nets' file
names and feature-cache keys. ``tests/core/test_digits_nets.py`` checks that :func:`train_recipe`
reproduces :func:`train` bit for bit, so the ladder is a true generalisation of them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file
from torch import nn

from alignscope.core.devices import torch_threads
from alignscope.core.errors import InputError
from alignscope.core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

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


@functools.cache  # source cannot change within a process; reading it cost ~20 ms per cache-key lookup
def _seed_net_source() -> str:
    import inspect

    return "\n".join(inspect.getsource(item) for item in (DigitsCNN, train, _fit))


def recipe_fingerprint() -> str:
    """Hash of everything that determines a trained net besides its seed: the architecture's and the
    training loop's source, and the recipe constants. Part of the feature cache key and the file name."""
    import hashlib

    parts = [_seed_net_source(), repr((RECIPE, EPOCHS, TRAIN_FRACTION, SPLIT_SEED, LAYERS))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def weights_path(seed: int, settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.models_dir / f"digits-cnn-{RECIPE}-{recipe_fingerprint()}-seed{seed}.safetensors"


def load_or_train(seed: int, settings: Settings | None = None) -> DigitsCNN:
    """The net for ``seed`` from the cache, trained (once, under a lock) if absent, unreadable or not
    matching the checksum in its sidecar."""
    path = weights_path(seed, settings)
    net, _ = _load_or_train(path, DigitsCNN, lambda: train(seed), metadata={"recipe": RECIPE})
    return cast(DigitsCNN, net)


def preprocess(batch: Sequence) -> torch.Tensor:
    """Images (PIL or arrays) -> ``[b, 1, 8, 8]`` grey levels in [0, 1]; other sizes are resized."""
    from PIL import Image

    arrays = []
    for item in batch:
        if isinstance(item, Image.Image):
            grey = item.convert("L")
            if grey.size != (8, 8):
                grey = grey.resize((8, 8), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(grey, dtype=np.float32) / 255.0)
        else:
            arrays.append(np.asarray(item, dtype=np.float32).reshape(8, 8))
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1)


# --- storage: weights + checksummed sidecar, shared by the seed nets and the ladder -------------------


def _sidecar_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def _read_sidecar(weights: Path) -> dict | None:
    try:
        sidecar = json.loads(_sidecar_path(weights).read_text())
    except (OSError, ValueError):
        return None
    return sidecar if isinstance(sidecar, dict) else None


def _weights_problem(weights: Path, required: Sequence[str] = ()) -> str | None:
    """Why ``weights`` cannot be served as it is, or ``None`` when its sidecar vouches for it (and holds
    the ``required`` fields)."""
    # The feature cache imports models.py, which loads these nets: importing it here, not at the top,
    # keeps the module dependency one way.
    from alignscope.core.files import sha256_file

    if not weights.exists():
        return "weights file missing"
    if not _sidecar_path(weights).exists():
        return "sidecar missing (the write was interrupted)"
    sidecar = _read_sidecar(weights)
    if sidecar is None:
        return "sidecar unreadable"
    if not isinstance(sidecar.get("sha256"), str):
        return "no checksum in the sidecar (written before weights were checksummed)"
    if sha256_file(weights) != sidecar["sha256"]:
        return "checksum mismatch (corrupt or changed since it was written)"
    missing = [name for name in required if name not in sidecar]
    if missing:
        return f"sidecar incomplete (no {', '.join(missing)})"
    return None


def _store(weights: Path, net: nn.Module, info: dict, metadata: dict[str, str]) -> dict:
    """Write the weights (temp file + rename), then the sidecar with their sha256, which marks them complete."""
    from alignscope.core.files import atomic_write_bytes, permissions_as_created, sha256_file, temp_path

    # The old sidecar no longer describes what is about to be written; without one, a crash before the
    # new sidecar lands leaves weights that are retrained, never trusted.
    _sidecar_path(weights).unlink(missing_ok=True)
    # Writers hold the lock, so a temp file of these weights is a killed writer's leftover.
    for leftover in weights.parent.glob(f".{weights.name}.*.tmp"):
        leftover.unlink(missing_ok=True)
    tmp = temp_path(weights)  # names this process, so `alignscope cache gc` knows when its writer died
    try:
        # One metadata entry only, so the same weights always give the same bytes (see cache.py).
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata=metadata)
        permissions_as_created(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        checksum = sha256_file(tmp)
        tmp.replace(weights)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar = {**info, "sha256": checksum, "bytes": weights.stat().st_size}
    atomic_write_bytes(_sidecar_path(weights), json.dumps(sidecar, indent=2).encode())
    return sidecar


def _load_or_train(
    weights: Path,
    new_net: Callable[[], nn.Module],
    train_net: Callable[[], tuple[nn.Module, dict]],
    *,
    metadata: dict[str, str],
    required: Sequence[str] = (),
) -> tuple[nn.Module, dict]:
    """The net stored at ``weights`` and its sidecar, after checking the checksum; (re)trained under a
    file lock when absent, unreadable, not matching or its sidecar lacks a ``required`` field."""
    from alignscope.core.files import sha256_file

    weights.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(weights) + ".lock"):
        problem = _weights_problem(weights, required)
        if problem is None:
            net = new_net()
            try:
                net.load_state_dict(load_file(weights))
                return net.eval(), _read_sidecar(weights) or {}
            except Exception as error:  # checksum matches but not this architecture: retrain, never serve
                problem = f"unreadable ({type(error).__name__}: {error})"
        # What was served from this file: the bytes its sidecar records (a file that does not match them never
        # was), or, before checksums were recorded, the file as it is.
        recorded = (_read_sidecar(weights) or {}).get("sha256") if weights.exists() else None
        previous = recorded or (sha256_file(weights) if weights.exists() else None)
        if previous is not None:
            logger.warning(
                "%s: %s; retraining it (training is deterministic: intact weights come back unchanged)",
                weights.name,
                problem,
            )
        net, info = train_net()
        sidecar = _store(weights, net, info, metadata)
        if previous is not None and previous != sidecar["sha256"]:
            logger.warning(
                "%s: the retrained weights differ from the ones served before; features extracted from "
                "those are stale: `alignscope cache rm` this model's entries",
                weights.name,
            )
        return net.eval(), sidecar


def verify_trained_weights(settings: Settings | None = None) -> dict[str, str]:
    """``{weights file name: "ok" | reason}`` for every digits net in the models folder; changes nothing.

    A bad entry is retrained the next time it is loaded. For ``alignscope cache verify``.
    """
    models_dir = (settings or get_settings()).models_dir
    if not models_dir.is_dir():
        return {}
    names = {p.name for p in models_dir.glob("digits-*.safetensors")}
    names |= {p.with_suffix(".safetensors").name for p in models_dir.glob("digits-*.json")}
    return {name: _weights_problem(models_dir / name) or "ok" for name in sorted(names)}


# --- the digits ladder: the same five layers at other widths and training budgets ----------------------

BASE_CHANNELS = (16, 32, 64, 64)  # DigitsCNN's conv1, conv2, conv3 and fc1 widths: width 1.0
LADDER_FORMAT = "ladder-v1"  # bump when the ladder's training changes in a way the source hash cannot see
SUBSET_SEED = 4321  # one fixed order of the training split: smaller budgets are nested subsets


class ScaledDigitsCNN(DigitsCNN):
    """:class:`DigitsCNN` with other widths ``(conv1, conv2, conv3, fc1)``: the same five layers and forward.

    Built in the same order as :class:`DigitsCNN`, so at ``BASE_CHANNELS`` it draws the same initial
    weights from the same seed.
    """

    def __init__(self, channels: tuple[int, int, int, int] = BASE_CHANNELS) -> None:
        nn.Module.__init__(self)
        conv1, conv2, conv3, hidden = channels
        self.conv1 = nn.Conv2d(1, conv1, 3, padding=1)
        self.conv2 = nn.Conv2d(conv1, conv2, 3, padding=1)
        self.conv3 = nn.Conv2d(conv2, conv3, 3, padding=1)
        self.fc1 = nn.Linear(conv3, hidden)
        self.logits = nn.Linear(hidden, 10)


@dataclass(frozen=True)
class DigitsRecipe:
    """How one digits net is trained; everything that determines its weights.

    Attributes:
        width: multiplies :data:`BASE_CHANNELS` (rounded, at least 1 channel); 1.0 is :class:`DigitsCNN`.
        epochs: passes over the training samples (Adam, lr 3e-3, batches of 64, as the seed nets).
        train_size: how many samples of the fixed training split to train on (a nested subset in a fixed
            order); ``None`` for all 1,258. The held-out split (539 samples) is the same for every recipe.
        seed: initial weights and batch order.

    Example:
        >>> DigitsRecipe(width=0.5, epochs=3, train_size=200).channels
        (8, 16, 32, 32)
        >>> DigitsRecipe().fingerprint() == DigitsRecipe(width=1, epochs=30).fingerprint()
        True
    """

    width: float = 1.0
    epochs: int = EPOCHS
    train_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise InputError(f"width must be positive, got {self.width}")
        if self.epochs < 1:
            raise InputError(f"epochs must be at least 1, got {self.epochs}")
        if self.train_size is not None and self.train_size < 10:
            raise InputError(f"train_size must be at least 10 (one per class) or None, got {self.train_size}")
        # 1 and 1.0 are the same recipe: store the float, so both hash alike.
        object.__setattr__(self, "width", float(self.width))

    @property
    def channels(self) -> tuple[int, int, int, int]:
        conv1, conv2, conv3, hidden = (max(1, round(self.width * c)) for c in BASE_CHANNELS)
        return conv1, conv2, conv3, hidden

    @property
    def n_params(self) -> int:
        """Trainable parameters, from the widths alone (no training)."""
        conv1, conv2, conv3, hidden = self.channels
        return (
            conv1 * (9 + 1)
            + conv2 * (9 * conv1 + 1)
            + conv3 * (9 * conv2 + 1)
            + hidden * (conv3 + 1)
            + 10 * (hidden + 1)
        )

    @property
    def slug(self) -> str:
        size = "all" if self.train_size is None else str(self.train_size)
        return f"w{self.width:g}-e{self.epochs}-n{size}-seed{self.seed}"

    def fingerprint(self) -> str:
        """Hash of the recipe's fields and of the code and constants that turn it into weights; stable
        across processes. Part of the weights' file name (and, once registered, of feature-cache keys)."""
        parts = [_ladder_code_fingerprint(), json.dumps(asdict(self), sort_keys=True)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


@functools.cache  # source cannot change within a process; reading it is most of a cheap lookup
def _ladder_source() -> str:
    items = (DigitsCNN, ScaledDigitsCNN, digits_arrays, train_test_split_indices, training_subset, train_recipe)
    return "\n".join(inspect.getsource(item) for item in (*items, _fit_recipe))


def _ladder_code_fingerprint() -> str:
    constants = repr((LADDER_FORMAT, TRAIN_FRACTION, SPLIT_SEED, SUBSET_SEED, BASE_CHANNELS, LAYERS))
    return _ladder_source() + "\n" + constants


@dataclass(frozen=True)
class TrainedInfo:
    """What training one recipe measured.

    Attributes:
        test_accuracy: top-1 accuracy on the fixed held-out split (539 samples), in [0, 1].
        n_params: trainable parameters.
        n_train: training samples used.
        train_seconds: wall-clock training time when it was trained (single thread), not when loaded.
    """

    test_accuracy: float
    n_params: int
    n_train: int
    train_seconds: float


_INFO_FIELDS = tuple(TrainedInfo.__dataclass_fields__)  # what a recipe net's sidecar must hold


@dataclass(frozen=True)
class Rung:
    """One named net of the ladder."""

    name: str
    recipe: DigitsRecipe


# Ordered by held-out accuracy, from ~54% to ~98.5% (measured on one CPU thread; the table is in the
# issue "Families and trends"): width and training budget (epochs, samples) vary together, so accuracy
# and size are not one axis. Rung 6 is DigitsCNN's own recipe, hence the same weights as digits-cnn-s0.
# Rungs train in 1-7 s of CPU on one thread; rung 7 (2.2x DigitsCNN's parameters) in about 15.
LADDER: tuple[Rung, ...] = tuple(
    Rung(f"digits-ladder-{i}", recipe)
    for i, recipe in enumerate(
        (
            DigitsRecipe(width=0.25, epochs=10),
            DigitsRecipe(width=1.0, epochs=30, train_size=200),
            DigitsRecipe(width=0.5, epochs=10),
            DigitsRecipe(width=0.5, epochs=20),
            DigitsRecipe(width=1.0, epochs=40, train_size=400),
            DigitsRecipe(width=1.0, epochs=30),
            DigitsRecipe(width=1.5, epochs=40),
        ),
        start=1,
    )
)


def rung(name: str) -> Rung:
    """The ladder rung called ``name``."""
    for candidate in LADDER:
        if candidate.name == name:
            return candidate
    raise InputError(f"no digits ladder rung named {name!r}; the rungs are {', '.join(r.name for r in LADDER)}")


def training_subset(train_idx: np.ndarray, train_size: int | None) -> np.ndarray:
    """The first ``train_size`` indices of ``train_idx`` in one fixed order (sorted); all for ``None``.

    Smaller budgets are subsets of larger ones, so rungs differ in how much they saw, not in what.
    """
    if train_size is None:
        return train_idx
    if train_size > len(train_idx):
        raise InputError(f"train_size {train_size} is larger than the training split ({len(train_idx)} samples)")
    order = np.random.default_rng(SUBSET_SEED).permutation(len(train_idx))
    return np.sort(train_idx[order[:train_size]])


def train_recipe(recipe: DigitsRecipe) -> tuple[ScaledDigitsCNN, TrainedInfo]:
    """Train one net as ``recipe`` says; deterministic, and the caller's global torch RNG is left as it was.

    With ``DigitsRecipe(width=1.0, epochs=EPOCHS, seed=s)`` it gives :func:`train`'s weights for ``s``.
    """
    images, labels = digits_arrays()
    train_idx, test_idx = train_test_split_indices(len(labels))
    train_idx = training_subset(train_idx, recipe.train_size)
    started = time.perf_counter()
    with (
        torch.random.fork_rng(devices=[]),
        torch_threads(1),
    ):  # as in train(): fastest for tiny convolutions, identical weights across machines
        torch.manual_seed(recipe.seed)
        net = ScaledDigitsCNN(recipe.channels)
        generator = torch.Generator().manual_seed(recipe.seed)
        accuracy = _fit_recipe(net, recipe.epochs, images, labels, train_idx, test_idx, generator)
    seconds = time.perf_counter() - started
    n_params = sum(p.numel() for p in net.parameters())
    return net, TrainedInfo(accuracy, n_params, len(train_idx), seconds)


def _fit_recipe(net, epochs, images, labels, train_idx, test_idx, generator) -> float:
    """:func:`_fit`'s loop for any net and number of epochs; returns the held-out accuracy."""
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    x_train, y_train = x[train_idx], y[train_idx]
    for _ in range(epochs):
        order = torch.randperm(len(train_idx), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(net(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
    net.eval()
    with torch.inference_mode():
        return (net(x[test_idx]).argmax(1) == y[test_idx]).float().mean().item()


def recipe_weights_path(recipe: DigitsRecipe, settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.models_dir / f"digits-{recipe.slug}-{recipe.fingerprint()}.safetensors"


def load_or_train_recipe(recipe: DigitsRecipe, settings: Settings | None = None) -> tuple[ScaledDigitsCNN, TrainedInfo]:
    """The net for ``recipe`` and what its training measured, from the cache (checksum verified) or
    trained there on first use, under a lock."""

    def train_for_sidecar() -> tuple[nn.Module, dict]:
        net, info = train_recipe(recipe)
        return net, {"recipe": asdict(recipe), "fingerprint": recipe.fingerprint(), **asdict(info)}

    path = recipe_weights_path(recipe, settings)
    net, sidecar = _load_or_train(
        path,
        lambda: ScaledDigitsCNN(recipe.channels),
        train_for_sidecar,
        metadata={"recipe": f"{LADDER_FORMAT}:{recipe.slug}"},
        required=_INFO_FIELDS,
    )
    return cast(ScaledDigitsCNN, net), _info_from_sidecar(sidecar)


def trained_info(recipe: DigitsRecipe, settings: Settings | None = None) -> TrainedInfo | None:
    """What training ``recipe`` measured, if it is trained and verified in the cache; never trains."""
    path = recipe_weights_path(recipe, settings)
    if _weights_problem(path, _INFO_FIELDS) is not None:
        return None
    return _info_from_sidecar(_read_sidecar(path) or {})


def _info_from_sidecar(sidecar: dict) -> TrainedInfo:
    return TrainedInfo(
        test_accuracy=float(sidecar["test_accuracy"]),
        n_params=int(sidecar["n_params"]),
        n_train=int(sidecar["n_train"]),
        train_seconds=float(sidecar["train_seconds"]),
    )
