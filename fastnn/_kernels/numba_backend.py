"""The ``"numba"`` backend: thin checking wrappers around ``_numba_kernels``.

Same functions and signatures as :mod:`fastnn.reference` (the specification).
Each wrapper checks, cheaply, the invariants whose violation would make a kernel
write out of bounds (one float dtype, C-contiguity, consistent shapes, label
and index ranges, layout offsets inside ``params``), casts scalars to the array
dtype and calls the kernel. Public fastnn entry points validate user input
before they get here; these checks raise ``ValueError``/``TypeError`` with what
was expected and what was received.

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

import numpy as np

from fastnn._kernels import _numba_kernels as _k
from fastnn._kernels._checks import FLOAT_DTYPES as _FLOAT_DTYPES
from fastnn._kernels._checks import activation as _activation
from fastnn._kernels._checks import check_flat as _check_flat
from fastnn._kernels._checks import check_labels as _check_labels
from fastnn._kernels._checks import check_spans as _check_spans
from fastnn._kernels._checks import check_train_steps as _check_train_steps
from fastnn._kernels._checks import decay_is_exactly_the_weights
from fastnn._kernels._checks import float_array as _float_array
from fastnn._kernels._checks import shape as _shape
from fastnn._kernels._checks import writable as _writable

__all__ = [
    "dense_forward",
    "dense_backward",
    "softmax_cross_entropy",
    "mean_squared_error",
    "sgd_update",
    "train_steps",
]

NAME = "numba"

# Placeholder for an unrequested dX (never written; size 0).
_NO_DX = {dt: np.empty((0, 0), dt) for dt in _FLOAT_DTYPES}


# --------------------------------------------------------------------------- #
# The backend contract
# --------------------------------------------------------------------------- #
def dense_forward(X, W, b, activation, A_out):
    """Same contract as ``fastnn.reference.dense_forward``."""
    dtype = _float_array("X", X, ndim=2)
    _float_array("W", W, dtype, ndim=2)
    _float_array("b", b, dtype, ndim=1)
    _float_array("A_out", A_out, dtype, ndim=2)
    n, n_in = X.shape
    if W.shape[0] != n_in:
        raise ValueError(
            f"W: expected {n_in} rows (X has {n_in} columns); received shape {W.shape}"
        )
    n_out = W.shape[1]
    if b.shape[0] not in (0, n_out):
        raise ValueError(f"b: expected shape ({n_out},) or (0,); received {b.shape}")
    _shape("A_out", A_out, (n, n_out))
    _writable("A_out", A_out)
    return _k.dense_forward(X, W, b, _activation(activation), A_out)


def dense_backward(dA, X, W, A, activation, dW_out, db_out, dX_out=None):
    """Same contract as ``fastnn.reference.dense_backward``."""
    dtype = _float_array("dA", dA, ndim=2)
    for name, a in (("X", X), ("W", W), ("A", A), ("dW_out", dW_out)):
        _float_array(name, a, dtype, ndim=2)
    _float_array("db_out", db_out, dtype, ndim=1)
    n, n_out = dA.shape
    n_in = X.shape[1]
    _shape("X", X, (n, n_in))
    _shape("W", W, (n_in, n_out))
    _shape("A", A, (n, n_out))
    _shape("dW_out", dW_out, (n_in, n_out))
    if db_out.shape[0] not in (0, n_out):
        raise ValueError(
            f"db_out: expected shape ({n_out},) or (0,); received {db_out.shape}"
        )
    _writable("dW_out", dW_out)
    _writable("db_out", db_out)
    want_dX = dX_out is not None
    if want_dX:
        _float_array("dX_out", dX_out, dtype, ndim=2)
        _shape("dX_out", dX_out, (n, n_in))
        _writable("dX_out", dX_out)
    else:
        dX_out = _NO_DX[dtype]
    _k.dense_backward(
        dA, X, W, A, _activation(activation), dW_out, db_out, dX_out, want_dX
    )


def softmax_cross_entropy(Z, labels, dZ_out):
    """Same contract as ``fastnn.reference.softmax_cross_entropy``."""
    dtype = _float_array("Z", Z, ndim=2)
    _float_array("dZ_out", dZ_out, dtype, ndim=2)
    _shape("dZ_out", dZ_out, Z.shape)
    _writable("dZ_out", dZ_out)
    n, k = Z.shape
    if k == 0:
        raise ValueError(
            f"Z: expected at least one class column; received shape {Z.shape}"
        )
    labels = _check_labels(labels, n, k)
    if n == 0:
        return float("nan")  # the mean over no samples, as the reference
    return float(_k.softmax_cross_entropy(Z, labels, dZ_out))


def mean_squared_error(A, Y, dA_out):
    """Same contract as ``fastnn.reference.mean_squared_error``."""
    dtype = _float_array("A", A, ndim=2)
    _float_array("Y", Y, dtype, ndim=2)
    _float_array("dA_out", dA_out, dtype, ndim=2)
    _shape("Y", Y, A.shape)
    _shape("dA_out", dA_out, A.shape)
    _writable("dA_out", dA_out)
    if A.size == 0:
        return float("nan")
    return float(_k.mean_squared_error(A, Y, dA_out))


def sgd_update(
    params,
    grads,
    velocity,
    learning_rate,
    momentum,
    nesterov,
    weight_decay,
    decay_spans,
):
    """Same contract as ``fastnn.reference.sgd_update``."""
    dtype = _check_flat(params, grads, velocity)
    spans = _check_spans(decay_spans, params.shape[0])
    dt = dtype.type
    return float(
        _k.sgd_update(
            params,
            grads,
            velocity,
            dt(learning_rate),
            dt(momentum),
            bool(nesterov),
            dt(weight_decay),
            spans,
        )
    )


def train_steps(
    X,
    labels,
    Y,
    order,
    batch_size,
    step_begin,
    step_end,
    params,
    grads,
    velocity,
    layout,
    loss,
    learning_rates,
    momentum,
    nesterov,
    weight_decay,
    decay_spans,
    losses_out,
):
    """Same contract as ``fastnn.reference.train_steps``, fused in compiled code."""
    a = _check_train_steps(
        X,
        labels,
        Y,
        order,
        batch_size,
        step_begin,
        step_end,
        params,
        grads,
        velocity,
        layout,
        loss,
        learning_rates,
        decay_spans,
        losses_out,
    )
    if a is None:
        return 0
    done = int(
        _k.train_steps(
            X,
            a.labels,
            a.Y,
            a.order,
            a.batch_size,
            a.step_begin,
            a.step_end,
            params,
            grads,
            velocity,
            a.layout,
            a.loss,
            a.learning_rates,
            a.dtype.type(momentum),
            bool(nesterov),
            float(weight_decay),
            a.spans,
            a.out,
            decay_is_exactly_the_weights(a.layout, a.spans, params.shape[0]),
        )
    )
    if a.out is not losses_out:
        losses_out[:done] = a.out[:done]
    return done
