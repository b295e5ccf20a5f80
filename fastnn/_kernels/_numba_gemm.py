"""fastnn's own float32 GEMM in the numba backend's training loops.

The numba kernels' products go to BLAS through ``np.dot``. Where fastnn's own
AVX2 kernels beat BLAS (``cython_backend.own_gemm_beats_blas``: on an AMD
Zen 4 numba's L64 and L256 epochs took 0.88x and 0.95x of their time on
BLAS, paired), the training loops call them instead, in the compiled
extension ``_gemm`` that the cython backend's build makes (``_sgemm.h``):

* ``own_sgemm`` is an ``@intrinsic`` that declares the C function
  ``_gemm.ENTRY_SYMBOL`` (13 int64 arguments, pointers as addresses) and
  calls it. The symbol is registered with LLVM (``llvmlite.binding.
  add_symbol``) when this module is imported, before any kernel is compiled
  or loaded from numba's cache, so cached kernels link to it in every
  process. Without the extension (not built, stale, another platform) the
  symbol is a stub that returns 0, and the loops never call it anyway: the
  wrapper passes them an empty work space.
* ``gemm_nn``, ``gemm_tn``, ``gemm_nt`` are the loops' three products
  (``A @ B``, ``A.T @ B``, ``A @ B.T`` into ``C``). Each calls the own kernels
  when given a work space and float32 arrays whose rows are contiguous, and
  ``np.dot`` (BLAS) otherwise or when the kernels decline (a CPU without AVX2
  and FMA returns 0). The shapes passed are the arrays' own, checked against
  each other first: the C code has no bounds checks.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["ENTRY_SYMBOL", "available", "gemm_nn", "gemm_nt", "gemm_tn", "work_bytes"]

_I64 = ctypes.c_int64
_N_ARGS = 13
_STUB_TYPE = ctypes.CFUNCTYPE(_I64, *([_I64] * _N_ARGS))
#: Kept alive for the process: the symbol's target where ``_gemm`` is missing.
_stub = _STUB_TYPE(lambda *args: 0)


def _load_extension():
    """``fastnn._kernels._gemm``, or None where it is missing or stale."""
    try:
        from fastnn._kernels import cython_backend

        return cython_backend._gemm
    except ImportError:
        return None


_gemm = _load_extension()
if _gemm is not None and _gemm.ENTRY_ARGS != _N_ARGS:  # pragma: no cover
    _gemm = None  # another signature: never call it
#: The C symbol the kernels call (the same name with or without ``_gemm``, so
#: that a cached kernel links either way).
ENTRY_SYMBOL = "fastnn_own_sgemm_i64_v1"
if _gemm is not None and _gemm.ENTRY_SYMBOL != ENTRY_SYMBOL:  # pragma: no cover
    _gemm = None
_llvm.add_symbol(
    ENTRY_SYMBOL,
    _gemm.entry_address()
    if _gemm is not None
    else ctypes.cast(_stub, ctypes.c_void_p).value,
)


def available() -> bool:
    """Whether the loops can run the own kernels here (the extension is built
    and the CPU has AVX2 and FMA)."""
    return _gemm is not None and _gemm.available()


def work_bytes(max_dim: int) -> int:
    """Bytes of work space enough for any of the three products with every
    dimension at most ``max_dim`` (the kernels' need grows with each)."""
    if _gemm is None or max_dim <= 0:
        return 0
    return max(_gemm.work_bytes(ta, tb, max_dim, max_dim, max_dim)
               for ta, tb in ((0, 0), (0, 1), (1, 0)))  # fmt: skip


def own_count(reset: bool = False) -> int:
    """Products run on the own kernels since the last reset (for tests)."""
    return 0 if _gemm is None else _gemm.own_count(reset)


@intrinsic
def own_sgemm(typingctx, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, work, size):
    """``_gemm``'s entry (every argument cast to int64): 1 when done, else 0."""
    sig = types.int64(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, work, size)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64] * _N_ARGS)
        fn = cgutils.get_or_insert_function(builder.module, fnty, ENTRY_SYMBOL)
        values = [
            context.cast(builder, v, t, types.int64)
            for v, t in zip(args, signature.args, strict=True)
        ]
        return builder.call(fn, values)

    return sig, codegen


@njit(cache=True, nogil=True)
def _rows_ok(X):
    """A float32 matrix with contiguous rows, as the own kernels take."""
    return X.itemsize == 4 and (X.shape[1] <= 1 or X.strides[1] == 4)


@njit(cache=True, nogil=True)
def _ld(X):
    return max(1, X.strides[0] // 4) if X.shape[0] > 1 else max(1, X.shape[1])


@njit(cache=True, nogil=True)
def _own(trans_a, trans_b, m, n, k, A, B, C, work):
    """C = op(A) op(B) of shape (m, n, k), which the caller checked against
    the arrays, on the own kernels: True when done (a work space given, float32
    arrays with contiguous rows, and the kernels took it)."""
    if work.shape[0] == 0 or not (_rows_ok(A) and _rows_ok(B) and _rows_ok(C)):
        return False
    done = own_sgemm(trans_a, trans_b, m, n, k, A.ctypes.data, _ld(A),
                     B.ctypes.data, _ld(B), C.ctypes.data, _ld(C),
                     work.ctypes.data, work.shape[0])  # fmt: skip
    return done != 0


@njit(cache=True, nogil=True)
def gemm_nn(A, B, C, work):
    """``C = A @ B`` (``np.dot(A, B, C)``)."""
    m, k = A.shape
    n = B.shape[1]
    fits = B.shape[0] == k and C.shape[0] == m and C.shape[1] == n
    if not (fits and _own(0, 0, m, n, k, A, B, C, work)):
        np.dot(A, B, C)


@njit(cache=True, nogil=True)
def gemm_tn(A, B, C, work):
    """``C = A.T @ B`` (``np.dot(A.T, B, C)``)."""
    k, m = A.shape
    n = B.shape[1]
    fits = B.shape[0] == k and C.shape[0] == m and C.shape[1] == n
    if not (fits and _own(1, 0, m, n, k, A, B, C, work)):
        np.dot(A.T, B, C)


@njit(cache=True, nogil=True)
def gemm_nt(A, B, C, work):
    """``C = A @ B.T`` (``np.dot(A, B.T, C)``)."""
    m, k = A.shape
    n = B.shape[0]
    fits = B.shape[1] == k and C.shape[0] == m and C.shape[1] == n
    if not (fits and _own(0, 1, m, n, k, A, B, C, work)):
        np.dot(A, B.T, C)
