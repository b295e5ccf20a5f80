"""Compare the backends in a pytest-benchmark JSON file; the CI speed gate.

Usage::

    pytest benchmarks --benchmark-only --benchmark-json results.json
    python benchmarks/compare.py results.json [--require numba,cython]
                                              [--fail-slower-than-reference]

Prints one table per benchmark group: backend, median seconds, the time ratio
to the reference (numpy) backend (below 1: faster) and samples/s. Exit status 1
when a ``--require``\\ d backend has no result (it was skipped or failed), and,
with ``--fail-slower-than-reference``, when a compiled backend (numba, cython)
is slower than numpy on S or L64 in float32. The logic lives in
:mod:`fastnn.bench`.
"""

from __future__ import annotations

import argparse
import sys

from fastnn import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Tables and the speed gate from a pytest-benchmark JSON file."
    )
    parser.add_argument("results", help="the file written by --benchmark-json")
    parser.add_argument(
        "--require",
        default="",
        help="comma-separated backends that must have results, e.g. numba,cython",
    )
    parser.add_argument(
        "--fail-slower-than-reference",
        action="store_true",
        help="exit 1 if numba or cython is slower than numpy on "
        f"{' or '.join(bench.GATE_GROUPS)}",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="with --fail-slower-than-reference, allow a compiled backend this "
        "fraction slower than numpy before failing (shared machines are noisy; "
        "default 0)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.noise < 1:
        parser.error(f"--noise: expected a fraction in [0, 1); received {args.noise}")
    try:
        rows = bench.rows_from_json(args.results)
    except (OSError, ValueError, KeyError) as err:
        print(
            f"compare.py: cannot read {args.results!r} as pytest-benchmark JSON: {err}",
            file=sys.stderr,
        )
        return 2
    if rows:
        bench.print_table(rows, cut_by="FASTNN_BENCH_SAMPLES")
    else:
        print(f"no fastnn benchmark results in {args.results}")
    require = [b.strip() for b in args.require.split(",") if b.strip()]
    failures = bench.check_results(
        rows, require, args.fail_slower_than_reference, noise=args.noise
    )
    for message in failures:
        print(f"FAIL: {message}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
