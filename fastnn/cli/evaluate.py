"""``fastnn evaluate``: the loss and accuracy of a saved model on the 10,000
MNIST test images."""

from __future__ import annotations

import argparse

import fastnn.cli.common as common

HELP = "loss and accuracy of a saved model on the MNIST test set"
DESCRIPTION = (
    "Load a model saved by 'fastnn train' (or Sequential.save) "
    "and print its loss and accuracy on the 10,000 MNIST test "
    "images."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """evaluate's arguments."""
    parser.add_argument("model", metavar="MODEL", help="a .npz model file")
    common.add_backend(parser)


def run(args: argparse.Namespace) -> int:
    """Load, score on the test set and print; returns the exit status."""
    model = common.load_model(args.model, args.backend)
    common.check_mnist_shape(model, args.model)
    _, (x_test, y_test) = common.load_mnist(model.dtype.name)
    scores = model.evaluate(x_test, y_test)
    print(f"model: {args.model} ({model!r})")
    print(f"test loss: {scores['loss']:.4f}")
    print(f"test accuracy: {common.percent(scores['accuracy'])}")
    return 0
