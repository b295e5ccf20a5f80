"""The one tolerance table every equivalence test uses."""

from __future__ import annotations

import numpy as np

TOLERANCE = {
    np.dtype("float32"): {"rtol": 1e-4, "atol": 1e-5},
    np.dtype("float64"): {"rtol": 1e-10, "atol": 1e-12},
}


def tol(dtype) -> dict:
    return TOLERANCE[np.dtype(dtype)]


def assert_close(actual, desired, dtype=None, err_msg="", scale=1.0):
    """``assert_allclose`` with the tolerance for ``dtype``, times ``scale``."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    t = tol(dtype if dtype is not None else desired.dtype)
    np.testing.assert_allclose(
        actual,
        desired,
        rtol=t["rtol"] * scale,
        atol=t["atol"] * scale,
        err_msg=err_msg,
    )
