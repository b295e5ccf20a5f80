# Shared inline helpers of the Cython kernels (cimported, never imported).
#
# Design:
# * Everything is written once over the ``floating`` fused type (float32 and
#   float64) and is ``noexcept nogil``: the kernels run without the GIL and
#   never raise from inner loops.
# * Arrays are flat C-contiguous memoryviews ``floating[::1]`` with explicit
#   dimensions, so that the same code serves separate arrays (the per-layer
#   API) and slices of the model's one flat parameter buffer (the fused
#   training loop). In a debug build (FASTNN_CYTHON_DEBUG=1, see setup.py)
#   every element access below is bounds checked.
# * ``gemm`` (BLAS; float32 on AVX2 + FMA CPUs: _sgemm.h) is the only O(n^3)
#   operation; the O(n^2) passes around it (bias, activation, its derivative,
#   the bias gradient) are fused into one sweep per row while the row is hot
#   in cache.
# * Elementwise formulas follow ``fastnn.reference`` operation by operation
#   (same order of roundings; setup.py builds with -ffp-contract=off), so the
#   float32 results agree with NumPy's to the last bit or two.

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from "_sgemm.h" nogil:
    # fastnn's own float32 GEMM (AVX2 + FMA, chosen at run time); 0: not done.
    int own_sgemm "fastnn_sgemm"(
        int trans_a, int trans_b, int m, int n, int k, const float* A, int lda,
        const float* B, int ldb, float* C, int ldc, void* work) noexcept
    int own_sgemm_idx "fastnn_sgemm_idx"(
        int trans_a, int trans_b, int m, int n, int k, const float* A, int lda,
        const float* B, int ldb, float* C, int ldc, void* work,
        const int* idx) noexcept
    size_t own_sgemm_work "fastnn_sgemm_work"(
        int trans_a, int trans_b, int m, int n, int k) noexcept
    int own_sgemm_set "fastnn_sgemm_set"(int on) noexcept
    int own_sgemm_ready "fastnn_sgemm_ready"() noexcept
    void gemm_count "fastnn_gemm_count"(int path) noexcept
    long long gemm_counted "fastnn_gemm_counted"(int path, int reset) noexcept
    enum:
        RAN_OWN "FASTNN_RAN_OWN"
        RAN_SGEMM "FASTNN_RAN_SGEMM"
        RAN_DGEMM "FASTNN_RAN_DGEMM"

# Activation codes; must equal fastnn.activations.Activation.
cdef enum:
    ACT_LINEAR = 0
    ACT_RELU = 1
    ACT_SIGMOID = 2
    ACT_TANH = 3
    ACT_SOFTMAX = 4


cdef inline floating exp_(floating x) noexcept nogil:
    # expf for float32 keeps float32 math float32 (no double round trip).
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating tanh_(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline void gemm(
    bint trans_a,
    bint trans_b,
    int m,
    int n,
    int k,
    floating alpha,
    const floating* A,  # IN  op(A) is (m, k), row-major
    int lda,            #     row length of A as stored
    const floating* B,  # IN  op(B) is (k, n), row-major
    int ldb,
    floating beta,
    floating* C,        # OUT (m, n), row-major
    int ldc,
    void* work=NULL,    # own_sgemm_work(trans_a, trans_b, m, n, k) bytes, or NULL
    bint own=False,     # float32: fastnn's kernels (one thread) where they run
) noexcept nogil:
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C``.

    BLAS is column-major, and a row-major matrix is its own transpose seen
    column-major, so we ask BLAS for ``C^T = op(B)^T @ op(A)^T``: swap the
    operands and ``m`` with ``n``; the transpose flags keep their meaning.
    With ``own``, float32 with alpha 1 and beta 0 goes to fastnn's own
    kernels (_sgemm.h) where the CPU has AVX2 and FMA. They run on the calling
    thread only: callers ask for them where the product runs on one thread
    anyway (the split training loop), and leave larger single calls
    (prediction, the per-layer API) to a multithreaded BLAS.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef Py_ssize_t i
    if m <= 0 or n <= 0:
        return
    if k <= 0:  # empty sum: C = beta * C (BLAS would reject ld = 0 here)
        for i in range(<Py_ssize_t>m * n):
            C[i] = 0 if beta == 0 else beta * C[i]
        return
    if floating is float:
        if own and alpha == 1 and beta == 0 and own_sgemm(
                trans_a, trans_b, m, n, k, A, lda, B, ldb, C, ldc, work):
            return
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>B, &ldb, <float*>A, &lda,
              &beta, C, &ldc)
        gemm_count(RAN_SGEMM)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>B, &ldb, <double*>A, &lda,
              &beta, C, &ldc)
        gemm_count(RAN_DGEMM)


cdef inline bint gemm_columns(
    bint trans_a,
    int m,
    int n,
    int k,
    const floating* A,  # IN  (rows, lda): nn, (m, *); tn, (k, *)
    int lda,
    const floating* B,  # IN  nn: (*, n) rows idx; tn: (k, n)
    int ldb,
    floating* C,        # OUT nn: (m, n); tn: its rows idx
    int ldc,
    void* work,         # own_sgemm_work(trans_a, False, m, n, k) bytes
    const int* idx,     # IN  ascending: nn, k of them; tn, m of them
    bint own=True,      # float32 on fastnn's own kernels where they run
    floating* scratch=NULL,  # SCRATCH columns_scratch(trans_a, m, n, k) entries
    bint gathered=False,  # tn: scratch already holds A[:, idx] (the nn call's)
) noexcept nogil:
    """The products over a subset ``idx`` of an input layer's features (its
    columns of A): nn ``C = A[:, idx] @ B[idx]`` (k = len(idx)); tn ``C[idx] =
    A[:, idx]^T @ B`` (m = len(idx), C's other rows untouched). On fastnn's
    own float32 kernels with ``own``, which take the indices as they are;
    else, given ``scratch``, on BLAS: A's columns idx (and, nn, B's rows idx)
    gathered into it, one whole product, then (tn) its rows put into C's rows
    idx. False when not done (a dimension < 1, or neither path): then the
    caller takes the whole product. The nn gather leaves A[:, idx] at the
    start of scratch, in the layout tn reads: a tn call over the same A and
    idx passes ``gathered`` and skips gathering it again."""
    cdef Py_ssize_t r, j
    cdef Py_ssize_t cnt = m if trans_a else k  # the indices
    cdef Py_ssize_t rows = k if trans_a else m  # A's rows
    cdef floating* Ac = scratch  # (rows, cnt)
    cdef floating* Bc = scratch + rows * cnt  # nn: B[idx] (k, n); tn: the product
    if m <= 0 or n <= 0 or k <= 0:
        return False
    if floating is float:
        if own and own_sgemm_idx(trans_a, False, m, n, k, A, lda, B, ldb, C, ldc,
                                 work, idx) != 0:
            return True
    if scratch == NULL:
        return False
    if not (trans_a and gathered):
        for r in range(rows):
            for j in range(cnt):
                Ac[r * cnt + j] = A[r * lda + idx[j]]
    if not trans_a:
        for j in range(k):
            memcpy(&Bc[j * n], &B[<Py_ssize_t>idx[j] * ldb], n * sizeof(floating))
        gemm(False, False, m, n, k, 1, Ac, k, Bc, n, 0, C, ldc)
    else:
        gemm(True, False, m, n, k, 1, Ac, m, B, ldb, 0, Bc, n)
        for j in range(m):
            memcpy(&C[<Py_ssize_t>idx[j] * ldc], &Bc[j * n], n * sizeof(floating))
    return True


cdef inline Py_ssize_t columns_scratch(
    bint trans_a, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k
) noexcept nogil:
    """Entries of scratch ``gemm_columns`` needs on BLAS for (m, n, k)."""
    if trans_a:
        return k * m + m * n
    return m * k + k * n


cdef inline Py_ssize_t nonzero_columns(
    const floating[::1] X,   # IN (m, ld)
    Py_ssize_t m,
    Py_ssize_t ld,
    Py_ssize_t c0,
    Py_ssize_t c1,
    int[::1] idx,            # OUT (2 (c1 - c0),): the columns, then scratch
) noexcept nogil:
    """Sorts the columns c0 <= c < c1 of X: idx[:n] the ones not zero in every
    row (NaN is not zero), idx[n:c1 - c0] the others, each ascending; returns
    n. idx[c1 - c0:] holds the flags meanwhile."""
    cdef Py_ssize_t r, c, w = c1 - c0, n = 0
    for c in range(w):
        idx[w + c] = 0
    for r in range(m):
        for c in range(w):
            idx[w + c] |= X[r * ld + c0 + c] != 0
    for c in range(w):
        if idx[w + c]:
            idx[n] = <int>(c0 + c)
            n += 1
    r = n
    for c in range(w):
        if not idx[w + c]:
            idx[r] = <int>(c0 + c)
            r += 1
    return n


cdef inline bint all_finite(
    const floating[::1] x,
    Py_ssize_t begin,
    Py_ssize_t end,
) noexcept nogil:
    """Whether x[begin:end] holds no inf or NaN (x - x is 0 for every finite
    x, NaN otherwise; the flags are OR-ed, so the loop vectorizes)."""
    cdef Py_ssize_t i
    cdef int bad = 0
    for i in range(begin, end):
        bad |= not (x[i] - x[i] == 0)
    return not bad


cdef inline void bias_activation(
    floating[::1] A,          # IN/OUT (n, k): X @ W on entry, f(X @ W + b) on exit
    const floating[::1] b,    # IN (k,) or empty: no bias
    Py_ssize_t n,
    Py_ssize_t k,
    int act,
) noexcept nogil:
    """Forward epilogue: add the bias and apply ``f``, one row at a time."""
    bias_activation_span(A, b, n, k, 0, k, act)


cdef inline void bias_activation_span(
    floating[::1] A,          # IN/OUT (n, k): only columns [c0, c1) touched
    const floating[::1] b,    # IN (k,) or empty: no bias
    Py_ssize_t n,
    Py_ssize_t k,
    Py_ssize_t c0,
    Py_ssize_t c1,
    int act,                  # SOFTMAX needs whole rows: c0 = 0, c1 = k
) noexcept nogil:
    """``bias_activation`` on columns [c0, c1) of every row."""
    cdef Py_ssize_t i, j, r
    cdef bint has_bias = b.shape[0] != 0
    cdef floating z, mx, s
    if c1 <= c0:
        return
    for i in range(n):
        r = i * k
        if has_bias:
            for j in range(c0, c1):
                A[r + j] = A[r + j] + b[j]
        if act == ACT_RELU:
            for j in range(c0, c1):
                z = A[r + j]
                A[r + j] = 0 if z < 0 else z  # NaN passes through, as np.maximum
        elif act == ACT_SIGMOID:
            for j in range(c0, c1):
                # 1 / (1 + inf) = 0: no overflow branch needed (as scipy's expit)
                A[r + j] = 1 / (1 + exp_(-A[r + j]))
        elif act == ACT_TANH:
            for j in range(c0, c1):
                A[r + j] = tanh_(A[r + j])
        elif act == ACT_SOFTMAX:
            mx = A[r + c0]
            for j in range(c0 + 1, c1):
                if A[r + j] > mx:
                    mx = A[r + j]
            s = 0
            for j in range(c0, c1):
                z = exp_(A[r + j] - mx)  # subtract the row max for stability
                A[r + j] = z
                s = s + z
            for j in range(c0, c1):
                A[r + j] = A[r + j] / s


cdef inline void activation_grad(
    const floating[::1] dA,   # IN  (n, k)
    const floating[::1] A,    # IN  (n, k) the layer output
    floating[::1] dZ,         # OUT (n, k); may be dA itself; unused for LINEAR
    floating[::1] db,         # OUT (k,) column sums of dZ, or empty: not wanted
    Py_ssize_t n,
    Py_ssize_t k,
    int act,
) noexcept nogil:
    """``dZ = dA * f'(A)`` (derivative from the output A) fused with ``db``.

    For LINEAR ``dZ`` is ``dA`` and is not written; ``db`` is summed from dA.
    ``db`` accumulates row after row, in the array dtype, like ``np.sum(axis=0)``.
    """
    activation_grad_span(dA, A, dZ, db, n, k, 0, k, act)


cdef inline void activation_grad_span(
    const floating[::1] dA,   # IN  (n, k)
    const floating[::1] A,    # IN  (n, k) the layer output
    floating[::1] dZ,         # OUT (n, k), columns [c0, c1); may be dA
    floating[::1] db,         # OUT (k,) columns [c0, c1) of it, or empty
    Py_ssize_t n,
    Py_ssize_t k,
    Py_ssize_t c0,
    Py_ssize_t c1,
    int act,                  # SOFTMAX needs whole rows: c0 = 0, c1 = k
) noexcept nogil:
    """``activation_grad`` on columns [c0, c1) of every row."""
    cdef Py_ssize_t i, j, r
    cdef bint want_db = db.shape[0] != 0
    cdef floating a, s
    if want_db:
        for j in range(c0, c1):
            db[j] = 0
    for i in range(n):
        r = i * k
        if act == ACT_LINEAR:
            if want_db:
                for j in range(c0, c1):
                    db[j] = db[j] + dA[r + j]
            continue
        if act == ACT_RELU:
            for j in range(c0, c1):
                dZ[r + j] = dA[r + j] * (1 if A[r + j] > 0 else 0)  # relu'(0) = 0
        elif act == ACT_SIGMOID:
            for j in range(c0, c1):
                a = A[r + j]
                dZ[r + j] = dA[r + j] * (a * (1 - a))
        elif act == ACT_TANH:
            for j in range(c0, c1):
                a = A[r + j]
                dZ[r + j] = dA[r + j] * (1 - a * a)
        elif act == ACT_SOFTMAX:
            # Jacobian-vector product per row: dZ = A * (dA - sum(dA * A)).
            s = 0
            for j in range(c0, c1):
                s = s + dA[r + j] * A[r + j]
            for j in range(c0, c1):
                dZ[r + j] = A[r + j] * (dA[r + j] - s)
        if want_db:
            for j in range(c0, c1):
                db[j] = db[j] + dZ[r + j]
