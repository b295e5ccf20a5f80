"""The compiled training loops split over T threads: cython's
(``_train.pyx``) and numba's (``_numba_kernels.train_steps_split``), their
barriers, ``_blas_threads.run_team`` and each backend's ``_train_threads``.

Whatever T, dX and dW entries are the same dot products as in one whole-batch
GEMM and A is the sum of T shares of its dot products, so params and
velocity must agree with T = 1 to rounding, with the tolerance every
equivalence test uses. Also: errors
met in any thread's rows, a thread that fails before the loop (the others
must not wait for it forever), and BLAS's thread limit held and restored.
And every path of the loop (one thread or split, each float32 product on
fastnn's own GEMM or on BLAS) held to the reference.
"""

from __future__ import annotations

import threading

import fastnn.reference as ref
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.backends import (
    load_backend_or_skip,
    skip_unless_blas_threads,
    skip_without_own_kernels,
)
from support.contract import run_train_steps, sgd_hyper
from support.nets import SGD_CONFIGS, SPLIT_NETS, make_net, training_data
from support.tolerance import SPLIT_ULPS, assert_close, assert_training_matches

import fastnn
from fastnn._kernels._blas_threads import BLAS_AT_ONE_THREAD, run_team
from fastnn.activations import Activation
from fastnn.losses import Loss

A = Activation


@pytest.fixture
def cy():
    cb = load_backend_or_skip("cython")
    before = cb.TRAIN_THREADS
    yield cb
    cb.TRAIN_THREADS = before


@pytest.fixture(
    params=[
        ("cython", False),
        ("cython", True),
        ("numba", False),
        ("numba", True),
    ],
    ids=lambda p: f"{p[0]}-{'columns' if p[1] else 'rows'}",
)
def team(request):
    """Each compiled backend, whose loop splits a step over threads, with
    its input layer split by inputs (rows of W) or by output columns."""
    backend, by_columns = request.param
    kb = load_backend_or_skip(backend)
    before = kb.TRAIN_THREADS, kb.SPLIT_INPUT_BY_COLUMNS
    kb.SPLIT_INPUT_BY_COLUMNS = by_columns
    yield kb
    kb.TRAIN_THREADS, kb.SPLIT_INPUT_BY_COLUMNS = before


def train(cb, threads, *args, **kw):
    cb.TRAIN_THREADS = threads
    return run_train_steps(cb.train_steps, *args, **kw)


def assert_same_training(one, many, dtype):
    # The split sums the forward products in T shares: SPLIT_ULPS
    # (support/tolerance.py says what was measured).
    assert_training_matches(many, one, dtype, "threads", ulps=SPLIT_ULPS)


CE, MSE = Loss.CROSS_ENTROPY, Loss.MSE
CASES = {
    # name: (sizes, activations, loss, bias)
    "ce_relu_tanh": ([13, 11, 7, 4], [A.RELU, A.TANH, A.SOFTMAX], CE, True),
    "mse_sigmoid_linear": ([13, 9, 5, 3], [A.SIGMOID, A.LINEAR, A.SIGMOID], MSE, True),
    "ce_no_bias": ([13, 6, 4], [A.RELU, A.LINEAR], CE, False),
    "mnist_like": ([784, 64, 33, 10], [A.RELU, A.RELU, A.SOFTMAX], CE, True),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("threads", [2, 3, 5])
@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
def test_threads_give_the_single_thread_result(team, dtype, case, threads, batch_size):
    """Batches smaller than T (threads with no rows), uneven shares, a short
    last batch (n = 203), layers narrower than T (4 outputs over 5 threads)."""
    sizes, acts, loss, bias = CASES[case]
    X, labels, Y, order = training_data(dtype, n=203, n_in=sizes[0], k=sizes[-1])
    params, layout, spans = make_net(sizes, acts, dtype, bias)
    args = (X, labels, Y, order, batch_size, params, layout, loss, spans)
    kw = {"step_end": min(12, -(-203 // batch_size)), "nesterov": case == "ce_no_bias"}
    one = train(team, 1, *args, **kw)
    many = train(team, threads, *args, **kw)
    assert team.last_train_threads() == threads
    assert team.last_split_by_columns() == team.SPLIT_INPUT_BY_COLUMNS
    assert_same_training(one, many, dtype)
    # ... and both are the reference's training.
    expected = run_train_steps(ref.train_steps, *args, **kw)
    assert_training_matches(one, expected, dtype, "reference", ulps=SPLIT_ULPS)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    widths=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    hidden=st.lists(
        st.sampled_from([A.RELU, A.SIGMOID, A.TANH, A.LINEAR]), min_size=3, max_size=3
    ),
    loss=st.sampled_from(list(Loss)),
    bias=st.booleans(),
    n=st.integers(1, 40),
    batch_size=st.integers(1, 12),
    threads=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
@pytest.mark.parametrize("by_columns", [False, True], ids=["rows", "columns"])
@pytest.mark.parametrize("backend", ["cython", "numba"])
def test_threads_sweep(
    backend, by_columns, widths, hidden, loss, bias, n, batch_size, threads, seed
):
    """Any net (one layer: no columns split), batch and thread count; the
    input layer's 5 features over up to 6 threads split either way."""
    cb = load_backend_or_skip(backend)
    dtype = np.float64
    sizes = [5, *widths]
    output = A.SOFTMAX if loss == CE else A.TANH
    acts = [*hidden[: len(widths) - 1], output]
    X, labels, Y, order = training_data(dtype, n=n, n_in=5, k=widths[-1], seed=seed)
    params, layout, spans = make_net(sizes, acts, dtype, bias, seed=seed)
    args = (X, labels, Y, order, batch_size, params, layout, loss, spans)
    before = cb.TRAIN_THREADS, cb.SPLIT_INPUT_BY_COLUMNS
    cb.SPLIT_INPUT_BY_COLUMNS = by_columns
    try:
        one = train(cb, 1, *args)
        many = train(cb, threads, *args)
        assert cb.last_split_by_columns() == (by_columns and len(widths) > 1)
    finally:
        cb.TRAIN_THREADS, cb.SPLIT_INPUT_BY_COLUMNS = before
    assert_same_training(one, many, dtype)


@pytest.mark.parametrize(
    "threads,policy,by_columns",
    [
        (1, "blas", False),
        (1, "own", False),
        (2, "blas", False),
        (2, "own", False),
        (3, "own", False),
        (2, "blas", True),
        (2, "own", True),
        (3, "own", True),
    ],
)
@pytest.mark.parametrize("backend", ["cython", "numba"])
@pytest.mark.parametrize("optimizer", list(SGD_CONFIGS))
@pytest.mark.parametrize("loss", list(Loss), ids=lambda v: v.name.lower())
def test_fused_steps_on_every_gemm_path(
    backend, dtype, loss, optimizer, threads, policy, by_columns, monkeypatch
):
    """The compiled loops' paths, forced whatever this machine's cores, BLAS
    and CPU would choose: one thread or the step split over 2 and 3 (batches
    of 8: uneven shares; the input layer by its inputs or by its output
    columns), each float32 product on fastnn's own GEMM (numba: called by
    symbol, ``_numba_gemm``) or on BLAS. Each is held to the reference, and
    the path named is the one observed (thread count; the GEMM counters:
    float64 always runs on BLAS)."""
    kernels = load_backend_or_skip(backend)
    if policy == "own":
        skip_without_own_kernels()
    monkeypatch.setattr(kernels, "TRAIN_THREADS", threads)
    monkeypatch.setattr(kernels, "SPLIT_INPUT_BY_COLUMNS", by_columns)
    X, labels, Y, order = training_data(dtype)  # 50 samples: last batch of 2
    sizes, acts = SPLIT_NETS[loss]
    params, layout, spans = make_net(sizes, acts, dtype)
    args = (X, labels, Y, order, 8, params, layout, loss, spans)
    kw = SGD_CONFIGS[optimizer]
    try:
        kernels.gemm_policy(policy)
        _own_gemm_runs(backend, reset=True)
        fused = run_train_steps(kernels.train_steps, *args, **kw)
        ran = _own_gemm_runs(backend, reset=True)
    finally:
        kernels.gemm_policy("auto")
    assert kernels.last_train_threads() == threads
    assert kernels.last_split_by_columns() == by_columns
    own = dtype == np.float32 and policy == "own"
    assert (ran["own"] > 0) == own, ran
    if backend == "cython":  # numba's BLAS calls are not counted
        assert (ran["sgemm"] > 0) == (dtype == np.float32 and not own), ran
        assert (ran["dgemm"] > 0) == (dtype == np.float64), ran
    expected = run_train_steps(ref.train_steps, *args, **kw)
    assert_training_matches(fused, expected, dtype, f"{threads} {policy}", SPLIT_ULPS)


def _own_gemm_runs(backend, reset):
    """The products run on each path since the last reset: cython counts
    ``own``, ``sgemm`` and ``dgemm``; numba only ``own``."""
    if backend == "cython":
        return load_backend_or_skip("cython").gemm_counts(reset)
    from fastnn._kernels import _numba_gemm

    return {"own": _numba_gemm.own_count(reset)}


def step_scalars(steps, lr=0.1):
    """``contract.step_scalars`` of SGD at a constant rate."""
    return np.tile([lr, lr, 1.0, 1.0], (steps, 1))


def no_dropout(layout):
    """The loop's dropout arguments for no dropout: thresholds, scales."""
    return np.zeros(len(layout), np.int64), np.ones(len(layout))


def raw_train(cy, threads, X, labels, order, params, layout, loss, spans, bs,
              steps, call_for=None):  # fmt: skip
    """The compiled loop itself on ``threads`` threads, past the wrapper's
    checks (which refuse bad indices and labels before any compiled code):
    the loop's own checks are the last line. Returns the error raised (or
    None), params and the losses."""
    from fastnn._kernels import _train

    p = params.copy()
    n, total = X.shape[0], int(layout[:, 1].sum())
    losses = np.full(steps, -1.0)
    sync = np.zeros(3, np.int64)
    shared = (
        np.empty(bs * X.shape[1], X.dtype), np.empty(bs, np.int64),
        np.empty(0, X.dtype), np.empty(bs * total, X.dtype),
        np.empty(bs * total, X.dtype), np.empty(0, X.dtype), np.empty(0, np.uint8),
        np.empty((threads - 1) * bs * total, X.dtype),
        sync, np.zeros(3 * threads),
        np.full(2 * threads, -1, np.int64),
    )  # fmt: skip

    def call(tid):
        if call_for is not None and tid in call_for:
            return call_for[tid]()
        return _train.train_steps(
            X.reshape(-1), n, labels, np.empty(0, X.dtype), order, bs, 0, steps,
            p, np.zeros_like(p), np.zeros((1, p.size), p.dtype), 0, layout,
            int(loss), 0, sgd_hyper(0.9), step_scalars(steps), spans, True, True,
            *no_dropout(layout), 0, losses, tid, threads, True, False, *shared,
        )  # fmt: skip

    try:
        if threads == 1:
            call(0)
        else:
            run_team(call, threads, lambda: _train.abort(sync))
    except Exception as err:  # noqa: BLE001 (returned to the test)
        return err, p, losses, sync
    return None, p, losses, sync


@pytest.mark.parametrize("bad_row", [0, 5, 9])
def test_a_bad_index_in_any_threads_rows_stops_at_that_step(cy, bad_row):
    """Rows 0-4 of a batch of 10 go to thread 0, rows 5-9 to thread 1."""
    dtype = np.float64
    sizes, acts, loss, bias = CASES["ce_relu_tanh"]
    X, labels, Y, order = training_data(dtype, n=40, n_in=sizes[0], k=sizes[-1])
    order[20 + bad_row] = 40  # step 2 meets it
    params, layout, spans = make_net(sizes, acts, dtype, bias)
    one = raw_train(cy, 1, X, labels, order, params, layout, loss, spans, 10, 4)
    two = raw_train(cy, 2, X, labels, order, params, layout, loss, spans, 10, 4)
    assert isinstance(two[0], IndexError)
    assert str(two[0]) == str(one[0])
    message = f"order[{20 + bad_row}] = 40 is out of bounds for 40 samples (step 2)"
    assert message in str(two[0])
    assert_close(two[1], one[1], dtype)  # steps 0 and 1 applied
    assert (two[2][:2] != -1).all() and (two[2][2:] == -1).all()


def test_a_bad_label_in_the_second_threads_rows(cy):
    dtype = np.float32
    sizes, acts, loss, bias = CASES["ce_relu_tanh"]
    X, labels, Y, order = training_data(dtype, n=40, n_in=sizes[0], k=sizes[-1])
    labels[order[17]] = 4  # step 1, row 7: thread 1 of 2
    params, layout, spans = make_net(sizes, acts, dtype, bias)
    one = raw_train(cy, 1, X, labels, order, params, layout, loss, spans, 10, 4)
    two = raw_train(cy, 2, X, labels, order, params, layout, loss, spans, 10, 4)
    assert isinstance(two[0], IndexError)
    message = "label 4 is out of bounds for 4 classes (step 1)"
    assert str(two[0]) == str(one[0]) == message
    assert_close(two[1], one[1], dtype)  # step 0 applied
    assert two[2][0] != -1 and (two[2][1:] == -1).all()


def test_threads_stop_before_a_non_finite_loss(team):
    dtype = np.float32
    sizes, acts, loss, bias = CASES["mse_sigmoid_linear"]
    X, labels, Y, order = training_data(dtype, n=40, n_in=sizes[0], k=sizes[-1])
    X[order[26]] = np.inf  # step 2, thread 1's rows
    params, layout, spans = make_net(sizes, acts, dtype, bias)
    args = (X, labels, Y, order, 10, params, layout, loss, spans)
    one, two = train(team, 1, *args), train(team, 2, *args)
    assert one[0] == two[0] == 2
    assert_same_training(one, two, dtype)


def test_a_thread_that_fails_before_the_loop_does_not_hang_the_others(cy):
    """Thread 1 raises before it reaches a barrier; thread 0, already in the
    compiled loop waiting at the first barrier, must leave, and the error of
    thread 1 is what the caller sees."""
    dtype = np.float64
    sizes, acts, loss, bias = CASES["ce_relu_tanh"]
    X, labels, Y, order = training_data(dtype, n=40, n_in=sizes[0], k=sizes[-1])
    params, layout, spans = make_net(sizes, acts, dtype, bias)

    def fail():
        raise RuntimeError("thread 1 failed")

    out = []
    runner = threading.Thread(
        target=lambda: out.append(
            raw_train(
                cy,
                2,
                X,
                labels,
                order,
                params,
                layout,
                loss,
                spans,
                10,
                4,
                call_for={1: fail},
            )  # fmt: skip
        )
    )
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "thread 0 waits forever for a failed thread"
    err, p, losses, sync = out[0]
    assert isinstance(err, RuntimeError) and "thread 1 failed" in str(err)
    assert sync[2] == 1  # aborted
    np.testing.assert_array_equal(p, params)  # nothing applied
    assert (losses == -1).all()


def test_threads_follow_blas_and_batch_and_fall_back(cy):
    layout = np.array(
        [[784, 512, 0, -1, int(A.RELU)], [512, 10, 0, -1, int(A.SOFTMAX)]]
    )
    skip_unless_blas_threads(2)
    cy.TRAIN_THREADS = None
    ce = CE
    with fastnn.set_num_threads(2):
        assert cy._train_threads(64, True, layout, ce) == 2
        assert cy._train_threads(63, True, layout, ce) == 1  # < 32 rows each
        assert cy._train_threads(64, False, layout, ce) == 1  # general update
        # A softmax computed by the layer (not fused into the loss) needs rows.
        assert cy._train_threads(64, True, layout, Loss.MSE) == 1
        assert cy.train_threads_for(64) == 2  # as fastnn bench records it
        assert cy.train_threads_for(32) == 1
    with fastnn.set_num_threads(1):
        assert cy._train_threads(256, True, layout, ce) == 1
    cy.TRAIN_THREADS = 3
    assert cy._train_threads(8, True, layout, ce) == 3
    assert cy._train_threads(8, False, layout, ce) == 1


@pytest.mark.parametrize("backend", ["cython", "numba"])
def test_the_input_layer_splits_by_columns_where_it_is_narrow(backend, monkeypatch):
    """By output columns where the input is no wider than the layer's output
    (make_classification's 100-256-5), by inputs elsewhere (MNIST's 784-wide
    input), never on one layer or with dropout on the input; observed
    through a fit on two threads, whose result is the one thread's."""
    from fastnn._kernels._blas_threads import input_by_columns

    def layout(*sizes):
        pairs = zip(sizes, sizes[1:], strict=False)
        return np.array([[a, b, 0, -1, int(A.RELU)] for a, b in pairs])

    none = np.zeros(3, np.int64)
    assert input_by_columns(layout(100, 256, 5), none, None)
    assert input_by_columns(layout(256, 256, 5), none, None)
    assert not input_by_columns(layout(784, 256, 10), none, None)
    assert not input_by_columns(layout(100, 256), none, None)  # no layer above
    dropped = np.array([1 << 30, 0, 0])
    assert not input_by_columns(layout(100, 256, 5), dropped, None)
    assert not input_by_columns(layout(100, 256, 5), dropped, True)
    assert input_by_columns(layout(784, 256, 10), none, True)  # tests force it
    assert not input_by_columns(layout(100, 256, 5), none, False)

    kb = load_backend_or_skip(backend)
    monkeypatch.setattr(kb, "SPLIT_INPUT_BY_COLUMNS", None)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 20)).astype(np.float32)
    y = rng.integers(0, 5, 600)
    out = []
    for threads in (1, 2):
        monkeypatch.setattr(kb, "TRAIN_THREADS", threads)
        model = fastnn.Sequential(
            [
                fastnn.Dense(64, activation="relu"),
                fastnn.Dense(5, activation="softmax"),
            ],
            input_dim=20,
            backend=backend,
            seed=0,
            optimizer=fastnn.Adam(1e-3, weight_decay=1e-4),
        )
        history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        assert kb.last_train_threads() == threads
        assert kb.last_split_by_columns() == (threads == 2)
        out.append(([w.copy() for w in model.get_weights()], history.history["loss"]))
    for a, b in zip(out[0][0], out[1][0], strict=True):
        assert_close(a, b, np.float32)
    assert_close(out[0][1], out[1][1], np.float32)


def test_blas_held_at_one_thread_and_restored_across_python_threads(cy):
    from threadpoolctl import threadpool_info

    def blas_threads():
        info = threadpool_info()
        return sorted(i["num_threads"] for i in info if i["user_api"] == "blas")

    skip_unless_blas_threads(2)
    hold = cy._BLAS_AT_ONE_THREAD
    with fastnn.set_num_threads(2):
        before = blas_threads()
        assert before and max(before) == 2
        entered, release = threading.Barrier(3), threading.Event()

        def user():
            with hold:
                entered.wait()
                release.wait()

        users = [threading.Thread(target=user) for _ in range(2)]
        for u in users:
            u.start()
        try:
            entered.wait(timeout=30)
            during, limit = blas_threads(), hold.threads()
        finally:
            release.set()
            for u in users:
                u.join()
        assert max(during) == 1
        assert limit == 2  # what BLAS may use, not the held 1
        assert blas_threads() == before


def test_model_fit_on_two_threads_equals_one(team):
    """Through the public API, on real shapes: a 784-64-10 net, batch 64."""
    rng = np.random.default_rng(0)
    x = rng.random((640, 784), dtype=np.float32)
    y = rng.integers(0, 10, 640)
    out = []
    for threads in (1, 2):
        team.TRAIN_THREADS = threads
        layers = [
            fastnn.Dense(64, activation="relu"),
            fastnn.Dense(10, activation="softmax"),
        ]
        model = fastnn.Sequential(layers, input_dim=784, backend=team.NAME, seed=0)
        history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        out.append(([p.copy() for p in model.get_weights()], history.history["loss"]))
    for a, b in zip(out[0][0], out[1][0], strict=True):
        assert_close(a, b, np.float32)
    assert_close(out[0][1], out[1][1], np.float32)


@pytest.mark.parametrize(
    "backend,policy",
    [("cython", "own"), ("cython", "blas"), ("numba", "own"), ("numba", "blas")],
)
@pytest.mark.parametrize("by_columns", [False, True], ids=["rows", "columns"])
@pytest.mark.parametrize("threads", [2, 3])
def test_split_training_is_bit_identical_from_run_to_run(
    backend, threads, policy, by_columns
):
    """The README's promise: for a given thread count, runs repeat bit for
    bit (the threads add their shares in a fixed order, never as they
    finish). Three runs, each split as asked (observed). By columns: a
    40-wide input, and no weight decay, so that no barrier ends a step in
    the cython loop (a short last batch: 400 = 6 x 64 + 16)."""
    cy = load_backend_or_skip(backend)
    if policy == "own":
        skip_without_own_kernels()
    n_in = 40 if by_columns else 100
    rng = np.random.default_rng(4)
    x = rng.random((400, n_in), dtype=np.float32)
    y = rng.integers(0, 10, 400)
    before = cy.TRAIN_THREADS, cy.SPLIT_INPUT_BY_COLUMNS
    cy.TRAIN_THREADS = threads
    cy.SPLIT_INPUT_BY_COLUMNS = None  # the rule
    runs = []
    try:
        if policy is not None:
            cy.gemm_policy(policy)
        for _ in range(3):
            model = fastnn.Sequential(
                [
                    fastnn.Dense(48, activation="relu"),
                    fastnn.Dense(32, activation="tanh"),
                    fastnn.Dense(10, activation="softmax"),
                ],
                input_dim=n_in,
                backend=backend,
                seed=0,
                optimizer=fastnn.SGD(
                    0.05, momentum=0.9, weight_decay=0.0 if by_columns else 1e-4
                ),
            )
            history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
            assert cy.last_train_threads() == threads
            assert cy.last_split_by_columns() == by_columns
            runs.append((model.params.copy(), history.history["loss"]))
    finally:
        cy.TRAIN_THREADS, cy.SPLIT_INPUT_BY_COLUMNS = before
        if policy is not None:
            cy.gemm_policy("auto")
    for params, losses in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        assert losses == runs[0][1]


@pytest.mark.parametrize(
    "short", ["Xb", "lb", "A_all", "dA_all", "partials", "parts", "errors", "tid"]
)
def test_the_loop_refuses_short_shared_buffers(cy, short):
    """The wrapper sizes them; the loop still checks before writing any."""
    from fastnn._kernels import _train

    dtype = np.float64
    sizes, acts, loss, bias = CASES["ce_relu_tanh"]
    X, labels, Y, order = training_data(dtype, n=40, n_in=sizes[0], k=sizes[-1])
    params, layout, spans = make_net(sizes, acts, dtype, bias)
    bs, total, T = 10, int(layout[:, 1].sum()), 2
    buffers = {
        "Xb": np.empty(bs * sizes[0]),
        "lb": np.empty(bs, np.int64),
        "Yb": np.empty(0),
        "A_all": np.empty(bs * total),
        "dA_all": np.empty(bs * total),
        "D_all": np.empty(0),
        "keep_all": np.empty(0, np.uint8),
        "partials": np.empty((T - 1) * bs * total),
        "sync": np.zeros(3, np.int64),
        "parts": np.zeros(3 * T),
        "errors": np.full(2 * T, -1, np.int64),
    }
    tid = T if short == "tid" else 0
    if short != "tid":
        buffers[short] = buffers[short][:-1]
    p = params.copy()
    with pytest.raises(ValueError, match=rf"^{short}: expected"):
        _train.train_steps(
            X.reshape(-1), 40, labels, np.empty(0), order, bs, 0, 4, p,
            np.zeros_like(p), np.zeros((1, p.size)), 0, layout, int(loss), 0,
            sgd_hyper(0.9), step_scalars(4), spans, True, True,
            *no_dropout(layout), 0, np.zeros(4), tid, T, True, False, *buffers.values(),
        )  # fmt: skip
    np.testing.assert_array_equal(p, params)


@pytest.mark.parametrize("threads", [1, 2])
def test_scores_between_split_epochs_run_with_blas_at_one_thread(
    team, threads, monkeypatch
):
    """After a split epoch, fit's validation scores run with BLAS at one
    thread (OpenBLAS's idle threads would otherwise spin into the next
    epoch's team); after a one-thread epoch, on BLAS's threads as usual."""
    from fastnn import inference

    seen = []
    scores = inference.scores

    def spy(*args, **kwargs):
        seen.append(max(lib.num_threads for lib in BLAS_AT_ONE_THREAD.libs()))
        return scores(*args, **kwargs)

    monkeypatch.setattr(inference, "scores", spy)
    team.TRAIN_THREADS = threads
    rng = np.random.default_rng(1)
    x, y = rng.random((256, 20), dtype=np.float32), rng.integers(0, 3, 256)
    model = fastnn.Sequential(
        [fastnn.Dense(16, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=20,
        backend=team.NAME,
        seed=0,
        metrics=["accuracy"],
    )
    with fastnn.set_num_threads(2):
        model.fit(x, y, epochs=2, batch_size=64, verbose=0, validation_data=(x, y))
    assert team.last_train_threads() == threads
    assert seen == [1 if threads > 1 else 2] * 4  # accuracy and validation, twice
