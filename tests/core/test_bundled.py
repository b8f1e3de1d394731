"""The bundled offline datasets: sentence and caption CSVs, and the package sample images they name."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alignscope.core.bundled import (
    bundled_image_names,
    load_bundled_image,
    read_image_captions,
    read_sentences,
)
from alignscope.core.errors import AlignscopeError, DatasetLoadError

CAPTION_COLUMNS = ["caption_1", "caption_2", "caption_3"]


@pytest.fixture(scope="module")
def sentences() -> pd.DataFrame:
    return read_sentences()


@pytest.fixture(scope="module")
def captions() -> pd.DataFrame:
    return read_image_captions()


def test_sentences_columns_and_count(sentences):
    assert list(sentences.columns) == ["id", "topic", "text"]
    assert len(sentences) >= 500


def test_sentences_ten_balanced_topics(sentences):
    counts = sentences["topic"].value_counts()
    assert len(counts) == 10, counts.to_dict()
    assert counts.min() >= 40, counts.to_dict()


def test_sentences_ids_and_texts_unique(sentences):
    assert sentences["id"].is_unique
    assert sentences["id"].str.fullmatch(r"s\d{4}").all()
    normalized = sentences["text"].str.strip().str.lower()
    assert normalized.is_unique, sentences.loc[normalized.duplicated(keep=False), "text"].tolist()


def test_sentences_are_sentences(sentences):
    words = sentences["text"].str.split().str.len()
    assert words.between(6, 30).all(), sentences.loc[~words.between(6, 30), "text"].tolist()
    assert (sentences["text"] == sentences["text"].str.strip()).all()


def test_captions_table_shape(captions):
    assert list(captions.columns) == ["id", "source", "name", "category", *CAPTION_COLUMNS]
    assert captions["category"].value_counts().min() >= 2  # every label has company: by-label roll-ups work
    assert len(captions) >= 20
    assert captions["id"].is_unique
    assert set(captions["source"]) <= {"skimage", "sklearn", "matplotlib"}
    assert not captions.duplicated(["source", "name"]).any()


def test_each_image_has_two_distinct_captions(captions):
    for row in captions.itertuples(index=False):
        texts = [getattr(row, c).strip() for c in CAPTION_COLUMNS if getattr(row, c).strip()]
        assert len(texts) >= 2, row.id
        assert len(set(texts)) == len(texts), row.id


def test_every_captioned_image_loads_as_rgb(captions):
    for row in captions.itertuples(index=False):
        img = load_bundled_image(row.source, row.name)
        assert isinstance(img, Image.Image)
        assert img.mode == "RGB", (row.id, img.mode)
        width, height = img.size
        assert width > 32 and height > 32, (row.id, img.size)


def test_every_registered_name_loads():
    names = bundled_image_names()
    assert set(names) == {"skimage", "sklearn", "matplotlib"}
    for source, entries in names.items():
        for name in entries:
            assert load_bundled_image(source, name).mode == "RGB"


def test_transparent_image_is_composited_on_white():
    # horse.png is a black silhouette on a transparent background; it must not turn all black.
    img = load_bundled_image("skimage", "horse")
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert np.asarray(img.convert("L")).min() < 50


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("skimage", "no_such_image"),
        ("skimage", "eagle"),  # a real skimage loader, but it downloads; not offered
        ("sklearn", "china"),
        ("nope", "astronaut"),
    ],
)
def test_unknown_image_raises(source, name):
    with pytest.raises(DatasetLoadError, match="Unknown bundled image") as info:
        load_bundled_image(source, name)
    assert isinstance(info.value, AlignscopeError)
    assert repr(name) in str(info.value) or repr(source) in str(info.value)
