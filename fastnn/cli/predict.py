"""``fastnn predict``: the digit in each of your own images (preprocessed
like MNIST by :mod:`fastnn.images`), with an optional PNG of the results."""

from __future__ import annotations

import argparse

import fastnn.cli.common as common

HELP = "predict the digit in your own images"
DESCRIPTION = (
    "Predict the digit in each image (PNG, JPEG, ...: one digit on a "
    "plain background). Images are preprocessed like MNIST: "
    "grayscale, white ink on black, cropped, scaled into 20x20 and "
    "centred by centre of mass in 28x28."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """predict's arguments."""
    parser.add_argument("model", metavar="MODEL", help="a .npz model file")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="invert the grey levels (--invert: dark digit on light "
        "paper; --no-invert: light digit on dark). Default: "
        "decide per image from its border",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="also write a PNG showing each preprocessed image with its prediction",
    )
    common.add_backend(parser)


def run(args: argparse.Namespace) -> int:
    """Print each image's top-3 digits; returns the exit status."""
    import numpy as np

    from fastnn import images

    if args.plot:
        common.check_file_option("--plot", args.plot)
    model = common.load_model(args.model, args.backend)
    common.check_mnist_shape(model, args.model)
    invert = "auto" if args.invert is None else args.invert
    x = np.stack([images.load_digit_image(path, invert=invert) for path in args.images])
    probs = model.predict(x)
    width = max(len(p) for p in args.images)
    percent = common.percent
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(p)[::-1][:3]
        ranked = ", ".join(f"{d} {percent(p[d])}" for d in top)
        print(f"{path:<{width}}  {top[0]} ({percent(p[top[0]])})  top-3: {ranked}")
    if args.plot:
        from fastnn import plots

        print(f"wrote {plots.plot_digit_predictions(x, probs, args.plot, args.images)}")
    return 0
