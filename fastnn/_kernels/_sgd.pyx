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
# The loops themselves are C (_sgd_core.h, which says why): per block of 512
# entries the pre-update ``sum(params**2)``, accumulated in float64 in eight
# SSE2 partial sums, then the update, in an AVX2 copy chosen at run time on
# CPUs that have it.
# ``sgd_range`` updates one range [begin, end) and serves the fused training
# loop, which updates each layer right after its gradients are computed; it
# needs sorted, disjoint spans. ``sgd_full`` also takes overlapping spans
# (each span then adds its own decay, as the reference does). Both skip the
# write of g into grads where it would not change grads (no decay, no
# Nesterov) and, with ``write_grads`` false (the training loop, where grads is
# scratch), everywhere: as numba's per-layer update, one memory stream less.
# Buffers overwritten: params, grads (only if write_grads), velocity (only if
# momentum != 0).

from cython cimport floating
from libc.stdint cimport int64_t

KERNEL_API_VERSION = 5

cdef extern from "_sgd_core.h" nogil:
    double sumsq_f32 "fastnn_sumsq_f32"(const float* x, Py_ssize_t n) noexcept
    double sumsq_f64 "fastnn_sumsq_f64"(const double* x, Py_ssize_t n) noexcept
    double sgd_f32 "fastnn_sgd_f32"(
        float* P, float* G, float* V, Py_ssize_t n, float lr, float m, float wd,
        int decay, int mode, int store) noexcept
    double sgd_f64 "fastnn_sgd_f64"(
        double* P, double* G, double* V, Py_ssize_t n, double lr, double m,
        double wd, int decay, int mode, int store) noexcept
    void sgd_init "fastnn_sgd_init"() noexcept
    int sgd_set_avx2 "fastnn_sgd_set_avx2"(int on) noexcept
    int sgd_use_avx2 "fastnn_sgd_use_avx2"

sgd_init()


def _use_avx2(on=None):
    """Whether the update runs its AVX2 copy (see _sgd_core.h); ``on`` given:
    use it (if the CPU can) or not. For tests and benchmarks; not thread-safe
    with updates running."""
    if on is not None:
        sgd_set_avx2(bool(on))
    return bool(sgd_use_avx2)


cdef inline Py_ssize_t range_length(
    const floating[::1] x,
    Py_ssize_t lo,
    Py_ssize_t hi,
) noexcept nogil:
    """``hi - lo`` (> 0), from the addresses of both ends: a debug build
    bounds-checks the whole range the C code then reads or writes."""
    return &x[hi - 1] - &x[lo] + 1


cdef inline double sum_squares(
    const floating[::1] x,  # IN
    Py_ssize_t lo,
    Py_ssize_t hi,
) noexcept nogil:
    """``sum(x[lo:hi]**2)`` in float64 (see _sgd_core.h)."""
    if hi <= lo:
        return 0.0
    if floating is float:
        return sumsq_f32(&x[lo], range_length(x, lo, hi))
    else:
        return sumsq_f64(&x[lo], range_length(x, lo, hi))


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
    bint write_grads,
) noexcept nogil:
    """Update [lo, hi); with ``decay`` return its pre-update sum of squares."""
    cdef Py_ssize_t n
    if hi <= lo:
        return 0.0
    n = range_length(params, lo, hi)
    if range_length(grads, lo, hi) != n or range_length(velocity, lo, hi) != n:
        return 0.0  # unreachable (the checks are for a debug build)
    if floating is float:
        return sgd_f32(&params[lo], &grads[lo], &velocity[lo], n, lr, m, wd,
                       decay, mode, write_grads)
    else:
        return sgd_f64(&params[lo], &grads[lo], &velocity[lo], n, lr, m, wd,
                       decay, mode, write_grads)


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
    bint write_grads,                 # grads <- g; False: grads is scratch
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
                    weight_decay, False, mode, write_grads)
            sq += segment(params, grads, velocity, lo, hi, learning_rate,
                          momentum, weight_decay, True, mode, write_grads)
            pos = hi
    segment(params, grads, velocity, pos, end, learning_rate, momentum,
            weight_decay, False, mode, write_grads)
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
    bint write_grads,                 # grads <- g; False: grads is scratch
) noexcept nogil:
    """The whole buffer; same contract as ``reference.sgd_update``."""
    cdef Py_ssize_t s, i
    cdef double sq = 0
    cdef Py_ssize_t P = params.shape[0]
    if spans_disjoint or not decay:
        return sgd_range(params, grads, velocity, 0, P, learning_rate, momentum,
                         mode, weight_decay, decay, spans, write_grads)
    # Overlapping spans: decay span by span first, exactly as the reference.
    for s in range(spans.shape[0]):
        sq += sum_squares(params, spans[s, 0], spans[s, 1])
        for i in range(spans[s, 0], spans[s, 1]):
            grads[i] = grads[i] + weight_decay * params[i]
    sgd_range(params, grads, velocity, 0, P, learning_rate, momentum, mode,
              0, False, spans, write_grads)
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
                      spans_disjoint, True)
    return sq
