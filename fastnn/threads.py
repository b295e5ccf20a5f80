"""One knob for every thread pool fastnn uses: BLAS, OpenMP and numba."""

from __future__ import annotations

import contextlib
import sys


def _check(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(
            f"n: expected a positive int number of threads; received {n!r}"
        )


def _numba_threads(n=None):
    """Get (and optionally set) numba's thread count, only if numba is loaded."""
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    old = numba.get_num_threads()
    if n is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return old


class set_num_threads(contextlib.ContextDecorator):
    """Limit BLAS, OpenMP and numba threads to ``n``.

    Used as a call it applies for the rest of the process; used as a context
    manager (``with fastnn.set_num_threads(1): ...``) it restores the previous
    limits on exit. Requires ``threadpoolctl`` (a dependency of fastnn).
    """

    def __init__(self, n: int) -> None:
        _check(n)
        from threadpoolctl import threadpool_limits

        self._n = n
        self._numba_old = _numba_threads(n)
        self._limits = threadpool_limits(limits=n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._limits.restore_original_limits()
        if self._numba_old is not None:
            _numba_threads(self._numba_old)
        return False
