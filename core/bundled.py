"""Bundled offline datasets: hand-written topic sentences and captioned sample images.

``core/data/sentences.csv`` holds short English sentences labelled with one of ten topics;
``core/data/image_captions.csv`` pairs sample images with two or three hand-written captions each.
The images themselves are not stored in this repository: they are the sample files that ship inside
installed packages (scikit-image, scikit-learn, matplotlib). They are read straight from those
packages' folders, never through a downloader such as pooch, so nothing here touches the network.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from alignscope.core.errors import DatasetLoadError

_DATA_DIR = Path(__file__).resolve().parent / "data"
SENTENCES_CSV = _DATA_DIR / "sentences.csv"
IMAGE_CAPTIONS_CSV = _DATA_DIR / "image_captions.csv"

_SENTENCE_COLUMNS = ["id", "topic", "text"]
_CAPTION_COLUMNS = ["id", "source", "name", "category", "caption_1", "caption_2", "caption_3"]

# source -> (installed package, folder inside it, {name: file name}).
# skimage names are the ``skimage.data`` loader names (``motorcycle_left``/``_right`` are the two
# halves of ``stereo_motorcycle``); only files that ship inside the wheel are listed, none of the
# images that scikit-image fetches from the internet.
_IMAGES: dict[str, tuple[str, str, dict[str, str]]] = {
    "skimage": (
        "skimage",
        "data",
        {
            "astronaut": "astronaut.png",
            "brick": "brick.png",
            "camera": "camera.png",
            "cell": "cell.png",
            "chelsea": "chelsea.png",
            "clock": "clock_motion.png",
            "coffee": "coffee.png",
            "coins": "coins.png",
            "colorwheel": "color.png",
            "grass": "grass.png",
            "gravel": "gravel.png",
            "horse": "horse.png",
            "hubble_deep_field": "hubble_deep_field.jpg",
            "immunohistochemistry": "ihc.png",
            "microaneurysms": "microaneurysms.png",
            "moon": "moon.png",
            "motorcycle_left": "motorcycle_left.png",
            "motorcycle_right": "motorcycle_right.png",
            "page": "page.png",
            "retina": "retina.jpg",
            "rocket": "rocket.jpg",
            "text": "text.png",
        },
    ),
    "sklearn": (
        "sklearn",
        "datasets/images",
        {"china.jpg": "china.jpg", "flower.jpg": "flower.jpg"},
    ),
    "matplotlib": (
        "matplotlib",
        "mpl-data/sample_data",
        {
            "grace_hopper.jpg": "grace_hopper.jpg",
            "Minduka_Present_Blue_Pack.png": "Minduka_Present_Blue_Pack.png",
            "s1045.ima.gz": "s1045.ima.gz",
        },
    ),
}


def bundled_image_names() -> dict[str, list[str]]:
    """The image names :func:`load_bundled_image` accepts, per source."""
    return {source: sorted(files) for source, (_, _, files) in _IMAGES.items()}


def _image_path(source: str, name: str) -> Path:
    if source not in _IMAGES:
        raise DatasetLoadError(f"Unknown bundled image source {source!r}; expected one of {sorted(_IMAGES)}.")
    package, folder, files = _IMAGES[source]
    if name not in files:
        raise DatasetLoadError(f"Unknown bundled image {name!r} for source {source!r}; known names: {sorted(files)}.")
    # find_spec on a top-level package locates it without importing it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetLoadError(f"Bundled image {source}/{name} needs the package {package!r}, which is not installed.")
    path = Path(next(iter(spec.submodule_search_locations))) / folder / files[name]
    if not path.is_file():
        raise DatasetLoadError(
            f"Bundled image {source}/{name} is missing from the installed {package!r} package "
            f"(expected {path}); reinstall {package!r}."
        )
    return path


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of ``img``; transparent parts are composited onto white rather than black."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _load_raw_mri(path: Path) -> Image.Image:
    """matplotlib's ``s1045.ima.gz``: a gzipped 256x256 little-endian uint16 MRI slice."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    pixels = np.frombuffer(raw, dtype="<u2")
    if pixels.size != 256 * 256:
        raise DatasetLoadError(f"{path} has {pixels.size} pixels, expected a 256x256 MRI slice.")
    arr = pixels.reshape(256, 256).astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
    return Image.fromarray(scaled.round().astype(np.uint8)).convert("RGB")


def load_bundled_image(source: str, name: str) -> Image.Image:
    """Load a sample image shipped inside an installed package, as an RGB PIL image.

    ``source`` is ``"skimage"``, ``"sklearn"`` or ``"matplotlib"``; ``name`` is the skimage loader
    name (e.g. ``"astronaut"``) or the file name for the other two (e.g. ``"china.jpg"``).
    Raises :class:`~core.errors.DatasetLoadError` for an unknown or unreadable image.
    """
    path = _image_path(source, name)
    try:
        if path.name.endswith(".ima.gz"):
            return _load_raw_mri(path)
        with Image.open(path) as img:
            img.load()
            return _to_rgb(img)
    except DatasetLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise DatasetLoadError(f"Could not read bundled image {source}/{name} from {path}: {exc}") from exc


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetLoadError(f"Bundled dataset file {path} is missing; reinstall alignscope.") from exc
    except (OSError, ValueError) as exc:  # pandas' ParserError is a ValueError
        raise DatasetLoadError(f"Could not parse bundled dataset file {path}: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetLoadError(f"Bundled dataset file {path} lacks columns {missing}.")
    return df[columns]


def read_sentences() -> pd.DataFrame:
    """The bundled topic sentences: columns ``id``, ``topic``, ``text`` (all strings)."""
    return _read_csv(SENTENCES_CSV, _SENTENCE_COLUMNS)


def read_image_captions() -> pd.DataFrame:
    """The bundled image-caption pairs: ``id``, ``source``, ``name``, ``category`` (what the photo shows:
    person, animal, object, vehicle, space, biomedical, text, texture, scene), ``caption_1..3`` (strings).

    An absent third caption is an empty string. Load each row's image with :func:`load_bundled_image`.
    """
    return _read_csv(IMAGE_CAPTIONS_CSV, _CAPTION_COLUMNS)
