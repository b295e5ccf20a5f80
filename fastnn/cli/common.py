"""What the ``fastnn`` commands share: the error-reporting parser and
:class:`UsageError`, the argument types (integers, bounded numbers,
architectures such as ``512x512x512``), the ``--backend`` and cluster
options, and the checks and loaders several commands run before their work.

Everything here is light to import; numpy-heavy or optional modules are
imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


class UsageError(Exception):
    """Bad command-line usage: reported in one line, exit status 2."""


class OneArchitecture(argparse.Action):
    """An option taking exactly one architecture such as ``512x512x512``.

    It is parsed with ``nargs="+"`` so that a second value (the old spelling
    ``--hidden 512 512 512``) is refused by the option's name, with the
    spelling to write instead, rather than as an unrecognized argument; help
    and usage show it taking one value (:class:`HelpFormatter`)."""

    def __init__(self, option_strings, dest, nargs="+", **kwargs):
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if not values:  # "--hidden=--" on Python < 3.12
            raise argparse.ArgumentError(self, "expected one argument")
        if len(values) > 1:
            joined = "x".join(str(units) for sizes in values for units in sizes)
            received = " ".join("x".join(map(str, sizes)) for sizes in values)
            raise argparse.ArgumentError(
                self,
                f"expected one architecture, its sizes joined by x; received "
                f"{len(values)} values {received!r}: write {joined}",
            )
        setattr(namespace, self.dest, values[0])


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, showing a :class:`OneArchitecture` option as
    taking one value. (argparse has no public hook for an option's usage
    text; ``_format_args`` is the method its own formatters override.)"""

    def _format_args(self, action, default_metavar):
        if isinstance(action, OneArchitecture):
            return action.metavar or default_metavar
        return super()._format_args(action, default_metavar)


class Parser(argparse.ArgumentParser):
    """argparse, but errors raise UsageError (one line) instead of exiting,
    and help is written by :class:`HelpFormatter`."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        # Python < 3.12 parses "--epochs=--" as [] without calling the type.
        expected = {None: "one argument", "+": "at least one argument"}
        for action in self._actions:
            if action.option_strings and action.nargs in expected:
                if getattr(namespace, action.dest, None) == []:
                    name = "/".join(action.option_strings)
                    self.error(f"argument {name}: expected {expected[action.nargs]}")
        return namespace, extras


# ----------------------------------------------------------------- arg types
def integer(minimum: int):
    """An argparse ``type=``: an int ``>= minimum``."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}; received {text!r}")
        return value

    return parse


positive_int = integer(1)


def architecture(text: str) -> tuple[int, ...]:
    """An argparse ``type=``: hidden sizes, ``"256x128"`` -> ``(256, 128)``."""
    parts = text.lower().split("x")
    try:
        sizes = tuple(int(p) if p.isdecimal() else 0 for p in parts)
    except ValueError:  # more digits than int() converts
        sizes = (0,)
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected hidden sizes like 128 or 512x512x512; received {text!r}"
        )
    return sizes


def number(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argparse ``type=``: a finite float between ``low`` and ``high``
    (each bound excluded when its ``*_open`` is true)."""
    lo = f"{'>' if low_open else '>='} {low:g}"
    hi = "" if math.isinf(high) else f" and {'<' if high_open else '<='} {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (value < high if high_open else value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(
                f"expected a number {lo}{hi}; received {text!r}"
            )
        return value

    return parse


# ----------------------------------------------------------------- options
def add_cluster(parser: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--scheduler``: where a Dask run happens."""
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="run on N single-threaded Dask workers (needs "
        "'pip install \"fastnn[distributed]\"'); without --scheduler a "
        "local cluster of N processes is started",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running Dask scheduler, e.g. tcp://host:8786 "
        "(default with --workers: a local cluster)",
    )


def add_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend``: ``auto`` or one of fastnn's backends."""
    from fastnn.backends import BACKEND_NAMES

    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto",) + BACKEND_NAMES,
        help="kernel backend (default: auto, the fastest available; "
        "'fastnn backends' lists them)",
    )


# ----------------------------------------------------------------- helpers
def say(*args, quiet: bool = False) -> None:
    """``print`` (flushed) unless ``quiet``."""
    if not quiet:
        print(*args, flush=True)


def percent(x: float) -> str:
    """``0.9812`` -> ``"98.12%"``."""
    return f"{100 * x:.2f}%"


def load_mnist(dtype: str = "float32"):
    """MNIST as the commands load it: ``fastnn.datasets.load_mnist(dtype=)``."""
    from fastnn import datasets

    return datasets.load_mnist(dtype=dtype)


def load_model(path: str, backend: str):
    """The model saved at ``path``; a missing file or a folder is refused
    with the fix."""
    import fastnn

    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{path!r} is a folder; expected a model file such as runs/mnist/model.npz"
        )
    return fastnn.load(path, backend=backend)


def check_mnist_shape(model, path: str) -> None:
    """Refuse a model that does not map 784 pixels to 10 digits."""
    if model.input_dim != 784 or model.n_outputs != 10:
        raise ValueError(
            f"model {path!r} maps {model.input_dim} inputs to "
            f"{model.n_outputs} outputs; MNIST needs 784 -> 10"
        )


def check_file_option(option: str, path: str) -> None:
    """Refuse an output file option whose folder is missing or which names a
    folder, before any work is done."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"argument {option}: {path!r} is a folder; expected a file")
    if not target.parent.is_dir():
        raise UsageError(
            f"argument {option}: the folder {str(target.parent)!r} does not exist"
        )


# ----------------------------------------------------------------- training
def preflight(args: argparse.Namespace) -> tuple[str, Path]:
    """Fail before minutes of work, not after: load the backend, check the
    plotting extra and that the output folder is not a file. Returns the
    backend's name and the output folder."""
    from fastnn import backends

    backend = backends.resolve_backend_name(args.backend)
    backends.get_backend(backend)
    if not args.no_plots:
        from fastnn import plots

        plots.require_matplotlib()
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise UsageError(
            f"argument -o/--output: {args.output!r} is a file; expected a folder"
        )
    return backend, output


def split_off_validation(x, y, fraction: float):
    """``(x, y, (x_val, y_val))`` with the last ``fraction`` held out."""
    n_val = int(round(len(x) * fraction))
    if n_val < 1 or n_val >= len(x):
        raise UsageError(
            f"argument --validation-split: {fraction:g} of {len(x)} samples "
            "leaves no training or no validation data"
        )
    return x[:-n_val], y[:-n_val], (x[-n_val:], y[-n_val:])


def check_batch_fits(batch_size: int, n: int) -> None:
    """Refuse a ``--batch-size`` larger than the training data."""
    if batch_size > n:
        raise UsageError(
            f"argument --batch-size: {batch_size} is more than the {n} training samples"
        )
