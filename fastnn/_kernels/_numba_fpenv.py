"""Subnormals flushed to zero around numba's training loop, for the calling
thread: FTZ and DAZ in x86's MXCSR, set before the loop and restored after it
(why: ``_fpenv.h``, the cython backend's twin). Elsewhere than x86, and with
``NUMBA_DISABLE_JIT=1``, both functions do nothing.

They are separate compiled calls made from Python, not inlined into the loop,
so that LLVM cannot move floating-point work across the change of mode.
"""

from __future__ import annotations

import platform

import numpy as np
from numba import config, njit

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
#: MXCSR bits 15 (flush to zero) and 6 (denormals are zero).
FTZ_DAZ = 0x8040

if X86 and not config.DISABLE_JIT:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    _BYTE_PTR = ir.IntType(8).as_pointer()
    _CSR_FN = ir.FunctionType(ir.VoidType(), [_BYTE_PTR])

    @intrinsic
    def _read_csr(typingctx):
        def codegen(context, builder, signature, args):
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            fn = cgutils.get_or_insert_function(
                builder.module, _CSR_FN, "llvm.x86.sse.stmxcsr"
            )
            builder.call(fn, [builder.bitcast(slot, _BYTE_PTR)])
            return builder.load(slot)

        return types.uint32(), codegen

    @intrinsic
    def _write_csr(typingctx, value):
        def codegen(context, builder, signature, args):
            slot = cgutils.alloca_once_value(builder, args[0])
            fn = cgutils.get_or_insert_function(
                builder.module, _CSR_FN, "llvm.x86.sse.ldmxcsr"
            )
            builder.call(fn, [builder.bitcast(slot, _BYTE_PTR)])
            return context.get_dummy_value()

        return types.void(types.uint32), codegen

    @njit(cache=True, nogil=True)
    def flush_subnormals():
        """Set FTZ and DAZ for this thread; returns the previous MXCSR."""
        old = _read_csr()
        _write_csr(old | np.uint32(FTZ_DAZ))
        return old

    @njit(cache=True, nogil=True)
    def restore_fpenv(old):
        """Put back the MXCSR that :func:`flush_subnormals` returned."""
        _write_csr(np.uint32(old))

    @njit(cache=True, nogil=True)
    def read_fpenv():
        """This thread's MXCSR (for the tests)."""
        return _read_csr()

else:

    def flush_subnormals():
        return 0

    def restore_fpenv(old):
        return None

    def read_fpenv():
        return 0
