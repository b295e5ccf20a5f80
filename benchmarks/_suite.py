"""Settings and helpers shared by the benchmark modules (read once, at collection).

Helper: this machine's float32 gemm peak (:func:`measure_sgemm_peak`), which
every result is compared with (over an epoch's FLOPs, ``bench.epoch_flops``).

Environment knobs:

``FASTNN_BENCH_QUICK=1``
    CI mode: float32 only, configurations S and L64, 3 rounds.
``FASTNN_BENCH_SAMPLES=N``
    Train (and predict) on the first N images only. A smoke test of the suite,
    *not a real measurement*: results are flagged ``smoke`` in ``extra_info``
    and ``compare.py`` says so under the table.
``FASTNN_BENCH_ROUNDS=R``
    Override the number of timed rounds (default 5, quick mode 3).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from fastnn import bench
from fastnn.backends import BackendUnavailableError, get_backend


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise pytest.UsageError(f"{name}: expected a positive int; received {value!r}")
    return number


QUICK = os.environ.get("FASTNN_BENCH_QUICK", "") not in ("", "0")
SAMPLES = _env_int("FASTNN_BENCH_SAMPLES")
ROUNDS = _env_int("FASTNN_BENCH_ROUNDS") or (3 if QUICK else 5)
DTYPES = ("float32",) if QUICK else ("float32", "float64")
CONFIGS = ("S", "L64") if QUICK else tuple(bench.CONFIGS)
#: fastnn's backends; the hand-written NumPy MLP joins the epoch tables as a row.
BACKENDS = ("numpy", "numba", "cython")
HANDWRITTEN = "handwritten-numpy"


def load_backend_or_skip(name: str):
    """The backend module, or skip the benchmark saying why it does not load."""
    try:
        return get_backend(name)
    except BackendUnavailableError as err:
        pytest.skip(f"backend {name!r} unavailable: {err}")


def measure_sgemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` float32 ``n x n`` products (``np.dot``).

    Uses whatever BLAS threads are currently allowed (all, by default). One
    untimed product first warms the BLAS thread pool up.
    """
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.dot(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9
