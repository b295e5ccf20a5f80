"""The ``"numba"`` backend: thin checking wrappers around ``_numba_kernels``.

Same functions and signatures as :mod:`fastnn.reference` (the specification).
Each wrapper runs its contract function's check from ``_checks`` (shared with
the cython backend: what would make a kernel write out of bounds), casts
scalars to the array dtype and calls the kernel. Public fastnn entry points
validate user input before they get here; the checks raise
``ValueError``/``TypeError`` with what was expected and what was received.

Threads. No kernel uses ``parallel=True``: the GEMMs (nearly all the work) run
on BLAS's own threads, and the fused elementwise passes are too small for a
parallel region to pay off. So numba's threading layer is never started and
this module leaves ``numba.config.THREADING_LAYER`` alone (it is process-wide).
Every kernel is ``nogil`` and keeps no global state, so several Python threads
may call any function at once; results do not depend on the thread count.
BLAS threads are controlled with threadpoolctl (``fastnn.set_num_threads``).

Compilation happens on the first call per dtype and is cached on disk
(``cache=True``); ``NUMBA_DISABLE_JIT=1`` runs the same kernels as Python.
"""

from __future__ import annotations

try:
    import numba  # noqa: F401
except ImportError as err:  # the registry adds the install hint
    raise ImportError(
        f"the numba backend needs the numba package, which failed to import ({err})"
    ) from err

from contextlib import nullcontext

import numpy as np

from fastnn import contract as _c
from fastnn._kernels import _checks
from fastnn._kernels import _numba_kernels as _k
from fastnn._kernels._blas_threads import BLAS_AT_ONE_THREAD
from fastnn._kernels._numba_fpenv import flush_subnormals, restore_fpenv

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


def train_steps(plan, data, state, order, begin, end, learning_rates, losses_out):
    """Same contract as ``fastnn.reference.train_steps``, fused in compiled code."""
    a = _checks.check_train_steps(
        plan, data, state, order, begin, end, learning_rates, losses_out
    )
    if a is None:
        return 0
    layout = plan.layout
    step_flops = 6 * plan.batch_size * int((layout[:, 0] * layout[:, 1]).sum())
    small = step_flops < SMALL_STEP_FLOPS
    blas = BLAS_AT_ONE_THREAD if small else nullcontext()
    fpenv = flush_subnormals()  # this thread, for the loop only
    try:
        with blas:
            done = _k.train_steps(
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
                plan.layout,
                plan.loss,
                int(plan.optimizer),
                plan.hyper,
                a.scalars,
                plan.decay_spans,
                plan.drop_thresholds,
                plan.drop_scales.astype(state.dtype),
                np.uint64(plan.seed),
                a.out,
                # each layer updated right after its backward pass: needs the
                # whole gradient for clipping, and the decay on the weights only
                plan.hyper[_c.CLIPNORM] == 0 and plan.decay_is_weights,
                # the input layer's zero-feature skip: its gathers run on one
                # thread, and pay where the products do too (S: 0.90x the
                # epoch, paired; L64 with BLAS on two threads: 1.02x)
                small,
            )
    finally:
        restore_fpenv(fpenv)
    done = int(done)
    state.step += done
    if a.out is not losses_out:
        losses_out[:done] = a.out[:done]
    return done
