"""``fastnn train``: train the MNIST network (the default recipe of
:mod:`fastnn.cli.recipe`, every value a flag), on this machine or a Dask
cluster, and save model.npz, history.json, the plots and checkpoint.npz."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import fastnn.cli.common as common
import fastnn.cli.recipe as recipe

HELP = "train the MNIST network and save model, history and plots"
DESCRIPTION = (
    "Train a 784-H...-10 relu/softmax network on real MNIST with "
    "mini-batch SGD (Nesterov momentum, weight decay, exponentially "
    "decaying learning rate), then save model.npz, history.json, "
    "loss.png and confusion_matrix.png into the output folder (and "
    "checkpoint.npz after every epoch, for --resume) and "
    "print the test accuracy. The defaults are the original "
    "project's network and a recipe that reaches >= 98% test "
    "accuracy."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """train's options."""
    number = common.number
    common.add_backend(parser)
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float64"),
        help="parameter and computation dtype (default: float32)",
    )
    parser.add_argument(
        "--hidden",
        nargs="+",
        action=common.OneArchitecture,
        type=common.architecture,
        default=recipe.HIDDEN,
        metavar="UNITSxUNITS...",
        help="one architecture: the relu hidden layer sizes joined by x, e.g. 128 "
        "or 256x256 (default: 512x512x512)",
    )
    parser.add_argument(
        "--epochs",
        type=common.positive_int,
        default=recipe.EPOCHS,
        help="default: %(default)s",
    )
    parser.add_argument(
        "--batch-size",
        type=common.positive_int,
        default=recipe.BATCH_SIZE,
        help="default: %(default)s",
    )
    parser.add_argument(
        "--optimizer",
        choices=list(recipe.OPTIMIZER_RATES),
        default="sgd",
        help="the optimizer (default: sgd, Nesterov momentum)",
    )
    parser.add_argument(
        "--learning-rate",
        type=number(0, math.inf, low_open=True),
        default=None,
        help="initial learning rate (default: 0.05 for sgd, 0.001 for adam, "
        "adamw and rmsprop, 0.01 for adagrad)",
    )
    parser.add_argument(
        "--dropout",
        type=number(0, 1, high_open=True),
        default=0.0,
        metavar="RATE",
        help="dropout rate after every hidden layer (default: 0, none)",
    )
    parser.add_argument(
        "--lr-decay",
        type=number(0, 1, low_open=True),
        default=recipe.LR_DECAY,
        help="factor by which the learning rate falls over the whole "
        "run, decaying a little every step "
        "(ExponentialDecay); 1 keeps it constant "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--momentum",
        type=number(0, 1, high_open=True),
        default=None,
        help="momentum of sgd (Nesterov when > 0; default: 0.9) or rmsprop "
        "(default: 0)",
    )
    parser.add_argument(
        "--weight-decay",
        type=number(0, math.inf),
        default=None,
        help="weight decay on the weights: L2, or decoupled with adamw "
        "(default: 5e-05 for sgd, 0.01 for adamw, 0 for the others)",
    )
    parser.add_argument(
        "--seed",
        type=common.integer(0),
        default=recipe.SEED,
        help="seeds initialisation and shuffling (default: %(default)s)",
    )
    parser.add_argument(
        "--validation-split",
        type=number(0, 1, high_open=True),
        default=0.0,
        metavar="FRACTION",
        help="hold out this last fraction of the training data for "
        "the per-epoch val_loss/val_accuracy; with 0 the test "
        "set provides those columns (so they are test scores, "
        "not an independent validation). Default: 0",
    )
    parser.add_argument(
        "--limit",
        type=common.positive_int,
        default=None,
        metavar="N",
        help="train on the first N training samples only (quick "
        "tests); the test set stays complete",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=recipe.OUTPUT,
        metavar="FOLDER",
        help="folder for model.npz, history.json, the plots and "
        "checkpoint.npz (created if missing; files in it are overwritten; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--no-plots",
        action="store_true",
        help="do not write loss.png and confusion_matrix.png",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue an interrupted run from its checkpoint.npz (written "
        "into the output folder after every epoch), with the same options; "
        "training goes on until --epochs in all, ending exactly where an "
        "uninterrupted run would",
    )
    common.add_cluster(parser)
    parser.add_argument(
        "--strategy",
        choices=("sync", "local"),
        default="sync",
        help="with --workers/--scheduler: sync = synchronous SGD (every step "
        "is the global batch's step), local = local SGD (average every "
        "--sync-every steps). Default: sync",
    )
    parser.add_argument(
        "--sync-every",
        type=common.positive_int,
        default=8,
        metavar="K",
        help="local SGD: steps between parameter averages (default: %(default)s)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar, summary or per-epoch lines; print "
        "only the test accuracy and the files written",
    )


def run(args: argparse.Namespace) -> int:
    """Train, save and report; returns the exit status."""
    from fastnn.callbacks import ModelCheckpoint

    quiet = args.quiet
    seed = args.seed
    backend, output = common.preflight(args)
    distributed = _distributed(args)
    if args.workers is not None and args.workers > args.batch_size:
        raise common.UsageError(
            f"argument --workers: {args.workers} workers would leave some "
            f"without a sample of a batch of {args.batch_size}; expected at "
            f"most --batch-size"
        )
    if args.resume is not None and _already_done(args):
        return 0

    (x_train, y_train), (x_test, y_test) = common.load_mnist(args.dtype)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    if args.validation_split > 0:
        x_train, y_train, validation_data = common.split_off_validation(
            x_train, y_train, args.validation_split
        )
        validation_name = f"the last {len(validation_data[0])} training samples"
    else:
        validation_data = (x_test, y_test)
        validation_name = "the test set (no validation split)"
    common.check_batch_fits(args.batch_size, len(x_train))
    steps = math.ceil(len(x_train) / args.batch_size) * args.epochs
    try:
        model = recipe.mnist_model(
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
        raise common.UsageError(
            f"argument --hidden: {'x'.join(map(str, args.hidden))} hidden units "
            f"need more memory than this machine has ({err})"
        ) from err
    output.mkdir(parents=True, exist_ok=True)  # an unwritable folder fails here
    common.say(model.summary(), quiet=quiet)
    lr0 = model.optimizer.learning_rate.initial_learning_rate
    common.say(
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
        common.say(f"data-parallel: {strategy} on a Dask cluster", quiet=quiet)
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
    common.say(f"test loss: {scores['loss']:.4f}", quiet=quiet)
    print(f"test accuracy: {common.percent(scores['accuracy'])}")
    written.append(output / "checkpoint.npz")  # by ModelCheckpoint, every epoch
    for path in written:
        print(f"wrote {path}")
    return 0


def _distributed(args):
    """``fastnn.distributed`` when the command should run on a cluster (and
    Dask is installed: else ImportError with the install command), or None."""
    if args.workers is None and args.scheduler is None:
        return None
    from fastnn import distributed

    distributed.require_dask()
    return distributed


def _already_done(args: argparse.Namespace) -> bool:
    """Whether ``--resume``'s checkpoint already holds ``--epochs`` epochs
    (then say so); a missing checkpoint is refused."""
    if not Path(args.resume).is_file():
        raise FileNotFoundError(
            f"--resume: no checkpoint file at {args.resume!r} (fastnn train "
            "writes OUTPUT/checkpoint.npz after every epoch)"
        )
    from fastnn import io

    done = int(io.read_state(args.resume)["epoch"])
    if done < args.epochs:
        return False
    print(
        f"checkpoint {args.resume} already completed {done} of "
        f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}; nothing "
        f"to do. Pass --epochs N (N > {done}) to train further."
    )
    return True


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
