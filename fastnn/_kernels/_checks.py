"""The checks both compiled backends run before calling a kernel: one
function per contract function (``check_dense_forward`` for
``dense_forward`` ...), shared by both.

Kernels do not bounds-check: each check raises, cheaply, on what would make a
kernel read or write out of bounds (one float dtype, C-contiguity, consistent
shapes, label and index ranges). ``update`` and ``train_steps`` take the
objects of :mod:`fastnn.contract`, which check themselves when built (layout
offsets, decay spans, labels: once per ``fit``), so their checks here only tie
plan, data and state together and check the per-call arguments. The errors
say what was expected and what was received, and are the same for every
compiled backend.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnn import contract
from fastnn.activations import Activation

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
N_ACTIVATIONS = len(Activation)
INT64 = np.dtype(np.int64)


def float_array(name, a, dtype=None, ndim=None):
    """Check that ``a`` is a C-contiguous float32/float64 array; return its dtype."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array; received {type(a).__name__}")
    if dtype is None:
        if a.dtype not in FLOAT_DTYPES:
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


def writable(name, a):
    if not a.flags.writeable:
        raise ValueError(f"{name}: expected a writable array; received a read-only one")


def shape(name, a, shape):
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}; received {a.shape}")


def activation_code(activation):
    code = int(activation)
    if not 0 <= code < N_ACTIVATIONS:
        raise ValueError(
            f"activation: expected a code in 0..{N_ACTIVATIONS - 1}; "
            f"received {activation!r}"
        )
    return code


def int64_array(name, a, ndim):
    a = np.asarray(a)
    if a.size == 0:
        return np.zeros((0,) * (ndim - 1) + (0 if ndim == 1 else 2,), np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array; received {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array; received shape {a.shape}")
    return np.ascontiguousarray(a, dtype=INT64)


def check_labels(labels, n, k):
    labels = int64_array("labels", labels, 1)
    shape("labels", labels, (n,))
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(
            f"labels: expected class indices in [0, {k}); received "
            f"values in [{labels.min()}, {labels.max()}]"
        )
    return labels


def check_dense_forward(X, W, b, activation, A_out):
    """``dense_forward``'s arguments; returns ``(dtype, activation code)``."""
    dtype = float_array("X", X, ndim=2)
    float_array("W", W, dtype, ndim=2)
    float_array("b", b, dtype, ndim=1)
    float_array("A_out", A_out, dtype, ndim=2)
    n, n_in = X.shape
    if W.shape[0] != n_in:
        raise ValueError(
            f"W: expected {n_in} rows (X has {n_in} columns); received shape {W.shape}"
        )
    n_out = W.shape[1]
    if b.shape[0] not in (0, n_out):
        raise ValueError(f"b: expected shape ({n_out},) or (0,); received {b.shape}")
    shape("A_out", A_out, (n, n_out))
    writable("A_out", A_out)
    return dtype, activation_code(activation)


def check_dense_backward(dA, X, W, A, activation, dW_out, db_out, dX_out):
    """``dense_backward``'s arguments; returns ``(dtype, activation code)``."""
    dtype = float_array("dA", dA, ndim=2)
    for name, a in (("X", X), ("W", W), ("A", A), ("dW_out", dW_out)):
        float_array(name, a, dtype, ndim=2)
    float_array("db_out", db_out, dtype, ndim=1)
    n, n_out = dA.shape
    n_in = X.shape[1]
    shape("X", X, (n, n_in))
    shape("W", W, (n_in, n_out))
    shape("A", A, (n, n_out))
    shape("dW_out", dW_out, (n_in, n_out))
    if db_out.shape[0] not in (0, n_out):
        raise ValueError(
            f"db_out: expected shape ({n_out},) or (0,); received {db_out.shape}"
        )
    writable("dW_out", dW_out)
    writable("db_out", db_out)
    if dX_out is not None:
        float_array("dX_out", dX_out, dtype, ndim=2)
        shape("dX_out", dX_out, (n, n_in))
        writable("dX_out", dX_out)
    return dtype, activation_code(activation)


def check_softmax_cross_entropy(Z, labels, dZ_out):
    """``softmax_cross_entropy``'s arguments; returns the int64 labels."""
    dtype = float_array("Z", Z, ndim=2)
    float_array("dZ_out", dZ_out, dtype, ndim=2)
    shape("dZ_out", dZ_out, Z.shape)
    writable("dZ_out", dZ_out)
    n, k = Z.shape
    if k == 0:
        raise ValueError(
            f"Z: expected at least one class column; received shape {Z.shape}"
        )
    return check_labels(labels, n, k)


def check_mean_squared_error(A, Y, dA_out):
    dtype = float_array("A", A, ndim=2)
    float_array("Y", Y, dtype, ndim=2)
    float_array("dA_out", dA_out, dtype, ndim=2)
    shape("Y", Y, A.shape)
    shape("dA_out", dA_out, A.shape)
    writable("dA_out", dA_out)


def _plan_and_state(plan, state):
    if not isinstance(plan, contract.TrainingPlan):
        raise TypeError(
            f"plan: expected a fastnn.contract.TrainingPlan; received "
            f"{type(plan).__name__}"
        )
    if not isinstance(state, contract.TrainingState):
        raise TypeError(
            f"state: expected a fastnn.contract.TrainingState; received "
            f"{type(state).__name__}"
        )
    expected = (plan.n_slots, plan.n_params)
    if state.params.shape != (plan.n_params,) or state.slots.shape != expected:
        raise ValueError(
            f"state: expected params ({plan.n_params},) and slots {expected} for "
            f"{plan.optimizer.name}; received {state.params.shape} and "
            f"{state.slots.shape}"
        )


def check_update(plan, state, learning_rate):
    """``update``'s arguments; returns the step's float64 scalars
    (:func:`fastnn.contract.step_scalars`)."""
    _plan_and_state(plan, state)
    return contract.step_scalars(plan, state.step, [float(learning_rate)])[0]


class TrainStepsArgs(NamedTuple):
    """``train_steps``' per-call arguments, checked and normalised."""

    steps: int
    order: np.ndarray
    scalars: np.ndarray  # (steps, 4) float64: contract.step_scalars
    out: np.ndarray  # losses_out itself, or float64 scratch to copy back


def check_train_steps(
    plan, data, state, order, begin, end, learning_rates, losses_out
) -> TrainStepsArgs | None:
    """``train_steps``' arguments; ``None`` when there are no steps to run."""
    _plan_and_state(plan, state)
    if not isinstance(data, contract.TrainingData):
        raise TypeError(
            f"data: expected a fastnn.contract.TrainingData; received "
            f"{type(data).__name__}"
        )
    X = data.X
    n, n_in = X.shape
    k = int(plan.layout[-1, 1])
    if X.dtype != state.dtype or n_in != plan.layout[0, 0]:
        raise ValueError(
            f"data: expected {state.dtype} inputs of width {plan.layout[0, 0]}; "
            f"received {X.dtype} of width {n_in}"
        )
    if data.loss != plan.loss or data.Y.shape[1] != k:
        raise ValueError(
            f"data: expected targets for loss {plan.loss} with {k} outputs; "
            f"received loss {data.loss} with {data.Y.shape[1]}"
        )
    begin, end = int(begin), int(end)
    steps = end - begin
    if begin < 0 or steps < 0:
        raise ValueError(
            f"expected 0 <= begin <= end; received begin={begin}, end={end}"
        )
    if steps == 0:
        return None
    batch_size = plan.batch_size
    n_batches = -(-n // batch_size)
    if end > n_batches:
        raise ValueError(
            f"end: expected at most {n_batches} steps for {n} samples in "
            f"batches of {batch_size}; received {end}"
        )
    order = int64_array("order", order, 1)
    stop = min(n, end * batch_size)
    used = order[begin * batch_size : stop]
    if used.shape[0] != stop - begin * batch_size:
        raise ValueError(
            f"order: expected at least {stop} indices; received {order.shape[0]}"
        )
    if used.min() < 0 or used.max() >= n:
        raise ValueError(
            f"order: expected sample indices in [0, {n}); received values in "
            f"[{used.min()}, {used.max()}]"
        )
    rates = np.asarray(learning_rates, dtype=np.float64)
    if rates.ndim != 1 or rates.shape[0] < steps:
        raise ValueError(
            f"learning_rates: expected at least {steps} rates; received shape "
            f"{rates.shape}"
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
    scalars = contract.step_scalars(plan, state.step, rates[:steps])
    return TrainStepsArgs(steps, order, scalars, out)


#: The training loops' float32 GEMM policies (``gemm_policy`` of the cython
#: and numba backends).
GEMM_POLICIES = ("auto", "own", "blas")


def check_gemm_policy(policy) -> None:
    """ValueError unless ``policy`` is one of :data:`GEMM_POLICIES`."""
    if policy not in GEMM_POLICIES:
        raise ValueError(
            f"policy: expected one of {', '.join(map(repr, GEMM_POLICIES))}; "
            f"received {policy!r}"
        )
