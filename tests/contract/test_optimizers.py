"""Optimizers, dropout and schedules at the model level: hand-worked steps of
each optimizer, bad hyper-parameters, dropout in training only, slots saved,
loaded and carried across a backend switch, ReduceLROnPlateau, and every
schedule with every optimizer on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.contract import make_plan

import fastnn
from fastnn import contract as c
from fastnn import reference as ref
from fastnn.losses import Loss

OPTIMIZERS = {
    "sgd": lambda: fastnn.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: fastnn.Adam(0.01, weight_decay=1e-3),
    "adamw": lambda: fastnn.AdamW(0.01, amsgrad=True),
    "rmsprop": lambda: fastnn.RMSprop(0.001, momentum=0.5, centered=True),
    "adagrad": lambda: fastnn.Adagrad(0.05, initial_accumulator_value=0.1),
}


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


@pytest.mark.parametrize(
    "layers",
    [
        [fastnn.Dropout(0.5), fastnn.Dense(3, activation="softmax")],
        [fastnn.Dense(4), fastnn.Dense(3, activation="softmax"), fastnn.Dropout(0.5)],
        [fastnn.Dense(4), fastnn.Dropout(0.5), fastnn.Dropout(0.2),
         fastnn.Dense(3, activation="softmax")],
    ],
    ids=["first", "last", "twice"],
)  # fmt: skip
def test_dropout_goes_between_dense_layers(layers):
    with pytest.raises(ValueError, match="a Dropout goes between two Dense layers"):
        fastnn.Sequential(layers, input_dim=5, backend="numpy")


# ------------------------------------------------------------ the model
RNG = np.random.default_rng(3)
X = RNG.standard_normal((120, 6))
Y = RNG.integers(0, 3, 120)


def build(optimizer="adam", backend="numpy", rate=0.5, dtype="float64", seed=1):
    opt = OPTIMIZERS[optimizer]() if isinstance(optimizer, str) else optimizer
    return fastnn.Sequential(
        [
            fastnn.Dense(16, activation="relu"),
            fastnn.Dropout(rate),
            fastnn.Dense(8, activation="tanh"),
            fastnn.Dropout(rate / 2),
            fastnn.Dense(3, activation="softmax"),
        ],
        input_dim=6,
        optimizer=opt,
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


def test_dropout_acts_in_training_only():
    model = build()
    twin = fastnn.Sequential(
        [layer for layer in model.layers if isinstance(layer, fastnn.Dense)],
        input_dim=6,
        optimizer=OPTIMIZERS["adam"](),
        backend="numpy",
        dtype="float64",
        seed=1,
    )
    np.testing.assert_array_equal(model.predict(X), twin.predict(X))
    assert model.evaluate(X, Y) == twin.evaluate(X, Y)
    loss, grads = model.loss_and_gradients(X, Y)
    loss_twin, grads_twin = twin.loss_and_gradients(X, Y)
    assert loss == loss_twin
    for a, b in zip(grads, grads_twin, strict=True):
        np.testing.assert_array_equal(a, b)
    model.optimizer = "sgd"
    twin.optimizer = "sgd"
    model.fit(X, Y, epochs=1, batch_size=20, verbose=0, shuffle=False)
    twin.fit(X, Y, epochs=1, batch_size=20, verbose=0, shuffle=False)
    assert np.abs(model.params - twin.params).max() > 1e-3  # masks in fit


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_save_load_keeps_dropout_optimizer_and_slots(optimizer, tmp_path, backend_name):
    model = build(optimizer, backend_name)
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz", backend=backend_name)
    assert [type(layer) for layer in loaded.layers] == [
        type(layer) for layer in model.layers
    ]
    assert loaded.dropout_rates == model.dropout_rates
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_array_equal(loaded.slots, model.slots)
    assert loaded.step == model.step
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    loaded.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(loaded.params, model.params)  # bit for bit
    np.testing.assert_array_equal(loaded.slots, model.slots)


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


def test_a_new_optimizer_starts_afresh_and_resume_refuses_another(tmp_path):
    model = build("adam")
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "adam.npz")
    assert model.step == 8 and np.abs(model.slots).max() > 0
    model.optimizer = fastnn.Adam(0.1, weight_decay=1e-3)  # same state: kept
    assert model.step == 8 and np.abs(model.slots).max() > 0
    model.optimizer = "rmsprop"
    assert model.step == 0 and model.slots.shape == (1, model.n_params)
    assert not model.slots.any()
    with pytest.raises(ValueError, match="trained with another optimizer"):
        model.fit(X, Y, epochs=2, verbose=0, resume=tmp_path / "adam.npz")


def test_reduce_lr_on_plateau_lowers_the_rate_and_the_checkpoint_keeps_it(tmp_path):
    model = build("adam", rate=0.0)
    cb = fastnn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=1.0)
    history = model.fit(
        X, Y, epochs=3, batch_size=16, verbose=0,
        callbacks=[cb, fastnn.ModelCheckpoint(tmp_path / "c.npz")],
    )  # fmt: skip
    # Epoch 1 sets the best loss; epochs 2 and 3 do not beat it by 1.0 and
    # each halves the rate (logged before the callback acts, as Keras).
    rates = history.history["learning_rate"]
    assert rates == pytest.approx([0.01, 0.01, 0.005])
    assert model.optimizer.learning_rate_scale == 0.25
    assert model.optimizer.learning_rates(model.step, 1)[0] == pytest.approx(0.0025)
    assert fastnn.load(tmp_path / "c.npz").optimizer.learning_rate_scale == 0.25


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


def test_resume_with_reduce_lr_on_plateau_is_bit_identical(tmp_path, backend_name):
    """The checkpoint carries ReduceLROnPlateau's counters and the reduced
    rate (checkpoints are written after the other callbacks act, wherever
    they are listed), so a resumed run reduces when the uninterrupted one
    does and ends with the same bits."""

    def callbacks(path):
        return [
            fastnn.ModelCheckpoint(path),  # listed first on purpose
            fastnn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2,
                                     min_delta=0.3, cooldown=1),
        ]  # fmt: skip

    whole = build("adam", backend_name, rate=0.2)
    history = whole.fit(X, Y, epochs=6, batch_size=16, verbose=0,
                        callbacks=callbacks(tmp_path / "whole.npz"))  # fmt: skip
    rates = history.history["learning_rate"]
    assert len(set(rates)) > 1, rates  # the plateau logic acted

    cut = build("adam", backend_name, rate=0.2)
    cut.fit(X, Y, epochs=3, batch_size=16, verbose=0,
            callbacks=callbacks(tmp_path / "cut.npz"))  # fmt: skip
    resumed = build("adam", backend_name, rate=0.2)
    history = resumed.fit(X, Y, epochs=6, batch_size=16, verbose=0,
                          callbacks=callbacks(tmp_path / "cut.npz"),
                          resume=tmp_path / "cut.npz")  # fmt: skip
    assert history.history["learning_rate"] == rates
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.slots, whole.slots)
    assert resumed.optimizer.learning_rate_scale == whole.optimizer.learning_rate_scale
