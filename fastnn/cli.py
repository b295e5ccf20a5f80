"""The ``fastnn`` command: train on MNIST, evaluate, predict digit images.

::

    fastnn train [-o runs/mnist] [--backend auto] [--epochs 5] ...
    fastnn evaluate MODEL [--backend auto]
    fastnn predict MODEL IMAGE... [--invert | --no-invert] [--plot FILE]
    fastnn export MODEL model.onnx
    fastnn backends
    fastnn train --workers 2 [--scheduler tcp://host:8786] [--strategy local]
    fastnn sweep --learning-rate 0.02 0.05 --hidden 128 512x512 --seeds 0 1

``python -m fastnn`` is the same command. Every error is reported as one line
``fastnn: error: ...`` on stderr, never a traceback: exit status 2 for bad
usage (unknown flag, invalid value), 1 when the work itself fails (missing or
damaged file, unavailable backend, diverged training).

The default ``train`` recipe reproduces the original project's network
(784-512-512-512-10, relu, softmax, batch 64, 5 epochs) and reaches >= 98% test
accuracy on real MNIST: he_uniform initialisation; SGD with Nesterov momentum
0.9, weight decay 5e-5 and a learning rate starting at 0.05 that decays
exponentially, step by step, to a tenth of that over the run.
``--optimizer adam`` (or adamw, rmsprop, adagrad) swaps the optimizer, at its
own default learning rate (``OPTIMIZER_RATES``), with the same decay;
``--dropout RATE`` adds a Dropout after every hidden layer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: The default recipe (see the module docstring); every value has a flag.
HIDDEN = (512, 512, 512)
EPOCHS = 5
BATCH_SIZE = 64
LEARNING_RATE = 0.05
#: Each optimizer's default initial rate in the recipe (SGD's: LEARNING_RATE).
OPTIMIZER_RATES = {
    "sgd": LEARNING_RATE,
    "adam": 1e-3,
    "adamw": 1e-3,
    "rmsprop": 1e-3,
    "adagrad": 0.01,
}
LR_DECAY = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-5
#: Each optimizer's default weight decay in the recipe: SGD's L2, AdamW's own
#: default; none for the others, whose normalised steps drive weights that
#: L2 pulls toward zero into the subnormal range, where x86 arithmetic crawls
#: (docs/performance.md).
OPTIMIZER_DECAYS = {"sgd": WEIGHT_DECAY, "adamw": 0.01}
SEED = 0
OUTPUT = "runs/mnist"


class UsageError(Exception):
    """Bad command-line usage: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors raise UsageError (one line) instead of exiting."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        # Python < 3.12 parses "--epochs=--" as [] without calling the type.
        for action in self._actions:
            if action.option_strings and action.nargs is None:
                if getattr(namespace, action.dest, None) == []:
                    name = "/".join(action.option_strings)
                    self.error(f"argument {name}: expected one argument")
        return namespace, extras


# ----------------------------------------------------------------- arg types
def _integer(minimum: int):
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


_positive_int = _integer(1)


def _architecture(text: str) -> tuple[int, ...]:
    """``"256x128"`` -> ``(256, 128)``."""
    parts = text.lower().split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected hidden sizes like 128 or 256x256; received {text!r}"
        )
    return tuple(int(p) for p in parts)


def _number(low: float, high: float, low_open: bool = False, high_open: bool = False):
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


# ----------------------------------------------------------------- parser
def _add_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="run on N single-threaded Dask workers (needs "
        "'pip install \"fastnn[distributed]\"'); without --scheduler a "
        "local cluster of N processes is started",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running Dask scheduler, e.g. tcp://host:8786 "
        "(default with --workers: a local cluster)",
    )


def _add_backend(p: argparse.ArgumentParser) -> None:
    from fastnn.backends import BACKEND_NAMES

    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto",) + BACKEND_NAMES,
        help="kernel backend (default: auto, the fastest available; "
        "'fastnn backends' lists them)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fastnn",
        description="Fast feed-forward neural networks for ordinary CPUs: train on "
        "MNIST, evaluate a saved model, read your own digit images.",
    )
    from fastnn import __version__

    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train",
        help="train the MNIST network and save model, history and plots",
        description="Train a 784-H...-10 relu/softmax network on real MNIST with "
        "mini-batch SGD (Nesterov momentum, weight decay, exponentially "
        "decaying learning rate), then save model.npz, history.json, "
        "loss.png and confusion_matrix.png into the output folder (and "
        "checkpoint.npz after every epoch, for --resume) and "
        "print the test accuracy. The defaults are the original "
        "project's network and a recipe that reaches >= 98% test "
        "accuracy.",
    )
    _add_backend(train)
    train.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float64"),
        help="parameter and computation dtype (default: float32)",
    )
    train.add_argument(
        "--hidden",
        nargs="+",
        type=_positive_int,
        default=list(HIDDEN),
        metavar="UNITS",
        help="hidden layer sizes, relu (default: 512 512 512)",
    )
    train.add_argument(
        "--epochs", type=_positive_int, default=EPOCHS, help="default: %(default)s"
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=BATCH_SIZE,
        help="default: %(default)s",
    )
    train.add_argument(
        "--optimizer",
        choices=list(OPTIMIZER_RATES),
        default="sgd",
        help="the optimizer (default: sgd, Nesterov momentum)",
    )
    train.add_argument(
        "--learning-rate",
        type=_number(0, math.inf, low_open=True),
        default=None,
        help="initial learning rate (default: 0.05 for sgd, 0.001 for adam, "
        "adamw and rmsprop, 0.01 for adagrad)",
    )
    train.add_argument(
        "--dropout",
        type=_number(0, 1, high_open=True),
        default=0.0,
        metavar="RATE",
        help="dropout rate after every hidden layer (default: 0, none)",
    )
    train.add_argument(
        "--lr-decay",
        type=_number(0, 1, low_open=True),
        default=LR_DECAY,
        help="factor by which the learning rate falls over the whole "
        "run, decaying a little every step "
        "(ExponentialDecay); 1 keeps it constant "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--momentum",
        type=_number(0, 1, high_open=True),
        default=None,
        help="momentum of sgd (Nesterov when > 0; default: 0.9) or rmsprop "
        "(default: 0)",
    )
    train.add_argument(
        "--weight-decay",
        type=_number(0, math.inf),
        default=None,
        help="weight decay on the weights: L2, or decoupled with adamw "
        "(default: 5e-05 for sgd, 0.01 for adamw, 0 for the others)",
    )
    train.add_argument(
        "--seed",
        type=_integer(0),
        default=SEED,
        help="seeds initialisation and shuffling (default: %(default)s)",
    )
    train.add_argument(
        "--validation-split",
        type=_number(0, 1, high_open=True),
        default=0.0,
        metavar="FRACTION",
        help="hold out this last fraction of the training data for "
        "the per-epoch val_loss/val_accuracy; with 0 the test "
        "set provides those columns (so they are test scores, "
        "not an independent validation). Default: 0",
    )
    train.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on the first N training samples only (quick "
        "tests); the test set stays complete",
    )
    train.add_argument(
        "-o",
        "--output",
        default=OUTPUT,
        metavar="FOLDER",
        help="folder for model.npz, history.json, the plots and "
        "checkpoint.npz (created if missing; files in it are overwritten; "
        "default: %(default)s)",
    )
    train.add_argument(
        "--no-plots",
        action="store_true",
        help="do not write loss.png and confusion_matrix.png",
    )
    train.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue an interrupted run from its checkpoint.npz (written "
        "into the output folder after every epoch), with the same options; "
        "training goes on until --epochs in all, ending exactly where an "
        "uninterrupted run would",
    )
    _add_cluster(train)
    train.add_argument(
        "--strategy",
        choices=("sync", "local"),
        default="sync",
        help="with --workers/--scheduler: sync = synchronous SGD (every step "
        "is the global batch's step), local = local SGD (average every "
        "--sync-every steps). Default: sync",
    )
    train.add_argument(
        "--sync-every",
        type=_positive_int,
        default=8,
        metavar="K",
        help="local SGD: steps between parameter averages (default: %(default)s)",
    )
    train.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar, summary or per-epoch lines; print "
        "only the test accuracy and the files written",
    )
    train.set_defaults(handler=cmd_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="loss and accuracy of a saved model on the MNIST test set",
        description="Load a model saved by 'fastnn train' (or Sequential.save) "
        "and print its loss and accuracy on the 10,000 MNIST test "
        "images.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a .npz model file")
    _add_backend(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = sub.add_parser(
        "predict",
        help="predict the digit in your own images",
        description="Predict the digit in each image (PNG, JPEG, ...: one digit on a "
        "plain background). Images are preprocessed like MNIST: "
        "grayscale, white ink on black, cropped, scaled into 20x20 and "
        "centred by centre of mass in 28x28.",
    )
    predict.add_argument("model", metavar="MODEL", help="a .npz model file")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="invert the grey levels (--invert: dark digit on light "
        "paper; --no-invert: light digit on dark). Default: "
        "decide per image from its border",
    )
    predict.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="also write a PNG showing each preprocessed image with its prediction",
    )
    _add_backend(predict)
    predict.set_defaults(handler=cmd_predict)

    export = sub.add_parser(
        "export",
        help="export a saved model as an ONNX graph",
        description="Write a model saved by 'fastnn train' (or Sequential.save) "
        "as an ONNX file computing its predictions (Gemm and activation "
        "nodes, opset 17, dynamic batch, the model's dtype), checked by "
        'onnx.checker. Needs: pip install "fastnn[onnx]".',
    )
    export.add_argument("model", metavar="MODEL", help="a .npz model file")
    export.add_argument("output", metavar="OUTPUT", help="the .onnx file to write")
    export.set_defaults(handler=cmd_export)

    backends = sub.add_parser(
        "backends",
        help="list the backends and whether they load",
        description="List fastnn's backends, whether each one "
        "is available, and how to fix it if not.",
    )
    backends.set_defaults(handler=cmd_backends)

    from fastnn.backends import BACKEND_NAMES

    bench = sub.add_parser(
        "bench",
        help="time one MNIST epoch per backend and compare them",
        description="Time one MNIST epoch (after a warm-up epoch) on each "
        "available backend, print each one's ratio to the numpy reference and "
        "write a bar chart.",
    )
    bench.add_argument(
        "--backends",
        nargs="+",
        metavar="NAME",
        default=None,
        choices=("auto",) + BACKEND_NAMES,
        help="backends to time (default: every one that loads)",
    )
    bench.add_argument(
        "--configs",
        nargs="+",
        default=["S", "L64"],
        choices=["S", "L64", "L256"],
        help="S = 784-128-10 batch 64, L64 = 784-512-512-512-10 "
        "batch 64, L256 = the same at batch 256 (default: S L64)",
    )
    bench.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    bench.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed epochs per backend and config (default: 3)",
    )
    bench.add_argument(
        "--samples",
        type=int,
        default=None,
        help="use only the first N training samples (quick look, "
        "not a real measurement)",
    )
    bench.add_argument(
        "--output",
        "-o",
        default="bench.png",
        help="bar chart PNG to write (default: bench.png)",
    )
    bench.set_defaults(handler=cmd_bench)

    sweep = sub.add_parser(
        "sweep",
        help="hyperparameter sweep on MNIST over a Dask cluster",
        description="Train one MNIST model per combination of the values given "
        "(and per seed) on a Dask cluster, each trial on one single-threaded "
        "worker; score each on a held-out validation split; write sweep.md, "
        "sweep.json and sweep.png. A failing trial is reported in its row, the "
        "others go on. Needs 'pip install \"fastnn[distributed]\"'.",
    )
    sweep.add_argument(
        "--learning-rate",
        nargs="+",
        type=_number(0, math.inf, low_open=True),
        default=[LEARNING_RATE],
        metavar="LR",
        help="initial learning rates to try (default: %(default)s)",
    )
    sweep.add_argument(
        "--hidden",
        nargs="+",
        type=_architecture,
        default=[HIDDEN],
        metavar="UNITSxUNITS...",
        help="hidden layer sizes to try, e.g. 128 256x256 512x512x512 "
        "(default: 512x512x512)",
    )
    sweep.add_argument(
        "--momentum",
        nargs="+",
        type=_number(0, 1, high_open=True),
        default=[MOMENTUM],
        help="momenta to try (default: %(default)s)",
    )
    sweep.add_argument(
        "--weight-decay",
        nargs="+",
        type=_number(0, math.inf),
        default=[WEIGHT_DECAY],
        help="weight decays to try (default: %(default)s)",
    )
    sweep.add_argument(
        "--seeds",
        nargs="+",
        type=_integer(0),
        default=[SEED],
        help="seeds; every configuration runs once per seed (default: 0)",
    )
    sweep.add_argument("--epochs", type=_positive_int, default=2, help="default: 2")
    sweep.add_argument(
        "--batch-size", type=_positive_int, default=BATCH_SIZE, help="default: 64"
    )
    sweep.add_argument(
        "--lr-decay",
        type=_number(0, 1, low_open=True),
        default=LR_DECAY,
        help="learning-rate decay over each trial (default: %(default)s)",
    )
    sweep.add_argument(
        "--validation-split",
        type=_number(0, 1, low_open=True, high_open=True),
        default=0.1,
        metavar="FRACTION",
        help="last fraction of the training data held out to score the "
        "trials (default: %(default)s)",
    )
    sweep.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use the first N training samples only",
    )
    sweep.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float64"),
        help="default: float32",
    )
    _add_backend(sweep)
    _add_cluster(sweep)
    sweep.add_argument(
        "-o",
        "--output",
        default="runs/sweep",
        metavar="FOLDER",
        help="folder for sweep.md, sweep.json and sweep.png (default: %(default)s)",
    )
    sweep.add_argument("--no-plots", action="store_true", help="do not write sweep.png")
    sweep.set_defaults(handler=cmd_sweep)
    return parser


# ----------------------------------------------------------------- helpers
def _say(*args, quiet: bool = False) -> None:
    if not quiet:
        print(*args, flush=True)


def _load_mnist(dtype: str = "float32"):
    from fastnn import datasets

    return datasets.load_mnist(dtype=dtype)


def _json_safe(history: dict[str, list[float]]) -> dict[str, list[float | None]]:
    """JSON has no inf/NaN: write those as null."""
    return {
        key: [float(v) if math.isfinite(v) else None for v in values]
        for key, values in history.items()
    }


def _write_json(path: Path, data) -> None:
    from fastnn import io

    text = json.dumps(data, indent=2) + "\n"
    io.atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _load_model(path: str, backend: str):
    import fastnn

    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{path!r} is a folder; expected a model file such as runs/mnist/model.npz"
        )
    return fastnn.load(path, backend=backend)


def _check_mnist_shape(model, path: str) -> None:
    if model.input_dim != 784 or model.n_outputs != 10:
        raise ValueError(
            f"model {path!r} maps {model.input_dim} inputs to "
            f"{model.n_outputs} outputs; MNIST needs 784 -> 10"
        )


def _check_file_option(option: str, path: str) -> None:
    """Refuse an output file option whose folder is missing or which names a
    folder, before any work is done."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"argument {option}: {path!r} is a folder; expected a file")
    if not target.parent.is_dir():
        raise UsageError(
            f"argument {option}: the folder {str(target.parent)!r} does not exist"
        )


def _describe_optimizer(optimizer) -> str:
    """``"SGD, momentum 0.9 (Nesterov), weight decay 5e-05"`` and the like."""
    parts = [type(optimizer).__name__]
    momentum = getattr(optimizer, "momentum", 0.0)
    if momentum:
        nesterov = " (Nesterov)" if getattr(optimizer, "nesterov", False) else ""
        parts.append(f"momentum {momentum:g}{nesterov}")
    if optimizer.weight_decay:
        parts.append(f"weight decay {optimizer.weight_decay:g}")
    return ", ".join(parts)


def _percent(x: float) -> str:
    return f"{100 * x:.2f}%"


# ----------------------------------------------------------------- commands
def mnist_model(
    seed,
    learning_rate=None,
    hidden=HIDDEN,
    momentum=None,
    weight_decay=None,
    lr_decay=1.0,
    decay_steps=1,
    backend="auto",
    dtype="float32",
    input_dim=784,
    optimizer="sgd",
    dropout=0.0,
):
    """The command's network: relu hidden layers (he_uniform), each followed
    by a Dropout of ``dropout`` if given, a softmax output (glorot_uniform);
    ``optimizer`` (SGD: Nesterov when ``momentum > 0``) with a learning rate
    (default ``OPTIMIZER_RATES``) falling by ``lr_decay`` over
    ``decay_steps`` steps."""
    import fastnn
    from fastnn import optimizers

    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if learning_rate is None:
        learning_rate = OPTIMIZER_RATES[optimizer]
    if weight_decay is None:
        weight_decay = OPTIMIZER_DECAYS.get(optimizer, 0.0)
    schedule = fastnn.ExponentialDecay(
        learning_rate, decay_rate=lr_decay, decay_steps=decay_steps
    )
    if momentum is not None and optimizer not in ("sgd", "rmsprop"):
        raise UsageError(
            f"argument --momentum: applies to sgd and rmsprop; received "
            f"--optimizer {optimizer}"
        )
    extra = {}
    if optimizer == "sgd":
        momentum = MOMENTUM if momentum is None else momentum
        extra = {"momentum": momentum, "nesterov": momentum > 0}
    elif optimizer == "rmsprop" and momentum is not None:
        extra = {"momentum": momentum}
    opt = optimizers.OPTIMIZERS[optimizer](
        learning_rate=schedule, weight_decay=weight_decay, **extra
    )
    layers = []
    for units in hidden:
        layers.append(
            fastnn.Dense(units, activation="relu", kernel_initializer="he_uniform")
        )
        if dropout:
            layers.append(fastnn.Dropout(dropout))
    layers.append(
        fastnn.Dense(10, activation="softmax", kernel_initializer="glorot_uniform")
    )
    return fastnn.Sequential(
        layers,
        input_dim=input_dim,
        optimizer=opt,
        backend=backend,
        dtype=dtype,
        seed=seed,
        metrics=("accuracy",),
    )


def _distributed(args):
    """``fastnn.distributed`` when the command should run on a cluster (and
    Dask is installed: else ImportError with the install command), or None."""
    if args.workers is None and args.scheduler is None:
        return None
    from fastnn import distributed

    distributed.require_dask()
    return distributed


def _preflight(args: argparse.Namespace) -> tuple[str, Path]:
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


def _split_off_validation(x, y, fraction: float):
    """``(x, y, (x_val, y_val))`` with the last ``fraction`` held out."""
    n_val = int(round(len(x) * fraction))
    if n_val < 1 or n_val >= len(x):
        raise UsageError(
            f"argument --validation-split: {fraction:g} of {len(x)} samples "
            "leaves no training or no validation data"
        )
    return x[:-n_val], y[:-n_val], (x[-n_val:], y[-n_val:])


def _check_batch_fits(batch_size: int, n: int) -> None:
    if batch_size > n:
        raise UsageError(
            f"argument --batch-size: {batch_size} is more than the {n} training samples"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from fastnn.callbacks import ModelCheckpoint

    quiet = args.quiet
    seed = args.seed
    backend, output = _preflight(args)
    distributed = _distributed(args)
    if args.workers is not None and args.workers > args.batch_size:
        raise UsageError(
            f"argument --workers: {args.workers} workers would leave some "
            f"without a sample of a batch of {args.batch_size}; expected at "
            f"most --batch-size"
        )
    if args.resume is not None and not Path(args.resume).is_file():
        raise FileNotFoundError(
            f"--resume: no checkpoint file at {args.resume!r} (fastnn train "
            "writes OUTPUT/checkpoint.npz after every epoch)"
        )
    if args.resume is not None:
        from fastnn import io

        done = int(io.read_state(args.resume)["epoch"])
        if done >= args.epochs:
            print(
                f"checkpoint {args.resume} already completed {done} of "
                f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}; nothing "
                f"to do. Pass --epochs N (N > {done}) to train further."
            )
            return 0

    (x_train, y_train), (x_test, y_test) = _load_mnist(args.dtype)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    if args.validation_split > 0:
        x_train, y_train, validation_data = _split_off_validation(
            x_train, y_train, args.validation_split
        )
        validation_name = f"the last {len(validation_data[0])} training samples"
    else:
        validation_data = (x_test, y_test)
        validation_name = "the test set (no validation split)"
    _check_batch_fits(args.batch_size, len(x_train))
    steps = math.ceil(len(x_train) / args.batch_size) * args.epochs
    try:
        model = mnist_model(
            seed,
            learning_rate=args.learning_rate,
            hidden=tuple(args.hidden),
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            lr_decay=args.lr_decay,
            decay_steps=steps,
            backend=backend,
            dtype=args.dtype,
            input_dim=x_train.shape[1],
            optimizer=args.optimizer,
            dropout=args.dropout,
        )
    except MemoryError as err:
        raise UsageError(
            f"argument --hidden: {' '.join(map(str, args.hidden))} hidden units "
            f"need more memory than this machine has ({err})"
        ) from err
    output.mkdir(parents=True, exist_ok=True)  # an unwritable folder fails here
    _say(model.summary(), quiet=quiet)
    lr0 = model.optimizer.learning_rate.initial_learning_rate
    _say(
        f"training on {len(x_train)} MNIST samples, {args.epochs} "
        f"epoch{'s' if args.epochs > 1 else ''} of "
        f"batch {args.batch_size}; {_describe_optimizer(model.optimizer)}, "
        f"learning rate {lr0:g} -> {lr0 * args.lr_decay:g}, seed {seed}; val_ "
        f"columns: {validation_name}",
        quiet=quiet,
    )

    fit_args = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=validation_data,
        verbose=0 if quiet else 1,
        callbacks=[ModelCheckpoint(output / "checkpoint.npz")],
        resume=args.resume,
    )
    if distributed is None:
        history = model.fit(x_train, y_train, **fit_args)
    else:
        strategy = (
            distributed.LocalSGD(args.sync_every)
            if args.strategy == "local"
            else distributed.SyncSGD()
        )
        _say(f"data-parallel: {strategy} on a Dask cluster", quiet=quiet)
        history = distributed.fit(
            model,
            x_train,
            y_train,
            client=args.scheduler,
            workers=args.workers,
            strategy=strategy,
            **fit_args,
        )
    probs = model.predict(x_test)
    scores = model.evaluate(x_test, y_test)
    predicted = probs.argmax(axis=1)

    written = [output / "model.npz", output / "history.json"]
    model.save(written[0])
    _write_json(written[1], _json_safe(history.history))
    if not args.no_plots:
        from fastnn import plots

        written.append(
            plots.plot_history(
                history,
                output / "loss.png",
                validation_label="validation" if args.validation_split > 0 else "test",
            )
        )
        written.append(
            plots.plot_confusion_matrix(
                y_test, predicted, output / "confusion_matrix.png"
            )
        )
    _say(f"test loss: {scores['loss']:.4f}", quiet=quiet)
    print(f"test accuracy: {_percent(scores['accuracy'])}")
    written.append(output / "checkpoint.npz")  # by ModelCheckpoint, every epoch
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.backend)
    _check_mnist_shape(model, args.model)
    _, (x_test, y_test) = _load_mnist(model.dtype.name)
    scores = model.evaluate(x_test, y_test)
    print(f"model: {args.model} ({model!r})")
    print(f"test loss: {scores['loss']:.4f}")
    print(f"test accuracy: {_percent(scores['accuracy'])}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from fastnn import images

    if args.plot:
        _check_file_option("--plot", args.plot)
    model = _load_model(args.model, args.backend)
    _check_mnist_shape(model, args.model)
    invert = "auto" if args.invert is None else args.invert
    x = np.stack([images.load_digit_image(path, invert=invert) for path in args.images])
    probs = model.predict(x)
    width = max(len(p) for p in args.images)
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(p)[::-1][:3]
        ranked = ", ".join(f"{d} {_percent(p[d])}" for d in top)
        print(f"{path:<{width}}  {top[0]} ({_percent(p[top[0]])})  top-3: {ranked}")
    if args.plot:
        from fastnn import plots

        print(f"wrote {plots.plot_digit_predictions(x, probs, args.plot, args.images)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _check_file_option("OUTPUT", args.output)
    model = _load_model(args.model, "numpy")
    print(f"wrote {model.to_onnx(args.output)}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    import fastnn

    report = fastnn.show_backends()
    return 0 if any(reason is None for reason in report.values()) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from fastnn import bench

    if args.rounds < 1:
        raise UsageError(f"--rounds: expected an int >= 1; received {args.rounds}")
    if args.samples is not None and args.samples < 1:
        raise UsageError(f"--samples: expected an int >= 1; received {args.samples}")
    _check_file_option("-o/--output", args.output)
    rows = bench.run_bench(
        backends=args.backends,
        configs=args.configs,
        dtype=args.dtype,
        epochs_rounds=args.rounds,
        samples=args.samples,
        output_png=args.output,
        verbose=True,
    )
    bench.print_table(rows, cut_by="--samples")
    print(f"wrote {args.output}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import functools

    from fastnn import distributed

    distributed.require_dask()
    backend, output = _preflight(args)
    (x, y), _ = _load_mnist(args.dtype)
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    x, y, validation_data = _split_off_validation(x, y, args.validation_split)
    n_val = len(validation_data[0])
    _check_batch_fits(args.batch_size, len(x))
    output.mkdir(parents=True, exist_ok=True)
    grid = {
        "learning_rate": args.learning_rate,
        "hidden": [list(h) for h in args.hidden],
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
    }
    build = functools.partial(
        mnist_model,
        lr_decay=args.lr_decay,
        decay_steps=math.ceil(len(x) / args.batch_size) * args.epochs,
        backend=backend,
        dtype=args.dtype,
    )
    trials = math.prod(len(v) for v in grid.values()) * len(args.seeds)
    print(
        f"sweep: {trials} trials of {args.epochs} epoch(s) on {len(x)} MNIST "
        f"samples, scored on the last {n_val}",
        flush=True,
    )
    result = distributed.sweep(
        build,
        x,
        y,
        grid=grid,
        seeds=args.seeds,
        client=args.scheduler,
        workers=args.workers,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=validation_data,
    )
    table = result.to_markdown()
    print(table, end="")
    best = result.best()
    if best is not None:
        print(
            "best: "
            + ", ".join(f"{p}={best[p]}" for p in result.params)
            + f": val_accuracy {_percent(best['mean'])} (mean of {best['trials']})"
        )
    written = [output / "sweep.md", output / "sweep.json"]
    from fastnn.io import atomic_write

    atomic_write(written[0], lambda f: f.write(table.encode()))
    result.to_json(written[1])
    if not args.no_plots:
        written.append(result.plot(output / "sweep.png"))
    for path in written:
        print(f"wrote {path}")
    return 0 if best is not None else 1


# ----------------------------------------------------------------- main
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
        return args.handler(args)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
