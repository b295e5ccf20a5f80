"""Every compiled backend against the reference (the specification).

One shared suite: each test takes the ``compiled_backend`` fixture (numba,
cython) and compares it with ``fastnn.reference`` at three levels:

* kernels: each contract function over dtype x activation x shape (edge shapes,
  MNIST sizes, large logits), with and without bias, dX requested or not;
  backward tests feed both sides the same ``A``; inputs are never modified;
* steps: the fused ``train_steps`` against the composed path built from the
  same backend's kernels, and against the reference (CE and mse, momentum,
  nesterov, weight decay, a short last batch, the early stop on a NaN);
* training: a seeded float64 MNIST epoch gives the reference's parameters to
  1e-9 relative and the same test predictions.

"Equivalent" in float32 means: each kernel and a few fused steps agree with
the reference to float32 rounding (``support/tolerance.py``). Whole float32 runs do
not stay together: a ReLU pre-activation within rounding of zero falls on
different sides on two backends and the trajectories part after some tens of
steps (any two BLAS libraries do the same), so whole float32 runs are held to
the reference's accuracy instead (``model/test_training.py``).

Then hypothesis sweeps, bad-input refusal and backend pairs. (Signature
parity: test_signatures.py; the cython loop's own paths, threads and GEMMs:
kernels/.)"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.backends import load_backend_or_skip
from support.contract import composed, legacy_update, make_plan, run_train_steps
from support.nets import NETS, SGD_CONFIGS, SPLIT_NETS, make_net, training_data
from support.tolerance import (
    FUSED_ULPS,
    SPLIT_ULPS,
    assert_close,
    assert_steps_close,
    assert_training_matches,
    tol,
)

from fastnn import _compose
from fastnn import reference as ref
from fastnn.activations import Activation
from fastnn.backends import BACKEND_NAMES
from fastnn.contract import TrainingState
from fastnn.losses import Loss
from fastnn.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop

ACTIVATIONS = list(Activation)
#: (n, n_in, n_out): edge shapes, odd sizes and the MNIST layer sizes.
SHAPES = [(1, 1, 1), (1, 7, 3), (7, 13, 5), (64, 784, 512), (64, 512, 10)]
# derandomize: the same examples every run, so coverage does not change
# from run to run (and a failure seen once is seen again).
HYPOTHESIS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


#: One of each optimizer and its options; the learning rate comes per step.
OPTIMIZERS = {
    "sgd": SGD(0.1),
    "momentum": SGD(0.1, momentum=0.9, weight_decay=1e-2),
    "nesterov": SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "adam": Adam(weight_decay=1e-2),
    "amsgrad": Adam(beta_1=0.5, beta_2=0.9, amsgrad=True),
    "adamw": AdamW(weight_decay=0.1),
    "rmsprop": RMSprop(weight_decay=1e-2),
    # centered: d = sqrt(E[g^2] - E[g]^2) + epsilon cancels where a gradient
    # barely varies, and the momentum buffer sums g / d: with epsilon 1e-8 a
    # float32 rounding there moved it by 344 eps (dropout, 7 steps), an
    # ill-conditioned configuration rather than a bug; 1e-3 bounds 1 / d.
    "rmsprop_centered_momentum": RMSprop(momentum=0.9, centered=True, epsilon=1e-3),
    "adagrad": Adagrad(initial_accumulator_value=0.1, weight_decay=1e-2),
    "adam_clip": Adam(clipnorm=0.5),
    "sgd_clip": SGD(0.1, momentum=0.9, clipnorm=0.5),
}


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def shape_id(shape):
    return "x".join(map(str, shape))


def assert_unchanged(arrays, copies):
    for name in arrays:
        np.testing.assert_array_equal(
            arrays[name], copies[name], err_msg=f"{name} was modified"
        )


# --------------------------------------------------------------------------- #
# Kernels
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a.name.lower())
def test_dense_forward(compiled_backend, dtype, activation, shape, bias):
    n, n_in, n_out = shape
    rng = np.random.default_rng(n * 1000 + n_in)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out if bias else 0).astype(dtype)
    inputs = {"X": X, "W": W, "b": b}
    copies = {k: v.copy() for k, v in inputs.items()}
    expected = ref.dense_forward(X, W, b, activation, np.empty((n, n_out), dtype))
    A_out = np.full((n, n_out), np.nan, dtype)
    returned = compiled_backend.dense_forward(X, W, b, activation, A_out)
    assert returned is A_out
    assert A_out.dtype == dtype
    assert_close(A_out, expected, dtype)
    assert_unchanged(inputs, copies)


@pytest.mark.parametrize("want_dX", [True, False], ids=["dX", "no_dX"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a.name.lower())
def test_dense_backward(compiled_backend, dtype, activation, shape, bias, want_dX):
    n, n_in, n_out = shape
    rng = np.random.default_rng(n * 1000 + n_in + 7)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out if bias else 0).astype(dtype)
    # Both sides get the same A (the reference's forward output).
    A = ref.dense_forward(X, W, b, activation, np.empty((n, n_out), dtype))
    dA = rng.standard_normal((n, n_out)).astype(dtype)
    inputs = {"dA": dA, "X": X, "W": W, "A": A}
    copies = {k: v.copy() for k, v in inputs.items()}

    def grads(kernels):
        dW = np.full((n_in, n_out), np.nan, dtype)
        db = np.full(n_out if bias else 0, np.nan, dtype)
        dX = np.full((n, n_in), np.nan, dtype) if want_dX else None
        kernels.dense_backward(dA, X, W, A, activation, dW, db, dX)
        return dW, db, dX

    dW, db, dX = grads(compiled_backend)
    dW_ref, db_ref, dX_ref = grads(ref)
    assert_close(dW, dW_ref, dtype, err_msg="dW")
    assert_close(db, db_ref, dtype, err_msg="db")
    if want_dX:
        assert_close(dX, dX_ref, dtype, err_msg="dX")
    assert dW.dtype == dtype
    assert_unchanged(inputs, copies)


LOGITS = {
    "normal": lambda rng, shape, dt: 3 * rng.standard_normal(shape),
    "pm_1e4": lambda rng, shape, dt: (
        1e4 * rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.0, shape)
    ),
    # Near the float max: finite only with the row max subtracted (the spread
    # is small enough that the mean over 64 rows stays finite).
    "near_max": lambda rng, shape, dt: np.finfo(dt).max * rng.uniform(0.99, 1, shape),
    "near_min": lambda rng, shape, dt: -np.finfo(dt).max * rng.uniform(0.99, 1, shape),
}


@pytest.mark.parametrize("logits", list(LOGITS))
@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (7, 5), (64, 10)], ids=shape_id)
def test_softmax_cross_entropy(compiled_backend, dtype, shape, logits):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    Z = LOGITS[logits](rng, shape, dtype).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    copies = {"Z": Z.copy(), "labels": labels.copy()}
    dZ_ref = np.empty_like(Z)
    loss_ref = ref.softmax_cross_entropy(Z, labels, dZ_ref)
    dZ = np.full_like(Z, np.nan)
    loss = compiled_backend.softmax_cross_entropy(Z, labels, dZ)
    assert isinstance(loss, float)
    assert np.isfinite(loss)
    assert_close(loss, loss_ref, dtype)
    assert_close(dZ, dZ_ref, dtype)
    # Each gradient row is (softmax - onehot) / n: it sums to ~0.
    assert np.abs(dZ.sum(axis=1)).max() <= tol(dtype)["atol"]
    assert_unchanged({"Z": Z, "labels": labels}, copies)


@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (7, 5), (64, 10)], ids=shape_id)
def test_mean_squared_error(compiled_backend, dtype, shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1] + 1)
    A = rng.random(shape).astype(dtype)
    Y = rng.standard_normal(shape).astype(dtype)
    copies = {"A": A.copy(), "Y": Y.copy()}
    dA_ref = np.empty_like(A)
    loss_ref = ref.mean_squared_error(A, Y, dA_ref)
    dA = np.full_like(A, np.nan)
    loss = compiled_backend.mean_squared_error(A, Y, dA)
    assert isinstance(loss, float)
    assert_close(loss, loss_ref, dtype)
    assert_close(dA, dA_ref, dtype)
    assert_unchanged({"A": A, "Y": Y}, copies)


SPANS = {
    "sorted": [[0, 20], [25, 40]],
    "none": np.empty((0, 2), np.int64),
    "unsorted_overlapping": [[30, 45], [10, 35], [0, 5]],
}


@pytest.mark.parametrize("spans", list(SPANS))
@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_update(compiled_backend, dtype, case, spans):
    """Three optimizer steps from random gradients: params, every slot and the
    L2 sum of squares as the reference's. Cython's Adam, RMSprop and Adagrad
    take the reference's operations in its order and round alike (built
    with -ffp-contract=off): bit for bit (without clipping, whose norm is
    summed in another order); numba's (LLVM fuses multiply-adds) and SGD's
    fused loops to rounding."""
    optimizer = OPTIMIZERS[case]
    rng = np.random.default_rng(3)
    size = 47
    decay_spans = np.array(SPANS[spans], np.int64).reshape(-1, 2)
    layout = np.array([[1, size, 0, -1, 0]])
    plan = make_plan(layout, size, Loss.MSE, decay_spans, 1, optimizer)
    params0 = rng.standard_normal(size).astype(dtype)
    states = {
        k: TrainingState(params0.copy(), optimizer.initial_slots(size, dtype), 5)
        for k in (ref, compiled_backend)
    }
    exact = (
        compiled_backend.NAME == "cython"
        and case not in ("sgd", "momentum", "nesterov")
        and "clip" not in case
    )
    for step in range(3):
        grads = (rng.standard_normal(size) * (step + 1)).astype(dtype)
        sq = {}
        for kernels, state in states.items():
            state.grads[...] = grads
            sq[kernels] = kernels.update(plan, state, 0.05 / (step + 1))
            assert state.step == 6 + step
            assert state.params.dtype == dtype and state.slots.dtype == dtype
        got, want = states[compiled_backend], states[ref]
        assert isinstance(sq[compiled_backend], float)
        assert_close(sq[compiled_backend], sq[ref], dtype, err_msg="sum of squares")
        if exact:
            np.testing.assert_array_equal(got.params, want.params, err_msg=case)
            np.testing.assert_array_equal(got.slots, want.slots, err_msg=case)
        else:
            assert_close(got.params, want.params, dtype, err_msg=f"{case} params")
            assert_close(got.slots, want.slots, dtype, err_msg=f"{case} slots")


@pytest.mark.parametrize("size", [5, 600])
def test_update_with_params_that_are_the_grads(compiled_backend, dtype, size):
    """Plain SGD with grads = params (overlapping buffers: the cython backend
    takes its copy of the update without ``restrict``): each entry becomes
    p - lr * p, bit for bit as in the reference (which computes lr * grads
    before subtracting)."""
    p = np.linspace(-1, 1, size).astype(dtype)
    expected = p.copy()
    legacy_update(ref)(expected, expected, np.zeros_like(p), 0.25, 0.0, False, 0.0, [])
    legacy_update(compiled_backend)(p, p, np.zeros_like(p), 0.25, 0.0, False, 0.0, [])
    np.testing.assert_array_equal(p, expected)


# --------------------------------------------------------------------------- #
# Steps: fused train_steps vs the composed path and the reference
# --------------------------------------------------------------------------- #
#: Nets with a LINEAR hidden layer, and an MSE output that is not a softmax.
OTHER_NETS = {
    Loss.CROSS_ENTROPY: (
        [13, 11, 7, 4],
        [Activation.LINEAR, Activation.RELU, Activation.SOFTMAX],
    ),
    Loss.MSE: (
        [13, 11, 7, 4],
        [Activation.TANH, Activation.LINEAR, Activation.SIGMOID],
    ),
}


@pytest.mark.parametrize(
    "which", ["none", "first_only", "weights_and_biases"], ids=lambda v: v
)
def test_train_steps_with_other_decay_spans(compiled_backend, dtype, which):
    """Decay spans that are not exactly the weight matrices (the compiled
    backends then take their general update path) still match the reference."""
    X, labels, Y, order = training_data(dtype)
    sizes, acts = NETS[Loss.CROSS_ENTROPY]
    params, layout, spans = make_net(sizes, acts, dtype, True)
    if which == "none":
        spans = spans[:0]
    elif which == "first_only":
        spans = spans[:1]
    else:
        spans = np.array([[0, params.shape[0]]], np.int64)
    args = (X, labels, Y, order, 8, params, layout, Loss.CROSS_ENTROPY, spans)
    fused = run_train_steps(compiled_backend.train_steps, *args)
    expected = run_train_steps(ref.train_steps, *args)
    assert_training_matches(fused, expected, dtype)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("optimizer", list(SGD_CONFIGS))
@pytest.mark.parametrize("loss", list(Loss), ids=lambda v: v.name.lower())
def test_train_steps_matches_composed_and_reference(
    compiled_backend, dtype, loss, optimizer, bias
):
    X, labels, Y, order = training_data(dtype)  # 50 samples: last batch of 2
    sizes, acts = NETS[loss]
    params, layout, spans = make_net(sizes, acts, dtype, bias)
    inputs = {"X": X, "labels": labels, "Y": Y, "order": order, "layout": layout}
    copies = {k: v.copy() for k, v in inputs.items()}
    args = (X, labels, Y, order, 8, params, layout, loss, spans)
    kw = SGD_CONFIGS[optimizer]
    fused = run_train_steps(compiled_backend.train_steps, *args, **kw)
    comp = run_train_steps(composed(compiled_backend), *args, **kw)
    expected = run_train_steps(ref.train_steps, *args, **kw)
    assert fused[0] == comp[0] == expected[0] == 7
    assert_training_matches(fused, comp, dtype, "composed")
    assert_training_matches(fused, expected, dtype, "reference")
    assert fused[1].dtype == dtype
    assert_unchanged(inputs, copies)


@pytest.mark.parametrize("optimizer", ["momentum_wd", "nesterov"])
@pytest.mark.parametrize(
    "loss,output",
    [
        (Loss.CROSS_ENTROPY, Activation.SOFTMAX),
        (Loss.MSE, Activation.LINEAR),
        (Loss.MSE, Activation.SIGMOID),
        (Loss.MSE, Activation.RELU),
    ],
    ids=["ce-softmax", "mse-linear", "mse-sigmoid", "mse-relu"],
)
def test_train_steps_with_linear_hidden_layers_and_other_outputs(
    compiled_backend, dtype, loss, output, optimizer
):
    """A LINEAR hidden layer; with MSE, outputs other than softmax."""
    sizes, acts = OTHER_NETS[loss]
    acts = [*acts[:-1], output]
    X, labels, Y, order = training_data(dtype)
    params, layout, spans = make_net(sizes, acts, dtype)
    args = (X, labels, Y, order, 8, params, layout, loss, spans)
    kw = SGD_CONFIGS[optimizer]
    fused = run_train_steps(compiled_backend.train_steps, *args, **kw)
    expected = run_train_steps(ref.train_steps, *args, **kw)
    assert fused[0] == 7
    assert_training_matches(fused, expected, dtype)


#: The fused loops every optimizer runs through: numba's and cython's on one
#: thread and split over two or three (each its own update path per thread);
#: "c": the split's input layer by its output columns (else by its inputs).
FUSED_PATHS = [
    "numba-1",
    "numba-2",
    "numba-3",
    "numba-2c",
    "numba-3c",
    "cython-1",
    "cython-2",
    "cython-2c",
    "cython-3c",
]


def fused_path(path, monkeypatch):
    name, _, threads = path.partition("-")
    kernels = load_backend_or_skip(name)
    by_columns = threads.endswith("c")
    threads = threads.rstrip("c")
    if threads:
        monkeypatch.setattr(kernels, "TRAIN_THREADS", int(threads))
        monkeypatch.setattr(kernels, "SPLIT_INPUT_BY_COLUMNS", by_columns)
    return kernels, int(threads or 1)


@pytest.mark.parametrize("dropout", [None, [0.0, 0.3, 0.5]], ids=["-", "dropout"])
@pytest.mark.parametrize("case", list(OPTIMIZERS))
@pytest.mark.parametrize("path", FUSED_PATHS)
def test_every_optimizer_in_the_fused_loops(dtype, path, case, dropout, monkeypatch):
    """Every optimizer, with and without dropout, with clipping, in each fused
    loop (and the split one) against the reference: the same masks, the
    same slots, the losses; the step counter drives Adam's bias correction
    and the masks (started at 3 here)."""
    kernels, threads = fused_path(path, monkeypatch)
    optimizer = OPTIMIZERS[case]
    X, labels, Y, order = training_data(dtype)  # 50 samples: last batch of 2
    sizes, acts = SPLIT_NETS[Loss.CROSS_ENTROPY]
    params, layout, spans = make_net(sizes, acts, dtype)
    args = (X, labels, Y, order, 8, params, layout, Loss.CROSS_ENTROPY, spans)
    # Rates that move the weights by similar amounts per step (RMSprop's
    # first steps are 1 / sqrt(1 - rho) = 10 times its rate, momentum 0.9
    # ten times more): larger ones make the net's ReLU boundaries flip
    # between runs that differ by rounding, and the trajectories part.
    lr = {0: 0.1, 3: 0.001}.get(int(optimizer.kind), 0.01)
    kw = {
        "optimizer": optimizer,
        "dropout": dropout,
        "first_step": 3,
        "seed": 12345,
        "learning_rates": np.linspace(lr, lr / 2, 7),
    }
    fused = run_train_steps(kernels.train_steps, *args, **kw)
    assert kernels.last_train_threads() == threads
    assert kernels.last_split_by_columns() == path.endswith("c")
    expected = run_train_steps(ref.train_steps, *args, **kw)
    assert fused[0] == expected[0] == 7
    ulps = SPLIT_ULPS if threads > 1 else FUSED_ULPS
    assert_training_matches(fused, expected, dtype, path, ulps)
    if dropout is not None:  # the masks matter: without them the run differs
        undropped = run_train_steps(ref.train_steps, *args, **{**kw, "dropout": None})
        assert np.abs(undropped[1] - expected[1]).max() > 1e-3


@pytest.mark.parametrize("path", FUSED_PATHS)
def test_dropout_runs_are_reproducible_bit_for_bit(path, monkeypatch):
    """The same seeded float64 run twice gives the same bits; another seed
    gives other masks."""
    kernels, _ = fused_path(path, monkeypatch)
    X, labels, Y, order = training_data(np.float64)
    sizes, acts = SPLIT_NETS[Loss.CROSS_ENTROPY]
    params, layout, spans = make_net(sizes, acts, np.float64)
    args = (X, labels, Y, order, 8, params, layout, Loss.CROSS_ENTROPY, spans)
    kw = {"optimizer": Adam(0.01), "dropout": [0.0, 0.5, 0.5], "seed": 7}
    first = run_train_steps(kernels.train_steps, *args, **kw)
    second = run_train_steps(kernels.train_steps, *args, **kw)
    for a, b in zip(first[1:], second[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    other = run_train_steps(kernels.train_steps, *args, **{**kw, "seed": 8})
    assert not np.array_equal(other[1], first[1])


@pytest.mark.parametrize("loss", list(Loss), ids=lambda v: v.name.lower())
def test_train_steps_in_chunks_equals_one_call(compiled_backend, dtype, loss):
    X, labels, Y, order = training_data(dtype, n=45)
    sizes, acts = NETS[loss]
    params, layout, spans = make_net(sizes, acts, dtype)
    rates = np.linspace(0.1, 0.02, 6)
    args = (X, labels, Y, order, 8, params, layout, loss, spans)
    whole = run_train_steps(compiled_backend.train_steps, *args, learning_rates=rates)
    first = run_train_steps(
        compiled_backend.train_steps, *args, step_end=2, learning_rates=rates[:2]
    )
    second = run_train_steps(
        compiled_backend.train_steps,
        X,
        labels,
        Y,
        order,
        8,
        first[1],
        layout,
        loss,
        spans,
        step_begin=2,
        learning_rates=rates[2:],
        velocity=first[2],
    )
    assert (first[0], second[0]) == (2, 4)
    assert_close(second[1], whole[1], dtype, err_msg="params")
    assert_close(second[2], whole[2], dtype, err_msg="velocity")
    assert_close(np.concatenate([first[3], second[3]]), whole[3], dtype)


@pytest.mark.parametrize("loss", list(Loss), ids=lambda v: v.name.lower())
def test_train_steps_stops_before_a_non_finite_loss(compiled_backend, dtype, loss):
    X, labels, Y, order = training_data(dtype)
    X[order[3 * 8 + 5], 2] = np.nan  # a sample of step 3
    sizes, acts = NETS[loss]
    params, layout, spans = make_net(sizes, acts, dtype)
    args = (X, labels, Y, order, 8, params, layout, loss, spans)
    done, p, v, losses = run_train_steps(compiled_backend.train_steps, *args)
    assert done == 3
    assert np.all(np.isfinite(p))
    assert np.all(losses[3:] == -1.0), "losses_out written past the stop"
    # The parameters are those after exactly three steps ...
    three = run_train_steps(
        compiled_backend.train_steps,
        *args,
        step_end=3,
        learning_rates=np.linspace(0.1, 0.05, 7)[:3],
    )
    np.testing.assert_array_equal(p, three[1])
    np.testing.assert_array_equal(v, three[2])
    # ... and the reference stops at the same step with the same state.
    expected = run_train_steps(ref.train_steps, *args)
    assert expected[0] == 3
    assert_steps_close(p, expected[1], dtype)
    assert_close(losses[:3], expected[3][:3], dtype)


# --------------------------------------------------------------------------- #
# Training level: a seeded float64 MNIST epoch
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("run", ["sgd", "adam", "adam_dropout"])
def test_mnist_epoch_float64_matches_reference(compiled_backend, mnist_small, run):
    """A float64 MNIST epoch: parameters within 1e-9 of the reference's and
    the same test predictions, with SGD, with Adam and with Adam and dropout
    (the same masks on every backend)."""
    (x, y), (x_test, _) = mnist_small
    X = np.ascontiguousarray(x, np.float64)
    labels = np.ascontiguousarray(y, np.int64)
    order = np.random.default_rng(2024).permutation(X.shape[0])
    acts = [Activation.RELU, Activation.RELU, Activation.SOFTMAX]
    params, layout, spans = make_net([784, 64, 32, 10], acts, np.float64, seed=5)
    steps = -(-X.shape[0] // 64)
    if run == "sgd":
        config = {
            "learning_rates": np.full(steps, 0.05),
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 1e-4,
        }
    else:
        config = {
            "learning_rates": np.full(steps, 1e-3),
            "optimizer": Adam(weight_decay=1e-4),
            "dropout": [0.0, 0.2, 0.2] if run == "adam_dropout" else None,
            "seed": 2**64 - 7,
            "first_step": 3,
        }
    args = (
        X,
        labels,
        np.empty((0, 10)),
        order,
        64,
        params,
        layout,
        Loss.CROSS_ENTROPY,
        spans,
    )
    done, p, _, losses = run_train_steps(compiled_backend.train_steps, *args, **config)
    done_ref, p_ref, _, losses_ref = run_train_steps(ref.train_steps, *args, **config)
    assert done == done_ref == steps
    assert losses[-1] < losses[0]  # it learns
    rel = np.abs(p - p_ref).max() / np.abs(p_ref).max()
    assert rel <= 1e-9, f"max|diff|/max|ref| = {rel:.3e}"
    X_test = np.ascontiguousarray(x_test, np.float64)
    predicted = _compose.forward(compiled_backend, X_test, p, layout).argmax(axis=1)
    expected = _compose.forward(ref, X_test, p_ref, layout).argmax(axis=1)
    np.testing.assert_array_equal(predicted, expected)


# --------------------------------------------------------------------------- #
# Hypothesis sweeps
# --------------------------------------------------------------------------- #
@HYPOTHESIS
@given(
    n=st.integers(1, 9),
    n_in=st.integers(1, 17),
    n_out=st.integers(1, 9),
    activation=st.sampled_from(ACTIVATIONS),
    bias=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_dense_layer_sweep(
    compiled_backend, n, n_in, n_out, activation, bias, dtype, scale, seed
):
    rng = np.random.default_rng(seed)
    X = (scale * rng.standard_normal((n, n_in))).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out if bias else 0).astype(dtype)
    A_ref = ref.dense_forward(X, W, b, activation, np.empty((n, n_out), dtype))
    A = compiled_backend.dense_forward(X, W, b, activation, np.empty((n, n_out), dtype))
    assert_close(A, A_ref, dtype, scale=max(1.0, scale))
    dA = rng.standard_normal((n, n_out)).astype(dtype)
    out = []
    for kernels in (ref, compiled_backend):
        dW = np.empty((n_in, n_out), dtype)
        db = np.empty(n_out if bias else 0, dtype)
        dX = np.empty((n, n_in), dtype)
        kernels.dense_backward(dA, X, W, A_ref, activation, dW, db, dX)
        out.append((dW, db, dX))
    for name, a, e in zip(("dW", "db", "dX"), out[1], out[0], strict=True):
        assert_close(a, e, dtype, err_msg=name, scale=max(1.0, scale))


@HYPOTHESIS
@given(
    n=st.integers(1, 12),
    k=st.integers(1, 12),
    dtype=st.sampled_from([np.float32, np.float64]),
    scale=st.sampled_from([1e-2, 1.0, 1e2, 1e4]),
    seed=st.integers(0, 2**16),
)
def test_losses_sweep(compiled_backend, n, k, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    Z = (scale * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n)
    dZ, dZ_ref = np.empty_like(Z), np.empty_like(Z)
    loss = compiled_backend.softmax_cross_entropy(Z, labels, dZ)
    loss_ref = ref.softmax_cross_entropy(Z, labels, dZ_ref)
    assert_close(loss, loss_ref, dtype)
    assert_close(dZ, dZ_ref, dtype)
    Y = rng.standard_normal((n, k)).astype(dtype)
    loss = compiled_backend.mean_squared_error(Z, Y, dZ)
    loss_ref = ref.mean_squared_error(Z, Y, dZ_ref)
    assert_close(loss, loss_ref, dtype)
    assert_close(dZ, dZ_ref, dtype, scale=max(1.0, scale))


@HYPOTHESIS
@given(
    widths=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    hidden=st.lists(st.sampled_from(ACTIVATIONS), min_size=3, max_size=3),
    output=st.sampled_from(ACTIVATIONS),
    loss=st.sampled_from(list(Loss)),
    bias=st.booleans(),
    n=st.integers(1, 30),
    batch_size=st.integers(1, 10),
    optimizer=st.sampled_from(list(SGD_CONFIGS)),
    seed=st.integers(0, 2**16),
)
def test_train_steps_sweep(
    compiled_backend, widths, hidden, output, loss, bias, n, batch_size, optimizer, seed
):
    dtype = np.float64
    sizes = [5, *widths]
    acts = [*hidden[: len(widths) - 1], output]
    X, labels, Y, order = training_data(dtype, n=n, n_in=5, k=widths[-1], seed=seed)
    params, layout, spans = make_net(sizes, acts, dtype, bias, seed=seed)
    args = (X, labels, Y, order, batch_size, params, layout, loss, spans)
    kw = SGD_CONFIGS[optimizer]
    fused = run_train_steps(compiled_backend.train_steps, *args, **kw)
    expected = run_train_steps(ref.train_steps, *args, **kw)
    assert_training_matches(fused, expected, dtype, ulps=SPLIT_ULPS)


# --------------------------------------------------------------------------- #
# Input that would make a kernel write out of bounds is refused
# --------------------------------------------------------------------------- #
def test_refuses_mixed_dtypes_and_non_contiguous(compiled_backend):
    X = np.ones((4, 3))
    W = np.ones((3, 2))
    with pytest.raises((TypeError, ValueError)):
        compiled_backend.dense_forward(
            X, W.astype(np.float32), np.empty(0), 0, np.empty((4, 2))
        )
    with pytest.raises((TypeError, ValueError)):
        compiled_backend.dense_forward(
            np.ones((4, 6))[:, ::2], W, np.empty(0), 0, np.empty((4, 2))
        )
    with pytest.raises((TypeError, ValueError)):
        compiled_backend.dense_forward(X, W, np.empty(0), 0, np.empty((3, 2)))


def test_refuses_labels_out_of_range(compiled_backend):
    Z = np.zeros((3, 4))
    with pytest.raises(ValueError):
        compiled_backend.softmax_cross_entropy(Z, np.array([0, 4, 1]), np.empty_like(Z))
    with pytest.raises(ValueError):
        compiled_backend.softmax_cross_entropy(
            Z, np.array([0, -1, 1]), np.empty_like(Z)
        )


def test_train_steps_refuses_bad_layout_and_order(compiled_backend):
    X, labels, Y, order = training_data(np.float64, n=20, n_in=13, k=4)
    params, layout, spans = make_net([13, 5, 4], [1, 4], np.float64)
    args = (X, labels, Y, order, 8, params, layout, Loss.CROSS_ENTROPY, spans)
    bad_layout = layout.copy()
    bad_layout[1, 2] = params.size - 3  # W of layer 2 past the end of params
    with pytest.raises(ValueError):
        run_train_steps(compiled_backend.train_steps, *args[:6], bad_layout, *args[7:])
    bad_order = order.copy()
    bad_order[5] = 20
    with pytest.raises(ValueError):
        run_train_steps(compiled_backend.train_steps, *args[:3], bad_order, *args[4:])
    bad_labels = labels.copy()
    bad_labels[0] = 4  # k = 4 classes
    with pytest.raises(ValueError):
        run_train_steps(compiled_backend.train_steps, X, bad_labels, *args[2:])


# --------------------------------------------------------------------------- #
# Backends against each other, where both are available
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "pair", list(itertools.combinations(BACKEND_NAMES, 2)), ids="-vs-".join
)
def test_backend_pairs_agree(pair, dtype):
    first, second = (load_backend_or_skip(name) for name in pair)
    rng = np.random.default_rng(11)
    X = rng.standard_normal((9, 13)).astype(dtype)
    W = rng.standard_normal((13, 6)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    for activation in ACTIVATIONS:
        A1 = first.dense_forward(X, W, b, activation, np.empty((9, 6), dtype))
        A2 = second.dense_forward(X, W, b, activation, np.empty((9, 6), dtype))
        assert_close(A1, A2, dtype, err_msg=f"{pair} {activation.name}")
    for loss in Loss:
        X, labels, Y, order = training_data(dtype)
        sizes, acts = NETS[loss]
        params, layout, spans = make_net(sizes, acts, dtype)
        args = (X, labels, Y, order, 8, params, layout, loss, spans)
        r1 = run_train_steps(first.train_steps, *args, nesterov=True)
        r2 = run_train_steps(second.train_steps, *args, nesterov=True)
        assert_training_matches(r1, r2, dtype, f"{pair} {loss.name}")
