"""Shared fixtures: backends (fail, never skip, when CI requires them) and MNIST."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastnn
from fastnn.backends import BACKEND_NAMES, BackendUnavailableError, get_backend

#: Backends that must load: ``FASTNN_REQUIRE_BACKENDS`` (comma-separated), else
#: every backend when ``CI`` is set, so that in CI an unbuilt backend fails the
#: run instead of skipping. Elsewhere an unavailable backend skips, with the reason.
_required = os.environ.get("FASTNN_REQUIRE_BACKENDS")
if _required is None:
    _required = ",".join(BACKEND_NAMES) if os.environ.get("CI") else ""
REQUIRED = {b.strip() for b in _required.split(",") if b.strip()}
COMPILED = tuple(b for b in BACKEND_NAMES if b != "numpy")


def load_backend_or_skip(name: str):
    try:
        return get_backend(name)
    except BackendUnavailableError as err:
        if name in REQUIRED:
            pytest.fail(
                f"backend {name!r} is required (FASTNN_REQUIRE_BACKENDS) "
                f"but unavailable: {err}"
            )
        pytest.skip(f"backend {name!r} unavailable: {err}")


def pytest_collection_modifyitems(config, items):
    """With ``--benchmark-only`` (pytest-benchmark), deselect the tests: they are
    not benchmarks, and skipping each one would end the run with a ``SKIPPED``
    line per test (``-ra``). ``benchmarks/conftest.py`` does the same."""
    if not config.getoption("benchmark_only", default=False):
        return
    keep, drop = [], []
    for item in items:
        uses_benchmark = "benchmark" in getattr(item, "fixturenames", ())
        (keep if uses_benchmark else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def blas_threads_settable(n: int) -> bool:
    """Whether threadpoolctl finds a BLAS here and can hold it at ``n`` threads
    (some BLAS builds are single-threaded, or unknown to threadpoolctl)."""
    from threadpoolctl import threadpool_info

    with fastnn.set_num_threads(n):
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        return bool(blas) and all(p["num_threads"] == n for p in blas)


def skip_unless_blas_threads(n: int) -> None:
    """Skip, saying why, a test that needs a BLAS held at ``n`` threads."""
    if not blas_threads_settable(n):
        pytest.skip(f"threadpoolctl cannot hold this machine's BLAS at {n} threads")


@pytest.fixture(params=BACKEND_NAMES)
def backend_name(request) -> str:
    """Every backend name; the module is loaded (or the test skipped/failed)."""
    load_backend_or_skip(request.param)
    return request.param


@pytest.fixture(params=COMPILED)
def compiled_backend(request):
    """Every compiled backend module (numba, cython)."""
    return load_backend_or_skip(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype(request) -> np.dtype:
    return np.dtype(request.param)


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST: ((x_train, y_train), (x_test, y_test)), float32 in [0, 1]."""
    return fastnn.datasets.load_mnist()


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """A fixed 2,000/1,000 slice of real MNIST for quick training-level tests."""
    (x, y), (xt, yt) = mnist
    return (x[:2000], y[:2000]), (xt[:1000], yt[:1000])
