"""Philox4x32-10 and dropout masks in numba; the contract is ``fastnn._philox``.

Bit for bit the masks of ``fastnn._philox.dropout_keep`` (NumPy, the
definition) and of ``_philox.h`` (C). Every integer here is ``np.uint64``, the
32-bit words kept in range by masks: numba types a mix of signed and unsigned
64-bit integers as float64, which would silently lose bits. The arguments are
not checked (the caller does, as for every kernel). No ``fastmath``: there is
no floating point, and nothing to gain.

``dropout_keep_span`` generates one Philox block per group of four consecutive
flat indices that it touches, as the C does, not one per element.
Everything also runs undecorated (``NUMBA_DISABLE_JIT=1``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True}

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U32 = np.uint64(32)


@njit(**_JIT)
def _block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 values < 2**32; returns four such uint64."""
    for round_ in range(10):
        if round_ > 0:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        p0 = _M0 * c0  # < 2**64: no wrap-around
        p1 = _M1 * c2
        n0 = (p1 >> _U32) ^ c1 ^ k0
        n2 = (p0 >> _U32) ^ c3 ^ k1
        c1 = p1 & _MASK32
        c3 = p0 & _MASK32
        c0 = n0
        c2 = n2
    return c0, c1, c2, c3


@njit(**_JIT)
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0, c1, c2, c3)`` under key ``(k0, k1)``
    (each an integer in [0, 2**32)); returns a 4-tuple of ``np.uint32``."""
    w0, w1, w2, w3 = _block(
        np.uint64(c0) & _MASK32,
        np.uint64(c1) & _MASK32,
        np.uint64(c2) & _MASK32,
        np.uint64(c3) & _MASK32,
        np.uint64(k0) & _MASK32,
        np.uint64(k1) & _MASK32,
    )
    return np.uint32(w0), np.uint32(w1), np.uint32(w2), np.uint32(w3)


@njit(**_JIT)
def dropout_keep_span(
    seed, step, layer, row_offset, rows, n_out, c0, c1, threshold, keep
):
    """Write ``keep[r, c]`` (uint8, shape ``(rows, n_out)``) for every row and
    only the columns ``c0 <= c < c1``: ``fastnn._philox.dropout_keep``'s mask.

    ``seed`` is an ``np.uint64`` (or an int < 2**63); ``step``, ``row_offset``
    >= 0; ``0 <= c0 <= c1 <= n_out``; ``0 <= threshold < 2**32``."""
    s = np.uint64(seed)
    k0 = s & _MASK32
    k1 = s >> _U32
    t = np.uint64(step)
    t0 = t & _MASK32
    t1 = t >> _U32
    lay = np.uint64(layer) & _MASK32
    thr = np.uint64(threshold)
    width = np.uint64(n_out)
    for r in range(rows):
        base = (np.uint64(row_offset) + np.uint64(r)) * width
        if thr == _U0:  # nothing dropped: no words needed
            for c in range(c0, c1):
                keep[r, c] = 1
            continue
        c = c0
        while c < c1:
            e = base + np.uint64(c)
            j = np.int64(e & _U3)
            w0, w1, w2, w3 = _block((e >> _U2) & _MASK32, lay, t0, t1, k0, k1)
            stop = min(c + 4 - j, c1)
            for cc in range(c, stop):
                jj = j + (cc - c)
                if jj == 0:
                    w = w0
                elif jj == 1:
                    w = w1
                elif jj == 2:
                    w = w2
                else:
                    w = w3
                keep[r, cc] = 1 if w >= thr else 0
            c = stop
