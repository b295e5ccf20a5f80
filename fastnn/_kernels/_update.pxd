# The optimizer updates, cimported by _train.pyx. See _update.pyx.
from cython cimport floating
from libc.stdint cimport int64_t


# One step's update rule: the plan's kind and hyper-parameters with the step's
# scalars (contract.step_scalars), as doubles; cast to the array dtype at use.
cdef struct Rule:
    int kind             # contract.OptimizerKind
    int sgd_mode         # SGD: sgd_mode(momentum, nesterov)
    bint coupled         # weight decay is L2 on the gradient (all but AdamW)
    bint decays          # weight_decay != 0
    bint flag            # Adam: amsgrad; RMSprop: centered
    int n_slots
    double lr, momentum, weight_decay, shrink
    double beta_1, second, epsilon, step_size, bc2_sqrt


cdef Rule make_rule(int kind, const double[::1] hyper,
                    const double[::1] scalars) noexcept nogil

cdef double sum_squares(const floating[::1] x, Py_ssize_t lo,
                        Py_ssize_t hi) noexcept nogil

cdef void scale_range(floating[::1] x, Py_ssize_t lo, Py_ssize_t hi,
                      double factor) noexcept nogil

cdef double update_range(
    floating[::1] params,
    floating[::1] grads,
    floating[:, ::1] slots,
    Py_ssize_t begin,
    Py_ssize_t end,
    const Rule* rule,
    const int64_t[:, ::1] spans,
) noexcept nogil

cdef double update_full(
    floating[::1] params,
    floating[::1] grads,
    floating[:, ::1] slots,
    const Rule* rule,
    double clipnorm,
    const int64_t[:, ::1] spans,
    bint spans_disjoint,
) noexcept nogil


cdef inline int sgd_mode(double momentum, bint nesterov) noexcept nogil:
    """0: plain SGD, 1: momentum, 2: Nesterov momentum. Decided on the double
    values, as the reference decides before casting to the array dtype."""
    if momentum == 0:
        return 0
    return 2 if nesterov else 1
