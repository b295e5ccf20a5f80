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

import numpy as np

from cython cimport floating

from fastnn._kernels._common cimport (
    ACT_LINEAR,
    activation_grad,
    bias_activation,
    gemm,
    RAN_DGEMM,
    RAN_OWN,
    RAN_SGEMM,
    columns_scratch,
    gemm_columns,
    gemm_counted,
    own_sgemm_ready,
    own_sgemm_set,
)

KERNEL_API_VERSION = 8


def _own_sgemm(on=None):
    """Whether this module's float32 products that ask for fastnn's kernels
    (_sgemm.h; here only the ``_gemm`` test hook: the per-layer kernels keep
    BLAS) get them; ``on`` given: use them (if the CPU can) or not. Each
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


def _gemm(
    const floating[:, :] A,  # IN  op(A) is (m, k); rows may be strided
    const floating[:, :] B,  # IN  op(B) is (k, n)
    floating[:, :] C,        # OUT (m, n)
    bint trans_a,
    bint trans_b,
):
    """``C = op(A) @ op(B)`` through the kernels' ``gemm`` (the tests' view of
    it: BLAS, or _sgemm.h for float32). Row strides are the leading
    dimensions, so column slices of larger arrays exercise them."""
    cdef Py_ssize_t m = A.shape[1] if trans_a else A.shape[0]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t kb = B.shape[1] if trans_b else B.shape[0]
    cdef Py_ssize_t n = B.shape[0] if trans_b else B.shape[1]
    if kb != k:
        raise ValueError(f"B: expected {k} rows of op(B); received {kb}")
    if C.shape[0] != m or C.shape[1] != n:
        raise ValueError(
            f"C: expected shape ({m}, {n}); received ({C.shape[0]}, {C.shape[1]})"
        )
    for name, X in (("A", A), ("B", B), ("C", C)):
        if X.shape[1] > 1 and X.strides[1] != <Py_ssize_t>sizeof(floating):
            raise ValueError(f"{name}: expected contiguous rows; received "
                             f"a column stride of {X.strides[1]} bytes")
        if X.shape[0] > 1 and X.strides[0] < X.shape[1] * <Py_ssize_t>sizeof(floating):
            raise ValueError(f"{name}: expected rows that do not overlap")
    if m == 0 or n == 0:
        return
    cdef int lda = <int>(A.strides[0] // sizeof(floating)) if A.shape[0] > 1 else <int>A.shape[1]
    cdef int ldb = <int>(B.strides[0] // sizeof(floating)) if B.shape[0] > 1 else <int>B.shape[1]
    cdef int ldc = <int>(C.strides[0] // sizeof(floating)) if C.shape[0] > 1 else <int>C.shape[1]
    # ld >= 1 as BLAS requires (an empty row still has a leading dimension).
    lda = max(lda, 1)
    ldb = max(ldb, 1)
    ldc = max(ldc, 1)
    cdef const floating* a = &A[0, 0] if A.shape[0] * A.shape[1] else NULL
    cdef const floating* b = &B[0, 0] if B.shape[0] * B.shape[1] else NULL
    with nogil:
        gemm(trans_a, trans_b, <int>m, <int>n, <int>k, 1, a, lda, b, ldb, 0,
             &C[0, 0], ldc, NULL, True)


def _gemm_columns(
    const float[:, ::1] A,   # IN  nn: (m, K); tn: (k, M)
    const float[:, ::1] B,   # IN  nn: (K, n); tn: (k, n)
    float[:, ::1] C,         # OUT nn: (m, n); tn: (M, n), rows idx
    bint trans_a,
    const int[::1] idx,      # IN  ascending indices into K (nn) or M (tn)
    bint gathered=False,
):
    """The input layer's products over the features ``idx`` (the tests' view
    of ``gemm_columns``): nn ``C = A[:, idx] @ B[idx]``; tn ``C[idx] =
    A[:, idx]^T @ B``, C's other rows untouched. On fastnn's own kernels
    (RuntimeError where they do not run), or ``gathered`` onto BLAS
    (``gemm_columns`` with scratch)."""
    cdef Py_ssize_t i, n_idx = idx.shape[0]
    cdef Py_ssize_t span = A.shape[1]  # nn: K; tn: M
    cdef Py_ssize_t m = n_idx if trans_a else A.shape[0]
    cdef Py_ssize_t k = A.shape[0] if trans_a else n_idx
    cdef Py_ssize_t n = B.shape[1]
    for i in range(n_idx):
        if not 0 <= idx[i] < span or (i > 0 and idx[i] <= idx[i - 1]):
            raise ValueError(f"idx: expected ascending indices in [0, {span}); "
                             f"received {idx[i]} at position {i}")
    if trans_a and B.shape[0] != A.shape[0]:
        raise ValueError(f"B: expected {A.shape[0]} rows; received {B.shape[0]}")
    if not trans_a and B.shape[0] != span:
        raise ValueError(f"B: expected {span} rows; received {B.shape[0]}")
    c_rows = span if trans_a else A.shape[0]
    if C.shape[0] != c_rows or C.shape[1] != n:
        raise ValueError(
            f"C: expected shape ({c_rows}, {n}); received ({C.shape[0]}, {C.shape[1]})"
        )
    if m == 0 or n == 0 or k == 0:
        raise ValueError("A, B, idx: expected non-empty products")
    cdef bint done
    cdef float[::1] scratch = np.empty(columns_scratch(trans_a, m, n, k), np.float32)
    with nogil:
        done = gemm_columns(trans_a, <int>m, <int>n, <int>k, &A[0, 0],
                            <int>A.shape[1], &B[0, 0], <int>n, &C[0, 0], <int>n,
                            NULL, &idx[0], not gathered,
                            &scratch[0] if gathered else NULL)
    if not done:
        raise RuntimeError("fastnn's own float32 kernels are off or cannot run here")
