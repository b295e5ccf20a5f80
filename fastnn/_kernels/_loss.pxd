# Loss cores, cimported by _train.pyx. See _loss.pyx.
from cython cimport floating
from libc.stdint cimport int64_t


cdef double softmax_cross_entropy_core(
    const floating[::1] Z,
    const int64_t[::1] labels,
    floating[::1] dZ,
    Py_ssize_t n,
    Py_ssize_t k,
    Py_ssize_t* bad_row,
) noexcept nogil

cdef double mean_squared_error_core(
    const floating[::1] A,
    const floating[::1] Y,
    floating[::1] dA,
    Py_ssize_t size,
) noexcept nogil

cdef double softmax_cross_entropy_rows(
    const floating[::1] Z,
    const int64_t[::1] labels,
    floating[::1] dZ,
    Py_ssize_t n,
    Py_ssize_t k,
    Py_ssize_t n_batch,
    Py_ssize_t* bad_row,
) noexcept nogil

cdef double mean_squared_error_rows(
    const floating[::1] A,
    const floating[::1] Y,
    floating[::1] dA,
    Py_ssize_t size,
    Py_ssize_t size_batch,
) noexcept nogil
