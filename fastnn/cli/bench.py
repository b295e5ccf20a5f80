"""``fastnn bench``: time one MNIST epoch per backend and configuration
(:mod:`fastnn.bench`), print each one's ratio to the numpy reference and
write a bar chart."""

from __future__ import annotations

import argparse

import fastnn.cli.common as common

HELP = "time one MNIST epoch per backend and compare them"
DESCRIPTION = (
    "Time one MNIST epoch (after a warm-up epoch) on each "
    "available backend, print each one's ratio to the numpy reference and "
    "write a bar chart."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """bench's options."""
    from fastnn.backends import BACKEND_NAMES

    parser.add_argument(
        "--backends",
        nargs="+",
        metavar="NAME",
        default=None,
        choices=("auto",) + BACKEND_NAMES,
        help="backends to time (default: every one that loads)",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["S", "L64"],
        choices=["S", "L64", "L256"],
        help="S = 784-128-10 batch 64, L64 = 784-512-512-512-10 "
        "batch 64, L256 = the same at batch 256 (default: S L64)",
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--rounds",
        type=common.positive_int,
        default=3,
        help="timed epochs per backend and config (default: 3)",
    )
    parser.add_argument(
        "--samples",
        type=common.positive_int,
        default=None,
        metavar="N",
        help="use only the first N training samples (quick look, "
        "not a real measurement)",
    )
    parser.add_argument(
        "--output",
        "-o",
        default="bench.png",
        help="bar chart PNG to write (default: bench.png)",
    )


def run(args: argparse.Namespace) -> int:
    """Time, print the table and write the chart; returns the exit status."""
    from fastnn import bench

    common.check_file_option("-o/--output", args.output)
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
