"""Dataset registry: bundled defaults, subsets, hub datasets (on a local dataset folder)."""

from __future__ import annotations

import pandas as pd
import pytest

from alignscope.core.datasets import get_dataset_spec, hub_dataset_spec, list_datasets, load_dataset
from alignscope.core.errors import DatasetLoadError, InputError, UnknownDatasetError


def test_bundled_defaults_have_their_documented_sizes_and_labels():
    digits = load_dataset("digits")
    assert len(digits) == 1797 and digits.images[0].size == (8, 8)
    assert sorted(set(digits.labels)) == [str(i) for i in range(10)]
    sentences = load_dataset("sentences")
    assert len(sentences) >= 500 and len(set(sentences.labels)) == 10
    captions = load_dataset("captions")
    assert len(captions) >= 20
    assert len(captions.texts) == len(captions.images) == len(captions)
    assert captions.images[0].mode == "RGB"
    # the label says what the photo shows (it used to be the library the file ships in)
    labels = dict(zip(captions.sample_ids, captions.labels))
    assert labels["img002"] == labels["img019"] == "animal"  # the cat and the horse
    assert labels["img000"] == labels["img022"] == "person"  # the astronaut and Grace Hopper
    assert not set(captions.labels) & {"skimage", "sklearn", "matplotlib"}


def test_sample_ids_are_unique_and_stable():
    first, second = load_dataset("sentences"), load_dataset("sentences")
    assert first.sample_ids == second.sample_ids
    assert len(set(first.sample_ids)) == len(first)


def test_subsets_are_seeded_nested_and_in_dataset_order():
    small = load_dataset("digits", n=100, seed=3)
    large = load_dataset("digits", n=400, seed=3)
    other = load_dataset("digits", n=100, seed=4)
    assert small.sample_ids == load_dataset("digits", n=100, seed=3).sample_ids
    assert set(small.sample_ids) <= set(large.sample_ids)
    assert small.sample_ids != other.sample_ids
    assert list(small.rows) == sorted(small.rows)
    assert [small.labels[i] for i in range(5)] == [load_dataset("digits").labels[r] for r in small.rows[:5]]


@pytest.mark.parametrize("n", [0, -1, 2])
def test_too_small_n_is_refused(n):
    with pytest.raises(InputError):
        load_dataset("digits", n=n)


def test_unknown_dataset_names_the_registered_ones():
    with pytest.raises(UnknownDatasetError, match="digits"):
        get_dataset_spec("imagenet-please")


def test_list_datasets_filters_by_what_a_model_can_encode():
    text = {s.name for s in list_datasets("text")}
    image = {s.name for s in list_datasets("image")}
    assert {"sentences", "captions"} <= text and "digits" not in text
    assert {"digits", "captions"} <= image and "sentences" not in image


def test_hub_dataset_loader_reads_a_local_dataset_folder(tmp_path):
    folder = tmp_path / "my-hub-dataset"
    (folder / "data").mkdir(parents=True)
    table = pd.DataFrame({"sentence": [f"sentence number {i}" for i in range(12)], "topic": ["a", "b"] * 6})
    table.to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    spec = hub_dataset_spec(str(folder), split="train", text_column="sentence", label_column="topic")
    dataset = load_dataset(spec)
    assert len(dataset) == 12 and dataset.texts[3] == "sentence number 3"
    assert dataset.labels[:2] == ("a", "b")
    assert load_dataset(spec, n=5, seed=1).texts == load_dataset(spec, n=5, seed=1).texts


def test_hub_dataset_with_a_missing_column_names_the_columns(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    pd.DataFrame({"text": ["x", "y", "z"]}).to_csv(folder / "train.csv", index=False)
    spec = hub_dataset_spec(str(folder), text_column="caption")
    with pytest.raises(DatasetLoadError, match="caption"):
        load_dataset(spec)


def _hub_answers(monkeypatch, error: Exception, downloaded: bool = False) -> list:
    """The hub's answer to one dataset_info request; the calls that reach ``datasets`` after it, each
    with whether ``datasets`` was in its offline mode, answered from a copy downloaded before (or not)."""
    import datasets as hf_datasets
    from huggingface_hub import HfApi

    def answer(self, repo_id, **_):
        raise error

    reached: list = []

    def load(*args, **kwargs):
        reached.append(hf_datasets.config.HF_HUB_OFFLINE)
        if not downloaded:
            raise ConnectionError("Couldn't reach 'someorg/somedata' on the Hub (OfflineModeIsEnabled)")
        return hf_datasets.Dataset.from_dict({"text": ["a", "b", "c"]})

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HfApi, "dataset_info", answer)
    monkeypatch.setattr(hf_datasets, "load_dataset", load)
    return reached


OFFLINE = OSError("[Errno -2] Name or service not known")


def test_an_unreachable_hub_is_said_at_once_instead_of_datasets_retrying_every_file(monkeypatch):
    # offline, datasets' own requests retried each file five times: ~25 s of retry lines before an error
    reached = _hub_answers(monkeypatch, OFFLINE)
    spec = hub_dataset_spec("someorg/somedata", text_column="text")
    with pytest.raises(
        DatasetLoadError, match=r"'someorg/somedata': the Hugging Face hub cannot be reached .* no copy"
    ):
        load_dataset(spec)
    assert reached == [True]  # asked once, in datasets' offline mode: no retries


def test_an_unreachable_hub_still_loads_a_copy_downloaded_before(monkeypatch):
    import datasets as hf_datasets

    reached = _hub_answers(monkeypatch, OFFLINE, downloaded=True)
    dataset = load_dataset(hub_dataset_spec("someorg/somedata", text_column="text"))
    assert dataset.texts == ("a", "b", "c") and reached == [True]
    assert hf_datasets.config.HF_HUB_OFFLINE is False  # offline for that call only


def test_a_dataset_the_hub_does_not_have_is_named_as_such(monkeypatch):
    from huggingface_hub.errors import RepositoryNotFoundError

    reached = _hub_answers(monkeypatch, RepositoryNotFoundError.__new__(RepositoryNotFoundError))
    with pytest.raises(UnknownDatasetError, match=r"no dataset 'someorg/somedata' on the Hugging Face hub"):
        load_dataset(hub_dataset_spec("someorg/somedata", text_column="text"))
    assert reached == []
