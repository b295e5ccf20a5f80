"""The command table of ``fastnn``, the parser built from it, and
:func:`main`, which runs one command and turns every error into one line on
stderr and an exit status (see the package docstring).

Each command is a module with ``HELP`` (its line in ``fastnn --help``),
``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> int``; adding a
command is adding a row to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import fastnn.cli.backends as backends
import fastnn.cli.bench as bench
import fastnn.cli.evaluate as evaluate
import fastnn.cli.export as export
import fastnn.cli.predict as predict
import fastnn.cli.sweep as sweep
import fastnn.cli.train as train
from fastnn.cli.common import Parser, UsageError

#: Command name -> the module that implements it, in ``fastnn --help`` order.
COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "export": export,
    "backends": backends,
    "bench": bench,
    "sweep": sweep,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``fastnn`` parser: one subcommand per row of :data:`COMMANDS`."""
    from fastnn import __version__

    parser = Parser(
        prog="fastnn",
        description="Fast feed-forward neural networks for ordinary CPUs: train on "
        "MNIST, evaluate a saved model, read your own digit images.",
    )
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(
            sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        )
    return parser


def _error(message: str) -> None:
    lines = str(message).strip().splitlines() or ["unknown error"]
    print(f"fastnn: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:  # only multi-line messages (MNIST sources tried)
        print(f"  {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastnn`` command; returns the exit status (never raises)."""
    from fastnn.backends import BackendUnavailableError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command].run(args)
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else 0
    except UsageError as err:
        _error(str(err))
        return 2
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except BackendUnavailableError as err:
        _error(str(err))
        return 1
    except (
        OSError,
        ValueError,
        TypeError,
        ImportError,
        RuntimeError,
        ArithmeticError,
    ) as err:
        # OSError: missing/unreadable files; ValueError: damaged model file or
        # image, bad data; ArithmeticError: training diverged.  Each message
        # already says what was expected and how to fix it.
        _error(str(err))
        return 1
