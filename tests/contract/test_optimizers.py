"""Optimizers: hand-worked steps of each optimizer's update (the reference's),
bad hyper-parameters, slots carried across a live backend switch, every
schedule with every optimizer on every backend, and no subnormals stored.
(Slots saved and resumed: persistence/; every optimizer in the fused loops
against the reference: test_equivalence.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.contract import make_plan
from support.models import OPTIMIZERS, X, Y, build

import fastnn
from fastnn import contract as c
from fastnn import reference as ref
from fastnn.losses import Loss


def one_step(optimizer, params, grads, lr, step=0, spans=((0, 1),)):
    """The reference's update of a 2-entry buffer (entry 0 a weight, entry 1
    a bias), from ``step``; returns (params, slots, L2 sum of squares)."""
    layout = np.array([[1, 2, 0, -1, 0]])
    plan = make_plan(layout, 2, Loss.MSE, np.array(spans).reshape(-1, 2), 1, optimizer)
    state = c.TrainingState(
        np.array(params, np.float64), optimizer.initial_slots(2, np.float64), step
    )
    state.grads[...] = grads
    sq = ref.update(plan, state, lr)
    assert state.step == step + 1
    return state.params, state.slots, sq


# ------------------------------------------------------------ hand-worked
def test_sgd_step_by_hand():
    p, slots, sq = one_step(
        fastnn.SGD(momentum=0.9, nesterov=True, weight_decay=0.1), [1.0, -2.0],
        [0.5, 0.25], 0.1,
    )  # fmt: skip
    g = np.array([0.5 + 0.1 * 1.0, 0.25])  # decay on the weight only
    v = g  # from zero
    np.testing.assert_allclose(slots[0], v, rtol=1e-15)
    np.testing.assert_allclose(p, [1.0, -2.0] - 0.1 * (g + 0.9 * v), rtol=1e-15)
    assert sq == 1.0


def test_adam_first_step_by_hand():
    """t = 1: m = (1 - b1) g, v = (1 - b2) g^2; bias-corrected they are g and
    g^2, so the step is lr * g / (|g| + eps)."""
    lr, eps = 0.01, 1e-8
    p, slots, sq = one_step(
        fastnn.Adam(epsilon=eps, weight_decay=0.1), [1.0, -2.0], [0.5, -0.25], lr
    )
    g = np.array([0.6, -0.25])
    np.testing.assert_allclose(slots[0], 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(slots[1], 0.001 * g * g, rtol=1e-14)
    np.testing.assert_allclose(p, [1.0, -2.0] - lr * g / (np.abs(g) + eps), rtol=1e-12)
    assert sq == 1.0


def test_adam_later_step_and_amsgrad_by_hand():
    """From step 4 (t = 5) with given moments: the bias corrections of t = 5;
    amsgrad divides by the running maximum of v instead."""
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.001
    layout = np.array([[1, 1, 0, -1, 0]])
    for amsgrad in (False, True):
        opt = fastnn.Adam(amsgrad=amsgrad)
        plan = make_plan(layout, 1, Loss.MSE, np.zeros((0, 2)), 1, opt)
        slots = np.array([[0.2], [0.5], [0.9]])[: plan.n_slots].copy()
        state = c.TrainingState(np.array([1.0]), slots, 4)
        state.grads[...] = 0.3
        ref.update(plan, state, lr)
        m = 0.2 + 0.1 * (0.3 - 0.2)
        v = 0.5 * b2 + 0.001 * 0.09
        vv = max(v, 0.9) if amsgrad else v
        want = 1.0 - lr / (1 - b1**5) * m / (math.sqrt(vv) / math.sqrt(1 - b2**5) + eps)
        assert state.params[0] == pytest.approx(want, rel=1e-14)


def test_adamw_decays_before_the_step_and_not_in_the_loss():
    lr, wd = 0.01, 0.1
    p, _, sq = one_step(fastnn.AdamW(weight_decay=wd), [1.0, -2.0], [0.5, -0.25], lr)
    g = np.array([0.5, -0.25])
    shrunk = np.array([1.0 * (1 - lr * wd), -2.0])  # the bias does not decay
    np.testing.assert_allclose(p, shrunk - lr * g / (np.abs(g) + 1e-8), rtol=1e-12)
    assert sq == 0.0  # no L2 term in the loss


def test_rmsprop_step_by_hand():
    lr, rho, eps = 0.01, 0.99, 1e-8
    for momentum, centered in ((0.0, False), (0.5, True)):
        opt = fastnn.RMSprop(rho=rho, momentum=momentum, centered=centered)
        p, slots, _ = one_step(opt, [1.0, -2.0], [0.5, -0.25], lr)
        g = np.array([0.5, -0.25])
        a = (1 - rho) * g * g
        if centered:
            ga = (1 - rho) * g
            d = np.sqrt(a - ga * ga) + eps
            np.testing.assert_allclose(slots[2], ga, rtol=1e-15)
        else:
            d = np.sqrt(a) + eps
        np.testing.assert_allclose(slots[0], a, rtol=1e-15)
        np.testing.assert_allclose(p, [1.0, -2.0] - lr * (g / d), rtol=1e-12)
        if momentum:
            np.testing.assert_allclose(slots[1], g / d, rtol=1e-15)


def test_adagrad_step_by_hand():
    lr, eps = 0.1, 1e-10
    opt = fastnn.Adagrad(initial_accumulator_value=0.5, epsilon=eps, weight_decay=0.1)
    p, slots, sq = one_step(opt, [1.0, -2.0], [0.5, -0.25], lr)
    g = np.array([0.6, -0.25])
    s = 0.5 + g * g
    np.testing.assert_allclose(slots[0], s, rtol=1e-15)
    np.testing.assert_allclose(p, [1.0, -2.0] - lr * g / (np.sqrt(s) + eps), rtol=1e-14)
    assert sq == 1.0


def test_clipnorm_scales_the_whole_gradient_before_the_optimizer():
    """Global norm 5 clipped to 1: every entry times 1 / (5 + 1e-6), then
    the decay (not clipped) and the step."""
    opt = fastnn.SGD(weight_decay=0.1, clipnorm=1.0)
    p, _, _ = one_step(opt, [1.0, -2.0], [3.0, 4.0], 0.1)
    g = np.array([3.0, 4.0]) / (5.0 + 1e-6) + [0.1, 0.0]
    np.testing.assert_allclose(p, [1.0, -2.0] - 0.1 * g, rtol=1e-15)
    p, _, _ = one_step(opt, [1.0, -2.0], [0.3, 0.4], 0.1)  # norm 0.5: unclipped
    np.testing.assert_allclose(p, [1.0, -2.0] - 0.1 * np.array([0.4, 0.4]))


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: fastnn.Adam(learning_rate=-1e-3), "learning_rate"),
        (lambda: fastnn.Adam(beta_1=1.0), "beta_1"),
        (lambda: fastnn.Adam(beta_2=-0.1), "beta_2"),
        (lambda: fastnn.Adam(epsilon=0.0), "epsilon"),
        (lambda: fastnn.Adam(weight_decay=-1.0), "weight_decay"),
        (lambda: fastnn.AdamW(amsgrad="yes"), "amsgrad"),
        (lambda: fastnn.RMSprop(rho=1.0), "rho"),
        (lambda: fastnn.RMSprop(momentum=1.5), "momentum"),
        (lambda: fastnn.RMSprop(epsilon=-1e-8), "epsilon"),
        (lambda: fastnn.Adagrad(initial_accumulator_value=-0.1),
         "initial_accumulator_value"),
        (lambda: fastnn.SGD(clipnorm=0.0), "clipnorm"),
        (lambda: fastnn.SGD(clipnorm=math.inf), "clipnorm"),
        (lambda: fastnn.Dropout(1.0), "rate"),
        (lambda: fastnn.Dropout(-0.1), "rate"),
        (lambda: fastnn.Dropout("0.5"), "rate"),
        (lambda: fastnn.Sequential([fastnn.Dense(3)], 4, "mse", optimizer="adamax"),
         "optimizer"),
        (lambda: fastnn.Sequential([fastnn.Dense(3)], 4, "mse", optimizer=0.1),
         "optimizer"),
    ],
)  # fmt: skip
def test_bad_hyper_parameters_are_named(make, name):
    with pytest.raises((TypeError, ValueError), match=rf"^{name}: expected"):
        make()


# ------------------------------------------------------------ the model
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_slots_survive_a_live_backend_switch(optimizer, compiled_backend):
    """Train an epoch on the reference, switch the live model to a compiled
    backend, train on: the same as staying on the reference (float64, to
    rounding), the slots carried over."""
    stay = build(optimizer)
    switch = build(optimizer)
    for model in (stay, switch):
        model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    switch.backend = compiled_backend.NAME
    stay.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    switch.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    assert switch.step == stay.step == 24
    np.testing.assert_allclose(switch.params, stay.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(switch.slots, stay.slots, rtol=1e-8, atol=1e-14)


SCHEDULES = {
    "exponential": lambda lr: fastnn.ExponentialDecay(lr, 0.9, decay_steps=4),
    "step": lambda lr: fastnn.StepDecay(lr, step_size=5, gamma=0.5),
    "cosine": lambda lr: fastnn.CosineDecay(
        lr / 10, decay_steps=10, warmup_target=lr, warmup_steps=4
    ),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_schedule_with_every_optimizer(optimizer, schedule, backend_name):
    """The schedule's rates are the ones the steps take on every backend:
    a run equals the reference's, and the logged rate is the schedule's."""
    results = []
    for backend in ("numpy", backend_name):
        opt = OPTIMIZERS[optimizer]()
        opt.learning_rate = SCHEDULES[schedule](0.01)
        model = build(opt, backend)
        history = model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
        results.append((model.params.copy(), history.history["learning_rate"]))
        expected_rate = float(opt.learning_rate(np.array([16]))[0])
        assert history.history["learning_rate"][-1] == expected_rate
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop", "adagrad"])
def test_adaptive_updates_store_no_subnormals(backend_name, optimizer, dtype):
    """Adam-like steps drive unused weights and their moments below the
    smallest normal number, where x86 arithmetic crawls: those are stored as
    zero, on every backend alike; normal values are untouched."""
    from fastnn.backends import get_backend

    kernels = get_backend(backend_name)
    tiny = np.finfo(dtype).tiny
    opt = OPTIMIZERS[optimizer]()
    layout = np.array([[1, 4, 0, -1, 0]])
    plan = make_plan(layout, 4, Loss.MSE, np.array([[0, 4]]), 1, opt)
    params = np.array([tiny / 4, -tiny / 3, 0.5, tiny * 4], dtype)
    slots = opt.initial_slots(4, dtype)
    slots[:, :2] = tiny / 2  # subnormal moments
    state = c.TrainingState(params, slots)
    state.grads[...] = np.array([0.0, 0.0, 0.25, 0.0], dtype)
    kernels.update(plan, state, 1e-30)  # a step too small to move a normal weight
    for a in (state.params, state.slots):
        assert not np.any((a != 0) & (np.abs(a) < tiny)), a
    assert state.params[0] == state.params[1] == 0
    assert state.params[3] == dtype(tiny * 4)


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_training_flushes_subnormals_and_restores_the_callers_fp_mode(backend):
    """The compiled loops run with x86's flush-to-zero and denormals-are-zero
    set (``_fpenv.h``): weights that only an Adam-like step with coupled L2
    moves shrink into the subnormal range, where each multiply would take a
    microcode assist. The caller's thread gets its mode back, and the run
    still matches the reference."""
    from support.backends import load_backend_or_skip

    load_backend_or_skip(backend)
    load_backend_or_skip("numba")  # reads MXCSR
    from fastnn._kernels import _numba_fpenv as fpenv

    if not fpenv.X86:
        pytest.skip("FTZ/DAZ are x86's")
    before = int(fpenv.read_fpenv())
    assert before & fpenv.FTZ_DAZ == 0, hex(before)
    x = X.copy()
    x[:, 3:] = 0  # features that never feed a gradient: their weights only decay
    runs = []
    for name in ("numpy", backend):
        model = build("adam", name, rate=0.05, dtype="float32")
        model.optimizer = fastnn.Adam(0.05, weight_decay=1e-3)
        model.fit(x, Y, epochs=3, batch_size=16, verbose=0)
        runs.append(model.params.copy())
        assert int(fpenv.read_fpenv()) == before  # restored after fit
    np.testing.assert_allclose(runs[1], runs[0], rtol=2e-4, atol=1e-5)
