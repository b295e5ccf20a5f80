# The fused multi-step training loop, in named phases.
#
# Same contract as fastnn.reference.train_steps (and the composed
# fastnn._compose.train_steps): steps step_begin .. step_end - 1 of one epoch,
# step s on the samples order[s*batch_size : min(n, (s+1)*batch_size)], the
# optimizer and dropout of the training plan (unpacked by the wrapper,
# cython_backend.py). The whole loop runs in C without the GIL, split over
# ``n_threads`` threads: the wrapper starts T Python threads that each call
# train_steps with their own ``tid`` and the same buffers, and they meet at
# spinning barriers (_barrier.h). Thread t owns a contiguous share of each
# dimension it splits: ``part(n, t, T) .. part(n, t + 1, T)``. Per step, the
# phases below (one cdef function each, shared by every thread count):
#   gather       its rows of the batch (and labels / targets)      | barrier
#   forward      layer by layer: its rows of W (a contiguous range of
#                ``params``) times its columns of X, a share of the sum over
#                the inputs (GEMM; thread 0 into A, the others into their
#                part of the layer's ``partials``)                  | barrier
#                then its columns of A: the shares added in thread order,
#                the bias, the activation and, where the next layer's input
#                is dropped, the mask and the dropped copy, which are the
#                next layer's input columns of this thread: no barrier
#                but after the output layer (the loss reads whole rows) | barrier
#                (with cross-entropy the output layer is linear and the
#                softmax is fused into the loss). Forward and backward both
#                touch only the thread's own rows of W, so W stays in its
#                core's cache and never moves between cores.
#   loss         its rows of the loss and of dA at the output (dZ = dA f'(A)
#                there, in place, if the output layer has an activation)
#                                                                   | barrier
#                Every thread adds up the loss parts in thread order and
#                decides alike whether to stop (an invalid index or label, a
#                non-finite loss: stop before any update).
#   backward     last layer first, on its rows i0..i1 of W_l: dX[:, i0:i1] =
#                dZ W[i0:i1]^T with the old W, the dropout mask on those
#                columns, then dZ = dX f'(A) and db of the layer below on
#                them (fused); dW[i0:i1] = X[:, i0:i1]^T dZ
#   update       then W[i0:i1] and its columns of b_l while dW is warm in
#                cache: nothing else reads them in this step      | barrier each
#                With clipping the update waits for the whole gradient: its
#                norm's parts are added in thread order     | barrier, update
# dX and dW entries are the same dot products as in one whole-batch GEMM (the
# split never cuts their summed dimension), db is summed row after row and the
# update is elementwise; A is summed in T shares. So results agree across T
# to rounding (float32 or float64 of the dot products, tested), not bit for
# bit; the float64 loss and sums of squares are added up in thread order.
# With T = 1 the barriers are no-ops and there is one share: the plain loop.
# ``input_by_columns`` (the wrapper's rule: an input layer no wider than its
# output, a layer above it, no input dropout): the input layer is split by
# its output columns instead. Each thread multiplies the whole gathered batch
# by its columns c0..c1 of W0, which are the rows of W1 it owns, so the input
# layer needs no sum of shares, and its dZ and dW columns never leave the
# thread: the barriers after the input layer's forward pass and after the
# backward pass of the layer above go. Its columns of W0, dW0 and their
# optimizer slots are private contiguous blocks for the call (copied in,
# and back at the end), so its products and update run on whole arrays.
# The split needs the layers' weight and bias ranges to tile ``params``
# exactly, the decay spans sorted and disjoint, and no softmax activation in
# training (it needs whole rows); otherwise T is 1 (the wrapper sees to it)
# and, without the tiling, one update over the whole buffer follows the
# backward pass, as the reference does.
# Buffers (activations, their gradients, the dropped inputs and masks, the
# gathered batch) are allocated by the wrapper, once per call, and shared by
# the threads. Overwritten: params, slots, grads (scratch), losses_out and the
# shared buffers.
# Out-of-range sample indices or labels raise IndexError at the step that
# meets them (earlier steps stay applied), as NumPy's indexing does in the
# reference.

import numpy as np

from cython cimport floating
from libc.math cimport isfinite, sqrt
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
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
    columns_scratch,
    gemm_columns,
    gemm_counted,
    nonzero_columns,
    own_sgemm_ready,
    own_sgemm_set,
    own_sgemm_work,
)
from fastnn._kernels._loss cimport mean_squared_error_rows, softmax_cross_entropy_rows
from fastnn._kernels._philox cimport dropout_keep
from fastnn._kernels._update cimport (
    Rule,
    make_rule,
    scale_range,
    sum_squares,
    update_full,
    update_range,
)

KERNEL_API_VERSION = 8


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

# The one optimizer whose weight decay is not L2 on the gradient (as
# fastnn.contract.OptimizerKind.ADAMW).
cdef enum:
    OPT_ADAMW = 2



cdef extern from "_fpenv.h" nogil:
    unsigned int flush_subnormals "fastnn_flush_subnormals"() noexcept
    void restore_fpenv "fastnn_restore_fpenv"(unsigned int old) noexcept


cdef extern from "_barrier.h" nogil:
    int barrier "fastnn_barrier"(int64_t* sync, int64_t n_threads) noexcept
    void barrier_abort "fastnn_barrier_abort"(int64_t* sync) noexcept


def abort(int64_t[::1] sync):
    """Make every thread of a call leave at its next barrier (a thread failed)."""
    barrier_abort(&sync[0])


cdef inline Py_ssize_t part(Py_ssize_t n, Py_ssize_t t, Py_ssize_t T) noexcept nogil:
    """Start of thread t's share of n items (t = T gives n)."""
    return (n * t) // T


# One dense layer of the loop: its shape, where its W and b live in
# ``params``, its activation in training, where its output lives in A_all and
# dA_all and, if its input is dropped, where that copy and its mask live in
# D_all and keep_all (d_off -1: not dropped).
cdef struct Layer:
    Py_ssize_t n_in, n_out, w_off, b_off, a_off, d_off, p_off
    int act
    uint32_t threshold
    double scale


# The calling thread's place in the team and what it shares with the others.
# ``rows``: the largest batch; with the input layer split by columns thread
# t's block of that layer's output (and of its dA and dropped copy) starts at
# ``rows * part(n_out, t, T)``, so the blocks of a short batch stay where no
# other thread's block of the step before was (no barrier ends a step then).
cdef struct Team:
    Py_ssize_t tid, T, rows
    int64_t* sync
    bint own_gemm
    unsigned char* work  # this thread's work space for _sgemm.h
    bint own_columns     # the input layer's skip on _sgemm.h (else gathered, BLAS)
    void* scratch        # floating*: this thread's gathered columns (BLAS skip)


cdef Py_ssize_t gather(
    const floating[::1] X,            # IN  (n, n_in0)
    Py_ssize_t n,
    Py_ssize_t n_in0,
    const int64_t[::1] labels,        # IN  (n,) for CE
    const floating[::1] Y,            # IN  (n, k) for mse
    Py_ssize_t k,
    bint ce,
    const int64_t[::1] order,
    Py_ssize_t first,                 # the batch is order[first:first + m]
    Py_ssize_t r0,
    Py_ssize_t r1,
    floating[::1] Xb,                 # OUT rows r0..r1
    int64_t[::1] lb,
    floating[::1] Yb,
) noexcept nogil:
    """Copy rows r0..r1 of the batch (np.take semantics: negative indices
    wrap); return -1, or the position in ``order`` of an invalid index.
    Rows are scattered over the whole dataset, so each one starts with cache
    misses the hardware prefetcher cannot foresee: prefetch the row
    PREFETCH_ROWS ahead while copying this one."""
    cdef Py_ssize_t r, c, idx
    cdef size_t row_bytes = n_in0 * sizeof(floating)
    cdef size_t y_bytes = k * sizeof(floating)
    cdef Py_ssize_t line_items = LINE_BYTES // sizeof(floating)
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
            return first + r
        memcpy(&Xb[r * n_in0], &X[idx * n_in0], row_bytes)
        if ce:
            lb[r] = labels[idx]
        else:
            memcpy(&Yb[r * k], &Y[idx * k], y_bytes)
    return -1


cdef bint forward_layer(
    const Layer* L,
    const Layer* next_layer,          # NULL for the last layer
    const floating[::1] Xl,           # IN  (m, n_in) the layer input
    floating[::1] params,
    floating[::1] A_all,
    floating[::1] D_all,
    unsigned char[::1] keep_all,
    floating[::1] partials,
    Py_ssize_t p_size,
    Py_ssize_t m,
    bint first_layer,
    bint skip_zero,
    int[::1] cols,
    Py_ssize_t* n_cols,
    uint64_t seed,
    int64_t step,
    Py_ssize_t layer,
    bint in_block,                    # Xl in blocks: thread t's columns (m, share)
    Team* team,
) noexcept nogil:
    """This thread's share of one layer's forward pass (see the top of the
    file); returns False when a thread failed (leave at once). ``in_block``:
    the input layer was split by columns, and its output (this layer's input)
    is held as T contiguous blocks, thread t's (m, share) at ``rows * i0``."""
    cdef Py_ssize_t tid = team.tid, T = team.T
    cdef Py_ssize_t n_in = L.n_in, n_out = L.n_out
    cdef Py_ssize_t c0 = part(n_out, tid, T), c1 = part(n_out, tid + 1, T)
    cdef Py_ssize_t i0 = part(n_in, tid, T), i1 = part(n_in, tid + 1, T)
    cdef Py_ssize_t t, r, c
    cdef floating[::1] W = params[L.w_off : L.w_off + n_in * n_out]
    cdef floating[::1] b, Pl, D
    cdef floating[::1] Al = A_all[L.a_off : L.a_off + m * n_out]
    cdef unsigned char* keep
    cdef floating scale, zero = 0
    # (if/else, not a conditional expression: Cython 3.x miscounts memoryview
    # references in ``x[i:j] if c else y``)
    if L.b_off >= 0:
        b = params[L.b_off : L.b_off + n_out]
    else:
        b = params[:0]
    # Its share of the sum over the inputs: its rows of W times its columns
    # of X (thread 0 into A, thread t into partials[t - 1]).
    if tid == 0:
        Pl = Al
    else:
        Pl = partials[L.p_off + (tid - 1) * team.rows * n_out :
                      L.p_off + (tid - 1) * team.rows * n_out + m * n_out]
    if first_layer:
        # The input layer's products skip the features that are zero
        # throughout a batch (MNIST's borders: about 29% of its 784 pixels at
        # batch 256, 37% at 64). The terms they drop are exact zeros while the
        # weights they meet (forward) and dZ (backward) are finite, which is
        # checked: otherwise the whole product runs and 0 * inf gives NaN as
        # in the reference. Only the blocking of the sum changes.
        n_cols[0] = -1
        if skip_zero and i1 > i0:
            n_cols[0] = nonzero_columns(Xl, m, n_in, i0, i1, cols)
            if not team.own_columns and 8 * n_cols[0] > 7 * (i1 - i0):
                n_cols[0] = -1  # gathering would cost more than it saves
            for t in range(n_cols[0], i1 - i0):  # skipped rows of W finite?
                if n_cols[0] < 0:
                    break
                c = cols[t]
                if not all_finite(W, c * n_out, (c + 1) * n_out):
                    n_cols[0] = -1
            if n_cols[0] <= 0 or not gemm_columns(
                    False, <int>m, <int>n_out, <int>n_cols[0], &Xl[0], <int>n_in,
                    &W[0], <int>n_out, &Pl[0], <int>n_out, team.work, &cols[0],
                    team.own_columns, <floating*>team.scratch):
                n_cols[0] = -1  # run the whole product
    if first_layer and n_cols[0] >= 0:
        pass  # done: its share over the features not zero throughout
    elif i1 > i0 and in_block:
        gemm(False, False, <int>m, <int>n_out, <int>(i1 - i0), 1, &Xl[team.rows * i0],
             <int>(i1 - i0), &W[i0 * n_out], <int>n_out, 0, &Pl[0], <int>n_out,
             team.work, team.own_gemm)
    elif i1 > i0:
        gemm(False, False, <int>m, <int>n_out, <int>(i1 - i0), 1, &Xl[i0],
             <int>n_in, &W[i0 * n_out], <int>n_out, 0, &Pl[0], <int>n_out,
             team.work, team.own_gemm)
    else:  # no inputs here: an empty sum
        for c in range(m * n_out):
            Pl[c] = 0
    if T > 1:
        if barrier(team.sync, T) < 0:
            return False
        # Add up the shares of this thread's columns, in thread order.
        for t in range(1, T):
            Pl = partials[L.p_off + (t - 1) * team.rows * n_out :
                          L.p_off + (t - 1) * team.rows * n_out + m * n_out]
            for r in range(m):
                for c in range(r * n_out + c0, r * n_out + c1):
                    Al[c] = Al[c] + Pl[c]
    bias_activation_span(Al, b, m, n_out, c0, c1, L.act)
    if next_layer != NULL and next_layer.d_off >= 0 and c1 > c0:
        # Inverted dropout of the next layer's input, on these columns.
        D = D_all[next_layer.d_off : next_layer.d_off + m * n_out]
        keep = &keep_all[next_layer.d_off]
        dropout_keep(seed, step, <uint32_t>(layer + 1), 0, m, n_out, c0, c1,
                     next_layer.threshold, keep)
        scale = <floating>next_layer.scale
        for r in range(m):
            for c in range(r * n_out + c0, r * n_out + c1):
                D[c] = Al[c] * scale if keep[c] else zero
    # The layer above reads only this thread's columns, and each layer's
    # shares have their own part of ``partials``: only the loss, which reads
    # whole rows of the output, waits for every thread's columns.
    if next_layer == NULL:
        return barrier(team.sync, T) >= 0
    return True


cdef void drop_gradient(
    floating[::1] dX,                 # IN/OUT (m, n) columns [c0, c1)
    const unsigned char* keep,        # IN (m, n)
    Py_ssize_t m,
    Py_ssize_t n,
    Py_ssize_t c0,
    Py_ssize_t c1,
    double scale,
) noexcept nogil:
    """The gradient through inverted dropout: kept entries times the scale,
    dropped ones 0, on columns [c0, c1)."""
    cdef Py_ssize_t r, c
    cdef floating s = <floating>scale, zero = 0
    for r in range(m):
        for c in range(r * n + c0, r * n + c1):
            dX[c] = dX[c] * s if keep[c] else zero


cdef void drop_gradient_block(
    floating[::1] dX,                 # IN/OUT (m, c1 - c0) this thread's block
    const unsigned char* keep,        # IN (m, n): the masks, whole rows
    Py_ssize_t m,
    Py_ssize_t n,
    Py_ssize_t c0,
    Py_ssize_t c1,
    double scale,
) noexcept nogil:
    """``drop_gradient`` on a block of columns [c0, c1)."""
    cdef Py_ssize_t r, c, w = c1 - c0
    cdef floating s = <floating>scale, zero = 0
    for r in range(m):
        for c in range(w):
            dX[r * w + c] = dX[r * w + c] * s if keep[r * n + c0 + c] else zero


cdef void backward_layer(
    const Layer* L,
    const Layer* below,               # the layer below, or NULL for layer 0
    floating[::1] params,
    floating[::1] grads,
    floating[::1] Xb,
    floating[::1] A_all,
    floating[::1] dA_all,
    floating[::1] D_all,
    unsigned char[::1] keep_all,
    Py_ssize_t m,
    Py_ssize_t n_cols,                # layer 0: the zero-feature skip's count
    int[::1] cols,
    bint last,
    bint below_block,                 # the layer below's output in blocks
    Team* team,
) noexcept nogil:
    """This thread's rows i0..i1 of W_l: dX (old W), dropout, dZ and db of the
    layer below on those columns, and dW (see the top of the file). With
    ``below_block`` the layer below's output, its dropped copy and its dA are
    in blocks (``forward_layer``'s ``in_block``): this thread's is (m, i1 - i0)
    at ``rows * i0``."""
    cdef Py_ssize_t tid = team.tid, T = team.T
    cdef Py_ssize_t n_in = L.n_in, n_out = L.n_out
    cdef Py_ssize_t i0 = part(n_in, tid, T), i1 = part(n_in, tid + 1, T)
    cdef Py_ssize_t c0 = part(n_out, tid, T), c1 = part(n_out, tid + 1, T)
    cdef Py_ssize_t r, c, t
    cdef floating[::1] W = params[L.w_off : L.w_off + n_in * n_out]
    cdef floating[::1] dW = grads[L.w_off : L.w_off + n_in * n_out]
    cdef floating[::1] G = dA_all[L.a_off : L.a_off + m * n_out]  # dZ, complete
    cdef floating[::1] empty = params[:0]
    cdef floating[::1] db, Xl, Al, dXl, db_below
    if L.b_off >= 0:
        db = grads[L.b_off : L.b_off + n_out]
    else:
        db = empty
    if last and L.b_off >= 0:
        # db = column sums of dZ (LINEAR: dZ is G, not written)
        activation_grad_span(G, G, G, db, m, n_out, c0, c1, ACT_LINEAR)
    if L.d_off >= 0:
        Xl = D_all[L.d_off : L.d_off + (team.rows if below_block else m) * n_in]
    elif below != NULL:
        Xl = A_all[below.a_off : below.a_off + (team.rows if below_block else m) * n_in]
    else:
        Xl = Xb[: m * n_in]
    if below_block and i1 > i0:
        # The same on this thread's blocks: (m, i1 - i0), contiguous.
        Al = A_all[below.a_off + team.rows * i0 : below.a_off + team.rows * i0
                   + m * (i1 - i0)]
        dXl = dA_all[below.a_off + team.rows * i0 : below.a_off + team.rows * i0
                     + m * (i1 - i0)]
        gemm(False, True, <int>m, <int>(i1 - i0), <int>n_out, 1, &G[0],
             <int>n_out, &W[i0 * n_out], <int>n_out, 0, &dXl[0], <int>(i1 - i0),
             team.work, team.own_gemm)
        if L.d_off >= 0:
            drop_gradient_block(dXl, &keep_all[L.d_off], m, n_in, i0, i1, L.scale)
        if below.b_off >= 0:
            db_below = grads[below.b_off + i0 : below.b_off + i1]
        else:
            db_below = empty
        activation_grad_span(dXl, Al, dXl, db_below, m, i1 - i0, 0, i1 - i0,
                             below.act)
        gemm(True, False, <int>(i1 - i0), <int>n_out, <int>m, 1, &Xl[team.rows * i0],
             <int>(i1 - i0), &G[0], <int>n_out, 0, &dW[i0 * n_out], <int>n_out,
             team.work, team.own_gemm)
        return
    if below != NULL and i1 > i0:
        Al = A_all[below.a_off : below.a_off + m * n_in]
        dXl = dA_all[below.a_off : below.a_off + m * n_in]
        # dX[:, i0:i1] = dZ @ W[i0:i1]^T (W not yet updated)
        gemm(False, True, <int>m, <int>(i1 - i0), <int>n_out, 1, &G[0],
             <int>n_out, &W[i0 * n_out], <int>n_out, 0, &dXl[i0], <int>n_in,
             team.work, team.own_gemm)
        if L.d_off >= 0:
            drop_gradient(dXl, &keep_all[L.d_off], m, n_in, i0, i1, L.scale)
        # dZ and db of the layer below, on the same columns.
        if below.b_off >= 0:
            db_below = grads[below.b_off : below.b_off + n_in]
        else:
            db_below = empty
        activation_grad_span(dXl, Al, dXl, db_below, m, n_in, i0, i1, below.act)
    if below == NULL and n_cols >= 0 and all_finite(G, 0, m * n_out):
        # the rows of dW[i0:i1] for features zero throughout the batch are
        # zero; the others X[:, cols]^T @ dZ
        for t in range(n_cols, i1 - i0):
            c = cols[t]
            for r in range(c * n_out, (c + 1) * n_out):
                dW[r] = 0
        # (on BLAS the forward product left X[:, cols] gathered in scratch)
        gemm_columns(True, <int>n_cols, <int>n_out, <int>m, &Xl[0], <int>n_in,
                     &G[0], <int>n_out, &dW[0], <int>n_out, team.work, &cols[0],
                     team.own_columns, <floating*>team.scratch, True)
    elif i1 > i0:
        # dW[i0:i1] = X[:, i0:i1]^T @ dZ
        gemm(True, False, <int>(i1 - i0), <int>n_out, <int>m, 1, &Xl[i0],
             <int>n_in, &G[0], <int>n_out, 0, &dW[i0 * n_out], <int>n_out,
             team.work, team.own_gemm)


cdef double layer_grad_squares(
    const Layer* L,
    floating[::1] grads,
    Team* team,
) noexcept nogil:
    """The sum of squares of this thread's share of a layer's gradient."""
    cdef Py_ssize_t i0 = part(L.n_in, team.tid, team.T)
    cdef Py_ssize_t i1 = part(L.n_in, team.tid + 1, team.T)
    return (sum_squares(grads, L.w_off + i0 * L.n_out, L.w_off + i1 * L.n_out)
            + bias_grad_squares(L, grads, team))


cdef double bias_grad_squares(
    const Layer* L,
    floating[::1] grads,
    Team* team,
) noexcept nogil:
    """The sum of squares of this thread's columns of a layer's db."""
    if L.b_off < 0:
        return 0.0
    return sum_squares(grads, L.b_off + part(L.n_out, team.tid, team.T),
                       L.b_off + part(L.n_out, team.tid + 1, team.T))


cdef double update_layer(
    const Layer* L,
    floating[::1] params,
    floating[::1] grads,
    floating[:, ::1] slots,
    const Rule* rule,
    const int64_t[:, ::1] spans,
    double clip,                      # < 1: scale this share of the gradient first
    Team* team,
) noexcept nogil:
    """Update this thread's rows of W and columns of b; returns their coupled
    L2 sum of squares."""
    cdef Py_ssize_t i0 = part(L.n_in, team.tid, team.T)
    cdef Py_ssize_t i1 = part(L.n_in, team.tid + 1, team.T)
    return update_share(params, grads, slots, L.w_off + i0 * L.n_out,
                        L.w_off + i1 * L.n_out, spans, L, params, grads, slots,
                        rule, spans, clip, team)


cdef double update_share(
    floating[::1] Wf,                 # this thread's W is Wf[lo:hi] (gradient
    floating[::1] Gf,                 # Gf, slots Sf, decay spans w_spans): in
    floating[:, ::1] Sf,              # params, or the input layer's private
    Py_ssize_t lo,                    # columns (input_by_columns)
    Py_ssize_t hi,
    const int64_t[:, ::1] w_spans,
    const Layer* L,
    floating[::1] params,
    floating[::1] grads,
    floating[:, ::1] slots,
    const Rule* rule,
    const int64_t[:, ::1] spans,
    double clip,                      # < 1: scale this share of the gradient first
    Team* team,
) noexcept nogil:
    """Update this thread's W and its columns of b (in ``params``); returns
    their coupled L2 sum of squares."""
    cdef Py_ssize_t c0 = part(L.n_out, team.tid, team.T)
    cdef Py_ssize_t c1 = part(L.n_out, team.tid + 1, team.T)
    cdef double sq
    if clip < 1:
        scale_range(Gf, lo, hi, clip)
    sq = update_range(Wf, Gf, Sf, lo, hi, rule, w_spans)
    if L.b_off >= 0:
        if clip < 1:
            scale_range(grads, L.b_off + c0, L.b_off + c1, clip)
        sq += update_range(params, grads, slots, L.b_off + c0, L.b_off + c1, rule,
                           spans)
    return sq


cdef void forward_input_columns(
    const Layer* L,
    const Layer* next_layer,          # the layer above (there is one)
    const floating[::1] Xl,           # IN  (m, n_in) the whole batch
    floating[::1] params,
    floating[::1] Wp,                 # IN  (n_in, c1 - c0) its columns of W
    floating[::1] A_all,
    floating[::1] D_all,
    unsigned char[::1] keep_all,
    Py_ssize_t m,
    bint skip_zero,
    int[::1] cols,
    Py_ssize_t* n_cols,
    uint64_t seed,
    int64_t step,
    Team* team,
) noexcept nogil:
    """The input layer's forward pass on this thread's output columns c0..c1
    (``input_by_columns``): the whole batch times its private columns of W
    into its block of A (m, c1 - c0) at ``rows * c0``, then their bias,
    activation and the next layer's dropout. No barrier: the layer above
    reads only this block, in this thread."""
    cdef Py_ssize_t tid = team.tid, T = team.T
    cdef Py_ssize_t n_in = L.n_in, n_out = L.n_out
    cdef Py_ssize_t c0 = part(n_out, tid, T), c1 = part(n_out, tid + 1, T)
    cdef Py_ssize_t w = c1 - c0
    cdef Py_ssize_t t, r, c
    cdef floating[::1] b, D
    cdef Py_ssize_t at = L.a_off + team.rows * c0  # its block
    cdef floating[::1] Al = A_all[at : at + m * w]
    cdef unsigned char* keep
    cdef floating scale, zero = 0
    if L.b_off >= 0:
        b = params[L.b_off + c0 : L.b_off + c1]
    else:
        b = params[:0]
    n_cols[0] = -1
    if w > 0 and skip_zero:  # the zero-feature skip, as in forward_layer
        n_cols[0] = nonzero_columns(Xl, m, n_in, 0, n_in, cols)
        if not team.own_columns and 8 * n_cols[0] > 7 * n_in:
            n_cols[0] = -1
        if n_cols[0] > 0:
            for t in range(n_cols[0], n_in):
                c = cols[t]
                if not all_finite(Wp, c * w, (c + 1) * w):
                    n_cols[0] = -1
                    break
        if n_cols[0] <= 0 or not gemm_columns(
                False, <int>m, <int>w, <int>n_cols[0], &Xl[0], <int>n_in,
                &Wp[0], <int>w, &Al[0], <int>w, team.work, &cols[0],
                team.own_columns, <floating*>team.scratch):
            n_cols[0] = -1
    if w > 0 and n_cols[0] < 0:
        gemm(False, False, <int>m, <int>w, <int>n_in, 1, &Xl[0], <int>n_in,
             &Wp[0], <int>w, 0, &Al[0], <int>w, team.work, team.own_gemm)
    if w > 0:
        bias_activation_span(Al, b, m, w, 0, w, L.act)
    if next_layer.d_off >= 0 and w > 0:
        # The next layer's dropped input, in blocks too; masks in whole rows.
        D = D_all[next_layer.d_off + team.rows * c0 :
                  next_layer.d_off + team.rows * c0 + m * w]
        keep = &keep_all[next_layer.d_off]
        dropout_keep(seed, step, 1, 0, m, n_out, c0, c1, next_layer.threshold, keep)
        scale = <floating>next_layer.scale
        for r in range(m):
            for c in range(w):
                D[r * w + c] = Al[r * w + c] * scale if keep[r * n_out + c0 + c] else zero


cdef void backward_input_columns(
    const Layer* L,
    floating[::1] Xb,                 # IN  (m, n_in) the whole batch
    floating[::1] dA_all,             # IN  dZ of the input layer: its block
    floating[::1] Gp,                 # OUT (n_in, c1 - c0) its columns of dW
    Py_ssize_t m,
    Py_ssize_t n_cols,
    int[::1] cols,
    Team* team,
) noexcept nogil:
    """dW's columns c0..c1 of the input layer (``input_by_columns``): the
    batch's transpose times this thread's block of dZ, which it computed
    itself (no other thread's is read)."""
    cdef Py_ssize_t n_in = L.n_in, n_out = L.n_out
    cdef Py_ssize_t c0 = part(n_out, team.tid, team.T)
    cdef Py_ssize_t w = part(n_out, team.tid + 1, team.T) - c0
    cdef Py_ssize_t at = L.a_off + team.rows * c0  # its block
    cdef floating[::1] G = dA_all[at : at + m * w]
    cdef Py_ssize_t r, c, t
    if w <= 0:
        return
    if n_cols >= 0 and all_finite(G, 0, m * w):
        for t in range(n_cols, n_in):  # features zero throughout the batch
            c = cols[t]
            for r in range(c * w, (c + 1) * w):
                Gp[r] = 0
        gemm_columns(True, <int>n_cols, <int>w, <int>m, &Xb[0], <int>n_in,
                     &G[0], <int>w, &Gp[0], <int>w, team.work, &cols[0],
                     team.own_columns, <floating*>team.scratch, True)
    else:
        gemm(True, False, <int>n_in, <int>w, <int>m, 1, &Xb[0], <int>n_in,
             &G[0], <int>w, 0, &Gp[0], <int>w, team.work, team.own_gemm)


cdef void private_columns(
    const Layer* L,
    floating[::1] params,
    floating[::1] grads,
    floating[:, ::1] slots,
    floating[::1] Wp,
    floating[::1] Gp,
    floating[:, ::1] Sp,
    bint store,
    Team* team,
) noexcept nogil:
    """This thread's columns of the input layer's W, dW and slots into its
    private blocks, or (``store``) back."""
    cdef Py_ssize_t c0 = part(L.n_out, team.tid, team.T)
    cdef Py_ssize_t w = part(L.n_out, team.tid + 1, team.T) - c0
    cdef Py_ssize_t r, j, s, src
    if w <= 0:
        return
    for r in range(L.n_in):
        src = L.w_off + r * L.n_out + c0
        if store:
            memcpy(&params[src], &Wp[r * w], w * sizeof(floating))
            memcpy(&grads[src], &Gp[r * w], w * sizeof(floating))
            for s in range(slots.shape[0]):
                memcpy(&slots[s, src], &Sp[s, r * w], w * sizeof(floating))
        else:
            memcpy(&Wp[r * w], &params[src], w * sizeof(floating))
            memcpy(&Gp[r * w], &grads[src], w * sizeof(floating))
            for s in range(slots.shape[0]):
                memcpy(&Sp[s, r * w], &slots[s, src], w * sizeof(floating))


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
    floating[:, ::1] slots,            # IN/OUT (S, P)
    int64_t first_step,                # the state's step counter
    const int64_t[:, ::1] layout,      # IN  (L, 5), checked by the plan
    int loss,
    int kind,                          # the optimizer (contract.OptimizerKind)
    const double[::1] hyper,           # IN  its hyper-parameters
    const double[:, ::1] scalars,      # IN  (steps, 4) contract.step_scalars
    const int64_t[:, ::1] spans,       # IN  (k, 2) within [0, P)
    bint spans_disjoint,               # sorted and disjoint
    bint update_per_layer,             # layer ranges tile params exactly
    const int64_t[::1] thresholds,     # IN  (L,) dropout on layer l's input
    const double[::1] drop_scales,     # IN  (L,)
    uint64_t seed,                     # the dropout key
    double[::1] losses_out,            # OUT (step_end - step_begin,)
    Py_ssize_t tid,                    # this thread, 0 <= tid < n_threads
    Py_ssize_t n_threads,              # 1 unless update_per_layer
    bint own_gemm,                     # float32 products on _sgemm.h (one thread each)
    bint input_by_columns,             # the input layer split by output columns
    # rows = min(batch_size, n): the largest batch
    floating[::1] Xb,                  # SHARED scratch (rows * n_in,)
    int64_t[::1] lb,                   # SHARED scratch (rows,) for CE
    floating[::1] Yb,                  # SHARED scratch (rows * k,) for mse
    floating[::1] A_all,               # SHARED scratch (rows * sum n_out,)
    floating[::1] dA_all,              # SHARED scratch, as A_all
    floating[::1] D_all,               # SHARED scratch (rows * sum of dropped n_in,)
    unsigned char[::1] keep_all,       # SHARED scratch, as D_all
    floating[::1] partials,            # SHARED scratch ((T - 1) rows sum n_out,)
    int64_t[::1] sync,                 # SHARED (3,) zeros: the barrier
    double[::1] parts,                 # SHARED (3 T,) loss, L2 and gradient parts
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
    cdef Py_ssize_t l, p_size = 0, a_size = 0, d_size = 0
    cdef Py_ssize_t rows = batch_size if batch_size < n else n
    cdef double clipnorm = hyper[7]  # contract.CLIPNORM
    cdef bint clipping = clipnorm > 0
    if not 0 <= tid < T:
        raise ValueError(f"tid: expected 0 <= tid < {T}; received {tid}")
    if thresholds.shape[0] != n_layers or drop_scales.shape[0] != n_layers:
        raise ValueError(f"thresholds, drop_scales: expected {n_layers} entries")
    cdef Layer* layers = <Layer*>malloc(n_layers * sizeof(Layer))
    if layers == NULL:
        raise MemoryError()
    try:
        for l in range(n_layers):
            layers[l].n_in = layout[l, N_IN]
            layers[l].n_out = layout[l, N_OUT]
            layers[l].w_off = layout[l, W_OFF]
            layers[l].b_off = layout[l, B_OFF]
            layers[l].act = <int>layout[l, ACT]
            layers[l].a_off = a_size
            a_size += rows * layers[l].n_out
            layers[l].threshold = <uint32_t>thresholds[l]
            layers[l].scale = drop_scales[l]
            layers[l].d_off = -1
            if thresholds[l] > 0 and l > 0:
                layers[l].d_off = d_size
                d_size += rows * layers[l].n_in
            layers[l].p_off = p_size  # its shares of threads 1 .. T - 1
            p_size += (T - 1) * rows * layers[l].n_out
        if ce:  # cross-entropy: linear output, softmax fused into the loss
            layers[n_layers - 1].act = ACT_LINEAR
        # The wrapper allocates the shared buffers; a short one would be
        # written out of bounds, so check (cheap, once per call).
        for name, size, need in (
            ("Xb", Xb.shape[0], rows * n_in0),
            ("lb", lb.shape[0], rows if ce else 0),
            ("Yb", Yb.shape[0], 0 if ce else rows * k),
            ("A_all", A_all.shape[0], a_size),
            ("dA_all", dA_all.shape[0], a_size),
            ("D_all", D_all.shape[0], d_size),
            ("keep_all", keep_all.shape[0], d_size),
            ("partials", partials.shape[0], p_size),
            ("sync", sync.shape[0], 3),
            ("parts", parts.shape[0], 3 * T),
            ("errors", errors.shape[0], 2 * T),
            ("scalars", scalars.shape[0], step_end - step_begin),
            ("losses_out", losses_out.shape[0], step_end - step_begin),
        ):
            if size < need:
                raise ValueError(
                    f"{name}: expected at least {need} entries; received {size}"
                )
        if scalars.shape[1] != 4 or hyper.shape[0] < 8:
            raise ValueError("scalars, hyper: expected (steps, 4) and (8,)")
        return _loop(X, n, labels, Y, order, batch_size, step_begin, step_end,
                     params, grads, slots, first_step, layers, n_layers, ce, kind,
                     hyper, scalars, spans, spans_disjoint, update_per_layer,
                     clipping, clipnorm, seed, losses_out, tid, T, own_gemm,
                     input_by_columns, Xb, lb, Yb, A_all, dA_all, D_all,
                     keep_all, partials, p_size, sync, parts, errors, rows)
    finally:
        free(layers)


cdef object _loop(
    const floating[::1] X, Py_ssize_t n, const int64_t[::1] labels,
    const floating[::1] Y, const int64_t[::1] order, Py_ssize_t batch_size,
    Py_ssize_t step_begin, Py_ssize_t step_end, floating[::1] params,
    floating[::1] grads, floating[:, ::1] slots, int64_t first_step,
    Layer* layers, Py_ssize_t n_layers, bint ce, int kind,
    const double[::1] hyper, const double[:, ::1] scalars,
    const int64_t[:, ::1] spans, bint spans_disjoint, bint update_per_layer,
    bint clipping, double clipnorm, uint64_t seed, double[::1] losses_out,
    Py_ssize_t tid, Py_ssize_t T, bint own_gemm, bint input_by_columns,
    floating[::1] Xb,
    int64_t[::1] lb, floating[::1] Yb, floating[::1] A_all,
    floating[::1] dA_all, floating[::1] D_all, unsigned char[::1] keep_all,
    floating[::1] partials, Py_ssize_t p_size, int64_t[::1] sync,
    double[::1] parts, int64_t[::1] errors, Py_ssize_t rows,
):
    """The step loop of ``train_steps`` over its checked arguments."""
    cdef Py_ssize_t n_in0 = layers[0].n_in
    cdef Py_ssize_t k = layers[n_layers - 1].n_out
    cdef int out_act = layers[n_layers - 1].act
    cdef Py_ssize_t out_off = layers[n_layers - 1].a_off
    # This thread's work space for its float32 products on _sgemm.h,
    # allocated once per call rather than once per product (the shapes bound
    # this thread's shares).
    cdef size_t work_bytes = 32  # &work[0] needs one entry
    cdef int r_, i_, o_
    cdef Py_ssize_t l
    for l in range(n_layers):
        r_, i_, o_ = <int>rows, <int>layers[l].n_in, <int>layers[l].n_out
        work_bytes = max(work_bytes, own_sgemm_work(False, False, r_, o_, i_),
                         own_sgemm_work(False, True, r_, i_, o_),
                         own_sgemm_work(True, False, i_, o_, r_))
    cdef unsigned char[::1] work = np.empty(work_bytes, dtype=np.uint8)
    # The input layer's products skip the features zero throughout a batch:
    # on fastnn's own float32 kernels, which take the indices as they are;
    # elsewhere (BLAS faster here, or float64) its columns are gathered into
    # ``scratch`` for one BLAS product (``gemm_columns``).
    cdef bint own_columns = sizeof(floating) == 4 and own_gemm and own_sgemm_ready()
    cdef bint skip_zero = True
    cdef Py_ssize_t share = part(n_in0, tid + 1, T) - part(n_in0, tid, T)
    # The input layer split by its output columns: a layer above, no dropout
    # on the input, the update per layer, and W0 decayed whole or not at all.
    cdef Py_ssize_t w_lo = layers[0].w_off, w_hi = w_lo + n_in0 * layers[0].n_out
    cdef Py_ssize_t covered = 0
    cdef Py_ssize_t s_
    for s_ in range(spans.shape[0]):
        covered += max(0, min(spans[s_, 1], w_hi) - max(spans[s_, 0], w_lo))
    cdef bint col0 = (input_by_columns and n_layers > 1 and update_per_layer
                      and layers[0].threshold == 0
                      and (covered == 0 or covered == w_hi - w_lo))
    cdef Py_ssize_t pw = 0
    if col0:
        share = n_in0  # the whole batch: the zero-feature skip's scratch
        pw = part(layers[0].n_out, tid + 1, T) - part(layers[0].n_out, tid, T)
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] Wp = np.empty(max(1, n_in0 * pw), dtype=dtype)
    cdef floating[::1] Gp = np.empty(max(1, n_in0 * pw), dtype=dtype)
    cdef floating[:, ::1] Sp = np.empty((slots.shape[0], max(1, n_in0 * pw)),
                                        dtype=dtype)
    cdef int64_t[:, ::1] p_spans = np.array(
        [[0, n_in0 * pw]] if covered else np.empty((0, 2)), dtype=np.int64)
    cdef floating[::1] scratch = np.empty(
        max(1, columns_scratch(True, share, layers[0].n_out, rows)),
        dtype=np.float32 if floating is float else np.float64)
    # This thread's input features: cols[:n_cols] not zero throughout the
    # batch, cols[n_cols:i1 - i0] skipped (n_cols -1: none skipped).
    cdef int[::1] cols = np.empty(2 * max(n_in0, 1), dtype=np.intc)
    cdef Py_ssize_t n_cols = -1
    cdef Team team
    team.tid = tid
    team.T = T
    team.rows = rows
    team.sync = &sync[0]
    team.own_gemm = own_gemm
    team.work = &work[0]
    team.own_columns = own_columns
    team.scratch = &scratch[0]
    # With col0 each thread gathers the whole batch into its own buffers (no
    # barrier; every thread meets a bad index or label alike).
    if col0:
        Xb = np.empty(max(1, rows * n_in0), dtype=dtype)
        lb = np.empty(max(1, rows), dtype=np.int64)
        Yb = np.empty(max(1, rows * k), dtype=dtype)
    cdef bint end_barrier = not col0 or clipping or (
        hyper[2] != 0 and kind != OPT_ADAMW)  # sq parts: coupled decay
    if col0:
        private_columns(&layers[0], params, grads, slots, Wp[: n_in0 * pw],
                        Gp[: n_in0 * pw], Sp[:, : n_in0 * pw], False, &team)
    cdef Rule rule
    cdef Py_ssize_t n_order = order.shape[0]
    cdef Py_ssize_t n_steps = step_end - step_begin
    cdef Py_ssize_t i, s, t, first, last, m, r0, r1, n_used
    cdef Py_ssize_t bad_row = -1, bad_pos = -1
    cdef bint aborted = False  # a thread failed: leave at the next barrier
    cdef Py_ssize_t applied = n_steps
    cdef double value, sq, coef
    cdef floating[::1] Xl, Al, dAl
    cdef floating[::1] empty = Xb[:0]
    cdef unsigned int fpenv

    with nogil:
        fpenv = flush_subnormals()  # for this thread's loop only (_fpenv.h)
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

            # 1. Gather.
            if col0:  # the whole batch, into this thread's buffers
                bad_pos = gather(X, n, n_in0, labels, Y, k, ce, order, first, 0, m,
                                 Xb, lb, Yb)
            else:
                errors[2 * tid] = gather(X, n, n_in0, labels, Y, k, ce, order,
                                         first, r0, r1, Xb, lb, Yb)
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

            # 2. Forward, layer by layer.
            Xl = Xb[: m * n_in0]
            for l in range(n_layers):
                if l == 0 and col0:
                    forward_input_columns(&layers[0], &layers[1], Xl, params,
                                          Wp[: n_in0 * pw], A_all, D_all,
                                          keep_all, m, skip_zero, cols, &n_cols,
                                          seed, first_step + i, &team)
                elif not forward_layer(&layers[l],
                                     &layers[l + 1] if l + 1 < n_layers else NULL,
                                     Xl, params, A_all, D_all, keep_all, partials,
                                     p_size, m, l == 0, skip_zero, cols, &n_cols,
                                     seed, first_step + i, l, l == 1 and col0,
                                     &team):
                    aborted = True
                    break
                # (in blocks, col0: the layer's whole region, its blocks at
                # rows * c0 whatever the batch's m)
                n_used = (rows if l == 0 and col0 else m) * layers[l].n_out
                if l + 1 < n_layers and layers[l + 1].d_off >= 0:
                    Xl = D_all[layers[l + 1].d_off : layers[l + 1].d_off + n_used]
                else:
                    Xl = A_all[layers[l].a_off : layers[l].a_off + n_used]
            if aborted:
                # (partners leave their barriers too: in a debug build a
                # failed bounds check also returns False from a layer)
                barrier_abort(&sync[0])
                applied = i
                break

            # 3. This thread's rows of the loss and of dA at the output. (Its
            # slots of ``errors`` and ``parts`` are reset here, past the first
            # barrier of the step: another thread may still be reading those
            # of the step before, where no barrier ends a step, ``col0``.)
            errors[2 * tid + 1] = -1
            parts[3 * tid] = 0
            parts[3 * tid + 2] = 0
            Al = A_all[out_off + r0 * k : out_off + r1 * k]
            dAl = dA_all[out_off + r0 * k : out_off + r1 * k]
            if r1 > r0:
                if ce:
                    parts[3 * tid] = softmax_cross_entropy_rows(
                        Al, lb[r0:r1], dAl, r1 - r0, k, m, &bad_row)
                    if bad_row >= 0:
                        errors[2 * tid + 1] = r0 + bad_row
                else:
                    parts[3 * tid] = mean_squared_error_rows(
                        Al, Yb[r0 * k : r1 * k], dAl, (r1 - r0) * k, m * k)
                if out_act != ACT_LINEAR and errors[2 * tid + 1] < 0:
                    activation_grad_span(dAl, Al, dAl, empty, r1 - r0, k, 0, k,
                                         out_act)
            if barrier(&sync[0], T) < 0:
                applied = i
                break
            value = 0
            bad_row = -1
            for t in range(T):
                if errors[2 * t + 1] >= 0 and bad_row < 0:
                    bad_row = errors[2 * t + 1]
                value += parts[3 * t]
            if bad_row >= 0:
                applied = i
                break
            value = value / (m if ce else m * k)
            if not isfinite(value):
                applied = i  # not applied: the caller sees the divergence
                break

            # 4. Backward and update: this thread's rows i0..i1 of each W_l
            # (the update right away, unless clipping needs the whole gradient).
            rule = make_rule(kind, hyper, scalars[i])
            sq = 0
            for l in range(n_layers - 1, -1, -1):
                if l == 0 and col0:
                    backward_input_columns(&layers[0], Xb, dA_all, Gp[: n_in0 * pw],
                                           m, n_cols, cols, &team)
                    if clipping:
                        parts[3 * tid + 2] += (
                            sum_squares(Gp, 0, n_in0 * pw)
                            + bias_grad_squares(&layers[0], grads, &team))
                    else:
                        sq += update_share(
                            Wp, Gp, Sp, 0, n_in0 * pw, p_spans, &layers[0], params,
                            grads, slots, &rule, spans, 1.0, &team)
                    parts[3 * tid + 1] = sq
                    if end_barrier and barrier(&sync[0], T) < 0:
                        aborted = True
                    break
                backward_layer(&layers[l], &layers[l - 1] if l > 0 else NULL,
                               params, grads, Xb, A_all, dA_all, D_all, keep_all,
                               m, n_cols, cols, l == n_layers - 1,
                               l == 1 and col0, &team)
                if update_per_layer:
                    if clipping:
                        parts[3 * tid + 2] += layer_grad_squares(&layers[l], grads,
                                                                 &team)
                    else:
                        sq += update_layer(&layers[l], params, grads, slots, &rule,
                                           spans, 1.0, &team)
                if l == 0:
                    parts[3 * tid + 1] = sq
                if l == 1 and col0:
                    continue  # the input layer's dZ columns are this thread's
                if barrier(&sync[0], T) < 0:
                    aborted = True
                    break
            if aborted:
                barrier_abort(&sync[0])
                applied = i  # the wrapper raises the failed thread's error
                break
            if not update_per_layer:  # T == 1 here: the reference's one pass
                parts[3 * tid + 1] = update_full(params, grads, slots, &rule,
                                                 clipnorm, spans, spans_disjoint)
            elif clipping:
                # 5. The global gradient norm, its parts added in thread order.
                coef = 0
                for t in range(T):
                    coef += parts[3 * t + 2]
                coef = clipnorm / (sqrt(coef) + 1e-6)
                for l in range(n_layers):
                    if l == 0 and col0:
                        sq += update_share(
                            Wp, Gp, Sp, 0, n_in0 * pw, p_spans, &layers[0], params,
                            grads, slots, &rule, spans, coef, &team)
                    else:
                        sq += update_layer(&layers[l], params, grads, slots, &rule,
                                           spans, coef, &team)
                parts[3 * tid + 1] = sq
                if barrier(&sync[0], T) < 0:
                    applied = i
                    break
            if tid == 0:
                sq = 0
                for t in range(T):  # (all 0 unless end_barrier: see above)
                    sq += parts[3 * t + 1] if end_barrier else 0
                losses_out[i] = value + 0.5 * hyper[2] * sq  # contract.WEIGHT_DECAY

    restore_fpenv(fpenv)
    if col0:
        private_columns(&layers[0], params, grads, slots, Wp[: n_in0 * pw],
                        Gp[: n_in0 * pw], Sp[:, : n_in0 * pw], True, &team)
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
