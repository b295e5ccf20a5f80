# The optimizer updates over flat buffers: SGD, Adam, AdamW, RMSprop, Adagrad.
#
# Same contract as fastnn.reference.update (torch.optim's arithmetic), one
# fused pass per entry instead of the reference's array passes: weight decay
# (coupled: g + wd * w, or AdamW's w * shrink) then the optimizer's rule,
# operation by operation as the reference and in the array dtype, so results
# equal NumPy's bit for bit (with -ffp-contract=off). The loops themselves are
# C: SGD's in _sgd_core.h (blocked with the pre-update sum of squares,
# accumulated in float64 in eight SSE2 partial sums, and an AVX2 copy chosen
# at run time on CPUs that have it; its header says why), the others in
# _optim_core.h.
# ``update_range`` updates one range [begin, end) and serves the fused
# training loop, which updates each layer right after its gradients are
# computed; it needs sorted, disjoint spans. ``update_full`` clips, and also
# takes overlapping spans (each span then adds its own decay, as the
# reference does). Overwritten: params and the optimizer's slots; grads is
# only read (clipping aside): in the training loop it is scratch, and the
# reference leaves it undefined.

from cython cimport floating
from libc.math cimport sqrt
from libc.stdint cimport int64_t

KERNEL_API_VERSION = 8

# Optimizer kinds and hyper-parameter entries (as fastnn.contract).
cdef enum:
    K_SGD = 0
    K_ADAM = 1
    K_ADAMW = 2
    K_RMSPROP = 3
    K_ADAGRAD = 4

cdef enum:
    H_MOMENTUM = 0
    H_NESTEROV = 1
    H_WEIGHT_DECAY = 2
    H_BETA_1 = 3
    H_SECOND = 4
    H_EPSILON = 5
    H_FLAG = 6
    H_CLIPNORM = 7

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

cdef extern from "_optim_core.h" nogil:
    void adam_f32 "fastnn_adam_f32"(
        float* P, const float* G, float* M, float* V, float* VMAX, Py_ssize_t n,
        int amsgrad, int decay, int coupled, float wd, float shrink,
        float one_minus_b1, float b2, float one_minus_b2, float step_size,
        float bc2_sqrt, float eps) noexcept
    void adam_f64 "fastnn_adam_f64"(
        double* P, const double* G, double* M, double* V, double* VMAX,
        Py_ssize_t n, int amsgrad, int decay, int coupled, double wd,
        double shrink, double one_minus_b1, double b2, double one_minus_b2,
        double step_size, double bc2_sqrt, double eps) noexcept
    void rmsprop_f32 "fastnn_rmsprop_f32"(
        float* P, const float* G, float* A, float* BUF, float* GA, Py_ssize_t n,
        int has_momentum, int centered, int decay, float wd, float rho,
        float one_minus_rho, float momentum, float eps, float lr) noexcept
    void rmsprop_f64 "fastnn_rmsprop_f64"(
        double* P, const double* G, double* A, double* BUF, double* GA,
        Py_ssize_t n, int has_momentum, int centered, int decay, double wd,
        double rho, double one_minus_rho, double momentum, double eps,
        double lr) noexcept
    void adagrad_f32 "fastnn_adagrad_f32"(
        float* P, const float* G, float* S, Py_ssize_t n, int decay, float wd,
        float eps, float lr) noexcept
    void adagrad_f64 "fastnn_adagrad_f64"(
        double* P, const double* G, double* S, Py_ssize_t n, int decay,
        double wd, double eps, double lr) noexcept

sgd_init()


def _use_avx2(on=None):
    """Whether SGD's update runs its AVX2 copy (see _sgd_core.h); ``on`` given:
    use it (if the CPU can) or not. For tests and benchmarks; not thread-safe
    with updates running."""
    if on is not None:
        sgd_set_avx2(bool(on))
    return bool(sgd_use_avx2)


cdef Rule make_rule(int kind, const double[::1] hyper,
                    const double[::1] scalars) noexcept nogil:
    """The rule of one step from the plan's ``hyper`` and the step's
    ``scalars`` (lr, Adam's step size, sqrt(1 - beta_2**t), AdamW's shrink)."""
    cdef Rule r
    r.kind = kind
    r.momentum = hyper[H_MOMENTUM]
    r.sgd_mode = sgd_mode(hyper[H_MOMENTUM], hyper[H_NESTEROV] != 0)
    r.weight_decay = hyper[H_WEIGHT_DECAY]
    r.decays = hyper[H_WEIGHT_DECAY] != 0
    r.coupled = kind != K_ADAMW
    r.flag = hyper[H_FLAG] != 0
    r.beta_1 = hyper[H_BETA_1]
    r.second = hyper[H_SECOND]
    r.epsilon = hyper[H_EPSILON]
    r.lr = scalars[0]
    r.step_size = scalars[1]
    r.bc2_sqrt = scalars[2]
    r.shrink = scalars[3]
    return r


cdef inline Py_ssize_t range_length(
    const floating[::1] x,
    Py_ssize_t lo,
    Py_ssize_t hi,
) noexcept nogil:
    """``hi - lo`` (> 0), from the addresses of both ends: a debug build
    bounds-checks the whole range the C code then reads or writes."""
    return &x[hi - 1] - &x[lo] + 1


cdef double sum_squares(
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


cdef void scale_range(floating[::1] x, Py_ssize_t lo, Py_ssize_t hi,
                      double factor) noexcept nogil:
    """``x[lo:hi] *= factor`` (cast to the array dtype once), as the reference."""
    cdef floating f = <floating>factor
    cdef Py_ssize_t i
    for i in range(lo, hi):
        x[i] = x[i] * f


cdef inline double segment(
    floating[::1] params,
    floating[::1] grads,
    floating[:, ::1] slots,
    Py_ssize_t lo,
    Py_ssize_t hi,
    const Rule* r,
    bint decay,
) noexcept nogil:
    """The rule on [lo, hi) (``decay``: weights); returns their pre-update sum
    of squares with coupled decay, else 0.0 (SGD's core computes it block by
    block, while the block is in L1)."""
    cdef Py_ssize_t n, j
    cdef double sq = 0
    cdef floating* V
    cdef floating* B
    cdef floating* GA
    if hi <= lo:
        return 0.0
    n = range_length(params, lo, hi)
    if range_length(grads, lo, hi) != n:
        return 0.0  # unreachable (the checks are for a debug build)
    decay = decay and r.decays
    if r.kind == K_SGD:
        if floating is float:
            return sgd_f32(&params[lo], &grads[lo], &slots[0, lo], n, <float>r.lr,
                    <float>r.momentum, <float>r.weight_decay, decay,
                    r.sgd_mode, False)
        else:
            return sgd_f64(&params[lo], &grads[lo], &slots[0, lo], n, r.lr,
                           r.momentum, r.weight_decay, decay, r.sgd_mode, False)
    if decay and r.coupled:
        sq = sum_squares(params, lo, hi)
    if r.kind == K_ADAM or r.kind == K_ADAMW:
        # Unused slots are NULL, never read: a pointer shared with a used
        # one made GCC's run-time alias check pick the scalar loop (4x).
        V = &slots[2, lo] if r.flag else NULL
        if floating is float:
            adam_f32(&params[lo], &grads[lo], &slots[0, lo], &slots[1, lo], V, n,
                     r.flag, decay, r.coupled, <float>r.weight_decay,
                     <float>r.shrink, <float>(1 - r.beta_1), <float>r.second,
                     <float>(1 - r.second), <float>r.step_size,
                     <float>r.bc2_sqrt, <float>r.epsilon)
        else:
            adam_f64(&params[lo], &grads[lo], &slots[0, lo], &slots[1, lo], V, n,
                     r.flag, decay, r.coupled, r.weight_decay, r.shrink,
                     1 - r.beta_1, r.second, 1 - r.second, r.step_size,
                     r.bc2_sqrt, r.epsilon)
    elif r.kind == K_RMSPROP:
        j = 2 if r.momentum != 0 else 1
        B = &slots[1, lo] if r.momentum != 0 else NULL
        GA = &slots[j, lo] if r.flag else NULL
        if floating is float:
            rmsprop_f32(&params[lo], &grads[lo], &slots[0, lo], B, GA, n,
                        r.momentum != 0, r.flag, decay, <float>r.weight_decay,
                        <float>r.second, <float>(1 - r.second),
                        <float>r.momentum, <float>r.epsilon, <float>r.lr)
        else:
            rmsprop_f64(&params[lo], &grads[lo], &slots[0, lo], B, GA, n,
                        r.momentum != 0, r.flag, decay, r.weight_decay, r.second,
                        1 - r.second, r.momentum, r.epsilon, r.lr)
    else:
        if floating is float:
            adagrad_f32(&params[lo], &grads[lo], &slots[0, lo], n, decay,
                        <float>r.weight_decay, <float>r.epsilon, <float>r.lr)
        else:
            adagrad_f64(&params[lo], &grads[lo], &slots[0, lo], n, decay,
                        r.weight_decay, r.epsilon, r.lr)
    return sq


cdef double update_range(
    floating[::1] params,             # IN/OUT (P,)
    floating[::1] grads,              # IN (P,)
    floating[:, ::1] slots,           # IN/OUT (S, P)
    Py_ssize_t begin,
    Py_ssize_t end,
    const Rule* rule,
    const int64_t[:, ::1] spans,      # IN (k, 2) sorted, disjoint, within [0, P)
) noexcept nogil:
    """Update entries [begin, end); return the pre-update sum of squares of
    the decayed entries among them with coupled decay (else 0.0)."""
    cdef Py_ssize_t s, lo, hi, pos = begin
    cdef double sq = 0
    if rule.decays:
        for s in range(spans.shape[0]):
            lo = spans[s, 0] if spans[s, 0] > begin else begin
            hi = spans[s, 1] if spans[s, 1] < end else end
            if lo >= hi:
                continue
            segment(params, grads, slots, pos, lo, rule, False)
            sq += segment(params, grads, slots, lo, hi, rule, True)
            pos = hi
    segment(params, grads, slots, pos, end, rule, False)
    return sq


cdef double update_full(
    floating[::1] params,             # IN/OUT (P,)
    floating[::1] grads,              # IN/OUT (P,): scaled when clipping
    floating[:, ::1] slots,           # IN/OUT (S, P)
    const Rule* rule,
    double clipnorm,                  # > 0: clip the global norm first
    const int64_t[:, ::1] spans,      # IN (k, 2) within [0, P)
    bint spans_disjoint,              # sorted and disjoint: one pass
) noexcept nogil:
    """The whole buffer; same contract as ``reference.update``."""
    cdef Py_ssize_t s, i
    cdef double sq = 0, coef
    cdef Py_ssize_t P = params.shape[0]
    cdef Rule plain
    cdef floating wd = <floating>rule.weight_decay
    cdef floating shrink = <floating>rule.shrink
    if clipnorm > 0:
        coef = clipnorm / (sqrt(sum_squares(grads, 0, P)) + 1e-6)
        if coef < 1:
            scale_range(grads, 0, P, coef)
    if spans_disjoint or not rule.decays:
        return update_range(params, grads, slots, 0, P, rule, spans)
    # Overlapping spans: decay span by span first, exactly as the reference.
    for s in range(spans.shape[0]):
        if rule.coupled:
            sq += sum_squares(params, spans[s, 0], spans[s, 1])
            for i in range(spans[s, 0], spans[s, 1]):
                grads[i] = grads[i] + wd * params[i]
        else:
            for i in range(spans[s, 0], spans[s, 1]):
                params[i] = params[i] * shrink
    plain = rule[0]
    plain.decays = False
    update_range(params, grads, slots, 0, P, &plain, spans)
    return sq


def update(
    floating[::1] params,          # IN/OUT (P,)
    floating[::1] grads,           # IN/OUT (P,)
    floating[:, ::1] slots,        # IN/OUT (S, P)
    int kind,
    const double[::1] hyper,       # IN the plan's hyper-parameters
    const double[::1] scalars,     # IN the step's (4,)
    const int64_t[:, ::1] spans,   # IN (k, 2), 0 <= start <= stop <= P
    bint spans_disjoint,
):
    """Same contract as ``fastnn.reference.update`` (bar the step counter,
    which the wrapper advances)."""
    cdef double sq
    cdef Rule rule = make_rule(kind, hyper, scalars)
    with nogil:
        sq = update_full(params, grads, slots, &rule, hyper[H_CLIPNORM], spans,
                         spans_disjoint)
    return sq
