"""Dataset registry and loaders.

A :class:`DatasetSpec` describes where samples come from; :func:`load_dataset` returns a
:class:`Dataset` with stable sample ids, texts and/or images, and optional labels. Sources:

* ``bundled:digits`` — scikit-learn's 1,797 8×8 digit images with labels;
* ``bundled:captions`` — ~25 photos shipped inside scikit-image / scikit-learn / matplotlib, each with
  three hand-written captions (``core/data/image_captions.csv``; text models encode the first unless
  their ``text`` option picks another): real image–text pairs;
* ``bundled:sentences`` — 560 hand-written sentences over 10 labelled topics;
* ``hub:<id>`` — a Hugging Face dataset by id (or local dataset folder) + revision + split + columns;
* ``upload:<folder>`` — texts (CSV/Parquet/TXT) or images (folder / zip, optional captions) stored by
  :mod:`core.uploads`.

Samples of one modality are what a model encodes: strings for ``text``, RGB ``PIL.Image`` for
``image``; an ``image-text`` dataset offers both, paired row by row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignscope.core.errors import DatasetLoadError, InputError, InvalidNameError, ModalityError, UnknownDatasetError
from alignscope.core.metadata import MetadataColumn
from alignscope.core.names import check_name, check_revision
from alignscope.core.registry import Registry

DATASET_MODALITIES = ("text", "image", "image-text")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's samples come from.

    Attributes:
        name: registry name (``[A-Za-z0-9._-]``).
        modality: ``text``, ``image`` or ``image-text`` (paired).
        source: ``bundled:<name>``, ``hub:<id-or-local-folder>`` or ``upload:<folder>``.
        revision: hub revision, or a content hash for bundled and uploaded data.
        split: hub split, e.g. ``"train[:1000]"``.
        text_column, image_column, label_column: columns of hub / tabular sources.
        description: one line for the UI; not part of the cache key.
    """

    name: str
    modality: str
    source: str
    revision: str | None = None
    split: str | None = None
    text_column: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, what="dataset")
        if self.modality not in DATASET_MODALITIES:
            raise ValueError(f"dataset {self.name!r}: modality {self.modality!r} not in {DATASET_MODALITIES}")

    def fingerprint(self) -> dict:
        fields = dataclasses.asdict(self)
        fields.pop("description")
        return fields

    def supports(self, model_modality: str) -> bool:
        return model_modality == "any" or model_modality in self.modality.split("-")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Loaded samples. ``rows[i]`` is sample i's row in the full dataset (subsets keep them).

    Attributes:
        sample_ids: stable ids, unique, in sample order.
        texts: one string per sample, or ``None``.
        more_texts: further texts of each sample (the 2nd, 3rd caption …): ``more_texts[j][i]`` is text
            j + 2 of sample i; empty when the dataset holds one text per sample. A text model encodes
            text ``t`` of each sample (its spec's ``text`` option, see :meth:`texts_at`).
        images: a sequence of RGB ``PIL.Image`` (possibly lazy), or ``None``.
        labels: one label string per sample, or ``None``.
        n_total: rows in the full dataset (precomputed representations must have this many).
        metadata: further per-sample columns (colour a map by one), in the uploaded table's order.
    """

    spec: DatasetSpec
    sample_ids: tuple[str, ...]
    rows: tuple[int, ...]
    n_total: int
    texts: tuple[str, ...] | None = None
    images: Sequence | None = None
    labels: tuple[str, ...] | None = None
    more_texts: tuple[tuple[str, ...], ...] = ()
    metadata: tuple[MetadataColumn, ...] = ()

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def n_texts(self) -> int:
        """Texts per sample (0 without texts)."""
        return 0 if self.texts is None else 1 + len(self.more_texts)

    def texts_at(self, text: int = 1) -> tuple[str, ...]:
        """Text number ``text`` (1-based) of every sample."""
        if self.texts is None:
            raise ModalityError(f"dataset {self.spec.name!r} holds no texts")
        if not 1 <= text <= self.n_texts:
            raise InputError(
                f"dataset {self.spec.name!r} holds {self.n_texts} text(s) per sample; there is no text {text}"
            )
        return self.texts if text == 1 else self.more_texts[text - 2]

    def inputs(self, modality: str, *, text: int = 1) -> Sequence:
        """What a model of ``modality`` encodes: texts (text number ``text`` of each sample), images, or
        (``any``) full-dataset row numbers."""
        if modality == "any":
            return list(self.rows)
        if modality == "text" and self.texts is not None:
            return self.texts_at(text)
        if modality == "image" and self.images is not None:
            return self.images
        raise ModalityError(
            f"dataset {self.spec.name!r} holds {self.spec.modality} samples; a {modality} model cannot encode "
            f"them. Pick a {'text or image-text' if modality == 'text' else 'image or image-text'} dataset."
        )

    def subset(self, n: int | None, seed: int = 0) -> Dataset:
        """A seeded subset of ``n`` samples, in dataset order; nested: a smaller n is a subset of a larger."""
        if n is None or n >= len(self):
            return self
        if n < 3:
            raise InputError(f"n must be at least 3 to compare representations, got {n}")
        chosen = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return self.take([int(i) for i in chosen])

    def take(self, indices: Sequence[int]) -> Dataset:
        idx = [int(i) for i in indices]
        return dataclasses.replace(
            self,
            sample_ids=tuple(self.sample_ids[i] for i in idx),
            rows=tuple(self.rows[i] for i in idx),
            texts=None if self.texts is None else tuple(self.texts[i] for i in idx),
            more_texts=tuple(tuple(texts[i] for i in idx) for texts in self.more_texts),
            images=None if self.images is None else _Subsequence(self.images, idx),
            labels=None if self.labels is None else tuple(self.labels[i] for i in idx),
            metadata=tuple(column.take(idx) for column in self.metadata),
        )

    def metadata_column(self, name: str) -> MetadataColumn | None:
        """The metadata column called ``name``, or None."""
        return next((column for column in self.metadata if column.name == name), None)

    def ids_digest(self) -> str:
        """Hash of the sample ids: part of every cache key (computed once per dataset object)."""
        return self._ids_digest

    @functools.cached_property
    def _ids_digest(self) -> str:
        return hashlib.sha256("\n".join(self.sample_ids).encode()).hexdigest()


class _Subsequence(Sequence):
    def __init__(self, base: Sequence, indices: list[int]):
        self._base, self._indices = base, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._base[j] for j in self._indices[i]]
        return self._base[self._indices[i]]


class LazyImages(Sequence):
    """Images opened on access from a loader ``i -> PIL.Image`` (keeps big image sets off the heap)."""

    def __init__(self, count: int, open_image: Callable[[int], object]):
        self._count, self._open = count, open_image

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._open(j) for j in range(*i.indices(self._count))]
        if i < 0:
            i += self._count
        return self._open(i).convert("RGB")


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    UnknownDatasetError,
    builtin_modules=("alignscope.core.defaults",),
    hint="Upload one on the Data & models page or add a hub dataset with `alignscope datasets --add`.",
)


def register_dataset(spec: DatasetSpec, *, overwrite: bool = False, builtin: bool = False) -> DatasetSpec:
    return DATASETS.register(spec, overwrite=overwrite, builtin=builtin)


def unregister_dataset(name: str) -> None:
    DATASETS.unregister(name)


def list_datasets(modality: str | None = None) -> list[DatasetSpec]:
    """Registered specs; with ``modality``, those a model of that modality can encode."""
    return [s for s in DATASETS.list() if modality is None or s.supports(modality)]


def get_dataset_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def hub_dataset_spec(
    hub_id: str,
    *,
    name: str | None = None,
    revision: str | None = None,
    split: str = "train",
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> DatasetSpec:
    """A spec for a Hugging Face dataset (hub id or local dataset folder)."""
    from alignscope.core.sources import is_hub_id

    if not isinstance(hub_id, str) or not hub_id or len(hub_id) > 300:
        raise InvalidNameError("a hub dataset id like 'nlphuji/flickr30k' (or a local dataset folder) is required")
    local = Path(hub_id).expanduser()
    if not local.exists() and not is_hub_id(hub_id):
        raise InvalidNameError(f"{hub_id!r} is neither an existing local folder nor a hub id like 'org/dataset'")
    if not (text_column or image_column):
        raise InputError("name the text column, the image column, or both")
    check_revision(revision)
    modality = "image-text" if text_column and image_column else ("text" if text_column else "image")
    source = str(local.resolve()) if local.exists() else hub_id
    derived = (local.name if local.exists() else hub_id.replace("/", "--")).replace(" ", "-")
    return DatasetSpec(
        name=name or derived[:100],
        modality=modality,
        source=f"hub:{source}",
        revision=revision,
        split=split,
        text_column=text_column,
        image_column=image_column,
        label_column=label_column,
        description=f"Hugging Face dataset {hub_id} ({split})",
    )


# --------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------


def _load_digits(spec: DatasetSpec) -> Dataset:
    from PIL import Image

    from alignscope.core.digits_nets import digits_arrays

    images, labels = digits_arrays()
    pil = tuple(Image.fromarray((img * 255).round().astype(np.uint8), mode="L") for img in images)
    n = len(labels)
    return Dataset(
        spec=spec,
        sample_ids=tuple(f"digit-{i:04d}" for i in range(n)),
        rows=tuple(range(n)),
        n_total=n,
        images=pil,
        labels=tuple(str(label) for label in labels),
    )


def _more_captions(table) -> tuple[tuple[str, ...], ...]:
    """Captions 2 and 3 where every photo has one (a text model's ``text`` option picks them)."""
    more = []
    for column in ("caption_2", "caption_3"):
        values = tuple(table[column].astype(str))
        if not all(value.strip() for value in values):
            break
        more.append(values)
    return tuple(more)


def _load_captions(spec: DatasetSpec) -> Dataset:
    from alignscope.core.bundled import load_bundled_image, read_image_captions

    table = read_image_captions()
    images = tuple(load_bundled_image(str(row.source), str(row.name)) for row in table.itertuples())
    n = len(table)
    return Dataset(
        spec=spec,
        sample_ids=tuple(table["id"].astype(str)),
        rows=tuple(range(n)),
        n_total=n,
        texts=tuple(table["caption_1"].astype(str)),
        more_texts=_more_captions(table),
        images=images,
        labels=tuple(table["category"].astype(str)),  # what is in the photo, not the package it ships in
    )


def _load_sentences(spec: DatasetSpec) -> Dataset:
    from alignscope.core.bundled import read_sentences

    table = read_sentences()
    n = len(table)
    return Dataset(
        spec=spec,
        sample_ids=tuple(table["id"].astype(str)),
        rows=tuple(range(n)),
        n_total=n,
        texts=tuple(table["text"].astype(str)),
        labels=tuple(table["topic"].astype(str)),
    )


def _hub_reachable(source: str, revision: str | None) -> bool:
    """One request to the hub before ``datasets`` asks (offline, ``datasets`` retried every file for ~25 s);
    False when the hub cannot be reached. A local folder, or HF_HUB_OFFLINE, is not checked (True).

    Raises:
        UnknownDatasetError: the hub answers that it has no such dataset (or revision).
    """
    from alignscope.core.sources import hub_offline, hub_reachable

    if Path(source).exists() or hub_offline():
        return True
    return hub_reachable(source, revision, repo_type="dataset")


@contextlib.contextmanager
def _datasets_offline(offline: bool) -> Iterator[None]:
    """``datasets`` in its offline mode for the block when ``offline``: it then loads a copy downloaded
    before at once, without asking the hub (its flag is read at call time; HF_HUB_OFFLINE is read once, at
    import)."""
    if not offline:
        yield
        return
    from datasets import config

    before = config.HF_HUB_OFFLINE
    config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        config.HF_HUB_OFFLINE = before


def _load_hub(spec: DatasetSpec) -> Dataset:
    import datasets as hf_datasets

    source = spec.source.removeprefix("hub:")
    reachable = _hub_reachable(source, spec.revision)
    try:
        with _datasets_offline(not reachable):
            table = hf_datasets.load_dataset(source, revision=spec.revision, split=spec.split or "train")
    except Exception as exc:
        if not reachable:
            raise DatasetLoadError(
                f"could not load dataset {source!r}: the Hugging Face hub cannot be reached from this machine "
                "and no copy of it was downloaded here before. Connect once to download it"
            ) from exc
        raise DatasetLoadError(
            f"could not load dataset {source!r} (split {spec.split!r}, revision {spec.revision!r}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Check the id or path, the split name and your network."
        ) from exc
    for column in (spec.text_column, spec.image_column, spec.label_column):
        if column and column not in table.column_names:
            raise DatasetLoadError(f"dataset {source!r} has no column {column!r}; its columns are {table.column_names}")
    n = len(table)
    if n < 3:
        raise DatasetLoadError(f"dataset {source!r} split {spec.split!r} has only {n} rows; at least 3 are needed")
    id_column = next((c for c in ("id", "sample_id", "idx") if c in table.column_names), None)
    sample_ids = tuple(str(v) for v in table[id_column]) if id_column else tuple(f"row-{i}" for i in range(n))
    if len(set(sample_ids)) != n:
        sample_ids = tuple(f"row-{i}" for i in range(n))
    texts = tuple(str(t) for t in table[spec.text_column]) if spec.text_column else None
    images = None
    if spec.image_column:
        column = table[spec.image_column]

        def open_image(i: int, column=column):
            return column[i]

        images = LazyImages(n, open_image)
    labels = tuple(str(v) for v in table[spec.label_column]) if spec.label_column else None
    return Dataset(spec, sample_ids, tuple(range(n)), n, texts=texts, images=images, labels=labels)


def _load_uploaded(spec: DatasetSpec) -> Dataset:
    from PIL import Image

    from alignscope.core.user_store import read_uploaded_samples

    stored = read_uploaded_samples(spec.source.removeprefix("upload:"))
    n = len(stored.sample_ids)
    paths = stored.image_paths
    images = None if paths is None else LazyImages(n, lambda i: Image.open(paths[i]))
    return Dataset(
        spec,
        stored.sample_ids,
        tuple(range(n)),
        n,
        texts=stored.texts,
        images=images,
        labels=stored.labels,
        metadata=stored.metadata,
    )


_BUNDLED: dict[str, Callable[[DatasetSpec], Dataset]] = {
    "bundled:digits": _load_digits,
    "bundled:captions": _load_captions,
    "bundled:sentences": _load_sentences,
}


def load_dataset(spec: DatasetSpec | str, *, n: int | None = None, seed: int = 0) -> Dataset:
    """Load a dataset (by spec or registered name), optionally a seeded subset of ``n`` samples."""
    spec = get_dataset_spec(spec) if isinstance(spec, str) else spec
    if spec.source in _BUNDLED:
        dataset = _BUNDLED[spec.source](spec)
    elif spec.source.startswith("hub:"):
        dataset = _load_hub(spec)
    elif spec.source.startswith("upload:"):
        dataset = _load_uploaded(spec)
    else:
        raise DatasetLoadError(f"dataset {spec.name!r}: unknown source {spec.source!r}")
    if n is not None and n < 1:
        raise InputError(f"n must be a positive number of samples, got {n}")
    return dataset.subset(n, seed)
