"""The Cython SGD update's C core (_sgd_core.h): its AVX2 copy, chosen at run
time, gives bitwise the results of the baseline (SSE2) copy. (Every optimizer
against the reference, and overlapping buffers, which take the copy without
``restrict``: contract/test_equivalence.py::test_update and
::test_update_with_params_that_are_the_grads.)"""

from __future__ import annotations

import os

import fastnn.reference as ref
import numpy as np
import pytest
from support.backends import load_backend_or_skip
from support.contract import legacy_update
from support.tolerance import assert_close

import fastnn


@pytest.fixture
def sgd_ext():
    load_backend_or_skip("cython")
    from fastnn._kernels import _update

    before = _update._use_avx2()
    yield _update
    _update._use_avx2(before)


@pytest.fixture
def both_copies(sgd_ext):
    """Run a function with the AVX2 copy and with the baseline copy."""
    if not sgd_ext._use_avx2(True):
        why = "this CPU has no AVX2: only the baseline copy runs"
        if os.environ.get("CI"):  # CI's machines all have AVX2
            pytest.fail(f"{why}; CI's machines have AVX2, this one does not")
        pytest.skip(why)

    def run(fn):
        out = []
        for on in (True, False):
            assert sgd_ext._use_avx2(on) is on
            out.append(fn())
        return out

    return run


# Lengths around the 8-entry vectors and the 512-entry blocks.
SIZES = [1, 7, 8, 9, 511, 512, 513, 1500, 4099]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_avx2_and_baseline_copies_agree_bitwise(
    both_copies, dtype, size, momentum, nesterov, weight_decay
):
    from fastnn._kernels import cython_backend

    rng = np.random.default_rng(size)
    params0 = rng.standard_normal(size).astype(dtype)
    grads0 = rng.standard_normal(size).astype(dtype)
    velocity0 = rng.standard_normal(size).astype(dtype)
    spans = np.array([[0, size // 3], [size // 2, size]], np.int64)

    def step():
        bufs = params0.copy(), grads0.copy(), velocity0.copy()
        sq = legacy_update(cython_backend)(
            *bufs, 0.05, momentum, nesterov, weight_decay, spans
        )
        return sq, bufs

    (sq_avx, avx), (sq_base, base) = both_copies(step)
    assert sq_avx == sq_base
    for a, b in zip(avx, base, strict=True):
        np.testing.assert_array_equal(a, b)
    # And both are the reference's (params and velocity: grads is scratch).
    bufs = params0.copy(), grads0.copy(), velocity0.copy()
    sq_ref = legacy_update(ref)(*bufs, 0.05, momentum, nesterov, weight_decay, spans)
    assert_close(sq_base, sq_ref, dtype)
    for i in (0, 2):
        assert_close(base[i], bufs[i], dtype)


def test_training_is_bitwise_the_same_with_either_copy(both_copies, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 20)).astype(dtype)
    y = rng.integers(0, 3, 96)

    def fit():
        model = fastnn.Sequential(
            [
                fastnn.Dense(33, activation="relu"),
                fastnn.Dense(3, activation="softmax"),
            ],
            input_dim=20,
            optimizer=fastnn.SGD(0.05, momentum=0.9, weight_decay=1e-3),
            dtype=dtype,
            backend="cython",
            seed=1,
        )
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return history.history["loss"], model.get_weights()

    (loss_avx, w_avx), (loss_base, w_base) = both_copies(fit)
    assert loss_avx == loss_base
    for a, b in zip(w_avx, w_base, strict=True):
        np.testing.assert_array_equal(a, b)
