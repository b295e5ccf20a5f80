"""fastnn's own float32 GEMM (fastnn/_kernels/_sgemm.h) against NumPy.

The kernels run every float32 product of the cython backend on CPUs with AVX2
and FMA, so they are checked here directly, at the shapes that reach each code
path (register-block edges, masked column tails, the K and M blocking) and
with strided operands (the training loop passes column slices of larger
arrays), and the BLAS fallback is checked the same way.
"""

import numpy as np
import pytest
from support.backends import (
    load_backend_or_skip,
    own_kernels_can_run,
    skip_unless_blas_threads,
    skip_without_own_kernels,
)
from support.contract import run_train_steps
from support.nets import make_net, sparse_inputs
from support.tolerance import assert_steps_close, assert_training_matches


@pytest.fixture
def cy():
    return load_backend_or_skip("cython")


@pytest.fixture(params=["own", "blas"])
def kernel(request, cy):
    """Run the test with every float32 product of the training loop forced
    onto fastnn's kernels, then onto BLAS (gemm_policy); after the test,
    check that the path named ran (the own kernels, if any product ran; BLAS
    keeps prediction under every policy) or did not, and restore ``auto``."""
    if request.param == "own":
        skip_without_own_kernels()
    assert cy.gemm_policy(request.param) == request.param
    cy.gemm_counts(reset=True)
    try:
        yield request.param
        ran = cy.gemm_counts()
        if request.param == "blas":
            assert ran["own"] == 0, ran
        elif any(ran.values()):
            assert ran["own"] > 0, ran
    finally:
        cy.gemm_policy("auto")


def test_own_sgemm_is_on_where_the_cpu_can_run_it(cy):
    # CI's machines have AVX2 and FMA: the kernels must be in use there by
    # default, not quietly replaced by BLAS.
    assert cy.own_sgemm() == own_kernels_can_run()
    assert cy.gemm_policy() == "auto"


def _padded(rng, rows, cols, pad):
    """A (rows, cols) float32 view into a NaN-padded array (row stride
    cols + pad), and the whole array."""
    whole = np.full((rows + 2, cols + pad + 2), np.nan, np.float32)
    view = whole[1 : rows + 1, 1 : cols + 1]
    view[...] = rng.standard_normal((rows, cols)).astype(np.float32)
    return view, whole


def _check(m, n, k, trans_a, trans_b, pad, seed=0):
    rng = np.random.default_rng(seed)
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    A, _ = _padded(rng, *a_shape, pad)
    B, _ = _padded(rng, *b_shape, pad)
    C, C_whole = _padded(rng, m, n, pad)
    outside = np.isnan(C_whole)
    from fastnn._kernels import _dense

    _dense._gemm(A, B, C, trans_a, trans_b)
    a64 = (A.T if trans_a else A).astype(np.float64)
    b64 = (B.T if trans_b else B).astype(np.float64)
    exact = a64 @ b64
    # The float32 error bound of a k-term dot product: k eps |a| |b|.
    bound = (k + 2) * np.finfo(np.float32).eps * (np.abs(a64) @ np.abs(b64))
    err = np.abs(C.astype(np.float64) - exact)
    assert np.all(err <= bound + 1e-30), (m, n, k, float((err - bound).max()))
    # Nothing written outside C (masked stores, tails, strided rows).
    assert np.array_equal(np.isnan(C_whole), outside)
    return C.copy()


FORMS = [(False, False), (False, True), (True, False)]
SHAPES = [
    (1, 1, 1),
    (2, 3, 5),
    (6, 16, 8),
    (7, 17, 9),
    (5, 15, 7),
    (13, 33, 31),
    (64, 10, 256),
    (64, 512, 392),
    (64, 256, 512),
    (392, 512, 64),
    (300, 40, 600),  # more than one block along M and K in every form
    (4, 3, 1030),
]


@pytest.mark.parametrize("trans_a,trans_b", FORMS, ids=["nn", "nt", "tn"])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_matches_numpy(kernel, m, n, k, trans_a, trans_b):
    _check(m, n, k, trans_a, trans_b, pad=3)


@pytest.mark.parametrize("trans_a,trans_b", FORMS, ids=["nn", "nt", "tn"])
def test_gemm_random_shapes(kernel, trans_a, trans_b):
    rng = np.random.default_rng(7)
    for i in range(40):
        m, n, k = rng.integers(1, 70, size=3)
        _check(
            int(m),
            int(n),
            int(k),
            trans_a,
            trans_b,
            pad=int(rng.integers(0, 5)),
            seed=i,
        )


@pytest.mark.parametrize("trans_a,trans_b", FORMS, ids=["nn", "nt", "tn"])
def test_gemm_is_deterministic(kernel, trans_a, trans_b):
    first = _check(70, 45, 300, trans_a, trans_b, pad=1, seed=3)
    again = _check(70, 45, 300, trans_a, trans_b, pad=1, seed=3)
    assert np.array_equal(first, again)


def test_gemm_empty_sum_is_zero(kernel, cy):
    A = np.ones((3, 0), np.float32)
    B = np.ones((0, 4), np.float32)
    C = np.full((3, 4), np.nan, np.float32)
    cy._dense._gemm(A, B, C, False, False)
    assert np.array_equal(C, np.zeros((3, 4), np.float32))


def test_gemm_refuses_mismatched_shapes(cy):
    _dense = cy._dense
    A = np.ones((3, 5), np.float32)
    B = np.ones((4, 2), np.float32)
    C = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="B: expected 5 rows"):
        _dense._gemm(A, B, C, False, False)
    with pytest.raises(ValueError, match=r"C: expected shape \(3, 2\)"):
        _dense._gemm(
            A, np.ones((5, 2), np.float32), np.zeros((2, 3), np.float32), False, False
        )


def test_switch_reaches_every_extension(cy):
    try:
        assert cy.gemm_policy("blas") == "blas"
        assert cy.own_sgemm() is False
        assert not cy._dense._own_sgemm()
        assert not cy._train._own_sgemm()
        assert cy.gemm_policy("auto") == "auto"
        assert cy.own_sgemm() == own_kernels_can_run()
        assert cy._train._own_sgemm() == own_kernels_can_run()
    finally:
        cy.gemm_policy("auto")


def test_gemm_policy_refuses_unknown_names(cy):
    with pytest.raises(ValueError, match="^policy: expected one of 'auto', 'own'"):
        cy.gemm_policy("fast")
    assert cy.gemm_policy() == "auto"


def test_gemm_counts_count_each_path(kernel, cy):
    """One product through the test hook moves the named path's count by
    one, and float64 always goes to dgemm."""
    from fastnn._kernels import _dense

    cy.gemm_counts(reset=True)
    A = np.ones((5, 7), np.float32)
    B = np.ones((7, 3), np.float32)
    _dense._gemm(A, B, np.empty((5, 3), np.float32), False, False)
    _dense._gemm(A.astype(np.float64), B.astype(np.float64),
                 np.empty((5, 3), np.float64), False, False)  # fmt: skip
    want = {"own": 0, "sgemm": 0, "dgemm": 1}
    want["own" if kernel == "own" else "sgemm"] = 1
    assert cy.gemm_counts(reset=True) == want
    assert cy.gemm_counts() == {"own": 0, "sgemm": 0, "dgemm": 0}


@pytest.mark.parametrize("threads", [1, 2])
def test_training_with_either_gemm_matches_the_reference(
    kernel, cy, threads, monkeypatch
):
    """A few fused SGD steps (the loop's strided products on one or two
    threads) with each GEMM against the NumPy reference."""
    import fastnn

    monkeypatch.setattr(cy, "TRAIN_THREADS", threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 37)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    params = {}
    for backend in ("numpy", "cython"):
        model = fastnn.Sequential(
            [
                fastnn.Dense(70, activation="relu"),
                fastnn.Dense(33, activation="tanh"),
                fastnn.Dense(10, activation="softmax"),
            ],
            input_dim=37,
            loss="cross_entropy",
            backend=backend,
            dtype="float32",
            seed=5,
            optimizer=fastnn.SGD(0.05, momentum=0.9),
        )
        model.fit(x, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
        params[backend] = model.get_weights()
    for ref, got in zip(params["numpy"], params["cython"], strict=True):
        assert_steps_close(got, ref, np.float32)  # FUSED_ULPS (support/tolerance.py)


def _fit_counting(cy, threads, blas_threads):
    """Train, then predict; the GEMM counts of each."""
    import fastnn

    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 50)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    with fastnn.set_num_threads(blas_threads):
        cy.TRAIN_THREADS = threads
        model = fastnn.Sequential(
            [
                fastnn.Dense(64, activation="relu"),
                fastnn.Dense(10, activation="softmax"),
            ],
            input_dim=50,
            backend="cython",
            seed=1,
        )
        cy.gemm_counts(reset=True)
        model.fit(x, y, epochs=1, batch_size=128, verbose=0, shuffle=False)
        trained = cy.gemm_counts(reset=True)
        model.predict(x)
        return trained, cy.gemm_counts(reset=True)


@pytest.mark.parametrize(
    "policy,threads,blas,uses_own",
    [
        ("auto", 1, 2, False),  # one training thread over a 2-thread BLAS
        ("auto", 2, 2, True),  # a split step: each product on one thread
        ("auto", 1, 1, True),  # BLAS at one thread
        ("own", 1, 2, True),  # forced on
        ("blas", 2, 2, False),  # forced off
    ],
)
def test_which_gemm_training_and_prediction_use(
    cy, monkeypatch, policy, threads, blas, uses_own
):
    """The own kernels run on the calling thread only, so under ``auto`` the
    loop uses them where each product runs on one thread (a split step, or
    BLAS at one thread) and they beat this machine's BLAS
    (``own_gemm_pays``); one training thread over a multithreaded BLAS, and
    prediction, keep BLAS. Observed through the extensions' counters."""
    skip_without_own_kernels()
    skip_unless_blas_threads(blas)
    if policy == "auto":
        uses_own = uses_own and cy.own_gemm_pays()
    monkeypatch.setattr(cy, "TRAIN_THREADS", None)
    try:
        cy.gemm_policy(policy)
        trained, predicted = _fit_counting(cy, threads, blas)
    finally:
        cy.gemm_policy("auto")
    # 2 steps x 2 layers x (forward, dW, dX of the hidden layer) per thread
    assert trained["dgemm"] == 0, trained
    if uses_own:
        assert trained["own"] >= 2 * 5 and trained["sgemm"] == 0, trained
    else:
        assert trained["own"] == 0 and trained["sgemm"] >= 2 * 5, trained
    assert predicted["own"] == 0 and predicted["sgemm"] >= 2, predicted


INTEL = ("GenuineIntel", 6)
ZEN4 = ("AuthenticAMD", 25)  # AVX-512 on 256-bit units
ZEN5 = ("AuthenticAMD", 26)


@pytest.mark.parametrize(
    "kernels,cpu,pays",
    [
        (["openblas:Haswell", "openblas:Haswell"], ZEN4, True),  # Zen 3, Haswell
        (["openblas:Haswell"], INTEL, True),
        (["openblas:Zen"], ZEN4, True),
        (["openblas:SkylakeX", "openblas:SkylakeX"], INTEL, False),  # AVX-512
        (["openblas:SkylakeX", "openblas:SkylakeX"], ZEN4, True),  # ... half width
        (["openblas:SkylakeX"], ZEN5, False),
        (["openblas:SkylakeX"], (None, None), False),  # not Linux: unknown CPU
        (["openblas:Haswell", "openblas:SkylakeX"], INTEL, False),
        (["openblas:Haswell", "openblas:SkylakeX"], ZEN4, True),
        (["openblas:SapphireRapids"], INTEL, False),
        (["mkl:skylake-avx512"], INTEL, False),
        (["mkl:skylake-avx512"], ZEN4, False),  # MKL: always kept
        (["openblas:?"], ZEN4, False),  # unknown kernel: keep BLAS
        ([], ZEN4, False),
    ],
)
def test_auto_runs_the_own_gemm_only_where_it_beats_blas(
    cy, monkeypatch, kernels, cpu, pays
):
    """``auto`` decides from the kernels BLAS chose for this CPU and the CPU's
    vendor and family, whatever CPU the test runs on: the own AVX2 kernels
    beat OpenBLAS's AVX2 kernels, and its AVX-512 ones only where AVX-512 runs
    on 256-bit units (AMD family 25, Zen 4); never MKL or an unknown BLAS."""
    from fastnn import _machine

    monkeypatch.setattr(_machine, "cpu_vendor_family", lambda: cpu)
    monkeypatch.setattr(cy, "blas_kernels", lambda: kernels)
    monkeypatch.setattr(cy, "_blas_wins", None)
    monkeypatch.setattr(cy, "own_sgemm", lambda on=None: True)  # a CPU that can
    assert cy.own_gemm_pays() is pays
    monkeypatch.setattr(cy, "_blas_wins", None)
    monkeypatch.setattr(cy, "own_sgemm", lambda on=None: False)  # one that cannot
    assert cy.own_gemm_pays() is False


# --------------------------------------------------------------------------- #
# The input layer's products over the features not zero throughout a batch
# --------------------------------------------------------------------------- #
def _subset(rng, span, size):
    """Ascending indices with runs of 8 and more (the packing's vector path)
    and isolated ones (its one-at-a-time path)."""
    runs = np.concatenate([np.arange(s, min(s + 11, span)) for s in range(3, span, 23)])
    lone = rng.choice(span, size=min(size, span), replace=False)
    return np.unique(np.concatenate([runs, lone])).astype(np.intc)


@pytest.mark.parametrize("gathered", [False, True], ids=["own", "gathered-blas"])
@pytest.mark.parametrize("m,n,span", [(7, 17, 40), (64, 512, 392), (256, 33, 700)])
def test_gemm_over_a_subset_of_columns(cy, m, n, span, gathered):
    """nn: C = A[:, idx] @ B[idx]; tn: C[idx] = A[:, idx]^T @ B, on the own
    kernels or gathered onto BLAS. The columns of A (and rows of B) outside
    idx are NaN: reading one would show."""
    if not gathered:
        skip_without_own_kernels()
    from fastnn._kernels import _dense

    rng = np.random.default_rng(span)
    idx = _subset(rng, span, span // 3)
    out = np.setdiff1d(np.arange(span), idx)
    eps = np.finfo(np.float32).eps
    # nn
    A = rng.standard_normal((m, span)).astype(np.float32)
    B = rng.standard_normal((span, n)).astype(np.float32)
    A[:, out] = np.nan
    B[out] = np.nan
    C = np.full((m, n), np.nan, np.float32)
    _dense._gemm_columns(A, B, C, False, idx, gathered)
    a64, b64 = A[:, idx].astype(np.float64), B[idx].astype(np.float64)
    bound = (len(idx) + 2) * eps * (np.abs(a64) @ np.abs(b64))
    assert np.all(np.abs(C - a64 @ b64) <= bound + 1e-30)
    # tn: rows of C outside idx keep their values
    k = m
    A = rng.standard_normal((k, span)).astype(np.float32)
    B = rng.standard_normal((k, n)).astype(np.float32)
    A[:, out] = np.nan
    C = np.full((span, n), 7.0, np.float32)
    _dense._gemm_columns(A, B, C, True, idx, gathered)
    a64, b64 = A[:, idx].T.astype(np.float64), B.astype(np.float64)
    bound = (k + 2) * eps * (np.abs(a64) @ np.abs(b64))
    assert np.all(np.abs(C[idx] - a64 @ b64) <= bound + 1e-30)
    assert (C[out] == 7.0).all()


def test_gemm_over_columns_refuses_bad_indices(cy):
    from fastnn._kernels import _dense

    A = np.ones((4, 10), np.float32)
    B = np.ones((10, 3), np.float32)
    C = np.zeros((4, 3), np.float32)
    for bad in ([3, 2], [0, 10], [-1, 2], [4, 4]):
        with pytest.raises(ValueError, match="^idx: expected ascending"):
            _dense._gemm_columns(A, B, C, False, np.array(bad, np.intc))
    with pytest.raises(ValueError, match=r"^C: expected shape \(4, 3\)"):
        _dense._gemm_columns(A, B, np.zeros((3, 3), np.float32), False,
                             np.array([1], np.intc))  # fmt: skip


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n_in,batch_size", [(784, 32), (784, 256), (40, 7)])
def test_training_on_inputs_with_zero_features_matches_the_reference(
    kernel, cy, threads, n_in, batch_size, monkeypatch
):
    """The input layer skips the features zero throughout a batch, on the own
    kernels or gathered onto BLAS: the same training as the reference either
    way."""
    import fastnn.reference as ref

    from fastnn.activations import Activation as A

    monkeypatch.setattr(cy, "TRAIN_THREADS", threads)
    X, labels, Y, order = sparse_inputs(512, n_in, batch_size, seed=n_in + batch_size)
    params, layout, spans = make_net([n_in, 64, 10], [A.RELU, A.SOFTMAX], np.float32)
    args = (X, labels, Y, order, batch_size, params, layout, 0, spans)
    kw = {"step_end": min(6, -(-512 // batch_size))}
    got = run_train_steps(cy.train_steps, *args, **kw)
    want = run_train_steps(ref.train_steps, *args, **kw)
    assert got[0] == want[0] == kw["step_end"]
    assert_training_matches(got, want, np.float32)
