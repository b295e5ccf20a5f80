# fastnn's own float32 GEMM (_sgemm.h) as a plain C entry point, for the
# numba backend's training loops.
#
# numba calls it by name: ``_numba_gemm`` declares the symbol ENTRY_SYMBOL in
# the kernels' LLVM code and registers this module's ``entry`` under that
# name (llvmlite's add_symbol) before any kernel is compiled or loaded from
# numba's cache, so the cached machine code links to it in every process.
# Every argument is an int64 (pointers as addresses), which keeps the
# declaration on numba's side trivial.
#
# ``entry`` does what _sgemm.h's fastnn_sgemm does: C = op(A) op(B) for the
# row-major nn, nt and tn products, alpha 1 and beta 0, on the caller's work
# space of ``work_size`` bytes; 1 when done, 0 when not (a CPU without AVX2
# and FMA, a shape it does not take, or a work space smaller than the
# product needs), and the caller then runs BLAS. The caller passes shapes and
# leading dimensions of arrays it owns (the numba kernels check them against
# each other before every call: ``_numba_gemm``).
#
# This module's switch (``fastnn_sgemm_state``, one per extension) is turned
# off only by the tests (``_cpu_fallback``, as on a CPU without AVX2): the
# numba backend decides per call (an empty work space means BLAS), so the
# cython backend's gemm_policy does not reach it.

from libc.stdint cimport int64_t, intptr_t

cdef extern from "_sgemm.h" nogil:
    int own_sgemm "fastnn_sgemm"(
        int trans_a, int trans_b, int m, int n, int k, const float* A, int lda,
        const float* B, int ldb, float* C, int ldc, void* work) noexcept
    size_t own_sgemm_work "fastnn_sgemm_work"(
        int trans_a, int trans_b, int m, int n, int k) noexcept
    int own_sgemm_ready "fastnn_sgemm_ready"() noexcept
    int own_sgemm_set "fastnn_sgemm_set"(int on) noexcept
    long long gemm_counted "fastnn_gemm_counted"(int path, int reset) noexcept
    enum:
        RAN_OWN "FASTNN_RAN_OWN"

KERNEL_API_VERSION = 8
#: The name numba's kernels call ``entry`` by; a new name for a new signature.
ENTRY_SYMBOL = "fastnn_own_sgemm_i64_v1"
#: How many int64 arguments ``entry`` takes.
ENTRY_ARGS = 13


cdef int64_t entry(
    int64_t trans_a, int64_t trans_b, int64_t m, int64_t n, int64_t k,
    int64_t A, int64_t lda, int64_t B, int64_t ldb, int64_t C, int64_t ldc,
    int64_t work, int64_t work_size,
) noexcept nogil:
    if (m <= 0 or n <= 0 or k <= 0 or lda < (m if trans_a else k)
            or ldb < (k if trans_b else n) or ldc < n
            or <int64_t>own_sgemm_work(<int>trans_a, <int>trans_b, <int>m, <int>n,
                                       <int>k) > work_size):
        return 0
    return own_sgemm(
        <int>trans_a, <int>trans_b, <int>m, <int>n, <int>k,
        <const float*><intptr_t>A, <int>lda, <const float*><intptr_t>B, <int>ldb,
        <float*><intptr_t>C, <int>ldc, <void*><intptr_t>work)


def entry_address():
    """The address of ``entry`` (int64 (13 x int64) in C)."""
    return <size_t>&entry


def work_bytes(trans_a, trans_b, m, n, k):
    """Bytes of work space ``entry`` needs for op(A) op(B) of shape (m, n, k)."""
    return int(own_sgemm_work(bool(trans_a), bool(trans_b), m, n, k))


def available():
    """Whether ``entry`` runs the own kernels on this CPU (AVX2 and FMA)."""
    return bool(own_sgemm_ready())


available()  # choose now, before any thread runs a kernel


def _cpu_fallback(on):
    """Tests: make ``entry`` decline every product (``on``), as on a CPU
    without AVX2 and FMA, or choose again by the CPU; returns
    :func:`available`. Not while a kernel runs."""
    own_sgemm_set(0 if on else 1)
    return available()


def own_count(reset=False):
    """Products ``entry`` ran on the own kernels since the last reset;
    ``reset``: zero the count after reading it. For tests."""
    return int(gemm_counted(RAN_OWN, bool(reset)))
