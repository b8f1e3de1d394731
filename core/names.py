"""The one rule for user-chosen names (models, datasets, uploads): safe as a folder name and in a URL."""

from __future__ import annotations

import re

from alignscope.core.errors import InvalidNameError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")


def check_name(name: object, *, what: str) -> str:
    """Reject names that could escape a directory or break a URL (``../x``, ``a/b``, empty, huge).

    Example:
        >>> check_name("minilm-l6", what="model")
        'minilm-l6'
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise InvalidNameError(
            f"{what} name {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..'"
        )
    return name


REVISION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+@\-]{0,199}$")


def check_revision(revision: str | None) -> str | None:
    """A hub revision as git names one (a branch, tag or commit: ``main``, ``v1.0``, ``refs/pr/3``), or
    None; anything else (a newline, a space, ``..``) is refused before it is stored.

    Example:
        >>> check_revision("refs/pr/3"), check_revision("v1.0+cu118")
        ('refs/pr/3', 'v1.0+cu118')
    """
    if revision is None:
        return None
    if not isinstance(revision, str) or not REVISION_PATTERN.match(revision) or ".." in revision:
        raise InvalidNameError(
            f"revision {revision!r} is not a git branch, tag or commit: use letters, digits, '.', '_', '-', "
            "'+', '@' and '/', starting with a letter or digit, and no '..'"
        )
    return revision
