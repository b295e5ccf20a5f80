"""The numba Philox as plain Python (run with ``NUMBA_DISABLE_JIT=1``): the
known answer, and masks written span by span equal to the NumPy version's, with
no overflow warnings from NumPy scalars.

Run by ``contract/test_philox.py``; prints "pure python ok".
"""

import warnings

import numpy as np

warnings.simplefilter("error")  # no overflow warnings from NumPy scalars
from fastnn import _philox  # noqa: E402
from fastnn._kernels import _numba_philox as nbp  # noqa: E402

assert nbp.philox4x32_10(0, 0, 0, 0, 0, 0) == (
    0x6627E8D5,
    0xE169C58D,
    0xBC57AC4C,
    0x9B00DBD8,
)
args = (2**64 - 1, 2**32 + 7, 5, 2**34 + 1, 3, 11, _philox.threshold_for(0.3))
keep = np.full((3, 11), 7, np.uint8)
for c0, c1 in [(0, 5), (5, 11)]:
    nbp.dropout_keep_span(np.uint64(args[0]), *args[1:6], c0, c1, args[6], keep)
np.testing.assert_array_equal(keep, _philox.dropout_keep(*args))
print("pure python ok")
