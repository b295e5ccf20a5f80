"""Checks that only the numba backend needs: compiled-code hygiene, the pure
Python fallback (``NUMBA_DISABLE_JIT=1``), float32 purity, and the error
raised when numba is missing. (Every backend called from several threads at
once: reliability/test_threads.py.)"""

from __future__ import annotations

import re

import numpy as np
import pytest
from support.backends import load_backend_or_skip
from support.child import ROOT, run_program
from support.nets import small_net, train_small_net


@pytest.fixture(scope="module")
def nb():
    return load_backend_or_skip("numba")


@pytest.fixture(scope="module")
def kernels(nb):
    from fastnn._kernels import _numba_kernels

    return _numba_kernels


# --------------------------------------------------------------------------- #
# Hygiene
# --------------------------------------------------------------------------- #
def test_fastmath_keeps_nan_and_inf_semantics(kernels):
    assert not {"nnan", "ninf", "fast"} & set(kernels.FASTMATH)
    for name in (
        "bias_activation",
        "activation_grad",
        "dense_forward",
        "dense_backward",
        "softmax_cross_entropy",
        "mean_squared_error",
        "update",
        "_step_range",
        "_adam",
        "_rmsprop",
        "_adagrad",
        "train_steps",
    ):
        options = getattr(kernels, name).targetoptions
        assert options["nogil"], name
        assert not options.get("parallel"), f"{name}: no parallel kernels"
        fastmath = set(options.get("fastmath", ()))
        assert not {"nnan", "ninf", "fast"} & fastmath, name
        assert getattr(kernels, name)._cache.__class__.__name__ != "NullCache", name


def test_float32_kernels_do_no_float64_arithmetic(kernels):
    """Fresh (uncached) float32 compilations: no double arithmetic, no fpext."""
    from numba import njit

    options = {k: v for k, v in kernels._JIT.items() if k != "cache"}
    exact = {k: v for k, v in kernels._JIT_EXACT.items() if k != "cache"}
    f32 = np.float32
    A = np.full((3, 4), 0.5, f32)
    b = np.ones(4, f32)
    p = np.ones(10, f32)
    cases = {
        "bias_activation": [(A.copy(), b, act) for act in range(5)],
        "activation_grad": [(A.copy(), A, act, A.copy(), b) for act in range(5)],
        "_update_layer": [
            (p, p.copy(), p.copy(), f32(0.1), f32(0.9), True, f32(0.1), True)
        ],
        "_adam": [
            (
                p,
                p.copy(),
                p.copy(),
                p.copy(),
                p.copy(),
                ams,
                True,
                coupled,
                *[f32(0.5)] * 8,
            )  # fmt: skip
            for ams in (False, True)
            for coupled in (False, True)
        ],
        "_rmsprop": [
            (
                p,
                p.copy(),
                p.copy(),
                p.copy(),
                p.copy(),
                True,
                True,
                True,
                *[f32(0.5)] * 6,
            )  # fmt: skip
        ],
        "_adagrad": [(p, p.copy(), p.copy(), True, f32(0.1), f32(1e-7), f32(0.1))],
    }
    for name, calls in cases.items():
        jit = exact if name in ("_adam", "_rmsprop", "_adagrad") else options
        fresh = njit(**jit)(getattr(kernels, name).py_func)
        for args in calls:
            fresh(*args)
        for ir in fresh.inspect_llvm().values():
            promoted = re.findall(
                r"= (?:fadd|fsub|fmul|fdiv)[^\n]* double [^\n]*"
                r"|= fpext float[^\n]*",
                ir,
            )
            assert not promoted, f"{name}: float64 arithmetic {promoted[:2]}"


def test_float32_stays_float32(nb):
    X, labels, order, params, layout, spans = small_net(np.float32)
    W = params[:30].reshape(6, 5)
    A = nb.dense_forward(X, W, params[30:35], 1, np.empty((20, 5), np.float32))
    assert A.dtype == np.float32
    done, p, losses = train_small_net(nb, X, labels, order, params, layout, spans)
    assert done == 3 and p.dtype == np.float32
    # Every float argument of the float32 train_steps is float32, except the
    # float64 hyper-parameters (14), step scalars (15) and losses_out (20).
    for sig in nb._k.train_steps.nopython_signatures:
        if str(sig.args[7].dtype) != "float32":
            continue
        for i, t in enumerate(sig.args):
            name = str(getattr(t, "dtype", t))
            if i not in (14, 15, 20) and name.startswith("float"):
                assert name == "float32", (i, t)


# --------------------------------------------------------------------------- #
# The pure-Python fallback
# --------------------------------------------------------------------------- #
def test_runs_with_jit_disabled(nb):
    run = run_program(
        "numba_without_jit", env={"NUMBA_DISABLE_JIT": "1"}, cwd=ROOT, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "pure python ok" in run.stdout


# --------------------------------------------------------------------------- #
# numba missing
# --------------------------------------------------------------------------- #
def test_missing_numba_raises_a_clear_import_error():
    run = run_program("numba_missing", cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "clear error ok" in run.stdout


@pytest.mark.parametrize("small", [True, False])
def test_small_steps_run_with_blas_at_one_thread(nb, monkeypatch, small):
    """Below ``SMALL_STEP_FLOPS`` a step's products are too small for BLAS's
    threads: the call holds BLAS at one thread (the holder the cython backend
    shares) and lets go after; larger steps keep BLAS's threads. Observed
    from inside the call."""
    import fastnn
    from fastnn._kernels import _blas_threads

    held, real = [], nb._k

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def train_steps(self, *args):
            held.append(_blas_threads.BLAS_AT_ONE_THREAD._active)
            limits = [
                lib.num_threads for lib in _blas_threads.BLAS_AT_ONE_THREAD.libs()
            ]
            held.append(max(limits, default=1))
            return real.train_steps(*args)

    monkeypatch.setattr(nb, "_k", Spy())
    monkeypatch.setattr(nb, "SMALL_STEP_FLOPS", 1e18 if small else 0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = fastnn.Sequential(
        [fastnn.Dense(4, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=8,
        backend="numba",
        seed=0,
    )
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert held[0] == (1 if small else 0), held
    if small:
        assert held[1] == 1, held
    assert _blas_threads.BLAS_AT_ONE_THREAD._active == 0  # let go after the call


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_feature_skip_finds_the_columns(kernels, dtype):
    """The input layer's skip: the columns not zero throughout first, then the
    others; -1 where fewer than an eighth are zero, where all are, or where a
    skipped feature's weight is not finite (0 * inf must stay NaN)."""
    X = np.zeros((3, 16), dtype)
    X[0, [1, 4]] = 1.0
    X[2, [4, 9]] = -2.0  # a negative value counts, as does -0.0 not
    X[1, 11] = -0.0
    W = np.ones((16, 5), dtype)
    peak = np.empty(16, dtype)
    cols = np.full(16, -7, np.int64)
    assert kernels._nonzero_columns(X, W, peak, cols) == 3
    assert cols[:3].tolist() == [1, 4, 9]
    assert sorted(cols[3:].tolist()) == sorted(set(range(16)) - {1, 4, 9})
    W[11, 2] = np.inf  # a skipped feature's weight
    assert kernels._nonzero_columns(X, W, peak, cols) == -1
    W[11, 2] = 1.0
    W[4, 0] = np.nan  # a kept feature's: the product sees it anyway
    assert kernels._nonzero_columns(X, W, peak, cols) == 3
    X[:, :15] = 1.0  # one in 16 zero: not worth the gathers
    assert kernels._nonzero_columns(X, W, peak, cols) == -1
    assert kernels._nonzero_columns(np.zeros((3, 16), dtype), W, peak, cols) == -1


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_all_finite_sees_nan_and_inf(kernels, bad):
    """The check before dW's product skips features: it must see every
    non-finite dZ (fastmath keeps NaN and inf semantics)."""
    dZ = np.ones((7, 9), np.float32)
    assert kernels._all_finite(dZ)
    dZ[6, 8] = bad
    assert not kernels._all_finite(dZ)
    assert kernels._all_finite(np.full((2, 3), np.finfo(np.float64).max))
