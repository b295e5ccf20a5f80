"""Finite-difference checks (float64) of the exact gradient of the documented
total loss, for every activation and both losses, L2 included, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn

HIDDEN = ["linear", "relu", "sigmoid", "tanh"]


def _model(backend, hidden_act, out_act, loss, weight_decay, use_bias=True):
    return fastnn.Sequential(
        [
            fastnn.Dense(6, activation=hidden_act, use_bias=use_bias),
            fastnn.Dense(5, activation=hidden_act),
            fastnn.Dense(3, activation=out_act, use_bias=use_bias),
        ],
        input_dim=4,
        loss=loss,
        dtype="float64",
        seed=3,
        backend=backend,
        optimizer=fastnn.SGD(0.1, weight_decay=weight_decay),
    )


def _numeric_gradient(model, x, y, eps=1e-6):
    weights = model.get_weights()
    grads = []
    for i, w in enumerate(weights):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            values = []
            for sign in (1, -1):
                trial = [a.copy() for a in weights]
                trial[i][idx] += sign * eps
                model.set_weights(trial)
                values.append(model.loss_and_gradients(x, y)[0])
            g[idx] = (values[0] - values[1]) / (2 * eps)
        grads.append(g)
    model.set_weights(weights)
    return grads


CASES = (
    [(h, "softmax", "cross_entropy") for h in HIDDEN]
    + [("tanh", out, "mse") for out in ["linear", "relu", "sigmoid", "tanh", "softmax"]]
    + [("sigmoid", "softmax", "mse")]
)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("hidden,out,loss", CASES)
def test_gradient_matches_finite_differences(
    backend_name, hidden, out, loss, weight_decay
):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 4))
    y = rng.integers(0, 3, size=7)
    model = _model(backend_name, hidden, out, loss, weight_decay)
    if out == "relu":  # keep outputs away from the kink so f'(A) is well defined
        w = model.get_weights()
        w[-1] = np.abs(w[-1]) + 0.5
        model.set_weights(w)
    loss_value, grads = model.loss_and_gradients(x, y)
    numeric = _numeric_gradient(model, x, y)
    assert np.isfinite(loss_value)
    for analytic, approx in zip(grads, numeric, strict=True):
        np.testing.assert_allclose(analytic, approx, rtol=1e-5, atol=1e-8)


def test_loss_formula_includes_l2_and_one_hot_labels_agree():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4))
    y = rng.integers(0, 3, size=5)
    model = _model("numpy", "relu", "softmax", "cross_entropy", 0.1, use_bias=False)
    loss, _ = model.loss_and_gradients(x, y)
    P = model.predict(x)
    l2 = 0.5 * 0.1 * sum(float((w**2).sum()) for w in model.get_weights())
    expected = -np.mean(np.log(P[np.arange(5), y])) + l2
    assert loss == pytest.approx(expected, rel=1e-12)
    one_hot = np.eye(3)[y]
    assert model.loss_and_gradients(x, one_hot)[0] == loss
    assert model.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-12)


def test_mse_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 4))
    t = rng.normal(size=(5, 3))
    model = _model("numpy", "tanh", "sigmoid", "mse", 0.0)
    loss, _ = model.loss_and_gradients(x, t)
    assert loss == pytest.approx(np.mean((model.predict(x) - t) ** 2), rel=1e-12)
