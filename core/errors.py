"""Specific exception types with messages a user can act on.

The CLI prints ``str(error)``; the dashboard shows it with ``st.error``. Every error a user can cause
derives from :class:`AlignscopeError`, so callers at the edge catch that one type.
"""


class AlignscopeError(Exception):
    """Base class: a problem the user can fix (bad input, unknown name, missing download)."""


class UnknownModelError(AlignscopeError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(AlignscopeError, KeyError):
    """A dataset name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownMetricError(AlignscopeError, KeyError):
    """A metric name that is not in the metric registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelLoadError(AlignscopeError):
    """A model exists in the registry but could not be loaded (missing files, no network, bad config)."""


class DatasetLoadError(AlignscopeError):
    """A dataset could not be loaded (missing files, no network, bad columns)."""


class ModalityError(AlignscopeError):
    """A model was paired with a dataset of a modality it cannot encode."""


class InvalidNameError(AlignscopeError, ValueError):
    """A user-supplied name that could escape its directory or is otherwise unsafe."""


class UploadError(AlignscopeError, ValueError):
    """An uploaded file that is empty, malformed, too large or of an unsupported type."""


class InputError(AlignscopeError, ValueError):
    """Features that cannot be compared: mismatched rows, NaN/Inf, too few samples, bad parameters."""


class FeaturesGone(InputError):
    """Features planned as cached that are no longer there to read: damaged on disk (dropped, never served)
    or removed meanwhile. Planning again finds them missing, so they can be computed again."""


class CacheError(AlignscopeError):
    """A cache entry that is corrupt or could not be written."""


def retryable(error: BaseException) -> bool:
    """Whether running the same request again could end otherwise: not when its input made it fail (an
    InputError), unless that input was features gone meanwhile (planned again, they are computed again)."""
    return not isinstance(error, InputError) or isinstance(error, FeaturesGone)


def rebuilt(type_name: str, message: str) -> AlignscopeError:
    """The error ``type_name`` (a class of this module) with ``message``, as raised in another process:
    its type decides what the user is offered (:func:`retryable`). Any other name: AlignscopeError."""
    found = globals().get(type_name)
    if isinstance(found, type) and issubclass(found, AlignscopeError):
        return found(message)
    return AlignscopeError(message)
