# SGD cores, cimported by _train.pyx. See _sgd.pyx.
from cython cimport floating
from libc.stdint cimport int64_t


cdef double sgd_range(
    floating[::1] params,
    floating[::1] grads,
    floating[::1] velocity,
    Py_ssize_t begin,
    Py_ssize_t end,
    floating learning_rate,
    floating momentum,
    int mode,
    floating weight_decay,
    bint decay,
    const int64_t[:, ::1] spans,
    bint write_grads,
) noexcept nogil

cdef double sgd_full(
    floating[::1] params,
    floating[::1] grads,
    floating[::1] velocity,
    floating learning_rate,
    floating momentum,
    int mode,
    floating weight_decay,
    bint decay,
    const int64_t[:, ::1] spans,
    bint spans_disjoint,
    bint write_grads,
) noexcept nogil


cdef inline int sgd_mode(double momentum, bint nesterov) noexcept nogil:
    """0: plain SGD, 1: momentum, 2: Nesterov momentum. Decided on the double
    values, as the reference decides before casting to the array dtype."""
    if momentum == 0:
        return 0
    return 2 if nesterov else 1
