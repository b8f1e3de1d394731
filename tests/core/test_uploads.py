"""Uploads: every bad input gets a clear message and writes nothing; good ones behave like the rest."""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from alignscope.core import uploads
from alignscope.core.cache import FeatureCache
from alignscope.core.datasets import get_dataset_spec, list_datasets, load_dataset
from alignscope.core.errors import InputError, InvalidNameError, ModalityError, UploadError
from alignscope.core.extract import extract_features
from alignscope.core.models import get_model_spec
from alignscope.core.settings import Settings, get_settings
from alignscope.core.user_store import read_representation, upload_folder


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
        ("t.csv", b"\xff\xfe\x00garbage\x00\x01", "NUL byte"),
        ("t.csv", b"\xff\xfegarbage\x01", "could not be read|not UTF-8|no text column"),
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


def test_image_zip_with_captions_is_paired(cache_dir):
    files = {f"img{i}.png": _png(i) for i in range(4)}
    files["__MACOSX/._img0.png"] = b"resource fork"  # macOS metadata: skipped, not an image
    files["captions.csv"] = b"image,caption,label\nimg0.png,a,x\nimg1.png,b,y\nimg2.png,c,x\nimg3.png,d,y\n"
    spec = uploads.add_image_dataset("pics", "p.zip", _zip(files))
    dataset = load_dataset("pics")
    assert spec.modality == "image-text" and len(dataset) == 4
    assert dataset.texts == ("a", "b", "c", "d") and dataset.images[2].mode == "RGB"


@pytest.mark.parametrize("member", ["../../escape.png", "/tmp/escape.png", "a/../../escape.png", "..\\escape.png"])
def test_a_zip_member_pointing_outside_the_zip_refuses_the_upload(cache_dir, member):
    """It was skipped without a word; a zip holding one is broken or hostile, and the user is told so."""
    files = {f"img{i}.png": _png(i) for i in range(4)}
    files[member] = _png(9)
    with pytest.raises(UploadError, match=r"points outside the zip \(an absolute path or '\.\.'\)"):
        uploads.add_image_dataset("pics", "p.zip", _zip(files))
    assert _nothing_written(get_settings()) and not list(cache_dir.parent.rglob("escape.png"))


def test_captions_that_leave_images_out_are_refused_not_dropped(cache_dir):
    """Six images, two captioned: the upload said '(2 samples)' and four images were gone."""
    files = {f"img{i}.png": _png(i) for i in range(6)}
    files["captions.csv"] = b"image,caption\nimg0.png,a\nimg1.png,b\n"
    message = "has no row for 4 of the zip's 6 images ('img2.png', 'img3.png', 'img4.png', …); caption every image"
    with pytest.raises(UploadError, match=re.escape(message)):
        uploads.add_image_dataset("pics", "p.zip", _zip(files))
    assert _nothing_written(get_settings())


@pytest.mark.parametrize(
    ("files", "message"),
    [
        # was "(cannot identify image file <_io.BytesIO object at 0x7f..>)": an address, not a reason
        (
            {"a.png": _png(0), "b.png": b"not an image", "c.png": _png(2)},
            r"b.png in .* is not a readable image \(not a format Pillow knows\)$",
        ),
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
        # numpy's own message spoke of allow_pickle, an option the user cannot set
        ("r.npy", _npy(np.array([{"a": 1}] * 1797, dtype=object)), "holds Python objects .* never loads pickles"),
        ("r.npy", b"0.1 0.2\n0.3 0.4\n", "is not a .npy file \\(no NumPy header\\)"),  # text named .npy
        ("r.npy", _npy(np.ones((2, 2)))[:-8], r"says it holds shape \(2, 2\) of float64 \(32 bytes\) but has 24"),
        # a header claiming 7 TB: it was a MemoryError "Unable to allocate 6.54 TiB"
        ("r.npy", _npy(np.ones((2, 2), np.float32)).replace(b"(2, 2)", b"(1797, 1000000000)"), "cut short"),
        ("r.npy", _npy(np.ones((2, 2))).replace(b"}", b" ", 1), "damaged NumPy header"),  # was a TokenError
        ("r.safetensors", b"\x00" * 20, "could not be read"),
        ("r.csv", b"a,b\nx,y\n", "non-numeric|could not"),
        ("r.csv", "1,2\n3,4\n".encode("utf-16"), "NUL byte .* UTF-16"),  # was a UnicodeDecodeError
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
    with pytest.raises(UploadError, match="row 1 of 'pairs.csv': image 'missing.png' does not exist .* CSV's folder"):
        uploads.add_image_caption_csv("csv-bad", csv)
    # each problem names the CSV's row and the path written there, never the zip the images are packed into
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "clip.mp4").write_bytes(_png(0))
    for rows, message in [
        ("photos/sub/p0.png,a\nphotos/sub/p1.png,\nphotos/sub/p2.png,c\n", "row 2 of 'pairs.csv': no caption"),
        (
            "photos/sub/p0.png,a\nphotos/broken.png,b\nphotos/sub/p2.png,c\n",
            "row 2 .*'photos/broken.png' is not a readable",
        ),
        (
            "photos/sub/p0.png,a\nphotos/clip.mp4,b\nphotos/sub/p2.png,c\n",
            "row 2 .*'photos/clip.mp4' is not an image file",
        ),
    ]:
        csv.write_text("image,caption\n" + rows)
        with pytest.raises(UploadError, match=message) as refused:
            uploads.add_image_caption_csv("csv-bad", csv)
        assert ".zip" not in str(refused.value) and "000001" not in str(refused.value)
    assert "csv-bad" not in [spec.name for spec in list_datasets()]
    # a row with one field too many shifted its columns ("image 'ok' does not exist"); a header alone named a zip
    csv.write_text("image,caption\nphotos/sub/p0.png,ok,extra\nphotos/sub/p1.png,b\nphotos/sub/p2.png,c\n")
    with pytest.raises(UploadError, match="a row with more fields than its header: quote a caption"):
        uploads.add_image_caption_csv("csv-bad", csv)
    csv.write_text("image,caption\n")
    with pytest.raises(UploadError, match="'pairs.csv' has a header and no rows"):
        uploads.add_image_caption_csv("csv-bad", csv)
    # other columns are the samples' metadata, as in a zip's captions.csv (they were dropped)
    csv.write_text(
        "image,caption,site\nphotos/sub/p0.png,a,north\nphotos/sub/p1.png,b,south\nphotos/sub/p2.png,c,east\n"
    )
    uploads.add_image_caption_csv("csv-meta", csv)
    assert load_dataset("csv-meta").metadata_column("site").values == ("north", "south", "east")
    # image-caption pairs uploaded as plain text took the image paths as the texts
    with pytest.raises(UploadError, match="image-caption pairs are uploaded with --image-pairs"):
        uploads.add_text_dataset("csv-text", "pairs.csv", csv.read_bytes())


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


# -- zips whose members cannot all be written, and failed writes (issue "Hardening", point 7) --------------


def _leftovers(settings: Settings) -> list[str]:
    """Everything under uploads/ besides the registry and its lock: staging folders, temp files, uploads."""
    root = settings.uploads_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (["a.png", "a.png/b.png"], "'a.png' in 'p.zip' is both an image and the folder of 'a.png/b.png'"),
        (["a.png/b.png", "a.png"], "'a.png' in 'p.zip' is both an image and the folder of 'a.png/b.png'"),
        (["x" * 296 + ".png"], "has a name part of 300 bytes (file systems allow 255)"),
        (["/".join(["d" * 200] * 6) + ".png"], "has a path of 1209 bytes (at most 1024)"),
        (["bad\nname.png"], "control character"),
        (["a.png", "a.png"], "'a.png' appears twice in 'p.zip'"),
    ],
)
def test_zip_members_that_cannot_all_be_written_are_refused_and_nothing_stays(cache_dir, members, message):
    """Regression (issue "Hardening", point 7). A zip holding both ``a.png`` and ``a.png/b.png`` (either
    order) or a 300-character member name crashed the upload with FileExistsError / IsADirectoryError /
    OSError, left a ``.<name>.staging/`` folder behind and showed the server's cache path. Now: a clear
    UploadError before anything is written, no path of the server in it."""
    files = {f"ok{i}.png": _png(i) for i in range(3)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # the zip is meant to be bad
        for name, blob in files.items():
            archive.writestr(name, blob)
        for i, member in enumerate(members):
            archive.writestr(member, _png(10 + i))
    with pytest.raises(UploadError, match=re.escape(message)) as raised:
        uploads.add_image_dataset("pics", "p.zip", buffer.getvalue())
    assert str(cache_dir) not in str(raised.value) and "/tmp" not in str(raised.value)
    assert _leftovers(get_settings()) == []


def test_a_write_the_file_system_refuses_leaves_nothing_and_keeps_the_earlier_upload(cache_dir, monkeypatch):
    """Regression (point 7): an OSError while writing the staging folder used to escape raw (naming the
    server's absolute path) and leave the staging folder behind. Now it is an UploadError naming only the
    member, the staging folder is removed, and an earlier upload of the same name is still served."""
    import errno
    from pathlib import Path

    first = {f"img{i}.png": _png(i) for i in range(3)}
    uploads.add_image_dataset("pics", "p.zip", _zip(first))
    real_write_bytes = Path.write_bytes

    def refuse_the_second_image(self, data):
        if self.name == "img1.png" and ".staging" in str(self):
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse_the_second_image)
    with pytest.raises(
        UploadError, match="the file system refused 'images/img1.png' \\(File name too long\\)"
    ) as raised:
        uploads.add_image_dataset("pics", "p.zip", _zip({f"img{i}.png": _png(10 + i) for i in range(3)}))
    assert str(cache_dir) not in str(raised.value)
    assert _leftovers(get_settings()) == [
        "datasets",
        "datasets/pics",
        "datasets/pics/images",
        *[f"datasets/pics/images/img{i}.png" for i in range(3)],
        "datasets/pics/index.parquet",
        "registry.json",
        "registry.json.lock",
    ]
    assert np.array_equal(
        np.asarray(load_dataset("pics").images[1]), np.asarray(Image.open(io.BytesIO(first["img1.png"])).convert("RGB"))
    )


# -- accepted but wrong (point 10) --------------------------------------------------------------------------


def _parquet(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("t.txt", b"one\ntwo\x00\nthree\n", "line 2 of 't.txt' contains a NUL byte"),
        ("t.csv", b"text\none\ntwo\nth\x00ree\n", "line 4 of 't.csv' contains a NUL byte"),
        (
            "t.parquet",
            _parquet(pd.DataFrame({"text": ["one", "t\x00wo", "three"]})),
            "row 2 of 't.parquet' contains a NUL",
        ),
        (
            "t.parquet",
            _parquet(pd.DataFrame({"text": ["one", "two", "three"], "label": ["a", "b", "\x00"]})),
            "the label of row 3 of 't.parquet' contains a NUL",
        ),
    ],
)
def test_texts_with_nul_bytes_are_refused_by_line(cache_dir, filename, data, message):
    """Regression (point 10): NUL bytes in texts were accepted (a binary or UTF-16 file read as text).
    They are refused, naming the line, rather than stripped behind the user's back."""
    with pytest.raises(UploadError, match=re.escape(message)):
        uploads.add_text_dataset("nul", filename, data)
    assert _nothing_written(get_settings())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_npy(np.ones((1797, 3)) + 1j), "holds complex numbers (complex128)"),
        (_npy(np.zeros((1797, 0))), "has shape (1797, 0): no columns (features)"),
        (_npy(np.zeros((0, 4))), "has shape (0, 4): no rows (samples)"),
        (_npy(np.full((1797, 3), 2.5)), "every row is the same (1797 copies of one vector)"),
        (_npy(np.tile(np.arange(4.0), (1797, 1))), "every row is the same"),
        (_npy(np.full((1797, 2), 1e300)), "beyond float32's range"),
    ],
)
def test_matrices_no_metric_can_use_are_refused_with_the_reason(cache_dir, data, message):
    """Regression (point 10): a complex ``.npy`` was accepted with its imaginary part dropped (a
    ComplexWarning only), a 1797×0 matrix and an all-constant one were accepted, and 1e300 became inf
    after the cast to float32 and was reported as "NaN/Inf values"."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way to the refusal
        with pytest.raises(UploadError, match=re.escape(message)):
            uploads.add_representation("rep", "r.npy", data, dataset="digits")
    assert _nothing_written(get_settings())


@pytest.mark.parametrize(
    ("captions", "message"),
    [
        (
            b"image,caption\nimg0.png,a\nimg1.png,b\nimg0.png,c\nimg2.png,d\n",
            "lists image 'img0.png' 2 times (lines 2, 4); each image is one sample",
        ),
        (b"image,caption\nimg0.png,a\nimg1.png,\nimg2.png,c\n", "has no caption for image 'img1.png' (line 3)"),
        (
            b"image,caption\nimg0.png,a\nimg1.png,b\x00\nimg2.png,c\n",
            "line 3 of captions.csv in 'p.zip' contains a NUL",
        ),
    ],
)
def test_captions_that_would_break_the_sample_ids_or_texts_are_refused(cache_dir, captions, message):
    """Regression (point 10): a ``captions.csv`` listing an image twice was accepted, giving two samples one
    id (the image name) — every view keyed by sample id broke; an empty caption became the text "nan"."""
    files = {f"img{i}.png": _png(i) for i in range(3)}
    files["captions.csv"] = captions
    with pytest.raises(UploadError, match=re.escape(message)):
        uploads.add_image_dataset("pics", "p.zip", _zip(files))
    assert _nothing_written(get_settings())


def test_an_upload_stored_with_repeated_images_is_refused_when_loaded(cache_dir):
    """An images upload stored before captions were checked may list one image twice: loading it says
    so (upload again) instead of handing out a dataset whose sample ids repeat."""
    from alignscope.core.errors import DatasetLoadError
    from alignscope.core.user_store import upload_folder

    files = {f"img{i}.png": _png(i) for i in range(3)}
    files["captions.csv"] = b"image,caption\nimg0.png,a\nimg1.png,b\nimg2.png,c\n"
    uploads.add_image_dataset("old-pics", "p.zip", _zip(files))
    index = upload_folder("datasets", "old-pics") / "index.parquet"
    pd.DataFrame({"image": ["img0.png", "img1.png", "img0.png"], "caption": ["a", "b", "c"]}).to_parquet(index)
    with pytest.raises(DatasetLoadError, match="lists image 'img0.png' twice; upload it again"):
        load_dataset("old-pics")


def test_an_uploaded_tables_other_columns_are_metadata_typed_and_subset_with_the_samples(cache_dir):
    table = pd.DataFrame(
        {
            "text": ["alpha", "beta", " ", "gamma", "delta"],
            "label": ["x", "y", "x", "y", "x"],
            "source": ["web", "book", "web", "", "web"],
            "length": [5, 4, 1, 5, None],
            "mixed": ["1", "two", "3", "4", "5"],
        }
    )
    uploads.add_text_dataset("meta", "m.csv", table.to_csv(index=False).encode())
    dataset = load_dataset("meta")  # the blank text (row 3) is left out, with its metadata
    assert [c.name for c in dataset.metadata] == ["source", "length", "mixed"]
    source, length, mixed = dataset.metadata
    assert source.values == ("web", "book", "", "web") and not source.numeric
    assert length.numeric and length.values[:3] == (5.0, 4.0, 5.0) and np.isnan(length.values[3])
    assert not mixed.numeric and mixed.values == ("1", "two", "4", "5")  # one non-number: all text
    subset = dataset.subset(3, seed=1)
    rows = [dataset.sample_ids.index(s) for s in subset.sample_ids]
    assert subset.metadata_column("source").values == tuple(source.values[r] for r in rows)
    assert subset.metadata_column("nope") is None
    # an images upload's captions.csv keeps its other columns too
    files = {f"img{i}.png": _png(i) for i in range(3)}
    files["captions.csv"] = b"image,caption,site,depth\nimg0.png,a,north,1.5\nimg1.png,b,south,2\nimg2.png,c,north,3\n"
    uploads.add_image_dataset("pics-meta", "p.zip", _zip(files))
    pictures = load_dataset("pics-meta")
    assert pictures.metadata_column("site").values == ("north", "south", "north")
    assert pictures.metadata_column("depth").values == (1.5, 2.0, 3.0)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"bad\u0007name": [1, 2, 3]}, "printable"),
        ({"rev\u202eersed": [1, 2, 3]}, "printable"),
        ({"x" * 65: [1, 2, 3]}, "printable"),
        ({"note": ["a", "b\x00", "c"]}, "NUL"),
    ],
)
def test_bad_metadata_columns_are_refused_by_name_and_nothing_is_written(cache_dir, columns, message):
    table = pd.DataFrame({"text": ["a", "b", "c"], **columns})
    with pytest.raises(UploadError, match=message):
        uploads.add_text_dataset("bad-meta", "m.parquet" if "NUL" in message else "m.csv", _table_bytes(table, message))
    assert _nothing_written(get_settings())


def test_a_written_index_and_columns_past_sixteen_are_left_out_not_refused(cache_dir):
    """pandas' default to_csv() writes the index as an unnamed column, and a trailing comma (Excel) adds
    one more: such uploads worked before metadata was kept and must keep working."""
    table = pd.DataFrame({"text": ["a", "b", "c"], **{f"c{i}": [i, i, i] for i in range(20)}})
    csv = table.to_csv().replace("\n", ",\n")  # the index column and a trailing comma on every line
    uploads.add_text_dataset("wide", "w.csv", csv.encode())
    dataset = load_dataset("wide")
    assert dataset.texts == ("a", "b", "c")
    assert [c.name for c in dataset.metadata] == [f"c{i}" for i in range(16)]


def _table_bytes(table: pd.DataFrame, message: str) -> bytes:
    if "NUL" in message:  # a CSV with a NUL byte is refused as binary before its columns are read
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        return buffer.getvalue()
    return table.to_csv(index=False).encode()


def _npy_v2(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=(2, 0))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        _npy(np.arange(12.0).reshape(4, 3)),
        _npy_v2(np.arange(12.0).reshape(4, 3)),  # a version 2 header
        _npy(np.asfortranarray(np.arange(12.0).reshape(4, 3))),
        _npy(np.arange(12.0).reshape(4, 3).astype(">f4")),  # big-endian
        _npy(np.arange(12, dtype=np.int16).reshape(4, 3)),
    ],
)
def test_every_plain_npy_layout_is_read_as_written(data):
    assert np.array_equal(uploads.read_array("r.npy", data), np.arange(12.0).reshape(4, 3))


def test_the_registry_follows_what_another_process_adds_and_removes(cache_dir):
    from alignscope.core.datasets import DatasetSpec, list_datasets, register_dataset, unregister_dataset
    from alignscope.core.user_store import read_registry, registry_path

    assert uploads.sync_user_registry() and not uploads.sync_user_registry()  # read once, then one stat
    uploads.add_text_dataset("shared", "t.txt", b"one\ntwo\nthree\n")
    unregister_dataset("shared")  # as if another process had uploaded it: on disk, not known here
    assert uploads.sync_user_registry() and load_dataset("shared").texts == ("one", "two", "three")
    register_dataset(DatasetSpec("made-here", "text", "bundled:sentences", description="in code, never persisted"))
    registry = read_registry()
    registry["datasets"] = [e for e in registry["datasets"] if e["name"] != "shared"]  # removed elsewhere
    registry_path().write_text(json.dumps(registry))
    assert uploads.sync_user_registry()
    names = {spec.name for spec in list_datasets()}
    assert "shared" not in names and "made-here" in names and "digits" in names  # only what the file had
    unregister_dataset("made-here")


def test_cache_verify_checks_what_users_uploaded_and_names_each_damaged_one(cache_dir, capsys):
    """A byte flipped in an uploaded representation left `cache verify` at "32 ok, 0 bad": uploads were not
    checked, though nothing can recompute them. Now each upload and recording is, and a damaged recording
    is refused when loaded (a flipped value was scored as data)."""
    from alignscope.core.cli import main
    from alignscope.core.recordings import add_recording, load_recording

    settings = get_settings()
    rng = np.random.default_rng(0)
    uploads.add_representation("rep", "r.npy", _npy(rng.normal(size=(1797, 4)).astype(np.float32)), dataset="digits")
    uploads.add_text_dataset("notes", "notes.txt", "\n".join(f"note {i}" for i in range(12)).encode())
    uploads.add_image_dataset("pics", "pics.zip", _zip({f"{i}.png": _png(i) for i in range(4)}))
    add_recording("rec", "rec.npy", _npy(rng.normal(size=(4, 6)).astype(np.float32)), dataset="pics")
    assert main(["cache", "verify"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("uploads and recordings: 4 ok, 0 bad")

    def flip_last_byte(path) -> None:
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 0x01
        path.write_bytes(bytes(blob))

    flip_last_byte(upload_folder("models", "rep", settings) / "features.safetensors")
    flip_last_byte(upload_folder("datasets", "notes", settings) / "texts.parquet")
    (upload_folder("datasets", "pics", settings) / "images" / "2.png").unlink()
    flip_last_byte(settings.uploads_dir / "recordings" / "rec.safetensors")
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert "uploads/models/rep  the stored matrix of 'rep' does not match its checksum" in out
    assert "uploads/datasets/notes  the stored texts of 'notes' do not match their checksum" in out
    assert "uploads/datasets/pics  1 images of 'pics' are missing (e.g. '2.png')" in out
    assert "uploads/recordings/rec  the stored recording 'rec' is damaged" in out
    assert out.splitlines()[-1].endswith("uploads and recordings: 0 ok, 4 bad")
    with pytest.raises(InputError, match="is damaged"):
        load_recording("rec", settings)
