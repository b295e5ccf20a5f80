"""A spinning barrier for the numba backend's training threads.

numba's nopython mode has no atomics, so this module emits them as LLVM
instructions (``@intrinsic``): an atomic load (acquire), store (release) and
add (acquire-release) on an element of an int64 array, and the CPU's spin
hint. The barrier is the one of the cython backend's ``_barrier.h``, in
numba: ``sync[0]`` counts the threads arrived, ``sync[1]`` is the generation
the last one to arrive bumps, ``sync[2]`` the abort flag; a waiting thread
spins with the pause hint, then after ``SPINS`` rounds yields its core (a
loaded machine has more runnable threads than cores).

With ``NUMBA_DISABLE_JIT=1`` the intrinsics cannot run; the wrapper then
trains on one thread, and ``barrier`` with one thread touches no atomic.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["SPINS", "abort", "barrier"]

#: Spins (with the pause hint) before a waiting thread starts yielding.
SPINS = 20000
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _element_pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index])


@intrinsic
def atomic_load(typingctx, array, index):
    """``array[index]`` (int64), read with acquire ordering."""
    sig = types.int64(array, index)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], *args)
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """``array[index] = value`` (int64), with release ordering."""
    sig = types.void(array, index, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def atomic_add(typingctx, array, index, value):
    """``array[index] += value`` (int64), atomically; returns the new value."""
    sig = types.int64(array, index, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        old = builder.atomic_rmw("add", ptr, value, "acq_rel")
        return builder.add(old, value)

    return sig, codegen


def _call(builder, name, returns):
    """Emit a call of the argument-less function ``name``."""
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(returns, []), name
    )
    builder.call(fn, [])


@intrinsic
def spin_pause(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``; nothing elsewhere)."""

    def codegen(context, builder, signature, args):
        if _X86:
            _call(builder, "llvm.x86.sse2.pause", ir.VoidType())
        return context.get_dummy_value()

    return types.void(), codegen


_POSIX = platform.system() != "Windows"


@intrinsic
def yield_core(typingctx):
    """Give the core to another runnable thread (POSIX ``sched_yield``, a
    symbol of the C library numba's JIT links against; the spin hint
    elsewhere)."""

    def codegen(context, builder, signature, args):
        if _POSIX:
            _call(builder, "sched_yield", ir.IntType(32))
        elif _X86:  # pragma: no cover
            _call(builder, "llvm.x86.sse2.pause", ir.VoidType())
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, nogil=True)
def barrier(sync, n_threads):
    """Wait until ``n_threads`` threads have called it; 0, or -1 if aborted."""
    if n_threads <= 1:
        return 0
    gen = atomic_load(sync, 1)
    if atomic_add(sync, 0, 1) == n_threads:
        # Last to arrive: reset the count before releasing the others, who
        # cannot arrive at the next barrier before they see the new gen.
        atomic_store(sync, 0, 0)
        atomic_store(sync, 1, gen + 1)
        return -1 if atomic_load(sync, 2) else 0
    spins = 0
    while atomic_load(sync, 1) == gen:
        if atomic_load(sync, 2):
            return -1
        if spins < SPINS:
            spins += 1
            spin_pause()
        else:
            yield_core()
    return -1 if atomic_load(sync, 2) else 0


@njit(cache=True, nogil=True)
def abort(sync):
    """Set the abort flag: the other threads leave at their next barrier."""
    atomic_store(sync, 2, 1)
