# SGD with momentum, Nesterov momentum and weight decay over flat buffers.
#
# Same contract as fastnn.reference.sgd_update (PyTorch's convention), one
# fused pass per entry instead of the reference's four array passes:
#     g = grads + wd * params          (wd only inside the decay spans)
#     v = momentum * v + g             (only if momentum != 0)
#     step = g + momentum * v if nesterov else v   (g if momentum == 0)
#     params -= learning_rate * step;  grads <- g (g + momentum * v if nesterov)
# The arithmetic is the reference's, operation by operation and in the array
# dtype, so float32 results are bitwise those of NumPy (with -ffp-contract=off).
# The pre-update ``sum(params**2)`` over the spans is accumulated in float64,
# in blocks small enough to stay in L1 between the sum and the update, with
# eight partial sums in SSE2 registers (_sumsq.h: Cython's scalar loop did not
# vectorise and took half the time of the update).
# ``sgd_range`` updates one range [begin, end) and serves the fused training
# loop, which updates each layer right after its gradients are computed; it
# needs sorted, disjoint spans. ``sgd_full`` also takes overlapping spans
# (each span then adds its own decay, as the reference does).
# Buffers overwritten: params, grads, velocity (velocity only if momentum != 0).

from cython cimport floating
from libc.stdint cimport int64_t

KERNEL_API_VERSION = 1

# Entries per block: the block's params (4-8 KiB) stay in L1 between the
# sum of squares and the update.
cdef enum:
    BLOCK = 1024


cdef extern from "_sumsq.h" nogil:
    double sumsq_f32 "fastnn_sumsq_f32"(const float* x, Py_ssize_t n) noexcept
    double sumsq_f64 "fastnn_sumsq_f64"(const double* x, Py_ssize_t n) noexcept


cdef inline double sum_squares(
    const floating[::1] x,  # IN
    Py_ssize_t lo,
    Py_ssize_t hi,
) noexcept nogil:
    """``sum(x[lo:hi]**2)`` in float64, in explicit vectors (see _sumsq.h)."""
    if hi <= lo:
        return 0.0
    # n from the addresses of both ends: a debug build bounds-checks the
    # whole range the C loop reads (release: just hi - lo).
    cdef Py_ssize_t n = &x[hi - 1] - &x[lo] + 1
    if floating is float:
        return sumsq_f32(&x[lo], n)
    else:
        return sumsq_f64(&x[lo], n)


cdef inline void update(
    floating[::1] params,    # IN/OUT
    floating[::1] grads,     # IN/OUT  g on exit
    floating[::1] velocity,  # IN/OUT  only if mode != 0
    Py_ssize_t lo,
    Py_ssize_t hi,
    floating lr,
    floating m,
    floating wd,
    bint decay,              # add wd * params to the gradient
    int mode,                # 0: plain, 1: momentum, 2: nesterov
) noexcept nogil:
    # Inlined with literal ``decay`` and ``mode``: the compiler emits one
    # branch-free, vectorisable loop per case.
    cdef Py_ssize_t i
    cdef floating g, v
    for i in range(lo, hi):
        g = grads[i]
        if decay:
            g = g + wd * params[i]
        if mode == 0:
            grads[i] = g
            params[i] = params[i] - lr * g
        else:
            v = velocity[i] * m + g
            velocity[i] = v
            if mode == 2:
                g = g + m * v
                grads[i] = g
                params[i] = params[i] - lr * g
            else:
                grads[i] = g
                params[i] = params[i] - lr * v


cdef inline void update_dispatch(
    floating[::1] params,
    floating[::1] grads,
    floating[::1] velocity,
    Py_ssize_t lo,
    Py_ssize_t hi,
    floating lr,
    floating m,
    floating wd,
    bint decay,
    int mode,
) noexcept nogil:
    if decay:
        if mode == 0:
            update(params, grads, velocity, lo, hi, lr, m, wd, True, 0)
        elif mode == 1:
            update(params, grads, velocity, lo, hi, lr, m, wd, True, 1)
        else:
            update(params, grads, velocity, lo, hi, lr, m, wd, True, 2)
    else:
        if mode == 0:
            update(params, grads, velocity, lo, hi, lr, m, wd, False, 0)
        elif mode == 1:
            update(params, grads, velocity, lo, hi, lr, m, wd, False, 1)
        else:
            update(params, grads, velocity, lo, hi, lr, m, wd, False, 2)


cdef inline double segment(
    floating[::1] params,
    floating[::1] grads,
    floating[::1] velocity,
    Py_ssize_t lo,
    Py_ssize_t hi,
    floating lr,
    floating m,
    floating wd,
    bint decay,
    int mode,
) noexcept nogil:
    """Update [lo, hi); with ``decay`` return its pre-update sum of squares."""
    cdef double sq = 0
    cdef Py_ssize_t start, stop
    if not decay:
        update_dispatch(params, grads, velocity, lo, hi, lr, m, wd, False, mode)
        return 0.0
    start = lo
    while start < hi:
        stop = start + BLOCK if start + BLOCK < hi else hi
        sq += sum_squares(params, start, stop)
        update_dispatch(params, grads, velocity, start, stop, lr, m, wd, True, mode)
        start = stop
    return sq


cdef double sgd_range(
    floating[::1] params,             # IN/OUT (P,)
    floating[::1] grads,              # IN/OUT (P,)
    floating[::1] velocity,           # IN/OUT (P,)
    Py_ssize_t begin,
    Py_ssize_t end,
    floating learning_rate,
    floating momentum,
    int mode,                         # sgd_mode(momentum, nesterov)
    floating weight_decay,
    bint decay,                       # weight_decay != 0 (as a double)
    const int64_t[:, ::1] spans,      # IN (k, 2) sorted, disjoint, within [0, P)
) noexcept nogil:
    """Update entries [begin, end); return the pre-update sum of squares of
    the decayed entries among them (0.0 without decay)."""
    cdef Py_ssize_t s, lo, hi, pos = begin
    cdef double sq = 0
    if decay:
        for s in range(spans.shape[0]):
            lo = spans[s, 0] if spans[s, 0] > begin else begin
            hi = spans[s, 1] if spans[s, 1] < end else end
            if lo >= hi:
                continue
            segment(params, grads, velocity, pos, lo, learning_rate, momentum,
                    weight_decay, False, mode)
            sq += segment(params, grads, velocity, lo, hi, learning_rate,
                          momentum, weight_decay, True, mode)
            pos = hi
    segment(params, grads, velocity, pos, end, learning_rate, momentum,
            weight_decay, False, mode)
    return sq


cdef double sgd_full(
    floating[::1] params,             # IN/OUT (P,)
    floating[::1] grads,              # IN/OUT (P,)
    floating[::1] velocity,           # IN/OUT (P,)
    floating learning_rate,
    floating momentum,
    int mode,
    floating weight_decay,
    bint decay,
    const int64_t[:, ::1] spans,      # IN (k, 2) within [0, P)
    bint spans_disjoint,              # sorted and disjoint: one pass
) noexcept nogil:
    """The whole buffer; same contract as ``reference.sgd_update``."""
    cdef Py_ssize_t s, i
    cdef double sq = 0
    cdef Py_ssize_t P = params.shape[0]
    if spans_disjoint or not decay:
        return sgd_range(params, grads, velocity, 0, P, learning_rate, momentum,
                         mode, weight_decay, decay, spans)
    # Overlapping spans: decay span by span first, exactly as the reference.
    for s in range(spans.shape[0]):
        sq += sum_squares(params, spans[s, 0], spans[s, 1])
        for i in range(spans[s, 0], spans[s, 1]):
            grads[i] = grads[i] + weight_decay * params[i]
    sgd_range(params, grads, velocity, 0, P, learning_rate, momentum, mode,
              0, False, spans)
    return sq


def sgd_update(
    floating[::1] params,          # IN/OUT (P,)
    floating[::1] grads,           # IN/OUT (P,)
    floating[::1] velocity,        # IN/OUT (P,)
    double learning_rate,
    double momentum,
    bint nesterov,
    double weight_decay,
    const int64_t[:, ::1] spans,   # IN (k, 2), 0 <= start <= stop <= P
    bint spans_disjoint,
):
    """Same contract as ``fastnn.reference.sgd_update``."""
    cdef double sq
    with nogil:
        sq = sgd_full(params, grads, velocity, <floating>learning_rate,
                      <floating>momentum, sgd_mode(momentum, nesterov),
                      <floating>weight_decay, weight_decay != 0, spans,
                      spans_disjoint)
    return sq
