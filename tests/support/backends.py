"""Loading backends in tests: skip where one is unavailable, fail where required;
the same for what a test needs of the machine (a BLAS held at n threads, a CPU
for fastnn's own sgemm).

``REQUIRED`` is read once, from the environment, when this module is first
imported (by ``conftest.py``, at collection).
"""

from __future__ import annotations

import os
import platform
import sys

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
    """The backend module ``name``; skips the test when it is unavailable, or
    fails it when ``name`` is in ``REQUIRED``."""
    try:
        return get_backend(name)
    except BackendUnavailableError as err:
        if name in REQUIRED:
            pytest.fail(
                f"backend {name!r} is required (FASTNN_REQUIRE_BACKENDS) "
                f"but unavailable: {err}"
            )
        pytest.skip(f"backend {name!r} unavailable: {err}")


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


def own_kernels_can_run() -> bool:
    """Whether fastnn's own sgemm kernels can run here: an AVX2 + FMA CPU, and
    a compiler that builds the kernels (GCC, Clang on x86-64; not MSVC)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    cpu = bool(__cpu_features__.get("AVX2") and __cpu_features__.get("FMA3"))
    return cpu and platform.machine() in ("x86_64", "AMD64") and sys.platform != "win32"


def skip_without_own_kernels() -> None:
    """Skip a test of fastnn's own sgemm where it cannot run: the kernels need
    AVX2 + FMA. Under CI every machine has both, so a CPU without them there
    is reported as the backend skips are: a failure."""
    if own_kernels_can_run():
        return
    why = "fastnn's own sgemm needs an x86-64 CPU with AVX2 and FMA"
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI's machines have both, this one does not")
    pytest.skip(why)
