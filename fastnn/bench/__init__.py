"""Benchmark helpers: the configurations, in-process epoch timing, tables, plots.

What the benchmarks measure is what users feel: the wall time of one
``model.fit(x, y, epochs=1)`` on the real MNIST held in memory, after a warm-up
epoch (so numba compilation and first-call costs are excluded; cold start is
measured separately, in ``benchmarks/test_cold_start.py``).

Configurations (ReLU hidden layers, softmax output, cross-entropy,
``SGD(0.05, momentum=0.9, weight_decay=1e-4)``):

====== ===================== ==========
name   layers                batch size
====== ===================== ==========
S      784-128-10            64
L64    784-512-512-512-10    64
L256   784-512-512-512-10    256
====== ===================== ==========

A ``ratio_to_numpy`` is a *time* ratio: the backend's median epoch time over the
reference (``numpy``) backend's in the same group, so 0.5 means twice as fast.

The package, one concern a module (none imports pytest; matplotlib is imported
only inside :func:`plot_bars`):

* :mod:`~fastnn.bench.configs`: :data:`CONFIGS`, :func:`build_model` and
  :func:`epoch_flops`;
* :mod:`~fastnn.bench.rows`: :class:`BenchRow`, the ratios, the table order;
* :mod:`~fastnn.bench.environment`: :func:`environment_info`, recorded with
  every result;
* :mod:`~fastnn.bench.run`: :func:`run_bench`, the timing of ``fastnn bench``;
* :mod:`~fastnn.bench.report`: :func:`format_table` and :func:`plot_bars`.

It is shared by ``fastnn bench`` and the pytest-benchmark suite
(``benchmarks/``). What only the suite needs (reading pytest-benchmark JSON,
the CI speed gate, the sgemm peak) lives there, in
``benchmarks/compare.py`` and ``benchmarks/_suite.py``.
"""

from fastnn.bench.configs import (
    CONFIGS,
    LEARNING_RATE,
    MOMENTUM,
    WEIGHT_DECAY,
    BenchConfig,
    build_model,
    epoch_flops,
)
from fastnn.bench.environment import RECORDED_ENV, environment_info
from fastnn.bench.report import format_table, plot_bars, print_table
from fastnn.bench.rows import REFERENCE, BenchRow, with_ratios
from fastnn.bench.run import run_bench

__all__ = [
    "CONFIGS",
    "LEARNING_RATE",
    "MOMENTUM",
    "RECORDED_ENV",
    "REFERENCE",
    "WEIGHT_DECAY",
    "BenchConfig",
    "BenchRow",
    "build_model",
    "environment_info",
    "epoch_flops",
    "format_table",
    "plot_bars",
    "print_table",
    "run_bench",
    "with_ratios",
]
