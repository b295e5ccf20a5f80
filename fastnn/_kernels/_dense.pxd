# Dense-layer cores, cimported by _train.pyx. See _dense.pyx.
from cython cimport floating


cdef void forward(
    const floating[::1] X,
    const floating[::1] W,
    const floating[::1] b,
    floating[::1] A,
    Py_ssize_t n,
    Py_ssize_t n_in,
    Py_ssize_t n_out,
    int act,
) noexcept nogil

cdef void backward(
    const floating[::1] dA,
    floating[::1] dZ,
    const floating[::1] X,
    const floating[::1] W,
    const floating[::1] A,
    Py_ssize_t n,
    Py_ssize_t n_in,
    Py_ssize_t n_out,
    int act,
    floating[::1] dW,
    floating[::1] db,
    floating[::1] dX,
) noexcept nogil
