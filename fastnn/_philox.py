"""Dropout masks from a counter-based random generator (Philox4x32-10), in NumPy.

A dropout mask must not depend on the backend, the batch split or the thread
count, so it is not drawn from a stateful generator: every element's random
word is a pure function of (seed, step, layer, element). This module is the
definition; ``fastnn._kernels._numba_philox`` (numba) and
``fastnn/_kernels/_philox.h`` (C, for the Cython kernels) compute bit for bit
the same masks, and are tested against it.

Generator
---------
Philox4x32-10 exactly as Random123 (Salmon, Moraes, Dror and Shaw, "Parallel
random numbers: as easy as 1, 2, 3", SC 2011) and cuRAND: a 128-bit counter
``ctr`` and a 64-bit ``key``, both as 32-bit words, give four 32-bit words after
ten rounds. A round is ``(hi0, lo0) = mulhilo32(0xD2511F53, ctr0)``,
``(hi1, lo1) = mulhilo32(0xCD9E8D57, ctr2)``, ``ctr = (hi1 ^ ctr1 ^ key0, lo1,
hi0 ^ ctr3 ^ key1, lo0)``; before every round but the first the key is bumped,
``key0 += 0x9E3779B9``, ``key1 += 0xBB67AE85`` (mod 2**32).

Mask contract
-------------
Inputs: ``seed`` (0 <= seed < 2**64), ``step`` (the global training step,
0 <= step < 2**63), ``layer`` (0 <= layer < 2**32), ``row_offset`` (>= 0, the
first row's index in the layer's full output), ``rows``, ``n_out`` and
``threshold`` (0 <= threshold < 2**32; ``threshold_for(rate)``).

Element ``(r, c)`` of the ``(rows, n_out)`` mask has flat index
``e = (row_offset + r) * n_out + c``; its random word is word ``e & 3`` of
``philox4x32_10(ctr=(e >> 2 mod 2**32, layer, step mod 2**32, step >> 32),
key=(seed mod 2**32, seed >> 32))``, and ``keep[r, c] = 1`` (uint8) iff
``word >= threshold``: the element is dropped with probability
``threshold / 2**32``, and threshold 0 drops nothing. One Philox block serves
four consecutive elements. Masks repeat after 2**34 elements of one layer and
step, far beyond any layer output.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["philox4x32_10", "threshold_for", "dropout_keep"]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)

_U32 = 2**32
_U64 = 2**64
_I64 = 2**63


def philox4x32_10(counters, key) -> np.ndarray:
    """Philox4x32-10 of each row of ``counters`` (uint32, shape ``(n, 4)``)
    under ``key`` (uint32, shape ``(2,)``); returns uint32 of shape ``(n, 4)``."""
    counters = np.asarray(counters)
    key = np.asarray(key)
    if counters.dtype != np.uint32 or counters.ndim != 2 or counters.shape[1] != 4:
        raise ValueError(
            "counters: expected a uint32 array of shape (n, 4); received an "
            f"array of shape {counters.shape} and dtype {counters.dtype}"
        )
    if key.dtype != np.uint32 or key.shape != (2,):
        raise ValueError(
            "key: expected a uint32 array of shape (2,); received an array of "
            f"shape {key.shape} and dtype {key.dtype}"
        )
    c = counters.astype(np.uint64)
    c0, c1, c2, c3 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for round_ in range(10):
        if round_:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        p0 = _M0 * c0  # < 2**64: no wrap-around
        p1 = _M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> _32) ^ c1 ^ k0,
            p1 & _MASK32,
            (p0 >> _32) ^ c3 ^ k1,
            p0 & _MASK32,
        )
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def threshold_for(rate) -> int:
    """The threshold that drops each element with probability ``rate``:
    ``min(int(rate * 2**32), 2**32 - 1)`` for ``0 <= rate < 1`` (exact: the
    product of a float64 and a power of two is exact); rate 0 gives 0."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"rate: expected a float in [0, 1); received {rate!r}")
    value = float(rate)
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise ValueError(f"rate: expected a float in [0, 1); received {rate!r}")
    return min(int(value * _U32), _U32 - 1)


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    expected = f"an int >= {low}" if high is None else f"an int in [{low}, {high})"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {expected}; received {value!r}")
    value = int(value)
    if value < low or (high is not None and value >= high):
        raise ValueError(f"{name}: expected {expected}; received {value!r}")
    return value


def dropout_keep(seed, step, layer, row_offset, rows, n_out, threshold) -> np.ndarray:
    """The ``(rows, n_out)`` uint8 keep mask of the module's contract: rows
    ``row_offset .. row_offset + rows - 1`` of layer ``layer``'s mask at
    training step ``step``."""
    seed = _check_int(seed, "seed", 0, _U64)
    step = _check_int(step, "step", 0, _I64)
    layer = _check_int(layer, "layer", 0, _U32)
    row_offset = _check_int(row_offset, "row_offset", 0, _I64)
    rows = _check_int(rows, "rows", 0, _I64)
    n_out = _check_int(n_out, "n_out", 0, _I64)
    threshold = _check_int(threshold, "threshold", 0, _U32)
    if (row_offset + rows) * n_out >= _I64:
        raise ValueError(
            "row_offset, rows, n_out: expected (row_offset + rows) * n_out < 2**63; "
            f"received ({row_offset} + {rows}) * {n_out}"
        )
    if threshold == 0 or rows == 0 or n_out == 0:
        return np.ones((rows, n_out), np.uint8)
    first = row_offset * n_out  # flat index of element (0, 0)
    size = rows * n_out
    b0, b1 = first >> 2, (first + size - 1) >> 2  # the blocks covering them
    counters = np.empty((b1 - b0 + 1, 4), np.uint32)
    counters[:, 0] = (np.arange(b0, b1 + 1, dtype=np.uint64) & _MASK32).astype(
        np.uint32
    )
    counters[:, 1] = layer
    counters[:, 2] = step & 0xFFFFFFFF
    counters[:, 3] = step >> 32
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint32)
    words = philox4x32_10(counters, key).reshape(-1)
    start = first - 4 * b0
    words = words[start : start + size].reshape(rows, n_out)
    return (words >= np.uint32(threshold)).astype(np.uint8)
