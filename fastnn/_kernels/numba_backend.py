"""The ``"numba"`` backend: thin checking wrappers around ``_numba_kernels``.

Same functions and signatures as :mod:`fastnn.reference` (the specification).
Each wrapper runs its contract function's check from ``_checks`` (shared with
the cython backend: what would make a kernel write out of bounds), casts
scalars to the array dtype and calls the kernel. Public fastnn entry points
validate user input before they get here; the checks raise
``ValueError``/``TypeError`` with what was expected and what was received.

Threads. ``train_steps`` splits each step over a team of Python threads (as
many as BLAS may use, at most one per ``MIN_ROWS_PER_THREAD`` rows of a
batch), each running the nogil loop ``_numba_kernels.train_steps_split`` on
its share with BLAS at one thread, meeting at spinning barriers
(``_numba_team``, atomics emitted as LLVM instructions); the cython backend's
split, in numba. An input layer no wider than its output is split by its
output columns instead (``_blas_threads.input_by_columns``). One thread runs
``_numba_kernels.train_steps``. Results
agree across thread counts to rounding and repeat bit for bit for a given
count. numba's own threading layer (``parallel=True``) is never started: the
fused elementwise passes are too small for a parallel region to pay, and
this module leaves ``numba.config.THREADING_LAYER`` alone (it is
process-wide). Every kernel is ``nogil`` and keeps no global state, so
several Python threads may call any function at once. BLAS threads are
controlled with threadpoolctl (``fastnn.set_num_threads``).

GEMM. The training loops' float32 products run on fastnn's own AVX2 kernels
(the cython backend's, called by symbol: ``_numba_gemm``) where each product
runs on one thread and the cython backend's rule or measurement says they
beat this machine's BLAS (:func:`gemm_policy`); on BLAS (``np.dot``)
otherwise, in float64 and in the per-layer functions.

Compilation happens on the first call per dtype and is cached on disk
(``cache=True``); ``NUMBA_DISABLE_JIT=1`` runs the same kernels as Python.
"""

from __future__ import annotations

try:
    import numba
except ImportError as err:  # the registry adds the install hint
    raise ImportError(
        f"the numba backend needs the numba package, which failed to import ({err})"
    ) from err

from contextlib import nullcontext

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 (see BLAS_AT_ONE_THREAD below)

from fastnn import contract as _c
from fastnn._kernels import _checks
from fastnn._kernels import _numba_gemm as _ng
from fastnn._kernels import _numba_kernels as _k
from fastnn._kernels import _numba_team as _team
from fastnn._kernels._blas_threads import (
    BLAS_AT_ONE_THREAD,
    input_by_columns,
    run_team,
    team_size,
)
from fastnn._kernels._numba_fpenv import flush_subnormals, restore_fpenv
from fastnn.activations import Activation

# numba's np.dot calls SciPy's BLAS, which NumPy does not load: it is loaded
# now, so that BLAS_AT_ONE_THREAD holds it too (a product on its threads under
# a training team oversubscribes the cores: S's split step took 2 ms, not 0.3,
# while it was missed).
BLAS_AT_ONE_THREAD.forget_libs()

__all__ = list(_c.FUNCTIONS)

#: Steps of fewer GEMM flops than this (about ``6 * batch * weights``) run with
#: BLAS at one thread: its threads cost more than they bring on products this
#: small. Paired in one process: S (784-128-10, batch 64, 39 MFLOP a step)
#: 0.311 s an epoch at one thread against 0.338 s at two; L64 (357 MFLOP)
#: 3.28 s against 2.44 s.
SMALL_STEP_FLOPS = 100e6

NAME = "numba"

# Placeholder for an unrequested dX (never written; size 0).
_NO_DX = {dt: np.empty((0, 0), dt) for dt in _checks.FLOAT_DTYPES}


# --------------------------------------------------------------------------- #
# The training loops' float32 GEMM
# --------------------------------------------------------------------------- #
_gemm_policy = "auto"
_NO_WORK = np.empty(0, np.uint8)  # an empty work space: the products go to BLAS


def gemm_policy(policy: str | None = None) -> str:
    """Which GEMM the training loops' float32 products run on (as
    ``cython_backend.gemm_policy``, for this backend):

    * ``"auto"`` (the default): fastnn's own AVX2 kernels (``_numba_gemm``)
      where each product runs on one thread (a step split over the cores, or
      BLAS at one thread) and they beat this machine's BLAS, by the cython
      backend's rule and measurement (``cython_backend.own_gemm_beats_blas``);
      BLAS otherwise;
    * ``"own"``: the own kernels for every product of the loops, whatever
      BLAS's thread count (RuntimeError where they cannot run: no AVX2 and
      FMA, or the cython extensions are not built);
    * ``"blas"``: BLAS throughout.

    float64 always runs on BLAS. For A/B measurements and tests. Not to be
    called while the backend's kernels run in another thread.
    """
    global _gemm_policy
    if policy is None:
        return _gemm_policy
    _checks.check_gemm_policy(policy)
    if policy == "own" and not _ng.available():
        raise RuntimeError(
            "policy: 'own' needs fastnn's own GEMM, which runs on x86-64 CPUs "
            "with AVX2 and FMA, from the cython backend's build; here it "
            "cannot (no such CPU, or the Cython extensions are not built)"
        )
    _gemm_policy = policy
    return _gemm_policy


def _own_gemm_beats_blas() -> bool:
    try:
        from fastnn._kernels import cython_backend
    except ImportError:
        return False
    return cython_backend.own_gemm_beats_blas()


def describe() -> str:
    """One line for ``fastnn backends``: the training loops' float32 GEMM
    here and why (:func:`gemm_policy`)."""
    if not _ng.available():
        return (
            "float32 GEMM in fit: BLAS (fastnn's own kernels need an AVX2 and "
            "FMA CPU and the cython backend's build)"
        )
    if _gemm_policy != "auto":
        return f"float32 GEMM in fit: forced {_gemm_policy!r}"
    if _own_gemm_beats_blas():
        return (
            "float32 GEMM in fit: fastnn's own AVX2 kernels where each product "
            "runs on one thread (the cython backend's choice, below)"
        )
    return "float32 GEMM in fit: BLAS (the cython backend's choice, below)"


def _gemm_work_bytes(layout, rows: int, dtype, one_thread: bool) -> int:
    """Bytes of the own GEMM's work space for a training call's products
    (batches of up to ``rows`` samples); 0 for BLAS (``gemm_policy``; always
    with ``NUMBA_DISABLE_JIT=1``: the call into C is compiled code). Decided
    once per call; each thread then allocates its own (:func:`_gemm_work`)."""
    if np.dtype(dtype) != np.float32 or not _ng.available() or numba.config.DISABLE_JIT:
        return 0
    if _gemm_policy == "blas" or (
        _gemm_policy == "auto" and not (one_thread and _own_gemm_beats_blas())
    ):
        return 0
    largest = max(int(rows), int(layout[:, 0].max()), int(layout[:, 1].max()))
    return _ng.work_bytes(largest)


def _gemm_work(layout, rows: int, dtype, one_thread: bool) -> np.ndarray:
    """The work space of :func:`_gemm_work_bytes`, or an empty one for BLAS."""
    return _work_space(_gemm_work_bytes(layout, rows, dtype, one_thread))


def _work_space(n_bytes: int) -> np.ndarray:
    return np.empty(n_bytes, np.uint8) if n_bytes else _NO_WORK


# --------------------------------------------------------------------------- #
# The backend contract
# --------------------------------------------------------------------------- #
def dense_forward(X, W, b, activation, A_out):
    """Same contract as ``fastnn.reference.dense_forward``."""
    _, code = _checks.check_dense_forward(X, W, b, activation, A_out)
    return _k.dense_forward(X, W, b, code, A_out)


def dense_backward(dA, X, W, A, activation, dW_out, db_out, dX_out=None):
    """Same contract as ``fastnn.reference.dense_backward``."""
    dtype, code = _checks.check_dense_backward(
        dA, X, W, A, activation, dW_out, db_out, dX_out
    )
    want_dX = dX_out is not None
    _k.dense_backward(
        dA, X, W, A, code, dW_out, db_out, dX_out if want_dX else _NO_DX[dtype], want_dX
    )


def softmax_cross_entropy(Z, labels, dZ_out):
    """Same contract as ``fastnn.reference.softmax_cross_entropy``."""
    labels = _checks.check_softmax_cross_entropy(Z, labels, dZ_out)
    if Z.shape[0] == 0:
        return float("nan")  # the mean over no samples, as the reference
    return float(_k.softmax_cross_entropy(Z, labels, dZ_out))


def mean_squared_error(A, Y, dA_out):
    """Same contract as ``fastnn.reference.mean_squared_error``."""
    _checks.check_mean_squared_error(A, Y, dA_out)
    if A.size == 0:
        return float("nan")
    return float(_k.mean_squared_error(A, Y, dA_out))


def update(plan, state, learning_rate):
    """Same contract as ``fastnn.reference.update``."""
    scalars = _checks.check_update(plan, state, learning_rate)
    sq = _k.update(
        state.params,
        state.grads,
        state.slots,
        int(plan.optimizer),
        plan.hyper,
        scalars,
        plan.decay_spans,
    )
    state.step += 1
    return float(sq) if plan.coupled_decay else 0.0


#: Rows of a batch per training thread, at least (as the cython backend).
MIN_ROWS_PER_THREAD = 32
#: Upper bound on training threads.
MAX_TRAIN_THREADS = 8
#: Tests set this to force a thread count (None: chosen as below).
TRAIN_THREADS: int | None = None
#: The thread count of the latest ``train_steps`` call (see last_train_threads).
_last_train_threads = 0


def last_train_threads() -> int:
    """How many threads the latest ``train_steps`` call split its steps over
    (0 before the first call)."""
    return _last_train_threads


def _train_threads(rows: int, decay_is_weights: bool, layout, loss) -> int:
    """How many threads a ``train_steps`` call with batches of up to ``rows``
    samples splits its steps over: as many as BLAS may use, at most one per
    ``MIN_ROWS_PER_THREAD`` rows; one where the decay is not exactly on the
    weights (the general update), a hidden layer has a softmax (it needs
    whole rows; the threads own columns) or numba's JIT is off (the
    barrier's atomics are compiled code)."""
    hidden_softmax = bool((layout[:-1, 4] == Activation.SOFTMAX).any())
    if not decay_is_weights or hidden_softmax or numba.config.DISABLE_JIT:
        return 1
    return team_size(rows, TRAIN_THREADS, MIN_ROWS_PER_THREAD, MAX_TRAIN_THREADS)


def train_threads_for(batch_size: int) -> int:
    """Threads ``fit`` splits each step over at this batch size (a dense
    network without clipping, as ``fastnn bench`` records it)."""
    layout = np.array([[1, 1, 0, 1, int(Activation.RELU)]])
    return _train_threads(batch_size, True, layout, None)


def train_steps(plan, data, state, order, begin, end, learning_rates, losses_out):
    """Same contract as ``fastnn.reference.train_steps``, fused in compiled code."""
    a = _checks.check_train_steps(
        plan, data, state, order, begin, end, learning_rates, losses_out
    )
    if a is None:
        return 0
    layout = plan.layout
    dtype = state.dtype
    step_flops = 6 * plan.batch_size * int((layout[:, 0] * layout[:, 1]).sum())
    small = step_flops < SMALL_STEP_FLOPS
    # each layer updated right after its backward pass: needs the whole
    # gradient for clipping, and the decay on the weights only
    per_layer = bool(plan.hyper[_c.CLIPNORM] == 0 and plan.decay_is_weights)
    rows = min(plan.batch_size, data.n)
    n_threads = _train_threads(rows, plan.decay_is_weights, layout, plan.loss)
    global _last_train_threads, _last_split_by_columns
    _last_train_threads = n_threads
    _last_split_by_columns = False
    common = (
        data.X,
        data.labels,
        data.Y,
        a.order,
        plan.batch_size,
        int(begin),
        int(end),
        state.params,
        state.grads,
        state.slots,
        state.step,
        layout,
        plan.loss,
        int(plan.optimizer),
        plan.hyper,
        a.scalars,
    )
    if n_threads == 1:
        fpenv = flush_subnormals()  # this thread, for the loop only
        try:
            with BLAS_AT_ONE_THREAD if small else nullcontext():
                done = _k.train_steps(
                    *common,
                    plan.decay_spans,
                    plan.drop_thresholds,
                    plan.drop_scales.astype(dtype),
                    np.uint64(plan.seed),
                    a.out,
                    per_layer,
                    # the input layer's zero-feature skip: its gathers run on
                    # one thread, and pay where the products do too (S: 0.90x
                    # the epoch, paired; L64 with BLAS on two threads: 1.02x)
                    small,
                    _gemm_work(layout, plan.batch_size, dtype, one_thread=small),
                )
        finally:
            restore_fpenv(fpenv)
    else:
        done = _train_split(plan, a, common, n_threads, rows, dtype)
    done = int(done)
    state.step += done
    if a.out is not losses_out:
        losses_out[:done] = a.out[:done]
    return done


#: Tests set this to force how the split loop splits the input layer (None:
#: ``_blas_threads.input_by_columns``'s rule).
SPLIT_INPUT_BY_COLUMNS: bool | None = None
_last_split_by_columns = False


def last_split_by_columns() -> bool:
    """Whether the latest ``train_steps`` call split its input layer by its
    output columns (``_k.train_steps_split``'s ``col0``)."""
    return _last_split_by_columns


def _part(n: int, t: int, T: int) -> int:
    """Where thread ``t``'s share of ``n`` starts (``_k._part``)."""
    return (int(n) * t) // T


def _train_split(plan, a, common, n_threads, rows, dtype):
    """``train_steps`` split over ``n_threads`` threads (``_k.train_steps_split``
    says how): the buffers they share, sized for batches of up to ``rows``
    samples as the loop expects, then the team."""
    layout = plan.layout
    outs = int(layout[:, 1].sum())
    dropped_inputs = int(layout[:, 0][plan.drop_thresholds > 0].sum())
    sync = np.zeros(3, np.int64)  # the barrier (_numba_team)
    shared = (
        sync,
        np.empty(n_threads * rows * outs, dtype),  # the products' shares
        np.empty(rows * outs, dtype),  # each layer's dZ, whole
        np.empty(rows * dropped_inputs, np.uint8),  # dropout masks, whole
        np.zeros((n_threads, 3), np.float64),  # loss, L2, gradient parts
    )
    drop_scales = plan.drop_scales.astype(dtype)
    col0 = input_by_columns(layout, plan.drop_thresholds, SPLIT_INPUT_BY_COLUMNS)
    private = (common[7], common[8], common[9], layout)  # params, grads, slots
    work_bytes = _gemm_work_bytes(layout, rows, dtype, one_thread=True)
    global _last_split_by_columns
    _last_split_by_columns = col0

    def call(tid):
        # With col0, this thread's columns of the input layer's W, dW and
        # slots in private contiguous blocks for the call (see the kernel).
        w = _part(layout[0, 1], tid + 1, n_threads) - _part(
            layout[0, 1], tid, n_threads
        )
        shape = (int(layout[0, 0]), w) if col0 else (0, 0)
        Wp, Gp = np.empty(shape, dtype), np.empty(shape, dtype)
        Sp = np.empty((private[2].shape[0], *shape), dtype)
        if col0:
            _k.private_columns(*private, tid, n_threads, Wp, Gp, Sp, False)
        fpenv = flush_subnormals()  # this thread, for the loop only
        try:
            return _k.train_steps_split(
                *common,
                plan.drop_thresholds,
                drop_scales,
                np.uint64(plan.seed),
                a.out,
                True,  # the zero-feature skip: products on one thread each
                col0,
                tid,
                n_threads,
                *shared,
                Wp,
                Gp,
                Sp,
                _work_space(work_bytes),  # this thread's own
            )
        finally:
            restore_fpenv(fpenv)
            if col0:
                _k.private_columns(*private, tid, n_threads, Wp, Gp, Sp, True)

    return run_team(call, n_threads, lambda: _team.abort(sync))
