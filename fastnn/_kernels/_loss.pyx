# Losses: softmax cross-entropy on logits and mean squared error.
#
# Same contracts as fastnn.reference.softmax_cross_entropy and
# mean_squared_error. Each is one pass over its rows:
# * cross-entropy: per row, the max (subtracted for stability), the exps
#   written into dZ and their sum, the row loss ``log(sum) - (Z[y] - max)``,
#   then ``dZ = (softmax - onehot) / n`` in place. The label logit and the max
#   are read before dZ is written, so dZ may be Z itself. The loss is summed in
#   float64 whatever the array dtype, as the reference does.
# * mse: ``d = A - Y`` once; the loss sums ``d * d`` in float64 and dA receives
#   ``d * (2 / (n k))`` (the scale cast to the array dtype, as the reference).
# Labels follow NumPy's indexing: ``-k <= y < k``; an out-of-range label is
# reported through ``bad_row`` (the caller raises IndexError) instead of read.
# Buffers overwritten: dZ / dA only.

from cython cimport floating
from libc.math cimport NAN, log
from libc.stdint cimport int64_t

from fastnn._kernels._common cimport exp_

KERNEL_API_VERSION = 8


cdef double softmax_cross_entropy_rows(
    const floating[::1] Z,       # IN  (n, k) logits: rows of a batch of n_batch
    const int64_t[::1] labels,   # IN  (n,) class indices
    floating[::1] dZ,            # OUT (n, k); may be Z
    Py_ssize_t n,
    Py_ssize_t k,
    Py_ssize_t n_batch,          # dZ is divided by the whole batch's size
    Py_ssize_t* bad_row,         # OUT row of the first invalid label, else -1
) noexcept nogil:
    """The loss *sum* over these n rows (float64); NaN at an invalid label.

    The training loop's threads each take some rows of one batch; the batch's
    mean loss is the sum of their sums over n_batch."""
    cdef Py_ssize_t i, j, r
    cdef int64_t y
    cdef floating mx, zy, e, s
    cdef floating nf = <floating>n_batch
    cdef double total = 0
    bad_row[0] = -1
    for i in range(n):
        r = i * k
        y = labels[i]
        if y < 0:
            y = y + k
        if y < 0 or y >= k:
            bad_row[0] = i
            return NAN
        mx = Z[r]
        for j in range(1, k):
            if Z[r + j] > mx:
                mx = Z[r + j]
        zy = Z[r + y] - mx
        s = 0
        for j in range(k):
            e = exp_(Z[r + j] - mx)  # subtract the row max for stability
            dZ[r + j] = e
            s = s + e
        total += log(<double>s) - zy
        for j in range(k):
            dZ[r + j] = dZ[r + j] / s
        dZ[r + y] = dZ[r + y] - 1
        for j in range(k):
            dZ[r + j] = dZ[r + j] / nf
    return total


cdef double softmax_cross_entropy_core(
    const floating[::1] Z,       # IN  (n, k) logits
    const int64_t[::1] labels,   # IN  (n,) class indices
    floating[::1] dZ,            # OUT (n, k); may be Z
    Py_ssize_t n,
    Py_ssize_t k,
    Py_ssize_t* bad_row,         # OUT row of the first invalid label, else -1
) noexcept nogil:
    if n == 0:
        bad_row[0] = -1
        return NAN  # mean of nothing, as np.mean
    return softmax_cross_entropy_rows(Z, labels, dZ, n, k, n, bad_row) / n


cdef double mean_squared_error_rows(
    const floating[::1] A,   # IN  (size,), flat: some rows of a batch
    const floating[::1] Y,   # IN  (size,), flat
    floating[::1] dA,        # OUT (size,), flat; may be A
    Py_ssize_t size,
    Py_ssize_t size_batch,   # n * k of the whole batch: dA's scale is 2 / size_batch
) noexcept nogil:
    """The *sum* of squared errors over these entries (float64)."""
    cdef Py_ssize_t i
    cdef floating d
    cdef floating scale = <floating>(2.0 / size_batch)
    cdef double total = 0
    for i in range(size):
        d = A[i] - Y[i]
        total += <double>d * d
        dA[i] = d * scale
    return total


cdef double mean_squared_error_core(
    const floating[::1] A,   # IN  (n, k), flat
    const floating[::1] Y,   # IN  (n, k), flat
    floating[::1] dA,        # OUT (n, k), flat; may be A
    Py_ssize_t size,         # n * k
) noexcept nogil:
    if size == 0:
        return NAN  # mean of nothing, as np.mean
    return mean_squared_error_rows(A, Y, dA, size, size) / size


def softmax_cross_entropy(
    const floating[::1] Z,      # IN  (n, k), flat
    const int64_t[::1] labels,  # IN  (n,)
    floating[::1] dZ_out,       # OUT (n, k), flat
    Py_ssize_t n,
    Py_ssize_t k,
):
    """Same contract as ``fastnn.reference.softmax_cross_entropy`` (flat views)."""
    cdef double loss
    cdef Py_ssize_t bad
    with nogil:
        loss = softmax_cross_entropy_core(Z, labels, dZ_out, n, k, &bad)
    if bad >= 0:
        raise IndexError(
            f"label {labels[bad]} of sample {bad} is out of bounds for {k} classes"
        )
    return loss


def mean_squared_error(
    const floating[::1] A,   # IN  (n, k), flat
    const floating[::1] Y,   # IN  (n, k), flat
    floating[::1] dA_out,    # OUT (n, k), flat
):
    """Same contract as ``fastnn.reference.mean_squared_error`` (flat views)."""
    cdef double loss
    with nogil:
        loss = mean_squared_error_core(A, Y, dA_out, A.shape[0])
    return loss
