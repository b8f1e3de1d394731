"""Settings from the environment: a value that is not a number is an error naming its variable."""

from __future__ import annotations

import pytest

from alignscope.core.errors import InputError
from alignscope.core.settings import settings_from_env


@pytest.mark.parametrize(
    "name", ["ALIGNSCOPE_MAX_UPLOAD_MB", "ALIGNSCOPE_AUTO_BUDGET_S", "ALIGNSCOPE_WORKERS", "ALIGNSCOPE_MAP_POINTS"]
)
def test_a_setting_that_is_not_a_number_names_its_variable(name):
    # it was "unexpected ValueError: could not convert string to float: 'abc'", naming nothing
    with pytest.raises(InputError, match=f"{name}='abc' is not a number"):
        settings_from_env({name: "abc"})
    with pytest.raises(InputError, match="not a finite number"):
        settings_from_env({name: "nan"})


def test_numbers_are_read_and_clamped():
    settings = settings_from_env({"ALIGNSCOPE_MAX_UPLOAD_MB": "1.5", "ALIGNSCOPE_WORKERS": "0"})
    assert settings.max_upload_bytes == int(1.5 * 1024 * 1024) and settings.workers == 1


@pytest.mark.parametrize("value", ["", "  "])
def test_a_cache_dir_set_but_empty_is_an_error_not_the_default_folder(value):
    # `ALIGNSCOPE_CACHE_DIR=$UNSET_VAR alignscope ...` wrote into ./cache without a word
    with pytest.raises(InputError, match="ALIGNSCOPE_CACHE_DIR is set but empty"):
        settings_from_env({"ALIGNSCOPE_CACHE_DIR": value})


def test_a_cache_dir_is_an_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert settings_from_env({"ALIGNSCOPE_CACHE_DIR": "here"}).cache_dir == tmp_path / "here"
    assert settings_from_env({}).cache_dir.is_absolute()
