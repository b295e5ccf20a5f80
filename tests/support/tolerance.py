"""The tolerances every equivalence test uses, each with its derivation.

Two kinds of comparison:

* **One kernel call** (``assert_close``, elementwise): ``TOLERANCE`` below. A
  float32 kernel's outputs are dot products of up to a few hundred terms and
  elementwise functions of them; backends differ in summation order (BLAS
  blocking, FMA) only. Measured (Intel Xeon, AVX-512; the equivalence suite):
  the largest float32 error uses 17% of ``rtol=1e-4, atol=1e-5`` (dW of a
  784-input layer), every other under 5%; float64 errors are below 1e-14.
  Tests with scaled inputs scale the tolerance by the same factor.

* **Several training steps** (``assert_steps_close``, normwise): rounding
  errors of every step feed the next (through the weights and the momentum),
  and an element near zero (a velocity that nearly cancelled) has no
  elementwise relative accuracy to speak of, so the bound is on the largest
  difference relative to the array's largest value, in units of the dtype's
  machine epsilon:

      max|got - want| <= ulps * eps * max|want|

  - ``FUSED_ULPS = 32``: a fused ``train_steps`` against the reference or the
    composed path, or two backends, over up to 12 steps of batches of 8-64 on
    nets up to 784 inputs wide. Same dot products, other summation orders.
    Measured: at most 4 eps (float32 and float64); so an 8x margin. In
    float32 that is 3.8e-6 relative. The bugs ``contract/test_mutations.py``
    plants (7 float32 steps, momentum 0.9, decay 1e-3) move the results much more:
    a learning rate 1% off by at least 4,025 eps (params, MSE), weight decay
    on the biases by at least 961 eps (losses, cross-entropy) and 1,537 eps
    (params), a transposed GEMM operand or a dropped last batch by 58,000
    eps and more. The previous bound, the one-call tolerance times 100
    (rtol 1e-2, atol 1e-3), let the decay bug and the MSE learning-rate bug
    through.
  - ``SPLIT_ULPS = 128``: the step split over T threads against one thread or
    the reference (``kernels/test_split_threads.py``), and the hypothesis
    sweeps over random shapes. The split adds the forward sums of 784 terms in T shares,
    another order again. Measured: at most 37 eps (float32), 52 eps
    (float64); so a 2.5-3.5x margin (1.5e-5 relative in float32).
"""

from __future__ import annotations

import numpy as np

TOLERANCE = {
    np.dtype("float32"): {"rtol": 1e-4, "atol": 1e-5},
    np.dtype("float64"): {"rtol": 1e-10, "atol": 1e-12},
}
FUSED_ULPS = 32
SPLIT_ULPS = 128


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


def assert_steps_close(actual, desired, dtype, err_msg="", ulps=FUSED_ULPS):
    """``max|actual - desired| <= ulps * eps(dtype) * max|desired|``, and the
    same non-finite entries (see the module docstring for ``ulps``)."""
    actual = np.asarray(actual, np.float64)
    desired = np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, (err_msg, actual.shape, desired.shape)
    finite = np.isfinite(desired)
    np.testing.assert_array_equal(np.isfinite(actual), finite, err_msg=err_msg)
    np.testing.assert_array_equal(actual[~finite], desired[~finite], err_msg=err_msg)
    if not finite.any():
        return
    eps = float(np.finfo(np.dtype(dtype)).eps)
    bound = ulps * eps * float(np.max(np.abs(desired[finite])))
    error = float(np.max(np.abs(actual[finite] - desired[finite])))
    assert error <= bound, (
        f"{err_msg}: max |difference| {error:.3g} exceeds {ulps} eps x "
        f"max |desired| = {bound:.3g} ({error / max(bound, 1e-300) * ulps:.1f} eps)"
    )


def assert_training_matches(got, want, dtype, err_msg="", ulps=FUSED_ULPS):
    """Two ``run_train_steps`` results: the same number of steps done, and
    params, velocity and losses within ``ulps`` (the module docstring)."""
    assert got[0] == want[0], (err_msg, got[0], want[0])
    for name, a, e in zip(
        ("params", "velocity", "losses"), got[1:], want[1:], strict=True
    ):
        assert_steps_close(a, e, dtype, err_msg=f"{err_msg} {name}".strip(), ulps=ulps)
