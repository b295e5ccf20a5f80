"""Benchmark suite plumbing: opt-in collection, real MNIST, recorded context.

The benchmarks run only with ``--benchmark-only``; an ordinary ``pytest`` run
deselects them (they are not even started), so the test suite spends no time
here. With ``--benchmark-only`` it is the other way round: every test that is
not a benchmark is deselected, so the run ends with the benchmark tables and
a one-line summary::

    pytest benchmarks --benchmark-only --benchmark-json results.json
    python benchmarks/compare.py results.json

Environment knobs (``FASTNN_BENCH_QUICK``, ``FASTNN_BENCH_SAMPLES``,
``FASTNN_BENCH_ROUNDS``): see ``_suite.py``.

Every result's ``extra_info`` records samples/s, the fraction of this machine's
float32 gemm peak reached, versions, the BLAS and its threads, the OpenBLAS/OpenMP
environment variables (recorded, never set) and numba's threading layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks._suite import SAMPLES, measure_sgemm_peak
from fastnn import bench

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Deselect every item of this folder unless ``--benchmark-only`` is given;
    with it, deselect every item that is not a benchmark (pytest-benchmark
    would skip each one, and ``-ra`` would list them all). ``tests/conftest.py``
    does the latter too, for ``pytest tests --benchmark-only``."""
    only = config.getoption("benchmark_only", default=False)
    keep, drop = [], []
    for item in items:
        if only:
            benchmark = "benchmark" in getattr(item, "fixturenames", ())
        else:
            benchmark = HERE in Path(item.path).resolve().parents
        (drop if benchmark != only else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class MNIST:
    """The real MNIST, loaded once, cut to ``FASTNN_BENCH_SAMPLES``, per dtype."""

    def __init__(self) -> None:
        from fastnn import datasets

        try:
            (x, y), (xt, yt) = datasets.load_mnist(dtype="float32", verbose=False)
        except (RuntimeError, OSError, ValueError) as err:
            pytest.skip(f"the real MNIST is unavailable: {err}")
        if SAMPLES is not None:
            x, y, xt, yt = x[:SAMPLES], y[:SAMPLES], xt[:SAMPLES], yt[:SAMPLES]
        self._cache = {"float32": (x, y, xt, yt)}

    def _get(self, dtype: str):
        if dtype not in self._cache:
            x, y, xt, yt = self._cache["float32"]
            self._cache[dtype] = (x.astype(dtype), y, xt.astype(dtype), yt)
        return self._cache[dtype]

    def train(self, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
        x, y, _, _ = self._get(dtype)
        return x, y

    def test(self, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
        _, _, xt, yt = self._get(dtype)
        return xt, yt


@pytest.fixture(scope="session")
def mnist() -> MNIST:
    return MNIST()


@pytest.fixture(scope="session")
def sgemm_peak() -> float:
    """This machine's float32 gemm GFLOP/s (2048 x 2048, all threads), measured once."""
    return measure_sgemm_peak()


@pytest.fixture
def record(benchmark, sgemm_peak):
    """``record(backend=..., config=..., dtype=..., n_samples=..., flops=...)``.

    ``n_samples``: samples processed per call (for samples/s); ``flops``: per
    call (for GFLOP/s and the fraction of the peak); ``uses_mnist=False`` for
    fixed-size inputs that ``FASTNN_BENCH_SAMPLES`` does not cut; other keywords
    are stored as they are. Call it after the benchmark ran: it fills
    ``benchmark.extra_info`` with the identification ``compare.py`` reads,
    samples/s and GFLOP/s from the median, the fraction of the sgemm peak, and
    :func:`fastnn.bench.environment_info`.
    """

    def _record(
        *,
        backend: str,
        config: str,
        dtype: str,
        n_samples: int | None = None,
        flops: float | None = None,
        uses_mnist: bool = True,
        **extra,
    ) -> None:
        info = benchmark.extra_info
        info.update(
            backend=backend,
            config=config,
            dtype=dtype,
            n_samples=n_samples,
            smoke=uses_mnist and SAMPLES is not None,
        )
        metadata = benchmark.stats  # None when benchmarks are disabled
        median = metadata.stats.median if metadata else None
        if median:
            if n_samples:
                info["samples_per_second"] = n_samples / median
            if flops:
                info["gflops"] = flops / median / 1e9
                info["fraction_of_sgemm_peak"] = info["gflops"] / sgemm_peak
        info["sgemm_peak_gflops"] = sgemm_peak
        info.update(extra)
        info.update(bench.environment_info())

    return _record
