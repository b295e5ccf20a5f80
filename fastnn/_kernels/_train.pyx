# The fused multi-step training loop.
#
# Same contract as fastnn.reference.train_steps (and the composed
# fastnn._compose.train_steps): steps step_begin .. step_end - 1 of one epoch,
# step s on the samples order[s*batch_size : min(n, (s+1)*batch_size)].
# The whole loop runs in C without the GIL; per step:
#   gather the batch rows (and labels / targets) -> forward, layer by layer
#   (GEMM + bias/activation epilogue; with cross-entropy the output layer is
#   linear and the softmax is fused into the loss) -> loss and dA of the
#   output -> stop before the update if the loss is not finite -> backward,
#   last layer first, dZ overwriting dA in place, dW straight into ``grads``.
# The SGD update is fused into the backward pass when it can be: once layer l's
# dW, db and dX are computed nothing reads W_l or b_l again in this step, so
# they are updated right away, while dW is still warm in cache. This needs the
# layers' weight and bias ranges to tile ``params`` exactly and the decay spans
# to be sorted and disjoint (the wrapper checks; otherwise one update over the
# whole buffer follows the backward pass, as the reference does). Every entry
# gets the same arithmetic either way; only the float64 sum of squares that
# goes into the reported loss is added up in a different order.
# Buffers (activations, their gradients, the gathered batch) are allocated
# once per call. Overwritten: params, velocity, grads (scratch), losses_out.
# Out-of-range sample indices or labels raise IndexError at the step that
# meets them (earlier steps stay applied), as NumPy's indexing does in the
# reference.

import numpy as np

from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from fastnn._kernels._common cimport ACT_LINEAR
from fastnn._kernels._dense cimport backward, forward
from fastnn._kernels._loss cimport mean_squared_error_core, softmax_cross_entropy_core
from fastnn._kernels._sgd cimport sgd_full, sgd_mode, sgd_range

KERNEL_API_VERSION = 2

# Columns of the layout array (as fastnn._compose).
cdef enum:
    N_IN = 0
    N_OUT = 1
    W_OFF = 2
    B_OFF = 3
    ACT = 4

# Gather prefetch distance, in rows, and cache-line size, in bytes.
cdef enum:
    PREFETCH_ROWS = 4
    LINE_BYTES = 64

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define fastnn_prefetch(p) __builtin_prefetch((p), 0, 0)
    #else
    #define fastnn_prefetch(p) ((void)(p))
    #endif
    """
    void prefetch "fastnn_prefetch"(const void* p) noexcept nogil

# Loss codes (as fastnn.losses.Loss).
cdef enum:
    LOSS_CROSS_ENTROPY = 0
    LOSS_MSE = 1


def train_steps(
    const floating[::1] X,             # IN  (n, n_in), flat
    Py_ssize_t n,
    const int64_t[::1] labels,         # IN  (n,) for cross-entropy, else unused
    const floating[::1] Y,             # IN  (n, k), flat, for mse, else unused
    const int64_t[::1] order,          # IN  sample indices, -n <= i < n
    Py_ssize_t batch_size,
    Py_ssize_t step_begin,
    Py_ssize_t step_end,
    floating[::1] params,              # IN/OUT (P,)
    floating[::1] grads,               # OUT scratch (P,)
    floating[::1] velocity,            # IN/OUT (P,)
    const int64_t[:, ::1] layout,      # IN  (L, 5), checked by the wrapper
    int loss,
    const double[::1] learning_rates,  # IN  (step_end - step_begin,)
    double momentum,
    bint nesterov,
    double weight_decay,
    const int64_t[:, ::1] spans,       # IN  (k, 2) within [0, P)
    bint spans_disjoint,               # sorted and disjoint
    bint update_per_layer,             # layer ranges tile params exactly
    double[::1] losses_out,            # OUT (step_end - step_begin,)
):
    """Same contract as ``fastnn.reference.train_steps``; returns the number of
    steps applied."""
    cdef Py_ssize_t n_layers = layout.shape[0]
    cdef Py_ssize_t n_in0 = layout[0, N_IN]
    cdef Py_ssize_t k = layout[n_layers - 1, N_OUT]
    cdef bint ce = loss == LOSS_CROSS_ENTROPY
    cdef Py_ssize_t total_out = 0, l
    for l in range(n_layers):
        total_out += layout[l, N_OUT]

    # Per-layer offsets into the activation buffers, and the activations used
    # in training (cross-entropy: linear output, softmax fused into the loss).
    cdef int64_t[::1] act_off = np.zeros(n_layers + 1, dtype=np.int64)
    cdef int[::1] acts = np.empty(n_layers, dtype=np.intc)
    for l in range(n_layers):
        act_off[l + 1] = act_off[l] + batch_size * layout[l, N_OUT]
        acts[l] = <int>layout[l, ACT]
    if ce:
        acts[n_layers - 1] = ACT_LINEAR

    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] Xb = np.empty(batch_size * n_in0, dtype=dtype)
    cdef floating[::1] Yb = np.empty(0 if ce else batch_size * k, dtype=dtype)
    cdef int64_t[::1] lb = np.empty(batch_size if ce else 0, dtype=np.int64)
    cdef floating[::1] A_all = np.empty(act_off[n_layers], dtype=dtype)
    cdef floating[::1] dA_all = np.empty(act_off[n_layers], dtype=dtype)
    cdef floating[::1] empty = Xb[:0]

    cdef int mode = sgd_mode(momentum, nesterov)
    cdef bint decay = weight_decay != 0
    cdef floating m_f = <floating>momentum
    cdef floating wd_f = <floating>weight_decay
    cdef floating lr_f
    cdef Py_ssize_t n_order = order.shape[0]
    cdef Py_ssize_t n_steps = step_end - step_begin
    cdef Py_ssize_t i, s, r, c, first, last, m, idx, n_in, n_out, w_off, b_off
    cdef Py_ssize_t bad_row = -1, bad_index = -1, applied = n_steps
    cdef int64_t bad_value = 0
    cdef double value, sq
    cdef floating[::1] Xl, Al, dAl, dXl, W, b, dW, db
    cdef size_t row_bytes = n_in0 * sizeof(floating)
    cdef size_t y_bytes = k * sizeof(floating)
    cdef Py_ssize_t line_items = LINE_BYTES // sizeof(floating)

    with nogil:
        for i in range(n_steps):
            s = step_begin + i
            first = s * batch_size
            last = first + batch_size
            if last > n:
                last = n
            if last > n_order:
                last = n_order
            m = last - first
            if m <= 0:  # empty batch: its mean loss is NaN, not finite
                applied = i
                break

            # Gather the batch (np.take semantics: negative indices wrap).
            # Rows are scattered over the whole dataset, so each one starts
            # with cache misses the hardware prefetcher cannot foresee:
            # prefetch the row PREFETCH_ROWS ahead while copying this one.
            for r in range(m):
                if r + PREFETCH_ROWS < m:
                    idx = order[first + r + PREFETCH_ROWS]
                    if 0 <= idx < n:
                        c = 0
                        while c < n_in0:
                            prefetch(&X[idx * n_in0 + c])
                            c = c + line_items
                idx = order[first + r]
                if idx < 0:
                    idx = idx + n
                if idx < 0 or idx >= n:
                    bad_index = first + r
                    break
                memcpy(&Xb[r * n_in0], &X[idx * n_in0], row_bytes)
                if ce:
                    lb[r] = labels[idx]
                else:
                    memcpy(&Yb[r * k], &Y[idx * k], y_bytes)
            if bad_index >= 0:
                applied = i
                break

            # Forward.
            Xl = Xb
            for l in range(n_layers):
                n_in = layout[l, N_IN]
                n_out = layout[l, N_OUT]
                w_off = layout[l, W_OFF]
                b_off = layout[l, B_OFF]
                W = params[w_off : w_off + n_in * n_out]
                # (if/else, not a conditional expression: Cython 3.x miscounts
                # memoryview references in ``x[i:j] if c else y``)
                if b_off >= 0:
                    b = params[b_off : b_off + n_out]
                else:
                    b = empty
                Al = A_all[act_off[l] : act_off[l] + m * n_out]
                forward(Xl, W, b, Al, m, n_in, n_out, acts[l])
                Xl = Al

            # Loss and its gradient w.r.t. the output.
            dAl = dA_all[act_off[n_layers - 1] : act_off[n_layers - 1] + m * k]
            if ce:
                value = softmax_cross_entropy_core(Xl, lb[:m], dAl, m, k, &bad_row)
                if bad_row >= 0:
                    bad_value = lb[bad_row]
                    applied = i
                    break
            else:
                value = mean_squared_error_core(Xl, Yb[: m * k], dAl, m * k)
            if not isfinite(value):
                applied = i  # not applied: the caller sees the divergence
                break

            # Backward (dZ overwrites dA), each layer updated as soon as done.
            lr_f = <floating>learning_rates[i]
            sq = 0
            for l in range(n_layers - 1, -1, -1):
                n_in = layout[l, N_IN]
                n_out = layout[l, N_OUT]
                w_off = layout[l, W_OFF]
                b_off = layout[l, B_OFF]
                W = params[w_off : w_off + n_in * n_out]
                dW = grads[w_off : w_off + n_in * n_out]
                if b_off >= 0:
                    db = grads[b_off : b_off + n_out]
                else:
                    db = empty
                Al = A_all[act_off[l] : act_off[l] + m * n_out]
                dAl = dA_all[act_off[l] : act_off[l] + m * n_out]
                if l > 0:
                    Xl = A_all[act_off[l - 1] : act_off[l - 1] + m * n_in]
                    dXl = dA_all[act_off[l - 1] : act_off[l - 1] + m * n_in]
                else:
                    Xl = Xb[: m * n_in]
                    dXl = empty
                backward(dAl, dAl, Xl, W, Al, m, n_in, n_out, acts[l], dW, db, dXl)
                if update_per_layer:
                    sq += sgd_range(params, grads, velocity, w_off,
                                    w_off + n_in * n_out, lr_f, m_f, mode, wd_f,
                                    decay, spans, False)
                    if b_off >= 0:
                        sq += sgd_range(params, grads, velocity, b_off,
                                        b_off + n_out, lr_f, m_f, mode, wd_f,
                                        decay, spans, False)
            if not update_per_layer:
                sq = sgd_full(params, grads, velocity, lr_f, m_f, mode, wd_f, decay,
                              spans, spans_disjoint, False)
            losses_out[i] = value + 0.5 * weight_decay * sq

    if bad_index >= 0:
        raise IndexError(
            f"order[{bad_index}] = {order[bad_index]} is out of bounds for "
            f"{n} samples (step {step_begin + applied})"
        )
    if bad_row >= 0:
        raise IndexError(
            f"label {bad_value} is out of bounds for {k} classes "
            f"(step {step_begin + applied})"
        )
    return applied
