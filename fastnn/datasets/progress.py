"""Progress reporting for :func:`fastnn.datasets.load_mnist`: one plain line on
stderr per step when verbose, and byte progress bars (tqdm) on long steps only
when stderr is a terminal, so logs and pipes get the plain lines alone."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Reporter:
    """Messages on stderr when verbose, one line per step; progress bars only
    when stderr is also a terminal (a log or a pipe gets the plain lines)."""

    def __init__(self, verbose: bool):
        stream = sys.stderr
        self.enabled = bool(verbose and stream is not None)
        self.bars = bool(self.enabled and hasattr(stream, "isatty") and stream.isatty())

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    @contextmanager
    def bar(self, total: int | None, desc: str) -> Iterator[Any]:
        """A byte progress bar of ``total`` bytes (unknown if ``None``); call
        ``update(n)`` on it. A no-op object when bars are off."""
        if not self.bars:
            yield _NullBar()
            return
        from tqdm import tqdm

        with tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            leave=False,
        ) as bar:
            yield bar


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass
