"""The numba backend's float32 products on fastnn's own GEMM (``_numba_gemm``).

The own kernels are the cython backend's (``_sgemm.h``), reached from numba's
compiled loops through a C symbol; these tests hold the three products to
NumPy, check that a product the kernels cannot take safely falls back to BLAS
(never a write past an array), and that ``gemm_policy`` and ``auto`` choose as
documented. The loops themselves on either path are held to the reference in
``test_split_threads.py`` (``test_numba_fused_steps_on_every_gemm_path``).
"""

from __future__ import annotations

import numpy as np
import pytest
from support.backends import load_backend_or_skip, skip_without_own_kernels

SHAPES = [(64, 392, 512), (7, 13, 29), (1, 784, 10), (200, 100, 256)]


@pytest.fixture
def ng():
    load_backend_or_skip("numba")
    load_backend_or_skip("cython")  # the kernels come with its build
    skip_without_own_kernels()
    from fastnn._kernels import _numba_gemm

    assert _numba_gemm.available()
    _numba_gemm.own_count(reset=True)
    return _numba_gemm


def _work(ng, *dims):
    return np.empty(ng.work_bytes(max(dims)), np.uint8)


def _matrices(rng, m, k, n, dtype=np.float32):
    return (
        rng.standard_normal((m, k)).astype(dtype),
        rng.standard_normal((k, n)).astype(dtype),
    )


def _bound(k):
    """float32 error bound of a k-term sum of products of standard normals
    (a few units of k * eps, times the terms' size)."""
    return 8 * k * np.finfo(np.float32).eps * np.sqrt(k)


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
def test_the_three_products_match_numpy(ng, m, k, n):
    rng = np.random.default_rng(m * k + n)
    A, B = _matrices(rng, m, k, n)
    work = _work(ng, m, k, n)
    C = np.full((m, n), np.nan, np.float32)
    ng.gemm_nn(A, B, C, work)
    np.testing.assert_allclose(C, A @ B, rtol=0, atol=_bound(k))
    At = np.ascontiguousarray(A.T)  # (k, m): C = At.T @ B
    C[:] = np.nan
    ng.gemm_tn(At, B, C, work)
    np.testing.assert_allclose(C, A @ B, rtol=0, atol=_bound(k))
    Bt = np.ascontiguousarray(B.T)  # (n, k): C = A @ Bt.T
    C[:] = np.nan
    ng.gemm_nt(A, Bt, C, work)
    np.testing.assert_allclose(C, A @ B, rtol=0, atol=_bound(k))
    assert ng.own_count(reset=True) == 3


def test_views_with_a_row_stride_run_on_the_own_kernels(ng):
    """Column slices of wider arrays (rows contiguous, a leading dimension
    above the width)."""
    rng = np.random.default_rng(5)
    big_a, big_b = _matrices(rng, 40, 70, 90)
    A, B = big_a[:, 10:50], big_b[10:50, 5:60]
    C = np.zeros((40, 55), np.float32)
    ng.gemm_nn(A, B, C, _work(ng, 40, 70, 90))
    np.testing.assert_allclose(C, A @ B, rtol=0, atol=_bound(40))
    assert ng.own_count(reset=True) == 1


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")
def test_what_the_own_kernels_cannot_take_goes_to_blas(ng):
    """No work space, one too small, float64 or rows not contiguous: the
    product still comes out right, from BLAS, and the own kernels never ran."""
    rng = np.random.default_rng(6)
    A, B = _matrices(rng, 64, 100, 50)
    expected = A @ B
    work = _work(ng, 64, 100, 50)
    for a, b, w in [
        (A, B, np.empty(0, np.uint8)),
        (A, B, work[:64]),  # smaller than the product needs
        (A[:, ::2], B[::2], work),  # rows not contiguous
    ]:
        C = np.empty((64, 50), np.float32)
        ng.gemm_nn(np.ascontiguousarray(a) if a.strides[1] == 4 else a, b, C, w)
        np.testing.assert_allclose(C, a @ b, rtol=1e-5, atol=1e-4)
    C = np.empty((64, 50))
    ng.gemm_nn(A.astype(np.float64), B.astype(np.float64), C, work)
    np.testing.assert_allclose(C, expected, rtol=1e-5, atol=1e-4)
    assert ng.own_count(reset=True) == 0


def test_mismatched_shapes_are_refused_not_written(ng):
    """Shapes that do not fit never reach the C code: BLAS's own check
    (numba's np.dot) raises, and the output is untouched beyond its size."""
    rng = np.random.default_rng(7)
    A, B = _matrices(rng, 8, 16, 32)
    buffer = np.zeros(8 * 40, np.float32)
    C = buffer[: 8 * 31].reshape(8, 31)  # one column short
    with pytest.raises(ValueError):
        ng.gemm_nn(A, B, C, _work(ng, 8, 16, 40))
    assert not buffer[8 * 31 :].any()
    assert ng.own_count(reset=True) == 0


@pytest.fixture
def nb():
    nb = load_backend_or_skip("numba")
    yield nb
    nb.gemm_policy("auto")


def test_gemm_policy_refuses_unknown_names(nb):
    with pytest.raises(ValueError, match="policy: expected one of 'auto', 'own'"):
        nb.gemm_policy("fast")
    assert nb.gemm_policy() == "auto"


def test_own_policy_needs_the_kernels(nb, monkeypatch):
    monkeypatch.setattr(nb._ng, "available", lambda: False)
    with pytest.raises(RuntimeError, match="policy: 'own' needs fastnn's own GEMM"):
        nb.gemm_policy("own")
    assert nb.gemm_policy() == "auto"
    # and with no kernels, every policy trains on BLAS: no work space
    layout = np.array([[4, 8, 0, 32, 1], [8, 2, 40, 56, 0]])
    assert nb._gemm_work(layout, 16, np.float32, one_thread=True).size == 0


@pytest.mark.parametrize(
    ("policy", "beats", "one_thread", "dtype", "own"),
    [
        ("auto", True, True, np.float32, True),
        ("auto", False, True, np.float32, False),  # BLAS wins on this machine
        ("auto", True, False, np.float32, False),  # BLAS on its threads
        ("auto", True, True, np.float64, False),  # float32 kernels only
        ("own", False, False, np.float32, True),
        ("own", True, True, np.float64, False),
        ("blas", True, True, np.float32, False),
    ],
)
def test_the_work_space_follows_the_policy_and_the_rule(
    nb, monkeypatch, policy, beats, one_thread, dtype, own
):
    """``auto`` gives the loops the own kernels (a work space) where each
    product runs on one thread and the cython backend's rule or measurement
    says they beat BLAS; the work space covers every product of the call."""
    skip_without_own_kernels()
    load_backend_or_skip("cython")
    monkeypatch.setattr(nb, "_own_gemm_beats_blas", lambda: beats)
    nb.gemm_policy(policy)
    layout = np.array([[784, 512, 0, 0, 1], [512, 10, 0, 0, 0]])
    work = nb._gemm_work(layout, 64, dtype, one_thread=one_thread)
    if own:
        need = max(
            nb._ng._gemm.work_bytes(ta, tb, m, n, k)
            for ta, tb in ((0, 0), (0, 1), (1, 0))
            for m in (64, 512, 784)
            for n in (10, 64, 512, 784)
            for k in (64, 512, 784)
        )
        assert work.dtype == np.uint8 and work.size >= need
    else:
        assert work.size == 0


def test_auto_follows_the_cython_backends_rule(nb, monkeypatch):
    cy = load_backend_or_skip("cython")
    for beats in (True, False):
        monkeypatch.setattr(cy, "own_gemm_beats_blas", lambda b=beats: b)
        assert nb._own_gemm_beats_blas() is beats


def test_backends_says_which_gemm_numba_trains_on(nb, monkeypatch):
    """``fastnn backends``'s line for numba follows the kernels, the policy
    and the cython backend's rule."""
    monkeypatch.setattr(nb, "_own_gemm_beats_blas", lambda: True)
    monkeypatch.setattr(nb._ng, "available", lambda: True)
    assert nb.describe().startswith("float32 GEMM in fit: fastnn's own AVX2 kernels")
    monkeypatch.setattr(nb, "_own_gemm_beats_blas", lambda: False)
    assert nb.describe().startswith("float32 GEMM in fit: BLAS (the cython backend")
    nb.gemm_policy("blas")
    assert nb.describe() == "float32 GEMM in fit: forced 'blas'"
    monkeypatch.setattr(nb._ng, "available", lambda: False)
    assert "need an AVX2 and FMA CPU and the cython backend's build" in nb.describe()


def test_numba_trains_on_blas_where_the_extensions_cannot_load():
    """Without the cython build the kernels link to a stub symbol, never call
    it, and train on BLAS (in a fresh interpreter: the symbol is registered
    at import)."""
    load_backend_or_skip("numba")
    from support.child import run_child

    out = run_child("numba_without_cython")
    assert out["cython"] is not None and "not available" in out["cython"]
    assert out["available"] is False and out["own_runs"] == 0
    assert len(out["loss"]) == 2 and all(np.isfinite(out["loss"]))
    assert out["loss"][1] < out["loss"][0]


def test_a_cpu_without_avx2_trains_on_blas(ng, monkeypatch):
    """The C entry forced to decline, as on a CPU without AVX2 and FMA: a
    product handed a work space still comes out right, from BLAS, and a
    whole numba fit under the ``own`` policy matches BLAS's."""
    import fastnn

    nb = load_backend_or_skip("numba")
    rng = np.random.default_rng(8)
    A, B = _matrices(rng, 64, 100, 50)
    x = rng.random((256, 40), dtype=np.float32)
    y = rng.integers(0, 10, 256)

    def fit():
        model = fastnn.Sequential(
            [
                fastnn.Dense(32, activation="relu"),
                fastnn.Dense(10, activation="softmax"),
            ],
            input_dim=40,
            backend="numba",
            seed=0,
        )
        model.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
        return model.params.copy()

    try:
        nb.gemm_policy("blas")
        on_blas = fit()
        nb.gemm_policy("own")  # while the kernels can run
        assert ng._gemm._cpu_fallback(True) is False
        with pytest.raises(RuntimeError, match="'own' needs fastnn's own GEMM"):
            nb.gemm_policy("own")  # now they cannot: refused, nothing changed
        assert nb.gemm_policy() == "own"
        C = np.empty((64, 50), np.float32)
        ng.gemm_nn(A, B, C, _work(ng, 64, 100, 50))
        np.testing.assert_allclose(C, A @ B, rtol=1e-5, atol=1e-4)
        declined = fit()
        assert ng.own_count(reset=True) == 0
    finally:
        ng._gemm._cpu_fallback(False)
        nb.gemm_policy("auto")
    assert ng.available()
    np.testing.assert_array_equal(declined, on_blas)
