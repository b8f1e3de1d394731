"""Whether a ``transformers`` model reads text or images, told from its files or the hub's metadata, so
``alignscope models --add`` needs no ``--modality`` where the model itself says it (and warns where the
given one contradicts it).

Evidence, in order: the hub's pipeline tag (``image-classification`` → image, ``sentence-similarity`` →
text, …); else the files: a tokenizer (``tokenizer.json``, ``vocab.txt``, …) says text, an image processor
(``preprocessor_config.json`` or ``processor_config.json`` with image settings) says image. Both (CLIP, multimodal models) or neither
say nothing: the user is asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

IMAGE_PIPELINES = frozenset(
    {
        "image-classification",
        "image-feature-extraction",
        "image-segmentation",
        "object-detection",
        "depth-estimation",
        "keypoint-detection",
        "mask-generation",
    }
)
# Tags that say the model reads text or images, but not which: the files decide.
EITHER_PIPELINES = frozenset({"feature-extraction"})
TEXT_PIPELINES = frozenset(
    {
        "sentence-similarity",
        "fill-mask",
        "text-classification",
        "token-classification",
        "question-answering",
        "text-generation",
        "text2text-generation",
        "summarization",
        "translation",
        "zero-shot-classification",
        "text-ranking",
    }
)
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "vocab.json",
        "spiece.model",
        "sentencepiece.bpe.model",
        "tokenizer.model",
    }
)
# An image processor's settings: on their own (preprocessor_config.json) or under "image_processor" (a combined
# processor_config.json, as newer transformers save CLIP's); an audio feature extractor has neither.
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_IMAGE_SETTINGS = ("image_mean", "image_processor_type", "crop_size", "image_processor")


# Dual encoders whose towers the clip-text / clip-image loaders read (text_model + text_projection,
# vision_model + visual_projection): added as one tower, named by the modality given.
DUAL_ENCODER_TYPES = frozenset({"clip"})


def folder_model_type(folder: Path) -> str | None:
    """``model_type`` of a model folder's ``config.json``, or None where it cannot be read."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("model_type") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ModalityGuess:
    """``modality``: "text", "image", or None where the evidence is missing or mixed; ``evidence``: what said
    so (or why nothing did), in words for a message."""

    modality: str | None
    evidence: str


def modality_from_files(names: Iterable[str], processor_configs: Mapping[str, object] | None = None) -> ModalityGuess:
    """From a model's top-level file names; ``processor_configs``: the parsed processor files where they could
    be read (then one counts only with image settings), None where only names are known (the hub)."""
    names = set(names)
    text = bool(names & TOKENIZER_FILES)
    image = any(
        name in names
        and (
            processor_configs is None
            or (
                isinstance(config := processor_configs.get(name), dict)
                and any(key in config for key in _IMAGE_SETTINGS)
            )
        )
        for name in IMAGE_PROCESSOR_FILES
    )
    if text and image:
        return ModalityGuess(None, "it has both a tokenizer and an image processor (a multimodal model)")
    if text:
        return ModalityGuess("text", "it has a tokenizer and no image processor")
    if image:
        return ModalityGuess("image", "it has an image processor and no tokenizer")
    return ModalityGuess(None, "it has neither a tokenizer nor an image processor")


def folder_modality(folder: Path) -> ModalityGuess:
    """:func:`modality_from_files` for a local model folder."""
    names = [path.name for path in folder.iterdir() if path.is_file()]
    configs: dict[str, object] = {}
    for name in IMAGE_PROCESSOR_FILES:
        try:
            configs[name] = json.loads((folder / name).read_text()) if name in names else None
        except (OSError, ValueError):  # not "no image processor": a broken one
            return ModalityGuess(None, f"its {name} is not valid JSON")
    return modality_from_files(names, configs)


def hub_modality(pipeline_tag: str | None, file_names: Iterable[str]) -> ModalityGuess:
    """From the hub's metadata of a model: its pipeline tag, else (no tag, one that could be either, or one of
    text and images together) its file names; a tag of another input (audio, video, …) says neither.

    Example:
        >>> hub_modality("audio-classification", ["preprocessor_config.json"]).modality is None
        True
        >>> hub_modality("feature-extraction", ["preprocessor_config.json"]).modality
        'image'
    """
    if pipeline_tag in IMAGE_PIPELINES:
        return ModalityGuess("image", f"the hub tags it {pipeline_tag!r}")
    if pipeline_tag in TEXT_PIPELINES:
        return ModalityGuess("text", f"the hub tags it {pipeline_tag!r}")
    if pipeline_tag is None or pipeline_tag in EITHER_PIPELINES or "image" in pipeline_tag or "text" in pipeline_tag:
        return modality_from_files(file_names)  # untagged, feature-extraction, or text and images (CLIP, captioners)
    return ModalityGuess(None, f"the hub tags it {pipeline_tag!r}, an input that is neither text nor images")
