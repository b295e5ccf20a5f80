"""The checks both compiled backends run before calling a kernel.

Kernels do not bounds-check: each wrapper checks, cheaply, the invariants whose
violation would make a kernel read or write out of bounds (one float dtype,
C-contiguity, consistent shapes, label and index ranges, layout offsets and
decay spans inside ``params``). The errors say what was expected and what was
received, and are the same for every compiled backend.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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


def activation(activation):
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


def check_spans(decay_spans, size):
    spans = int64_array("decay_spans", decay_spans, 2)
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


def check_flat(params, grads, velocity):
    dtype = float_array("params", params, ndim=1)
    for name, a in (("grads", grads), ("velocity", velocity)):
        float_array(name, a, dtype, ndim=1)
        shape(name, a, params.shape)
    for name, a in (("params", params), ("grads", grads), ("velocity", velocity)):
        writable(name, a)
    return dtype


def check_layout(layout, size, n_in0):
    layout = int64_array("layout", layout, 2)
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
            and 0 <= act < N_ACTIVATIONS
        )
        if not ok:
            raise ValueError(
                f"layout: row {l} = {[n_in, n_out, w_off, b_off, act]} is "
                f"inconsistent (expected N_IN = {previous}, N_OUT >= 1, W and b "
                f"inside params of size {size}, B_OFF = -1 or >= 0, ACT in "
                f"0..{N_ACTIVATIONS - 1})"
            )
        previous = n_out
    return layout


def layers_tile_params(layout, size):
    """Whether the layers' W and b ranges cover ``params`` exactly once."""
    ranges = [(int(w), int(w + i * o)) for i, o, w, _, _ in layout.tolist()]
    ranges += [(int(b), int(b + o)) for _, o, _, b, _ in layout.tolist() if b >= 0]
    ranges.sort()
    position = 0
    for start, stop in ranges:
        if start != position:
            return False
        position = stop
    return position == size


def sorted_disjoint(spans):
    """``(spans sorted by start, whether they are disjoint)``."""
    if spans.shape[0] <= 1:
        return spans, True
    ordered = np.ascontiguousarray(spans[np.argsort(spans[:, 0], kind="stable")])
    if np.all(ordered[1:, 0] >= ordered[:-1, 1]):
        return ordered, True
    return spans, False


def decay_is_exactly_the_weights(layout, spans, size):
    """Whether the layers tile ``params`` and ``decay_spans`` are exactly their
    weight matrices (what every ``Sequential`` passes): then a fused
    ``train_steps`` may update layer by layer with ``sgd_update``'s arithmetic."""
    weights = sorted((int(w), int(w + i * o)) for i, o, w, _, _ in layout.tolist())
    if sorted(map(tuple, spans.tolist())) != weights:
        return False
    return layers_tile_params(layout, size)


class TrainStepsArgs(NamedTuple):
    """``train_steps``' arguments, checked and normalised for a compiled kernel."""

    dtype: np.dtype
    n: int
    steps: int
    batch_size: int
    step_begin: int
    step_end: int
    layout: np.ndarray
    spans: np.ndarray
    loss: int
    labels: np.ndarray  # int64 (n,) with cross-entropy, else empty
    Y: np.ndarray  # (n, k) with mse, else (0, k)
    order: np.ndarray
    learning_rates: np.ndarray
    out: np.ndarray  # losses_out itself, or float64 scratch to copy back


def check_train_steps(
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
) -> TrainStepsArgs | None:
    """Check ``train_steps``' arguments; ``None`` when there are no steps to run."""
    from fastnn.losses import Loss

    dtype = check_flat(params, grads, velocity)
    float_array("X", X, dtype, ndim=2)
    n, n_in = X.shape
    batch_size, step_begin, step_end = int(batch_size), int(step_begin), int(step_end)
    steps = step_end - step_begin
    if batch_size < 1 or step_begin < 0 or steps < 0:
        raise ValueError(
            f"expected batch_size >= 1 and 0 <= step_begin <= step_end; received "
            f"{batch_size}, {step_begin}, {step_end}"
        )
    if steps == 0:
        return None
    n_batches = -(-n // batch_size)
    if step_end > n_batches:
        raise ValueError(
            f"step_end: expected at most {n_batches} steps for {n} samples in "
            f"batches of {batch_size}; received {step_end}"
        )
    layout = check_layout(layout, params.shape[0], n_in)
    k_out = int(layout[-1, 1])
    spans = check_spans(decay_spans, params.shape[0])
    loss = int(loss)
    if loss == Loss.CROSS_ENTROPY:
        labels = check_labels(labels, n, k_out)
        Y = np.empty((0, k_out), dtype)
    elif loss == Loss.MSE:
        float_array("Y", Y, dtype, ndim=2)
        shape("Y", Y, (n, k_out))
        labels = np.empty(0, np.int64)
    else:
        raise ValueError(f"loss: expected a Loss code; received {loss!r}")
    order = int64_array("order", order, 1)
    stop = min(n, step_end * batch_size)
    used = order[step_begin * batch_size : stop]
    if used.shape[0] != stop - step_begin * batch_size:
        raise ValueError(
            f"order: expected at least {stop} indices; received {order.shape[0]}"
        )
    if used.min() < 0 or used.max() >= n:
        raise ValueError(
            f"order: expected sample indices in [0, {n}); received values in "
            f"[{used.min()}, {used.max()}]"
        )
    learning_rates = np.ascontiguousarray(learning_rates, dtype=np.float64)
    if learning_rates.ndim != 1 or learning_rates.shape[0] < steps:
        raise ValueError(
            f"learning_rates: expected at least {steps} rates; received shape "
            f"{learning_rates.shape}"
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
    return TrainStepsArgs(
        dtype,
        n,
        steps,
        batch_size,
        step_begin,
        step_end,
        layout,
        spans,
        loss,
        labels,
        Y,
        order,
        learning_rates,
        out,
    )
