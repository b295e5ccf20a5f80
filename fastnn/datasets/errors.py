"""The errors and warning of :mod:`fastnn.datasets`, and :func:`describe`, which
turns any exception into the one-line reason the messages quote."""

from __future__ import annotations


class DatasetUnavailableError(RuntimeError):
    """No source could provide the dataset.

    ``failures`` holds one ``(source, reason)`` pair per source tried.
    """

    def __init__(self, message: str, failures: list[tuple[str, str]]):
        super().__init__(message)
        self.failures = failures


class DatasetFormatError(ValueError):
    """A file or array does not hold what was expected (wrong format or content)."""


class CacheWarning(UserWarning):
    """The dataset cache was damaged (and is rebuilt) or could not be written."""


def describe(err: BaseException) -> str:
    """``"TypeName: message"`` (or just the type's name when the message is empty)."""
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
