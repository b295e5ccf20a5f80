"""Numerical stability on every backend: extreme weights and logits (up to
the dtype's largest) give finite probabilities, losses and gradients, with no
floating-point warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from support.models import mnist_model

import fastnn


def test_extreme_weights_give_finite_probabilities(backend_name):
    model = mnist_model(backend_name)
    w = model.get_weights()
    model.set_weights([a * 1e4 for a in w])
    x = np.random.default_rng(0).random((20, 784))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = model.predict(x)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    sig = fastnn.Sequential(
        [fastnn.Dense(4, activation="sigmoid"), fastnn.Dense(3, activation="tanh")],
        input_dim=784,
        loss="mse",
        backend=backend_name,
        seed=0,
    )
    sig.set_weights([a * 1e6 for a in sig.get_weights()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sig.predict(x)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1


LOGITS = {
    "+-1e4": lambda rng, dt: 1e4 * rng.choice([-1.0, 1.0], (5, 3)),
    "near max": lambda rng, dt: np.finfo(dt).max * rng.uniform(0.99, 1, (5, 3)),
    "near -max": lambda rng, dt: -np.finfo(dt).max * rng.uniform(0.99, 1, (5, 3)),
}


@pytest.mark.parametrize("logits", list(LOGITS))
def test_extreme_logits_give_finite_loss_and_probabilities(backend_name, dtype, logits):
    # One softmax layer fed one-hot rows: the logits are exactly W's rows.
    model = fastnn.Sequential(
        [fastnn.Dense(3, activation="softmax")],
        input_dim=5,
        backend=backend_name,
        dtype=dtype,
        seed=0,
    )
    Z = LOGITS[logits](np.random.default_rng(0), dtype).astype(dtype)
    model.set_weights([Z, np.zeros(3, dtype)])
    x, y = np.eye(5, dtype=dtype), np.array([0, 1, 2, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = model.predict(x)
        loss = model.evaluate(x, y)["loss"]
        grad_loss, grads = model.loss_and_gradients(x, y)
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert np.isfinite(loss) and np.isfinite(grad_loss), (loss, grad_loss)
    assert all(np.isfinite(g).all() for g in grads)
