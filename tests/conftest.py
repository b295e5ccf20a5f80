"""Shared fixtures and hooks for every test folder (README.md maps them):
backends (fail, never skip, when CI requires them) and MNIST. The helpers
behind them live in ``support`` (support/__init__.py)."""

from __future__ import annotations

import numpy as np
import pytest
from support.backends import COMPILED, load_backend_or_skip

import fastnn
from fastnn.backends import BACKEND_NAMES


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


@pytest.fixture(autouse=True, scope="session")
def _auto_unmeasured(tmp_path_factory):
    """``backend="auto"`` as on a machine never measured: a measurement cached
    on the machine running the tests (``fastnn backends --measure``) must not
    change what they see. Tests of the measurement pass their own folder."""
    from fastnn import autoselect

    folder = tmp_path_factory.mktemp("auto-unmeasured")
    original = autoselect.cache_file
    patch = pytest.MonkeyPatch()
    patch.setattr(
        autoselect,
        "cache_file",
        lambda cache_dir=None: original(folder if cache_dir is None else cache_dir),
    )
    autoselect.forget()
    yield folder
    patch.undo()
    autoselect.forget()


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
