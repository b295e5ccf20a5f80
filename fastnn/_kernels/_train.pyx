# The fused multi-step training loop.
#
# Same contract as fastnn.reference.train_steps (and the composed
# fastnn._compose.train_steps): steps step_begin .. step_end - 1 of one epoch,
# step s on the samples order[s*batch_size : min(n, (s+1)*batch_size)].
# The whole loop runs in C without the GIL, split over ``n_threads`` threads:
# the wrapper (cython_backend.py) starts T Python threads that each call
# train_steps with their own ``tid`` and the same buffers, and they meet at
# spinning barriers (_barrier.h). Thread t owns a contiguous share of each
# dimension it splits: ``part(n, t, T) .. part(n, t + 1, T)``. Per step:
#   1. gather its rows of the batch (and labels / targets)         | barrier
#   2. forward, layer by layer: its rows of W (a contiguous range of
#      ``params``) times its columns of X, a share of the sum over the
#      inputs (GEMM; thread 0 into A, the others into ``partials``) | barrier
#      then its columns of A: the shares added in thread order, the
#      bias and the activation                                     | barrier
#      (with cross-entropy the output layer is linear and the softmax
#      is fused into the loss). Forward and backward both touch only
#      the thread's own rows of W, so W stays in its core's cache and
#      never moves between cores.
#   3. its rows of the loss and of dA at the output (dZ = dA f'(A)
#      there, in place, if the output layer has an activation)     | barrier
#      Every thread adds up the loss parts in thread order and decides
#      alike whether to stop (an invalid index or label, a non-finite loss:
#      stop before any update).
#   4. backward, last layer first, on its rows i0..i1 of W_l:
#      dX[:, i0:i1] = dZ W[i0:i1]^T with the old W, then dZ = dX f'(A) and
#      db of the layer below on those columns (fused); dW[i0:i1] = X[:,
#      i0:i1]^T dZ; then update W[i0:i1] and its columns of b_l while dW is
#      warm in cache: nothing else reads them in this step             | barrier each
# dX and dW entries are the same dot products as in one whole-batch GEMM (the
# split never cuts their summed dimension), db is summed row after row and the
# update is elementwise; A is summed in T shares. So results agree across T
# to rounding (float32 or float64 of the dot products, tested), not bit for
# bit; the float64 loss and sum of squares are added up in thread order. With
# T = 1 the barriers are no-ops and there is one share: the plain loop.
# The split needs the layers' weight and bias ranges to tile ``params``
# exactly, the decay spans sorted and disjoint, and no softmax activation in
# training (it needs whole rows); otherwise T is 1 (the wrapper sees to it)
# and, without the tiling, one update over the whole buffer follows the
# backward pass, as the reference does.
# Buffers (activations, their gradients, the gathered batch) are allocated by
# the wrapper, once per call, and shared by the threads. Overwritten: params,
# velocity, grads (scratch), losses_out and the shared buffers.
# Out-of-range sample indices or labels raise IndexError at the step that
# meets them (earlier steps stay applied), as NumPy's indexing does in the
# reference.

import numpy as np

from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from fastnn._kernels._common cimport (
    ACT_LINEAR,
    activation_grad_span,
    all_finite,
    bias_activation_span,
    gemm,
    RAN_DGEMM,
    RAN_OWN,
    RAN_SGEMM,
    gemm_columns,
    gemm_counted,
    nonzero_columns,
    own_sgemm_ready,
    own_sgemm_set,
    own_sgemm_work,
)
from fastnn._kernels._loss cimport mean_squared_error_rows, softmax_cross_entropy_rows
from fastnn._kernels._sgd cimport sgd_full, sgd_mode, sgd_range

KERNEL_API_VERSION = 5


def _own_sgemm(on=None):
    """Whether this module's float32 GEMMs run fastnn's kernels (_sgemm.h)
    rather than BLAS; ``on`` given: use them (if the CPU can) or not. Each
    extension has its own switch; ``fastnn._kernels.cython_backend.own_sgemm``
    sets them all. Not thread-safe with kernels running."""
    if on is not None:
        own_sgemm_set(bool(on))
    return bool(own_sgemm_ready())


_own_sgemm()  # choose now, before any thread runs a kernel


def _gemm_counts(reset=False):
    """``(own, sgemm, dgemm)``: the products this module ran on fastnn's own
    kernels and on BLAS's sgemm and dgemm since the last reset; ``reset``:
    zero them after reading. For tests that must observe the path taken."""
    return tuple(int(gemm_counted(path, bool(reset)))
                 for path in (RAN_OWN, RAN_SGEMM, RAN_DGEMM))

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



cdef extern from "_barrier.h" nogil:
    int barrier "fastnn_barrier"(int64_t* sync, int64_t n_threads) noexcept
    void barrier_abort "fastnn_barrier_abort"(int64_t* sync) noexcept


def abort(int64_t[::1] sync):
    """Make every thread of a call leave at its next barrier (a thread failed)."""
    barrier_abort(&sync[0])


cdef inline Py_ssize_t part(Py_ssize_t n, Py_ssize_t t, Py_ssize_t T) noexcept nogil:
    """Start of thread t's share of n items (t = T gives n)."""
    return (n * t) // T


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
    Py_ssize_t tid,                    # this thread, 0 <= tid < n_threads
    Py_ssize_t n_threads,              # 1 unless update_per_layer
    bint own_gemm,                     # float32 products on _sgemm.h (one thread each)
    # rows = min(batch_size, n): the largest batch
    floating[::1] Xb,                  # SHARED scratch (rows * n_in,)
    int64_t[::1] lb,                   # SHARED scratch (rows,) for CE
    floating[::1] Yb,                  # SHARED scratch (rows * k,) for mse
    floating[::1] A_all,               # SHARED scratch (rows * sum n_out,)
    floating[::1] dA_all,              # SHARED scratch, as A_all
    floating[::1] partials,            # SHARED scratch ((T - 1) rows max n_out,)
    int64_t[::1] sync,                 # SHARED (3,) zeros: the barrier
    double[::1] parts,                 # SHARED (2 T,) loss and sum-of-squares parts
    int64_t[::1] errors,               # SHARED (2 T,) -1: bad order pos, bad row
):
    """Same contract as ``fastnn.reference.train_steps``; returns the number of
    steps applied. Thread ``tid`` of ``n_threads`` (see the top of the file);
    only thread 0 raises for an invalid index or label."""
    cdef Py_ssize_t n_layers = layout.shape[0]
    cdef Py_ssize_t n_in0 = layout[0, N_IN]
    cdef Py_ssize_t k = layout[n_layers - 1, N_OUT]
    cdef bint ce = loss == LOSS_CROSS_ENTROPY
    cdef Py_ssize_t T = n_threads
    cdef Py_ssize_t l, p_size = 0
    cdef Py_ssize_t rows = batch_size if batch_size < n else n

    # Per-layer offsets into the activation buffers, and the activations used
    # in training (cross-entropy: linear output, softmax fused into the loss).
    cdef int64_t[::1] act_off = np.zeros(n_layers + 1, dtype=np.int64)
    cdef int[::1] acts = np.empty(n_layers, dtype=np.intc)
    for l in range(n_layers):
        act_off[l + 1] = act_off[l] + rows * layout[l, N_OUT]
        acts[l] = <int>layout[l, ACT]
        if rows * layout[l, N_OUT] > p_size:
            p_size = rows * layout[l, N_OUT]
    if ce:
        acts[n_layers - 1] = ACT_LINEAR
    # The wrapper allocates the shared buffers; a short one would be written
    # out of bounds, so check (cheap, once per call).
    if not 0 <= tid < T:
        raise ValueError(f"tid: expected 0 <= tid < {T}; received {tid}")
    for name, size, need in (
        ("Xb", Xb.shape[0], rows * n_in0),
        ("lb", lb.shape[0], rows if ce else 0),
        ("Yb", Yb.shape[0], 0 if ce else rows * k),
        ("A_all", A_all.shape[0], act_off[n_layers]),
        ("dA_all", dA_all.shape[0], act_off[n_layers]),
        ("partials", partials.shape[0], (T - 1) * p_size),
        ("sync", sync.shape[0], 3),
        ("parts", parts.shape[0], 2 * T),
        ("errors", errors.shape[0], 2 * T),
    ):
        if size < need:
            raise ValueError(
                f"{name}: expected at least {need} entries; received {size}"
            )
    cdef floating[::1] empty = Xb[:0]
    # This thread's work space for its float32 products on _sgemm.h,
    # allocated once per call rather than once per product (the shapes bound
    # this thread's shares).
    cdef size_t work_bytes = 32  # &work[0] needs one entry
    cdef int r_, i_, o_
    for l in range(n_layers):
        r_, i_, o_ = <int>rows, <int>layout[l, N_IN], <int>layout[l, N_OUT]
        work_bytes = max(work_bytes, own_sgemm_work(False, False, r_, o_, i_),
                         own_sgemm_work(False, True, r_, i_, o_),
                         own_sgemm_work(True, False, i_, o_, r_))
    cdef unsigned char[::1] work = np.empty(work_bytes, dtype=np.uint8)
    # The input layer's products skip the features that are zero throughout a
    # batch (MNIST's borders: about 29% of its 784 pixels at batch 256, 37%
    # at 64). The terms they drop are exact zeros while the weights they meet
    # (forward) and dZ (backward) are finite, which is checked: otherwise the
    # whole product runs and 0 * inf gives NaN as in the reference. Only the
    # blocking of the sum changes. On fastnn's own float32 kernels only (float64
    # would scan for nothing: its products run on BLAS).
    cdef bint skip_zero = sizeof(floating) == 4 and own_gemm and own_sgemm_ready()
    # This thread's input features: cols[:n_cols] not zero throughout the
    # batch, cols[n_cols:i1 - i0] skipped (n_cols -1: none skipped).
    cdef int[::1] cols = np.empty(2 * max(n_in0, 1), dtype=np.intc)
    cdef Py_ssize_t n_cols = -1

    cdef int mode = sgd_mode(momentum, nesterov)
    cdef bint decay = weight_decay != 0
    cdef floating m_f = <floating>momentum
    cdef floating wd_f = <floating>weight_decay
    cdef floating lr_f
    cdef Py_ssize_t n_order = order.shape[0]
    cdef Py_ssize_t n_steps = step_end - step_begin
    cdef Py_ssize_t i, s, r, c, t, first, last, m, r0, r1, i0, i1, c0, c1
    cdef Py_ssize_t idx, n_in, n_out, w_off, b_off
    cdef Py_ssize_t bad_row = -1, bad_pos = -1
    cdef bint aborted = False  # a thread failed: leave at the next barrier
    cdef Py_ssize_t applied = n_steps
    cdef double value, sq
    cdef floating[::1] Xl, Al, dAl, dXl, W, b, dW, db, G, db_below, Pl
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
            r0 = part(m, tid, T)
            r1 = part(m, tid + 1, T)
            errors[2 * tid] = -1
            errors[2 * tid + 1] = -1
            parts[2 * tid] = 0

            # 1. Gather (np.take semantics: negative indices wrap). Rows are
            # scattered over the whole dataset, so each one starts with cache
            # misses the hardware prefetcher cannot foresee: prefetch the row
            # PREFETCH_ROWS ahead while copying this one.
            for r in range(r0, r1):
                if r + PREFETCH_ROWS < r1:
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
                    errors[2 * tid] = first + r
                    break
                memcpy(&Xb[r * n_in0], &X[idx * n_in0], row_bytes)
                if ce:
                    lb[r] = labels[idx]
                else:
                    memcpy(&Yb[r * k], &Y[idx * k], y_bytes)
            if barrier(&sync[0], T) < 0:
                applied = i
                break
            for t in range(T):
                if errors[2 * t] >= 0:
                    bad_pos = errors[2 * t]
                    break
            if bad_pos >= 0:
                applied = i
                break

            # 2. Forward, layer by layer: its rows of W, then its columns of A.
            Xl = Xb[: m * n_in0]
            for l in range(n_layers):
                n_in = layout[l, N_IN]
                n_out = layout[l, N_OUT]
                w_off = layout[l, W_OFF]
                b_off = layout[l, B_OFF]
                c0 = part(n_out, tid, T)
                c1 = part(n_out, tid + 1, T)
                W = params[w_off : w_off + n_in * n_out]
                # (if/else, not a conditional expression: Cython 3.x
                # miscounts memoryview references in ``x[i:j] if c else y``)
                if b_off >= 0:
                    b = params[b_off : b_off + n_out]
                else:
                    b = empty
                Al = A_all[act_off[l] : act_off[l] + m * n_out]
                i0 = part(n_in, tid, T)
                i1 = part(n_in, tid + 1, T)
                # Its share of the sum over the inputs: its rows of W times
                # its columns of X (thread 0 into A, thread t into
                # partials[t - 1]).
                if tid == 0:
                    Pl = Al
                else:
                    Pl = partials[(tid - 1) * p_size : (tid - 1) * p_size + m * n_out]
                if l == 0:
                    n_cols = -1
                    if skip_zero and i1 > i0:
                        n_cols = nonzero_columns(Xl, m, n_in, i0, i1, cols)
                        for t in range(n_cols, i1 - i0):  # skipped rows of W finite?
                            c = cols[t]
                            if not all_finite(W, c * n_out, (c + 1) * n_out):
                                n_cols = -1
                                break
                        if n_cols <= 0 or not gemm_columns(
                                False, <int>m, <int>n_out, <int>n_cols, &Xl[0],
                                <int>n_in, &W[0], <int>n_out, &Pl[0], <int>n_out,
                                &work[0], &cols[0]):
                            n_cols = -1  # run the whole product
                if l == 0 and n_cols >= 0:
                    pass  # done: its share over the features not zero throughout
                elif i1 > i0:
                    gemm(False, False, <int>m, <int>n_out, <int>(i1 - i0), 1,
                         &Xl[i0], <int>n_in, &W[i0 * n_out], <int>n_out, 0,
                         &Pl[0], <int>n_out, &work[0], own_gemm)
                else:  # no inputs here: an empty sum
                    for c in range(m * n_out):
                        Pl[c] = 0
                if T > 1:
                    if barrier(&sync[0], T) < 0:
                        aborted = True
                        break
                    # Add up the shares of this thread's columns, in thread order.
                    for t in range(1, T):
                        Pl = partials[(t - 1) * p_size : (t - 1) * p_size + m * n_out]
                        for r in range(m):
                            for c in range(r * n_out + c0, r * n_out + c1):
                                Al[c] = Al[c] + Pl[c]
                bias_activation_span(Al, b, m, n_out, c0, c1, acts[l])
                if barrier(&sync[0], T) < 0:
                    aborted = True
                    break
                Xl = Al
            if aborted:
                applied = i
                break

            # 3. This thread's rows of the loss and of dA at the output.
            Al = A_all[act_off[n_layers - 1] + r0 * k : act_off[n_layers - 1] + r1 * k]
            dAl = dA_all[act_off[n_layers - 1] + r0 * k :
                         act_off[n_layers - 1] + r1 * k]
            if r1 > r0:
                if ce:
                    parts[2 * tid] = softmax_cross_entropy_rows(
                        Al, lb[r0:r1], dAl, r1 - r0, k, m, &bad_row)
                    if bad_row >= 0:
                        errors[2 * tid + 1] = r0 + bad_row
                else:
                    parts[2 * tid] = mean_squared_error_rows(
                        Al, Yb[r0 * k : r1 * k], dAl, (r1 - r0) * k, m * k)
                if acts[n_layers - 1] != ACT_LINEAR and errors[2 * tid + 1] < 0:
                    activation_grad_span(dAl, Al, dAl, empty, r1 - r0, k, 0, k,
                                         acts[n_layers - 1])
            if barrier(&sync[0], T) < 0:
                applied = i
                break
            value = 0
            bad_row = -1
            for t in range(T):
                if errors[2 * t + 1] >= 0 and bad_row < 0:
                    bad_row = errors[2 * t + 1]
                value += parts[2 * t]
            if bad_row >= 0:
                applied = i
                break
            value = value / (m if ce else m * k)
            if not isfinite(value):
                applied = i  # not applied: the caller sees the divergence
                break

            # 4. Backward and update: this thread's rows i0..i1 of each W_l.
            lr_f = <floating>learning_rates[i]
            sq = 0
            for l in range(n_layers - 1, -1, -1):
                n_in = layout[l, N_IN]
                n_out = layout[l, N_OUT]
                w_off = layout[l, W_OFF]
                b_off = layout[l, B_OFF]
                i0 = part(n_in, tid, T)
                i1 = part(n_in, tid + 1, T)
                c0 = part(n_out, tid, T)
                c1 = part(n_out, tid + 1, T)
                W = params[w_off : w_off + n_in * n_out]
                dW = grads[w_off : w_off + n_in * n_out]
                G = dA_all[act_off[l] : act_off[l] + m * n_out]  # dZ, complete
                if b_off >= 0:
                    db = grads[b_off : b_off + n_out]
                else:
                    db = empty
                if l == n_layers - 1 and b_off >= 0:
                    # db = column sums of dZ (LINEAR: dZ is G, not written)
                    activation_grad_span(G, G, G, db, m, n_out, c0, c1, ACT_LINEAR)
                if l > 0:
                    Xl = A_all[act_off[l - 1] : act_off[l - 1] + m * n_in]
                    dXl = dA_all[act_off[l - 1] : act_off[l - 1] + m * n_in]
                    if i1 > i0:
                        # dX[:, i0:i1] = dZ @ W[i0:i1]^T (W not yet updated)
                        if n_out > 0:
                            gemm(False, True, <int>m, <int>(i1 - i0), <int>n_out, 1,
                                 &G[0], <int>n_out, &W[i0 * n_out], <int>n_out, 0,
                                 &dXl[i0], <int>n_in, &work[0], own_gemm)
                        else:
                            for r in range(m):
                                for c in range(i0, i1):
                                    dXl[r * n_in + c] = 0
                        # dZ and db of the layer below, on the same columns.
                        if layout[l - 1, B_OFF] >= 0:
                            db_below = grads[layout[l - 1, B_OFF] :
                                             layout[l - 1, B_OFF] + n_in]
                        else:
                            db_below = empty
                        activation_grad_span(dXl, Xl, dXl, db_below, m, n_in, i0, i1,
                                             acts[l - 1])
                else:
                    Xl = Xb[: m * n_in]
                if l == 0 and n_cols >= 0 and n_out > 0 and all_finite(G, 0, m * n_out):
                    # the rows of dW[i0:i1] for features zero throughout the
                    # batch are zero; the others X[:, cols]^T @ dZ
                    for t in range(n_cols, i1 - i0):
                        c = cols[t]
                        for r in range(c * n_out, (c + 1) * n_out):
                            dW[r] = 0
                    gemm_columns(True, <int>n_cols, <int>n_out, <int>m, &Xl[0],
                                 <int>n_in, &G[0], <int>n_out, &dW[0], <int>n_out,
                                 &work[0], &cols[0])
                elif i1 > i0 and n_out > 0:
                    # dW[i0:i1] = X[:, i0:i1]^T @ dZ
                    gemm(True, False, <int>(i1 - i0), <int>n_out, <int>m, 1,
                         &Xl[i0], <int>n_in, &G[0], <int>n_out, 0,
                         &dW[i0 * n_out], <int>n_out, &work[0], own_gemm)
                if update_per_layer:
                    sq += sgd_range(params, grads, velocity, w_off + i0 * n_out,
                                    w_off + i1 * n_out, lr_f, m_f, mode, wd_f,
                                    decay, spans, False)
                    if b_off >= 0:
                        sq += sgd_range(params, grads, velocity, b_off + c0,
                                        b_off + c1, lr_f, m_f, mode, wd_f,
                                        decay, spans, False)
                if l == 0:
                    if not update_per_layer:  # T == 1 here
                        sq = sgd_full(params, grads, velocity, lr_f, m_f, mode,
                                      wd_f, decay, spans, spans_disjoint, False)
                    parts[2 * tid + 1] = sq
                if barrier(&sync[0], T) < 0:
                    aborted = True
                    break
            if aborted:
                applied = i  # the wrapper raises the failed thread's error
                break
            if tid == 0:
                sq = 0
                for t in range(T):
                    sq += parts[2 * t + 1]
                losses_out[i] = value + 0.5 * weight_decay * sq

    if tid != 0:
        return applied
    if bad_pos >= 0:
        raise IndexError(
            f"order[{bad_pos}] = {order[bad_pos]} is out of bounds for "
            f"{n} samples (step {step_begin + applied})"
        )
    if bad_row >= 0:
        raise IndexError(
            f"label {lb[bad_row]} is out of bounds for {k} classes "
            f"(step {step_begin + applied})"
        )
    return applied
