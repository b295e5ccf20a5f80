"""Loading backends in tests: skip where one is unavailable, fail where required.

``REQUIRED`` is read once, from the environment, when this module is first
imported (by ``conftest.py``, at collection).
"""

from __future__ import annotations

import os

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
