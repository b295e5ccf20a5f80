"""BLAS held at one thread while a training call runs, shared by the compiled
backends: the cython backend's split steps (one BLAS thread per training
thread) and the numba backend's small steps (where BLAS's threads cost more
than they bring)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np


def _set_blas_threads(lib, n: int) -> None:
    """Set ``lib``'s thread limit from any Python thread.

    threadpoolctl (>= 3.6) lets only one "controlling" Python thread set
    OpenBLAS's process-wide limit and silently ignores the others; fit may run
    in any thread, and ``BlasAtOneThread`` restores what it changed under its
    own lock, so it calls the library itself where threadpoolctl allows it.
    """
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(n)


class BlasAtOneThread:
    """Holds every loaded BLAS at one thread while training calls run.

    The cython backend's training threads each call BLAS, and a multithreaded
    BLAS under them would oversubscribe the cores; the numba backend's steps
    too small for BLAS's threads to pay run with BLAS at one thread. Reentrant
    across Python threads and backends: the first to enter saves the limits,
    the last to leave restores them. A BLAS on OpenMP
    keeps one limit per thread: ``in_this_thread`` sets it in a helper thread.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._active = 0
        self._saved = None
        self._libs = None

    def libs(self):
        with self._lock:
            return self._libs_locked()

    def _libs_locked(self):
        if self._libs is None:
            from threadpoolctl import ThreadpoolController

            self._libs = [
                lib
                for lib in ThreadpoolController().lib_controllers
                if lib.user_api == "blas"
            ]
        return self._libs

    def forget_libs(self) -> None:
        """Find the loaded BLAS libraries again at the next use (a backend
        loaded another one: numba calls SciPy's, which NumPy does not load)."""
        with self._lock:
            if self._active == 0:
                self._libs = None

    def threads(self) -> int:
        """BLAS's thread limit (the one saved while calls hold it at one)."""
        with self._lock:
            if self._saved is not None:
                return max(self._saved, default=1)
            return max((lib.num_threads for lib in self._libs_locked()), default=1)

    def in_this_thread(self) -> None:
        """One BLAS thread for calls from this (helper) thread, where the
        limit is per thread (OpenMP); process-wide limits are already held."""
        for lib in self.libs():
            if getattr(lib, "threading_layer", None) == "openmp":
                _set_blas_threads(lib, 1)

    def __enter__(self):
        with self._lock:
            if self._active == 0:
                libs = self._libs_locked()
                self._saved = [lib.num_threads for lib in libs]
                for lib in libs:
                    _set_blas_threads(lib, 1)
            self._active += 1

    def __exit__(self, *exc):
        with self._lock:
            self._active -= 1
            if self._active == 0:
                for lib, n in zip(self._libs, self._saved, strict=True):
                    _set_blas_threads(lib, n)
                self._saved = None
        return False


#: The one holder every backend shares (its count spans them all).
BLAS_AT_ONE_THREAD = BlasAtOneThread()


def run_team(call: Callable[[int], int], n_threads: int, abort: Callable[[], None]):
    """A training team: ``call(0)`` in this thread and ``call(t)`` for t = 1
    .. n_threads - 1 in new threads, BLAS at one thread each (the compiled
    calls release the GIL and meet at their barriers). A thread that fails
    calls ``abort()`` (its partners leave at their next barrier) and its
    error is raised here, after every thread is joined; returns ``call(0)``."""
    failed: list[BaseException | None] = [None] * n_threads

    def helper(t):
        try:
            BLAS_AT_ONE_THREAD.in_this_thread()
            call(t)
        except BaseException as err:  # noqa: BLE001 (re-raised below)
            failed[t] = err
            abort()

    threads = [
        threading.Thread(target=helper, args=(t,), name=f"fastnn-train-{t}")
        for t in range(1, n_threads)
    ]
    with BLAS_AT_ONE_THREAD:
        for thread in threads:
            thread.start()
        try:
            done = call(0)
        except BaseException:
            abort()
            raise
        finally:
            for thread in threads:
                thread.join()
    for err in failed:
        if err is not None:
            raise err
    return done


def team_size(rows: int, forced: int | None, min_rows: int, most: int) -> int:
    """Threads for a training team with batches of up to ``rows`` samples:
    ``forced`` if given (tests), else as many as BLAS may use, at most one
    per ``min_rows`` rows and ``most`` in all, and at least one."""
    if forced is not None:
        return forced
    return max(1, min(BLAS_AT_ONE_THREAD.threads(), rows // min_rows, most))


def input_by_columns(layout, drop_thresholds, forced: bool | None) -> bool:
    """Whether a split training loop splits the input layer by its output
    columns rather than by its inputs (both backends' rule; ``forced`` if not
    None, for tests): where the input is no wider than the layer's output,
    with a layer above it and no dropout on the input. Each thread then
    multiplies the whole batch by its columns of W: no sum of shares and two
    barriers a step fewer, for reading the whole batch. Paired, float32, one
    process, numba on two threads: make_classification's 100-256-5 (batch
    200, Adam) 0.76x the epoch; MNIST's 784-256-10 (batch 200) 1.06x, S
    1.03x, L64 0.99x and L256 1.01x, so by inputs there."""
    possible = len(layout) > 1 and not drop_thresholds[0] > 0
    if forced is not None:
        return bool(forced) and possible
    return possible and bool(layout[0, 0] <= layout[0, 1])


#: Cache-line size assumed for the buffers training threads share.
LINE_BYTES = 64


def aligned_empty(size: int, dtype) -> np.ndarray:
    """``np.empty(size, dtype)`` starting on a cache line. The threads of a
    split step write their own columns of shared (rows, n) buffers; where a
    row's share boundary falls mid-line, both cores write that line on
    every row (NumPy's large allocations start 16 bytes past a page)."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size + LINE_BYTES // itemsize, dtype)
    skip = (-raw.ctypes.data % LINE_BYTES) // itemsize
    return raw[skip : skip + size]
