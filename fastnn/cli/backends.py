"""``fastnn backends``: list fastnn's backends, whether each one loads, and
how to fix it if not (:func:`fastnn.show_backends`)."""

from __future__ import annotations

import argparse

HELP = "list the backends and whether they load"
DESCRIPTION = (
    "List fastnn's backends, whether each one is available, and how to fix it if not."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """backends takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 1 when no backend loads."""
    import fastnn

    report = fastnn.show_backends()
    return 0 if any(reason is None for reason in report.values()) else 1
