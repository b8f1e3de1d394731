"""Uploads: every bad input gets a clear message and writes nothing; good ones behave like the rest."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from alignscope.core import uploads
from alignscope.core.cache import FeatureCache
from alignscope.core.datasets import get_dataset_spec, load_dataset
from alignscope.core.errors import InvalidNameError, ModalityError, UploadError
from alignscope.core.extract import extract_features
from alignscope.core.models import get_model_spec
from alignscope.core.settings import Settings, get_settings
from alignscope.core.user_store import read_representation


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, blob in files.items():
            archive.writestr(name, blob)
    return buffer.getvalue()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _nothing_written(settings: Settings) -> bool:
    uploads_dir = settings.uploads_dir
    return not uploads_dir.exists() or not [p for p in uploads_dir.iterdir() if p.name != "registry.json"]


def test_text_uploads_in_every_format_become_datasets(cache_dir):
    csv = pd.DataFrame({"text": ["alpha beta", "gamma", "delta epsilon"], "label": ["x", "y", "x"]}).to_csv(index=False)
    spec = uploads.add_text_dataset("my-texts", "t.csv", csv.encode())
    dataset = load_dataset("my-texts")
    assert spec.modality == "text" and dataset.texts == ("alpha beta", "gamma", "delta epsilon")
    assert dataset.labels == ("x", "y", "x")
    uploads.add_text_dataset("lines", "t.txt", b"one\n\ntwo\nthree\n")
    assert load_dataset("lines").texts == ("one", "two", "three")
    buffer = io.BytesIO()
    pd.DataFrame({"sentence": ["a", "b", "c", "d"]}).to_parquet(buffer)
    uploads.add_text_dataset("parq", "t.parquet", buffer.getvalue())
    assert len(load_dataset("parq")) == 4


def test_blank_cells_are_left_out_but_a_text_reading_nan_is_kept(cache_dir):
    csv = b"text,label\nfirst,a\n,b\n   ,a\nNaN,b\nnull,a\nlast,\n"
    spec = uploads.add_text_dataset("gappy", "t.csv", csv)
    dataset = load_dataset("gappy")
    assert dataset.texts == ("first", "NaN", "null", "last")
    assert dataset.labels == ("a", "b", "a", "")
    assert "2 blank rows left out" in spec.description
    one_column = uploads.add_text_dataset("gappy-lines", "t.csv", b"text\nfirst\n\n   \nNaN\nsecond\n\n")
    assert load_dataset("gappy-lines").texts == ("first", "NaN", "second")
    assert "3 blank rows left out" in one_column.description
    buffer = io.BytesIO()
    pd.DataFrame({"text": ["x", None, "y", "z"]}).to_parquet(buffer)
    uploads.add_text_dataset("gappy-parquet", "t.parquet", buffer.getvalue())
    assert load_dataset("gappy-parquet").texts == ("x", "y", "z")


def test_uploads_come_back_after_a_restart(cache_dir):
    from alignscope.core.datasets import unregister_dataset

    uploads.add_text_dataset("persisted", "t.txt", b"one\ntwo\nthree\n")
    unregister_dataset("persisted")
    assert "persisted" in uploads.load_user_registry()
    assert load_dataset("persisted").texts == ("one", "two", "three")


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("t.csv", b"", "empty"),
        ("t.txt", b"only one line\n", "at least 3"),
        ("t.csv", b"\xff\xfe\x00garbage\x00\x01", "could not be read|not UTF-8|no text column"),
        ("t.exe", b"MZ....", "expected one of"),
        ("t.csv", b"a,b\n1,2\n3,4\n5,6\n", "no text column"),
    ],
)
def test_broken_text_uploads_are_refused_with_a_reason(cache_dir, filename, data, message):
    with pytest.raises(UploadError, match=message):
        uploads.add_text_dataset("bad", filename, data)
    assert _nothing_written(get_settings())


def test_uploads_over_the_size_limit_are_refused(cache_dir, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_MAX_UPLOAD_MB", "0.001")
    get_settings.cache_clear()
    with pytest.raises(UploadError, match="limit"):
        uploads.add_text_dataset("big", "t.txt", b"x\n" * 2000)
    assert _nothing_written(get_settings())


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ""])
def test_upload_names_with_paths_are_refused(cache_dir, name):
    with pytest.raises(InvalidNameError):
        uploads.add_text_dataset(name, "t.txt", b"a\nb\nc\n")
    assert not (cache_dir.parent / "evil").exists()


def test_image_zip_with_captions_is_paired_and_traversal_members_are_ignored(cache_dir):
    files = {f"img{i}.png": _png(i) for i in range(4)}
    files["../../escape.png"] = _png(9)
    files["captions.csv"] = b"image,caption,label\nimg0.png,a,x\nimg1.png,b,y\nimg2.png,c,x\nimg3.png,d,y\n"
    spec = uploads.add_image_dataset("pics", "p.zip", _zip(files))
    dataset = load_dataset("pics")
    assert spec.modality == "image-text" and len(dataset) == 4
    assert dataset.texts == ("a", "b", "c", "d") and dataset.images[2].mode == "RGB"
    assert not list(cache_dir.parent.rglob("escape.png"))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.png": _png(0), "b.png": b"not an image", "c.png": _png(2)}, "not a readable image"),
        ({"a.png": _png(0)}, "at least 3"),
        ({"a.png": _png(0), "b.png": _png(1), "c.png": _png(2), "captions.csv": b"file,text\na.png,x\n"}, "columns"),
    ],
)
def test_broken_image_zips_are_refused(cache_dir, files, message):
    with pytest.raises(UploadError, match=message):
        uploads.add_image_dataset("pics", "p.zip", _zip(files))
    assert _nothing_written(get_settings())


def test_a_file_that_is_not_a_zip_is_refused(cache_dir):
    with pytest.raises(UploadError, match="not a valid zip"):
        uploads.add_image_dataset("pics", "p.zip", b"PK\x03\x04 truncated")


def test_representation_upload_behaves_like_a_model_layer(cache_dir, warm_cache_dir):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(1797, 7)).astype(np.float32)
    spec = uploads.add_representation("brain", "b.npy", _npy(values), dataset="digits")
    assert get_model_spec("brain").kind == "representation" and spec.modality == "any"
    subset = load_dataset("digits", n=100, seed=3)
    features = extract_features("brain", subset)
    assert features.layer_names == ("embedding",)
    assert torch.equal(features.values[0], torch.from_numpy(values[list(subset.rows)]))
    cached, result = FeatureCache().get_or_extract("brain", subset)
    assert torch.equal(cached.values[0], features.values[0]) and not result.hit
    with pytest.raises(ModalityError, match="digits"):
        extract_features("brain", load_dataset("sentences", n=10))


def test_representation_in_csv_and_safetensors(cache_dir):
    from safetensors.numpy import save

    values = np.arange(1797 * 2, dtype=np.float32).reshape(1797, 2)
    uploads.add_representation("from-st", "r.safetensors", save({"x": values}), dataset="digits")
    csv = pd.DataFrame(values).to_csv(index=False, header=False).encode()
    uploads.add_representation("from-csv", "r.csv", csv, dataset="digits")
    assert np.array_equal(read_representation("from-csv", get_model_spec("from-csv").option("sha256")), values)


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("r.npy", _npy(np.full((1797, 3), np.nan)), "NaN"),
        ("r.npy", _npy(np.ones((1797, 3)) * np.inf), "NaN/Inf"),
        ("r.npy", _npy(np.ones((500, 3))), "500 rows but dataset 'digits' has 1797"),
        ("r.npy", _npy(np.ones(1797)), "2-D"),
        ("r.npy", _npy(np.array([{"a": 1}] * 1797, dtype=object)), "could not be read|non-numeric"),
        ("r.npy", b"garbage", "could not be read"),
        ("r.safetensors", b"\x00" * 20, "could not be read"),
        ("r.csv", b"a,b\nx,y\n", "non-numeric|could not"),
    ],
)
def test_broken_representations_are_refused_without_loading_pickles(cache_dir, filename, data, message):
    with pytest.raises(UploadError, match=message):
        uploads.add_representation("rep", filename, data, dataset="digits")
    assert _nothing_written(get_settings())
    with pytest.raises(Exception, match="unknown model"):
        get_model_spec("rep")


def test_registered_dataset_spec_is_findable(cache_dir):
    uploads.add_text_dataset("findable", "t.txt", b"a\nb\nc\n")
    assert get_dataset_spec("findable").source == "upload:findable"


def test_image_folder_and_caption_csv_go_through_the_same_validation(cache_dir, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        (folder / "sub" / f"p{i}.png").write_bytes(_png(i))
    (folder / "notes.txt").write_text("ignored")
    spec = uploads.add_image_folder("folder-set", folder)
    assert spec.modality == "image" and len(load_dataset("folder-set")) == 3
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "image,caption\nphotos/sub/p0.png,a red square\nphotos/sub/p1.png,noise\n"
        f"{folder / 'sub' / 'p2.png'},more noise\n"
    )
    paired = uploads.add_image_caption_csv("csv-set", csv)
    dataset = load_dataset("csv-set")
    assert paired.modality == "image-text" and dataset.texts == ("a red square", "noise", "more noise")
    assert np.array_equal(
        np.asarray(dataset.images[1]), np.asarray(Image.open(folder / "sub" / "p1.png").convert("RGB"))
    )
    csv.write_text("image,caption\nmissing.png,x\n")
    with pytest.raises(UploadError, match="does not exist"):
        uploads.add_image_caption_csv("csv-bad", csv)


def test_a_dataset_and_a_representation_of_one_name_do_not_clobber_each_other(cache_dir):
    uploads.add_text_dataset("brain", "t.txt", b"a\nb\nc\n")
    values = np.arange(1797 * 2, dtype=np.float32).reshape(1797, 2)
    uploads.add_representation("brain", "b.npy", _npy(values), dataset="digits")
    assert load_dataset("brain").texts == ("a", "b", "c")
    assert np.array_equal(read_representation("brain", get_model_spec("brain").option("sha256")), values)


@pytest.mark.parametrize("kind", ["dataset", "model"])
def test_uploads_cannot_replace_built_in_entries(cache_dir, kind):
    if kind == "dataset":
        with pytest.raises(UploadError, match="built-in"):
            uploads.add_text_dataset("sentences", "t.txt", b"a\nb\nc\n")
        assert len(load_dataset("sentences")) > 500
    else:
        with pytest.raises(UploadError, match="built-in"):
            uploads.add_representation("minilm-l6", "r.npy", _npy(np.ones((1797, 2))), dataset="digits")
        assert get_model_spec("minilm-l6").kind == "hf-text"
    uploads.add_text_dataset("mine", "t.txt", b"a\nb\nc\n")
    uploads.add_text_dataset("mine", "t.txt", b"d\ne\nf\n")  # an upload may replace an upload
    assert load_dataset("mine").texts == ("d", "e", "f")


@pytest.mark.parametrize("captions", [b"", b"\x00\x01\x02", b'image,caption\n"unterminated'])
def test_unreadable_captions_csv_is_an_upload_error(cache_dir, captions):
    files = {f"img{i}.png": _png(i) for i in range(3)}
    files["captions.csv"] = captions
    with pytest.raises(UploadError):
        uploads.add_image_dataset("pics", "p.zip", _zip(files))
