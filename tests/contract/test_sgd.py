"""A hand-worked SGD step, and the optimizer's options, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn


def _one_layer(backend, optimizer):
    model = fastnn.Sequential(
        [fastnn.Dense(2, activation="softmax")],
        input_dim=2,
        optimizer=optimizer,
        dtype="float64",
        backend=backend,
    )
    W = np.array([[0.1, 0.2], [0.3, 0.4]])
    b = np.array([0.05, -0.05])
    model.set_weights([W, b])
    return model, W, b


@pytest.mark.parametrize("nesterov", [False, True])
def test_two_hand_worked_steps(backend_name, nesterov):
    lr, mom, wd = 0.5, 0.9, 0.1
    opt = fastnn.SGD(lr, momentum=mom, nesterov=nesterov, weight_decay=wd)
    model, W, b = _one_layer(backend_name, opt)
    x = np.array([[1.0, 2.0]])
    y = np.array([0])
    v_W, v_b = np.zeros_like(W), np.zeros_like(b)
    for _ in range(2):
        z = x[0] @ W + b
        p = np.exp(z) / np.exp(z).sum()
        dz = p - np.array([1.0, 0.0])
        g_W = np.outer(x[0], dz) + wd * W  # L2 on weights only
        g_b = dz
        v_W, v_b = mom * v_W + g_W, mom * v_b + g_b
        step_W = g_W + mom * v_W if nesterov else v_W
        step_b = g_b + mom * v_b if nesterov else v_b
        expected_loss = -np.log(p[0]) + wd / 2 * (W**2).sum()
        W, b = W - lr * step_W, b - lr * step_b
        history = model.fit(x, y, epochs=1, batch_size=1, verbose=0)
        assert history.history["loss"][0] == pytest.approx(expected_loss, rel=1e-12)
    got_W, got_b = model.get_weights()
    np.testing.assert_allclose(got_W, W, rtol=1e-12)
    np.testing.assert_allclose(got_b, b, rtol=1e-12)
    assert model.step == 2 and model.epoch == 2


def test_exponential_decay_per_step():
    schedule = fastnn.ExponentialDecay(0.1, decay_rate=0.999)
    opt = fastnn.SGD(schedule)
    np.testing.assert_allclose(
        opt.learning_rates(3, 2), [0.1 * 0.999**3, 0.1 * 0.999**4]
    )
    model, W, _ = _one_layer("numpy", opt)
    x = np.ones((4, 2))
    model.fit(x, np.zeros(4, int), epochs=1, batch_size=1, verbose=0)
    assert model.step == 4
    assert model.history.history["learning_rate"][0] == pytest.approx(0.1 * 0.999**4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": 0.1, "momentum": 1.0}, "momentum"),
        ({"learning_rate": 0.1, "momentum": -0.1}, "momentum"),
        ({"learning_rate": 0.1, "weight_decay": -1}, "weight_decay"),
        ({"learning_rate": 0.1, "nesterov": True}, "nesterov"),
    ],
)
def test_bad_optimizer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fastnn.SGD(**kwargs)
    with pytest.raises(TypeError, match="learning_rate"):
        fastnn.SGD("fast")
