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
from fastnn.activations import Activation
from fastnn.losses import Loss

__all__ = [
    "dense_forward",
    "dense_backward",
    "softmax_cross_entropy",
    "mean_squared_error",
    "sgd_update",
    "train_steps",
]

NAME = "numba"

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_N_ACTIVATIONS = len(Activation)
_INT64 = np.dtype(np.int64)
# Placeholder for an unrequested dX (never written; size 0).
_NO_DX = {dt: np.empty((0, 0), dt) for dt in _FLOAT_DTYPES}


# --------------------------------------------------------------------------- #
# Checks
# --------------------------------------------------------------------------- #
def _float_array(name, a, dtype=None, ndim=None):
    """Check that ``a`` is a C-contiguous float32/float64 array; return its dtype."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array; received {type(a).__name__}")
    if dtype is None:
        if a.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{name}: expected float32 or float64; received {a.dtype}")
    elif a.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {dtype} (all float arrays of one call share "
            f"one dtype); received {a.dtype}"
        )
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array; received shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(
            f"{name}: expected a C-contiguous array; received strides {a.strides}"
        )
    return a.dtype


def _writable(name, a):
    if not a.flags.writeable:
        raise ValueError(f"{name}: expected a writable array; received a read-only one")


def _shape(name, a, shape):
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}; received {a.shape}")


def _activation(activation):
    code = int(activation)
    if not 0 <= code < _N_ACTIVATIONS:
        raise ValueError(
            f"activation: expected a code in 0..{_N_ACTIVATIONS - 1}; "
            f"received {activation!r}"
        )
    return code


def _int64_array(name, a, ndim):
    a = np.asarray(a)
    if a.size == 0:
        return np.zeros((0,) * (ndim - 1) + (0 if ndim == 1 else 2,), np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array; received {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array; received shape {a.shape}")
    return np.ascontiguousarray(a, dtype=_INT64)


def _check_labels(labels, n, k):
    labels = _int64_array("labels", labels, 1)
    _shape("labels", labels, (n,))
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(
            f"labels: expected class indices in [0, {k}); received "
            f"values in [{labels.min()}, {labels.max()}]"
        )
    return labels


def _check_spans(decay_spans, size):
    spans = _int64_array("decay_spans", decay_spans, 2)
    if spans.shape[1] != 2:
        raise ValueError(f"decay_spans: expected shape (k, 2); received {spans.shape}")
    if spans.size and (
        spans.min() < 0 or spans.max() > size or np.any(spans[:, 0] > spans[:, 1])
    ):
        raise ValueError(
            f"decay_spans: expected [start, stop) ranges inside "
            f"params (size {size}); received {spans.tolist()}"
        )
    return spans


def _check_flat(params, grads, velocity):
    dtype = _float_array("params", params, ndim=1)
    for name, a in (("grads", grads), ("velocity", velocity)):
        _float_array(name, a, dtype, ndim=1)
        _shape(name, a, params.shape)
    for name, a in (("params", params), ("grads", grads), ("velocity", velocity)):
        _writable(name, a)
    return dtype


def _check_layout(layout, size, n_in0):
    layout = _int64_array("layout", layout, 2)
    if layout.shape[0] == 0 or layout.shape[1] != 5:
        raise ValueError(
            f"layout: expected shape (n_layers, 5); received {layout.shape}"
        )
    previous = n_in0
    for l, (n_in, n_out, w_off, b_off, act) in enumerate(layout.tolist()):
        ok = (
            n_in == previous
            and n_out >= 1
            and 0 <= w_off
            and w_off + n_in * n_out <= size
            and (b_off == -1 or 0 <= b_off <= size - n_out)
            and 0 <= act < _N_ACTIVATIONS
        )
        if not ok:
            raise ValueError(
                f"layout: row {l} = {[n_in, n_out, w_off, b_off, act]} is "
                f"inconsistent (expected N_IN = {previous}, N_OUT >= 1, W and b "
                f"inside params of size {size}, B_OFF = -1 or >= 0, ACT in "
                f"0..{_N_ACTIVATIONS - 1})"
            )
        previous = n_out
    return layout


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


def _decay_is_exactly_the_weights(layout, spans, size):
    """Whether the layers tile ``params`` and ``decay_spans`` are exactly their
    weight matrices (what every ``Sequential`` passes): then ``train_steps`` may
    update layer by layer with the same arithmetic as ``sgd_update``."""
    weights = sorted((int(w), int(w + i * o)) for i, o, w, _, _ in layout.tolist())
    biases = [(int(b), int(b + o)) for _, o, _, b, _ in layout.tolist() if b >= 0]
    if sorted(map(tuple, spans.tolist())) != weights:
        return False
    position = 0
    for start, stop in sorted(weights + biases):
        if start != position:
            return False
        position = stop
    return position == size


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
    dtype = _check_flat(params, grads, velocity)
    _float_array("X", X, dtype, ndim=2)
    n, n_in = X.shape
    batch_size, step_begin, step_end = int(batch_size), int(step_begin), int(step_end)
    steps = step_end - step_begin
    if batch_size < 1 or step_begin < 0 or steps < 0:
        raise ValueError(
            f"expected batch_size >= 1 and 0 <= step_begin <= step_end;"
            f" received {batch_size}, {step_begin}, {step_end}"
        )
    if steps == 0:
        return 0
    if step_end > -(-n // batch_size):
        raise ValueError(
            f"step_end: expected at most {-(-n // batch_size)} steps "
            f"for {n} samples in batches of {batch_size}; received "
            f"{step_end}"
        )
    layout = _check_layout(layout, params.shape[0], n_in)
    k_out = int(layout[-1, 1])
    spans = _check_spans(decay_spans, params.shape[0])
    loss = int(loss)
    if loss == Loss.CROSS_ENTROPY:
        labels = _check_labels(labels, n, k_out)
        Y = np.empty((0, k_out), dtype)
    elif loss == Loss.MSE:
        _float_array("Y", Y, dtype, ndim=2)
        _shape("Y", Y, (n, k_out))
        labels = np.empty(0, np.int64)
    else:
        raise ValueError(f"loss: expected a Loss code; received {loss!r}")
    order = _int64_array("order", order, 1)
    used = order[step_begin * batch_size : min(n, step_end * batch_size)]
    if used.shape[0] != min(n, step_end * batch_size) - step_begin * batch_size:
        raise ValueError(
            f"order: expected at least {min(n, step_end * batch_size)} "
            f"indices; received {order.shape[0]}"
        )
    if used.min() < 0 or used.max() >= n:
        raise ValueError(
            f"order: expected sample indices in [0, {n}); received "
            f"values in [{used.min()}, {used.max()}]"
        )
    learning_rates = np.ascontiguousarray(learning_rates, dtype=np.float64)
    if learning_rates.ndim != 1 or learning_rates.shape[0] < steps:
        raise ValueError(
            f"learning_rates: expected at least {steps} rates; received "
            f"shape {learning_rates.shape}"
        )
    if not isinstance(losses_out, np.ndarray) or losses_out.shape[0] < steps:
        raise ValueError(f"losses_out: expected an array of at least {steps} entries")
    direct = (
        losses_out.dtype == np.float64
        and losses_out.ndim == 1
        and losses_out.flags.c_contiguous
        and losses_out.flags.writeable
    )
    out = losses_out if direct else np.empty(steps, np.float64)
    done = int(
        _k.train_steps(
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
            dtype.type(momentum),
            bool(nesterov),
            float(weight_decay),
            spans,
            out,
            _decay_is_exactly_the_weights(layout, spans, params.shape[0]),
        )
    )
    if not direct:
        losses_out[:done] = out[:done]
    return done
