"""``fastnn backends``: list fastnn's backends, whether each one loads, and
how to fix it if not, and which one ``auto`` takes and why
(:func:`fastnn.show_backends`); with ``--measure``, first measure which is
fastest on this machine and cache it for ``auto``
(:func:`fastnn.bench.measure.measure_backends`)."""

from __future__ import annotations

import argparse

from fastnn.cli.common import integer

HELP = "list the backends, whether they load and which one auto takes"
DESCRIPTION = (
    "List fastnn's backends, whether each one is available, how to fix it if "
    "not, and which one backend='auto' takes and why. With --measure, first "
    "time every backend on this machine (about 15 s, more when numba "
    "compiles) and cache the fastest for backend='auto', and the cython "
    "loop's faster GEMM."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--measure",
        action="store_true",
        help="measure the backends on this machine and cache the fastest for auto",
    )
    parser.add_argument(
        "--rounds",
        type=integer(1),
        default=5,
        help="paired rounds per network with --measure (default 5)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 1 when no backend loads."""
    import fastnn

    if args.measure:
        from fastnn.autoselect import cache_file
        from fastnn.bench.measure import measure_backends

        record = measure_backends(rounds=args.rounds)
        for net, seconds in record["networks"].items():
            times = ", ".join(f"{n} {s * 1e3:.1f} ms" for n, s in seconds.items())
            print(f"measured {net}: {times}")
        print(f"saved to {cache_file()}")
    report = fastnn.show_backends()
    return 0 if any(reason is None for reason in report.values()) else 1
