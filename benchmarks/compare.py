"""Compare the backends in a pytest-benchmark JSON file; the CI speed gate.

Usage::

    pytest benchmarks --benchmark-only --benchmark-json results.json
    python benchmarks/compare.py results.json [--require numba,cython]
                                              [--fail-slower-than-reference]
                                              [--numba-over-cython RATIO]
                                              [--max-startup-overhead SECONDS]

Prints one table per benchmark group: backend, median seconds, the time ratio
to the reference (numpy) backend (below 1: faster) and samples/s. Exit status 1
when a ``--require``\\ d backend has no result (it was skipped or failed), and,
with ``--fail-slower-than-reference``, when a compiled backend (numba, cython)
is slower than numpy on S or L64 in float32, and, with
``--numba-over-cython RATIO``, when numba's time there is above RATIO times
cython's (the numba backend kept level with the cython one), and, with
``--max-startup-overhead SECONDS``, when a fresh process with numba's cache
warm adds more than that to an epoch (``benchmarks/test_cold_start.py``).
The gate and the reading of pytest-benchmark JSON live here, with CI, not in
the installed package; the tables come from :mod:`fastnn.bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from fastnn import bench
from fastnn.bench import REFERENCE, BenchRow

#: Backends that must beat the reference (``compare.py --fail-slower-than-reference``).
COMPILED = ("numba", "cython")
#: Groups (config-dtype) where a compiled backend slower than numpy is a failure.
GATE_GROUPS = ("S-float32", "L64-float32")
#: The cold-start case ``--max-startup-overhead`` gates.
WARM_START = "numba-warm-cache"


def rows_from_json(data: dict[str, Any] | str | os.PathLike) -> list[BenchRow]:
    """Rows from a pytest-benchmark ``--benchmark-json`` file (or its parsed dict).

    Only benchmarks whose ``extra_info`` names a ``backend`` (the fastnn suite's)
    are read; ``samples_per_second`` is ``n_samples / median`` when the
    benchmark recorded ``n_samples``.
    """
    rows = []
    for result in _benchmarks(data):
        info = result.get("extra_info") or {}
        backend = info.get("backend")
        if backend is None:
            continue
        median = float(result["stats"]["median"])
        n = info.get("n_samples")
        rows.append(
            BenchRow(
                backend=backend,
                config=str(info.get("config", "")),
                dtype=str(info.get("dtype", "")),
                median_s=median,
                ratio_to_numpy=None,
                samples_per_second=(n / median if n and median > 0 else None),
                group=result.get("group") or str(info.get("config", "")),
                n_samples=n,
                smoke=bool(info.get("smoke", False)),
            )
        )
    return bench.with_ratios(rows)


def _benchmarks(data: dict[str, Any] | str | os.PathLike) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        with open(data, encoding="utf-8") as f:
            data = json.load(f)
    return list(data.get("benchmarks", []))


def startup_overheads(data: dict[str, Any] | str | os.PathLike) -> dict[str, float]:
    """``{case: seconds}``: what a fresh process added to an epoch in each
    cold-start case that recorded ``startup_overhead_s`` (import, backend load
    and first epoch, less a later epoch of the same process)."""
    found = {}
    for result in _benchmarks(data):
        info = result.get("extra_info") or {}
        if "startup_overhead_s" in info and "backend" in info:
            found[str(info["backend"])] = float(info["startup_overhead_s"])
    return found


def check_results(
    rows: Iterable[BenchRow],
    require: Sequence[str] = (),
    fail_slower_than_reference: bool = False,
    noise: float = 0.0,
    numba_over_cython: float | None = None,
    startup: dict[str, float] | None = None,
    max_startup_overhead: float | None = None,
) -> list[str]:
    """Failure messages (empty: all good) for the CI gate.

    * every ``require``\\ d backend must have a result in each gate group present
      (:data:`GATE_GROUPS`), or anywhere when no gate group is present;
    * with ``fail_slower_than_reference``, each compiled backend must be faster
      than ``numpy`` in every gate group, and the gate groups must hold a
      ``numpy`` result. ``noise`` allows that fraction of slack (a compiled
      backend fails when its median is above ``(1 + noise)`` times numpy's);
    * with ``numba_over_cython``, numba's median in every gate group holding
      both must be at most that many times cython's;
    * with ``max_startup_overhead``, ``startup`` (from :func:`startup_overheads`)
      must hold the :data:`WARM_START` case, at most that many seconds.
    """
    rows = list(rows)
    by_group: dict[str, dict[str, BenchRow]] = {}
    for r in rows:
        by_group.setdefault(r.group, {})[r.backend] = r
    gates = [g for g in GATE_GROUPS if g in by_group]
    failures = []
    for backend in require:
        if gates:
            for g in gates:
                if backend not in by_group[g]:
                    failures.append(
                        f"{g}: required backend {backend!r} has no result "
                        "(skipped or failed: see the pytest output)"
                    )
        elif not any(r.backend == backend for r in rows):
            failures.append(f"required backend {backend!r} has no result")
    if fail_slower_than_reference:
        if not gates:
            failures.append(
                f"no result in {' or '.join(GATE_GROUPS)} to compare with the reference"
            )
        for g in gates:
            ref = by_group[g].get(REFERENCE)
            if ref is None:
                failures.append(f"{g}: no {REFERENCE!r} reference result")
                continue
            for backend in COMPILED:
                r = by_group[g].get(backend)
                if r is not None and r.median_s > ref.median_s * (1 + noise):
                    failures.append(
                        f"{g}: {backend} is slower than the reference: "
                        f"{r.median_s:.4g} s vs {ref.median_s:.4g} s "
                        f"({r.ratio_to_numpy:.2f}x the numpy time)"
                    )
    if numba_over_cython is not None:
        for g in gates:
            nb, cy = by_group[g].get("numba"), by_group[g].get("cython")
            if nb is None or cy is None:
                continue
            if nb.median_s > numba_over_cython * cy.median_s:
                failures.append(
                    f"{g}: numba takes {nb.median_s / cy.median_s:.2f}x cython's "
                    f"time ({nb.median_s:.4g} s vs {cy.median_s:.4g} s), above "
                    f"{numba_over_cython}"
                )
    if max_startup_overhead is not None:
        seconds = (startup or {}).get(WARM_START)
        if seconds is None:
            failures.append(
                f"no {WARM_START!r} cold-start result with startup_overhead_s "
                "(skipped or failed: see the pytest output)"
            )
        elif seconds > max_startup_overhead:
            failures.append(
                f"a fresh process with numba's cache warm added {seconds:.2f} s to "
                f"an epoch, above {max_startup_overhead} s (a kernel compiled again "
                "instead of loaded from the cache?)"
            )
    return failures


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
        f"{' or '.join(GATE_GROUPS)}",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="with --fail-slower-than-reference, allow a compiled backend this "
        "fraction slower than numpy before failing (shared machines are noisy; "
        "default 0)",
    )
    parser.add_argument(
        "--numba-over-cython",
        type=float,
        default=None,
        metavar="RATIO",
        help=f"exit 1 if numba's median is above RATIO times cython's on "
        f"{' or '.join(GATE_GROUPS)}",
    )
    parser.add_argument(
        "--max-startup-overhead",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit 1 if a fresh process with numba's cache warm adds more than "
        "SECONDS to an epoch (import, backend load, first epoch less a later one)",
    )
    args = parser.parse_args(argv)
    if args.numba_over_cython is not None and not args.numba_over_cython > 0:
        parser.error(
            "--numba-over-cython: expected a positive ratio; received "
            f"{args.numba_over_cython}"
        )
    if args.max_startup_overhead is not None and not args.max_startup_overhead > 0:
        parser.error(
            "--max-startup-overhead: expected a positive number of seconds; "
            f"received {args.max_startup_overhead}"
        )
    if not 0 <= args.noise < 1:
        parser.error(f"--noise: expected a fraction in [0, 1); received {args.noise}")
    try:
        rows = rows_from_json(args.results)
        startup = startup_overheads(args.results)
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
    for case, seconds in sorted(startup.items()):
        print(f"startup overhead {case}: {seconds:.3f} s")
    require = [b.strip() for b in args.require.split(",") if b.strip()]
    failures = check_results(
        rows,
        require,
        args.fail_slower_than_reference,
        noise=args.noise,
        numba_over_cython=args.numba_over_cython,
        startup=startup,
        max_startup_overhead=args.max_startup_overhead,
    )
    for message in failures:
        print(f"FAIL: {message}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
