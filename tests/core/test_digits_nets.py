"""Digits nets: the seed nets unchanged, the ladder as their generalisation, checksummed weights."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignscope.core import digits_nets
from alignscope.core.digits_nets import (
    LADDER,
    LAYERS,
    DigitsRecipe,
    ScaledDigitsCNN,
    load_or_train_recipe,
    recipe_weights_path,
    rung,
    train_recipe,
    trained_info,
    training_subset,
    verify_trained_weights,
)
from alignscope.core.errors import InputError
from alignscope.core.settings import Settings

TINY = DigitsRecipe(width=0.25, epochs=1, train_size=100)  # trains in a fraction of a second


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _flip_one_bit(path: Path) -> None:
    """Flip the lowest mantissa bit of the first stored float: a one-ulp change, past the header."""
    blob = bytearray(path.read_bytes())
    (header_length,) = struct.unpack("<Q", blob[:8])
    blob[8 + header_length] ^= 0x01
    path.write_bytes(bytes(blob))


# --- the seed nets are what they were ------------------------------------------------------------------


def test_seed_nets_keep_their_cache_key(tmp_path):
    """DigitsCNN, train and _fit are hashed into the seed nets' file names and feature-cache keys: this
    value is what they hashed to before the ladder. If it changes, every existing cache is re-keyed (bump
    RECIPE on purpose instead)."""
    assert digits_nets.recipe_fingerprint() == "8b64f0f8194c"
    settings = Settings(cache_dir=tmp_path)
    assert digits_nets.weights_path(2, settings).name == "digits-cnn-v1-8b64f0f8194c-seed2.safetensors"


def test_train_recipe_reproduces_the_seed_nets_bit_for_bit(monkeypatch):
    monkeypatch.setattr(digits_nets, "EPOCHS", 2)  # the same loop, shorter: what matters is every step
    seed_net, seed_info = digits_nets.train(3)
    recipe_net, recipe_info = train_recipe(DigitsRecipe(width=1.0, epochs=2, seed=3))
    assert _same_state(_state(seed_net), _state(recipe_net))
    assert recipe_info.test_accuracy == seed_info["test_accuracy"]
    assert recipe_info.n_params == sum(p.numel() for p in seed_net.parameters()) == 28_106
    other_seed, _ = train_recipe(DigitsRecipe(width=1.0, epochs=2, seed=4))
    assert not torch.equal(other_seed.conv1.weight, recipe_net.conv1.weight)


# --- the ladder ----------------------------------------------------------------------------------------


def test_ladder_rungs_are_named_distinct_and_share_the_five_layers():
    assert 5 <= len(LADDER) <= 8
    assert [r.name for r in LADDER] == [f"digits-ladder-{i}" for i in range(1, len(LADDER) + 1)]
    assert len({r.recipe.fingerprint() for r in LADDER}) == len(LADDER)
    assert rung("digits-ladder-3") is LADDER[2]
    with pytest.raises(InputError, match="digits-ladder-1"):
        rung("digits-ladder-99")
    for each in LADDER:
        net = ScaledDigitsCNN(each.recipe.channels)
        assert tuple(name for name, _ in net.named_children()) == LAYERS
        assert sum(p.numel() for p in net.parameters()) == each.recipe.n_params
        assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    sizes = [r.recipe.n_params for r in LADDER]
    assert min(sizes) < 5_000 and max(sizes) > 50_000  # size spans more than an order of magnitude
    budgets = {(r.recipe.epochs, r.recipe.train_size) for r in LADDER}
    assert len(budgets) >= 4
    assert DigitsRecipe(width=1.0).channels == digits_nets.BASE_CHANNELS


def test_recipe_fingerprint_is_a_function_of_every_field():
    base = DigitsRecipe(width=0.5, epochs=5, train_size=300, seed=0)
    assert base.fingerprint() == DigitsRecipe(width=0.5, epochs=5, train_size=300, seed=0).fingerprint()
    assert DigitsRecipe(width=1).fingerprint() == DigitsRecipe(width=1.0).fingerprint()
    variants = [
        DigitsRecipe(width=0.75, epochs=5, train_size=300, seed=0),
        DigitsRecipe(width=0.5, epochs=6, train_size=300, seed=0),
        DigitsRecipe(width=0.5, epochs=5, train_size=301, seed=0),
        DigitsRecipe(width=0.5, epochs=5, train_size=None, seed=0),
        DigitsRecipe(width=0.5, epochs=5, train_size=300, seed=1),
    ]
    assert len({base.fingerprint(), *(v.fingerprint() for v in variants)}) == 1 + len(variants)
    assert len(base.fingerprint()) == 12 and int(base.fingerprint(), 16) >= 0


@pytest.mark.parametrize(
    "kwargs", [{"width": 0}, {"width": -1.0}, {"epochs": 0}, {"train_size": 5}], ids=lambda k: str(k)
)
def test_bad_recipes_are_refused(kwargs):
    with pytest.raises(InputError):
        DigitsRecipe(**kwargs)


def test_training_subsets_are_nested_inside_the_training_split():
    train_idx, test_idx = digits_nets.train_test_split_indices(1797)
    small, large = training_subset(train_idx, 100), training_subset(train_idx, 400)
    assert len(small) == 100 and len(large) == 400
    assert set(small) <= set(large) <= set(train_idx)
    assert not set(large) & set(test_idx)
    assert training_subset(train_idx, None) is train_idx
    with pytest.raises(InputError, match="larger than the training split"):
        training_subset(train_idx, len(train_idx) + 1)


def test_the_weakest_rung_is_weak_deterministic_and_trained_once(tmp_path, monkeypatch):
    settings = Settings(cache_dir=tmp_path)
    weakest = LADDER[0].recipe
    rng_before = torch.get_rng_state()
    net, info = load_or_train_recipe(weakest, settings)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's global RNG is left alone
    assert 0.3 < info.test_accuracy < 0.7  # clearly weak, clearly above chance (0.1)
    assert info.n_params == weakest.n_params and info.n_train == 1258 and info.train_seconds > 0
    assert trained_info(weakest, settings) == info
    assert verify_trained_weights(settings) == {recipe_weights_path(weakest, settings).name: "ok"}

    def no_writing(*args, **kwargs):
        raise AssertionError("a verified net must be loaded, not retrained")

    # Not train_recipe itself: its source is part of the recipe fingerprint, so patching it re-keys the net.
    monkeypatch.setattr(digits_nets, "_store", no_writing)
    loaded, loaded_info = load_or_train_recipe(weakest, settings)
    assert _same_state(_state(loaded), _state(net)) and loaded_info == info
    monkeypatch.undo()
    retrained, _ = train_recipe(weakest)
    assert _same_state(_state(retrained), _state(net))


# --- checksummed weights -------------------------------------------------------------------------------


def _seed_net(settings: Settings) -> tuple[torch.nn.Module, Path]:
    return digits_nets.load_or_train(5, settings), digits_nets.weights_path(5, settings)


def _tiny_rung(settings: Settings) -> tuple[torch.nn.Module, Path]:
    return load_or_train_recipe(TINY, settings)[0], recipe_weights_path(TINY, settings)


@pytest.fixture
def short_seed_training(monkeypatch):
    """The seed nets' own training, two epochs instead of thirty: the same code path, in a second."""
    monkeypatch.setattr(digits_nets, "EPOCHS", 2)


@pytest.mark.usefixtures("short_seed_training")
@pytest.mark.parametrize("load", [_seed_net, _tiny_rung], ids=["seed-net", "ladder-rung"])
def test_a_flipped_bit_is_reported_and_the_original_weights_come_back(tmp_path, caplog, load):
    """Regression (issue "Hardening", point 4). Before checksums, ``load_or_train`` served whatever
    ``load_file`` could parse: a file with one flipped bit in a float parses fine and fits the state dict,
    so the net came back with the flipped weight under the same cache key (different features), and
    ``cache verify`` said ok. The second assertion block shows the flipped file does parse. Now the
    sidecar's sha256 catches it: verify reports the mismatch and loading retrains the original weights."""
    settings = Settings(cache_dir=tmp_path)
    net, path = load(settings)
    original, original_bytes = _state(net), path.read_bytes()
    assert verify_trained_weights(settings) == {path.name: "ok"}

    _flip_one_bit(path)
    flipped = load_file(path)  # what the old loader handed to load_state_dict, without complaint
    assert flipped.keys() == original.keys() and not _same_state(flipped, original)
    assert verify_trained_weights(settings)[path.name].startswith("checksum mismatch")

    path.with_name(f".{path.name}.99999.tmp").write_bytes(b"a killed writer's leftover")
    with caplog.at_level(logging.WARNING, logger="alignscope.core.digits_nets"):
        reloaded, _ = load(settings)
    assert _same_state(_state(reloaded), original)
    assert path.read_bytes() == original_bytes
    assert "checksum mismatch" in caplog.text
    # The flipped file was never served (its checksum failed), and the retrained bytes are the ones that were:
    # no "stale features" alarm, which told users to delete good entries.
    assert "stale" not in caplog.text
    assert verify_trained_weights(settings) == {path.name: "ok"}
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.usefixtures("short_seed_training")
@pytest.mark.parametrize("damaged", [False, True], ids=["intact", "damaged-before-upgrade"])
def test_weights_written_before_checksums_are_retrained_once_and_recorded(tmp_path, caplog, damaged):
    """An old cache's sidecar has no sha256. It is not trusted blindly: the net is retrained (seconds,
    deterministic), the same bytes come back for intact files, and the checksum is recorded."""
    settings = Settings(cache_dir=tmp_path)
    net, path = _seed_net(settings)
    original = _state(net)
    sidecar = path.with_suffix(".json")
    old_style = {k: v for k, v in json.loads(sidecar.read_text()).items() if k not in ("sha256", "bytes")}
    sidecar.write_text(json.dumps(old_style, indent=2))  # exactly what the old code wrote
    if damaged:
        _flip_one_bit(path)
    assert verify_trained_weights(settings)[path.name].startswith("no checksum in the sidecar")

    with caplog.at_level(logging.WARNING, logger="alignscope.core.digits_nets"):
        reloaded, _ = _seed_net(settings)
    assert _same_state(_state(reloaded), original)
    assert "no checksum" in caplog.text
    assert ("stale" in caplog.text) == damaged
    recorded = json.loads(sidecar.read_text())
    assert recorded["seed"] == 5 and len(recorded["sha256"]) == 64
    assert verify_trained_weights(settings) == {path.name: "ok"}


def test_missing_or_unreadable_sidecars_and_orphans_are_reported_then_repaired(tmp_path, caplog):
    settings = Settings(cache_dir=tmp_path)
    assert verify_trained_weights(settings) == {}  # no models folder yet
    net, path = _tiny_rung(settings)
    original = _state(net)
    sidecar = path.with_suffix(".json")

    sidecar.unlink()
    assert verify_trained_weights(settings) == {path.name: "sidecar missing (the write was interrupted)"}
    assert trained_info(TINY, settings) is None
    with caplog.at_level(logging.WARNING, logger="alignscope.core.digits_nets"):
        assert _same_state(_state(_tiny_rung(settings)[0]), original)
    assert "sidecar missing" in caplog.text

    sidecar.write_text("{not json")
    assert verify_trained_weights(settings) == {path.name: "sidecar unreadable"}
    assert _same_state(_state(_tiny_rung(settings)[0]), original)

    path.unlink()
    assert verify_trained_weights(settings) == {path.name: "weights file missing"}
    assert _same_state(_state(_tiny_rung(settings)[0]), original)
    assert verify_trained_weights(settings) == {path.name: "ok"}
    assert trained_info(TINY, settings) is not None


def test_default_settings_store_the_weights_under_the_cache_models_dir(cache_dir):
    _, info = load_or_train_recipe(TINY)
    stored = sorted(p.name for p in (cache_dir / "models").iterdir() if not p.name.endswith(".lock"))
    stem = f"digits-{TINY.slug}-{TINY.fingerprint()}"
    assert stored == [f"{stem}.json", f"{stem}.safetensors"]
    sidecar = json.loads((cache_dir / "models" / f"{stem}.json").read_text())
    assert sidecar["recipe"] == {"width": 0.25, "epochs": 1, "train_size": 100, "seed": 0}
    assert sidecar["test_accuracy"] == info.test_accuracy and sidecar["n_train"] == 100
