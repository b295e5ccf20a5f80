"""``fastnn sweep``: one MNIST model per combination of hyperparameters (and
per seed) on a Dask cluster (:func:`fastnn.distributed.sweep`), scored on a
held-out split; writes sweep.md, sweep.json and sweep.png."""

from __future__ import annotations

import argparse
import math

import fastnn.cli.common as common
import fastnn.cli.recipe as recipe

HELP = "hyperparameter sweep on MNIST over a Dask cluster"
DESCRIPTION = (
    "Train one MNIST model per combination of the values given "
    "(and per seed) on a Dask cluster, each trial on one single-threaded "
    "worker; score each on a held-out validation split; write sweep.md, "
    "sweep.json and sweep.png. A failing trial is reported in its row, the "
    "others go on. Needs 'pip install \"fastnn[distributed]\"'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """sweep's options: each hyperparameter takes one or more values."""
    number = common.number
    parser.add_argument(
        "--learning-rate",
        nargs="+",
        type=number(0, math.inf, low_open=True),
        default=[recipe.LEARNING_RATE],
        metavar="LR",
        help="initial learning rates to try (default: %(default)s)",
    )
    parser.add_argument(
        "--hidden",
        nargs="+",
        type=common.architecture,
        default=[recipe.HIDDEN],
        metavar="UNITSxUNITS...",
        help="hidden layer sizes to try, e.g. 128 256x256 512x512x512 "
        "(default: 512x512x512)",
    )
    parser.add_argument(
        "--momentum",
        nargs="+",
        type=number(0, 1, high_open=True),
        default=[recipe.MOMENTUM],
        help="momenta to try (default: %(default)s)",
    )
    parser.add_argument(
        "--weight-decay",
        nargs="+",
        type=number(0, math.inf),
        default=[recipe.WEIGHT_DECAY],
        help="weight decays to try (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=common.integer(0),
        default=[recipe.SEED],
        help="seeds; every configuration runs once per seed (default: 0)",
    )
    parser.add_argument(
        "--epochs", type=common.positive_int, default=2, help="default: 2"
    )
    parser.add_argument(
        "--batch-size",
        type=common.positive_int,
        default=recipe.BATCH_SIZE,
        help="default: 64",
    )
    parser.add_argument(
        "--lr-decay",
        type=number(0, 1, low_open=True),
        default=recipe.LR_DECAY,
        help="learning-rate decay over each trial (default: %(default)s)",
    )
    parser.add_argument(
        "--validation-split",
        type=number(0, 1, low_open=True, high_open=True),
        default=0.1,
        metavar="FRACTION",
        help="last fraction of the training data held out to score the "
        "trials (default: %(default)s)",
    )
    parser.add_argument(
        "--limit",
        type=common.positive_int,
        default=None,
        metavar="N",
        help="use the first N training samples only",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float64"),
        help="default: float32",
    )
    common.add_backend(parser)
    common.add_cluster(parser)
    parser.add_argument(
        "-o",
        "--output",
        default="runs/sweep",
        metavar="FOLDER",
        help="folder for sweep.md, sweep.json and sweep.png (default: %(default)s)",
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="do not write sweep.png"
    )


def run(args: argparse.Namespace) -> int:
    """Run the trials, print the table and the best, write the files; exit
    status 1 when every trial failed."""
    import functools

    from fastnn import distributed
    from fastnn.io import atomic_write

    distributed.require_dask()
    backend, output = common.preflight(args)
    (x, y), _ = common.load_mnist(args.dtype)
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    x, y, validation_data = common.split_off_validation(x, y, args.validation_split)
    n_val = len(validation_data[0])
    common.check_batch_fits(args.batch_size, len(x))
    output.mkdir(parents=True, exist_ok=True)
    grid = {
        "learning_rate": args.learning_rate,
        "hidden": [list(h) for h in args.hidden],
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
    }
    build = functools.partial(
        recipe.mnist_model,
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
            + f": val_accuracy {common.percent(best['mean'])} "
            f"(mean of {best['trials']})"
        )
    written = [output / "sweep.md", output / "sweep.json"]
    atomic_write(written[0], lambda f: f.write(table.encode()))
    result.to_json(written[1])
    if not args.no_plots:
        written.append(result.plot(output / "sweep.png"))
    for path in written:
        print(f"wrote {path}")
    return 0 if best is not None else 1
