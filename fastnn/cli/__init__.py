"""The ``fastnn`` command: train on MNIST, evaluate, predict digit images.

::

    fastnn train [-o runs/mnist] [--backend auto] [--hidden 512x512x512] ...
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

Hidden sizes have one spelling everywhere: an architecture is written
``512x512x512`` (a single hidden layer: ``128``). ``train --hidden`` takes
exactly one; ``sweep --hidden`` takes one or more, space-separated.

The package: one module per command (:mod:`fastnn.cli.train`, ``evaluate``,
``predict``, ``export``, ``backends``, ``bench``, ``sweep``), each with
``add_arguments(parser)`` and ``run(args) -> int``; the command table, the
parser built from it and :func:`main` in ``fastnn.cli._main``; what the
commands share (argument types, the error-reporting parser, loaders and
checks) in :mod:`fastnn.cli.common`; the default recipe and
:func:`mnist_model` in :mod:`fastnn.cli.recipe`. Importing it (and
``fastnn --help``) stays light: each command imports its heavy modules
inside ``run``.
"""

from fastnn.cli._main import COMMANDS, build_parser, main
from fastnn.cli.common import UsageError
from fastnn.cli.recipe import OPTIMIZER_DECAYS, OPTIMIZER_RATES, mnist_model

__all__ = [
    "COMMANDS",
    "OPTIMIZER_DECAYS",
    "OPTIMIZER_RATES",
    "UsageError",
    "build_parser",
    "main",
    "mnist_model",
]
