# Philox4x32-10 and dropout masks in C (_philox.h), cimported by the kernels:
#     from fastnn._kernels._philox cimport dropout_keep
# The mask contract is in _philox.h and fastnn/_philox.py (the NumPy
# definition); the three implementations agree bit for bit.
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "_philox.h" nogil:
    # out = philox4x32_10(ctr[0..3], key[0..1]).
    void philox4x32_10 "fastnn_philox4x32_10"(
        const uint32_t* ctr, const uint32_t* key, uint32_t* out) noexcept
    # keep[r * n_out + c] = word >= threshold for every row r < rows and only
    # the columns c0 <= c < c1 (0 <= c0 <= c1 <= n_out: the caller checks).
    void dropout_keep "fastnn_dropout_keep"(
        uint64_t seed, int64_t step, uint32_t layer, int64_t row_offset,
        Py_ssize_t rows, Py_ssize_t n_out, Py_ssize_t c0, Py_ssize_t c1,
        uint32_t threshold, unsigned char* keep) noexcept
