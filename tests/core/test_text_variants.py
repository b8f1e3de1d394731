"""Several texts per sample: the captions set holds all three captions of each photo; a text model's
``text`` option encodes another one, through the same extraction path (and cache key rules) as the first,
so caption-vs-caption alignment — the text ceiling of image–text scores — is a model pair like any other."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from alignscope.core.analysis.features import modality_problem
from alignscope.core.bundled import IMAGE_CAPTIONS_CSV
from alignscope.core.cache import feature_key
from alignscope.core.cli import main
from alignscope.core.datasets import load_dataset
from alignscope.core.errors import InputError
from alignscope.core.extract import extract_features
from alignscope.core.models import get_model_spec, text_variant


def test_the_captions_set_holds_every_caption_of_every_photo():
    table = pd.read_csv(IMAGE_CAPTIONS_CSV, keep_default_na=False)
    captions = load_dataset("captions")
    assert captions.n_texts == 3
    for text in (1, 2, 3):
        assert captions.texts_at(text) == tuple(table[f"caption_{text}"])
    assert captions.texts_at(1) == captions.texts
    subset = captions.subset(7, seed=3)
    position = {sid: i for i, sid in enumerate(captions.sample_ids)}
    assert subset.texts_at(3) == tuple(captions.texts_at(3)[position[sid]] for sid in subset.sample_ids)
    with pytest.raises(InputError, match="3 text\\(s\\) per sample; there is no text 4"):
        captions.texts_at(4)
    assert load_dataset("sentences").n_texts == 1


def test_a_text_variant_encodes_the_other_caption_through_the_same_path():
    spec = get_model_spec("minilm-l6.text2")
    assert spec.text_index == 2 and spec.modality == "text"
    captions = load_dataset("captions").subset(6, seed=0)
    second = extract_features(spec, captions)
    as_first = extract_features(get_model_spec("minilm-l6"), dataclasses.replace(captions, texts=captions.texts_at(2)))
    assert all(torch.equal(a, b) for a, b in zip(second.values, as_first.values))
    first = extract_features(get_model_spec("minilm-l6"), captions)
    assert not torch.equal(first.values[-1], second.values[-1])
    # the key names the texts encoded: a variant never reads the first caption's features
    assert feature_key(spec, captions) != feature_key(get_model_spec("minilm-l6"), captions)


def test_text_variants_are_refused_where_they_make_no_sense():
    with pytest.raises(InputError, match="only a text model"):
        text_variant(get_model_spec("digits-cnn-s0"), 2)
    with pytest.raises(InputError, match="from 2 to 9"):
        text_variant(get_model_spec("minilm-l6"), 1)
    problem = modality_problem("minilm-l6.text2", "sentences")
    assert problem is not None and "holds 1 text(s) per sample" in problem
    assert modality_problem("minilm-l6.text2", "captions") is None
    again = text_variant(get_model_spec("minilm-l6.text2"), 3)
    assert again.name == "minilm-l6.text3"
    # a variant of a variant said "...; encodes text 2 of each sample; encodes text 3 of each sample"
    assert again.description == text_variant(get_model_spec("minilm-l6"), 3).description
    assert again.description.count("encodes text") == 1


def test_the_caption_ceiling_is_a_pair_score_like_any_other(cache_dir, capsys):
    from alignscope.core.analysis import PairRequest, metric_params, run
    from alignscope.core.metrics.registry import compute

    score = run(
        PairRequest(
            "minilm-l6", "minilm-l6.text2", "captions", 25, 0, "mutual_knn", metric_params("mutual_knn", k=3), "last"
        )
    )
    captions = load_dataset("captions")
    a = extract_features(get_model_spec("minilm-l6"), captions).values[-1]
    b = extract_features(get_model_spec("minilm-l6"), dataclasses.replace(captions, texts=captions.texts_at(2))).values[
        -1
    ]
    assert score.value == pytest.approx(compute("mutual_knn", a, b, k=3), abs=1e-12)
    assert 0.0 < score.value < 1.0  # two different captions of one photo: neither unrelated nor identical
    assert main(["models", "--text-variant", "minilm-l6", "3"]) == 0
    assert "added minilm-l6.text3" in capsys.readouterr().out
    assert get_model_spec("minilm-l6.text3").text_index == 3
    from alignscope.core.models import unregister_model

    unregister_model("minilm-l6.text3")  # registered in this process: other tests list the built-ins
    assert np.isfinite(score.chance)
