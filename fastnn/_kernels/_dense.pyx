# Dense layer forward and backward.
#
# Same contract as fastnn.reference.dense_forward / dense_backward; the Python
# wrapper (cython_backend.py) checks dtypes, shapes and contiguity and passes
# flat views, so these kernels assume valid input.
#
# Forward: one GEMM ``A = X @ W`` (beta = 0, nothing to read back), then one
# epilogue sweep per row that adds the bias and applies the activation while
# the row is in cache.
# Backward: one sweep computes ``dZ = dA * f'(A)`` and the bias gradient
# ``db = sum_rows dZ`` together; then two GEMMs write ``dW = X^T dZ`` and
# (only if wanted) ``dX = dZ W^T`` straight into their output buffers.
# Buffers overwritten: ``A`` (forward); ``dZ`` (scratch; may be ``dA`` itself
# when the caller owns ``dA``, as the fused training loop does), ``dW``,
# ``db``, ``dX`` (backward). For LINEAR, dZ is dA and is not written.

from cython cimport floating

from fastnn._kernels._common cimport (
    ACT_LINEAR,
    activation_grad,
    bias_activation,
    gemm,
)

KERNEL_API_VERSION = 3

cdef extern from *:
    """
    #ifndef FASTNN_DEBUG_BUILD
    #define FASTNN_DEBUG_BUILD 0
    #endif
    """
    int FASTNN_DEBUG_BUILD

#: True when built with FASTNN_CYTHON_DEBUG=1 (bounds checks on, -O0 -g).
DEBUG_BUILD = bool(FASTNN_DEBUG_BUILD)


cdef void forward(
    const floating[::1] X,  # IN  (n, n_in)
    const floating[::1] W,  # IN  (n_in, n_out)
    const floating[::1] b,  # IN  (n_out,) or empty: no bias
    floating[::1] A,        # OUT (n, n_out)
    Py_ssize_t n,
    Py_ssize_t n_in,
    Py_ssize_t n_out,
    int act,
) noexcept nogil:
    cdef Py_ssize_t i
    if n == 0 or n_out == 0:
        return
    if n_in == 0:
        for i in range(n * n_out):
            A[i] = 0
    else:
        gemm(False, False, <int>n, <int>n_out, <int>n_in, 1,
             &X[0], <int>n_in, &W[0], <int>n_out, 0, &A[0], <int>n_out)
    bias_activation(A, b, n, n_out, act)


cdef void backward(
    const floating[::1] dA,  # IN  (n, n_out)
    floating[::1] dZ,        # OUT (n, n_out) scratch; may be dA; unused for LINEAR
    const floating[::1] X,   # IN  (n, n_in)
    const floating[::1] W,   # IN  (n_in, n_out)
    const floating[::1] A,   # IN  (n, n_out)
    Py_ssize_t n,
    Py_ssize_t n_in,
    Py_ssize_t n_out,
    int act,
    floating[::1] dW,        # OUT (n_in, n_out)
    floating[::1] db,        # OUT (n_out,) or empty: no bias
    floating[::1] dX,        # OUT (n, n_in) or empty: not wanted
) noexcept nogil:
    cdef const floating* G
    cdef Py_ssize_t i
    if n_out == 0:
        return
    if n == 0:  # empty batch: zero gradients, as the reference's empty sums
        for i in range(n_in * n_out):
            dW[i] = 0
        for i in range(db.shape[0]):
            db[i] = 0
        return
    activation_grad(dA, A, dZ, db, n, n_out, act)
    G = &dA[0] if act == ACT_LINEAR else &dZ[0]
    if n_in == 0:
        return
    # dW = X^T @ dZ, written straight into the gradient buffer.
    gemm(True, False, <int>n_in, <int>n_out, <int>n, 1,
         &X[0], <int>n_in, G, <int>n_out, 0, &dW[0], <int>n_out)
    if dX.shape[0] != 0:
        # dX = dZ @ W^T
        gemm(False, True, <int>n, <int>n_in, <int>n_out, 1,
             G, <int>n_out, &W[0], <int>n_out, 0, &dX[0], <int>n_in)


def dense_forward(
    const floating[::1] X,  # IN  (n, n_in), flat
    const floating[::1] W,  # IN  (n_in, n_out), flat
    const floating[::1] b,  # IN  (n_out,) or empty
    int activation,
    floating[::1] A_out,    # OUT (n, n_out), flat
    Py_ssize_t n,
    Py_ssize_t n_in,
    Py_ssize_t n_out,
):
    """Same contract as ``fastnn.reference.dense_forward`` (flat views)."""
    with nogil:
        forward(X, W, b, A_out, n, n_in, n_out, activation)


def dense_backward(
    const floating[::1] dA,  # IN  (n, n_out), flat
    floating[::1] dZ,        # OUT scratch (n, n_out); unused for LINEAR
    const floating[::1] X,   # IN  (n, n_in)
    const floating[::1] W,   # IN  (n_in, n_out)
    const floating[::1] A,   # IN  (n, n_out)
    int activation,
    floating[::1] dW_out,    # OUT (n_in, n_out)
    floating[::1] db_out,    # OUT (n_out,) or empty
    floating[::1] dX_out,    # OUT (n, n_in) or empty
    Py_ssize_t n,
    Py_ssize_t n_in,
    Py_ssize_t n_out,
):
    """Same contract as ``fastnn.reference.dense_backward`` (flat views)."""
    with nogil:
        backward(dA, dZ, X, W, A, n, n_in, n_out, activation,
                 dW_out, db_out, dX_out)
