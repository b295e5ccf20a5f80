"""Training on the real MNIST reaches a stated accuracy on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn


@pytest.mark.slow
def test_small_network_reaches_96_percent_in_two_epochs(backend_name, mnist):
    (x, y), (xt, yt) = mnist
    model = fastnn.Sequential(
        [
            fastnn.Dense(128, activation="relu", kernel_initializer="he_uniform"),
            fastnn.Dense(10, activation="softmax"),
        ],
        input_dim=784,
        backend=backend_name,
        seed=0,
        optimizer=fastnn.SGD(0.05, momentum=0.9, weight_decay=1e-4),
    )
    history = model.fit(
        x, y, epochs=2, batch_size=64, verbose=0, validation_data=(xt, yt)
    )
    assert history.history["loss"][1] < history.history["loss"][0] < 0.5
    assert history.history["val_accuracy"][-1] >= 0.96
    assert model.evaluate(xt, yt)["accuracy"] == history.history["val_accuracy"][-1]


def test_mnist_mse_original_recipe_learns(mnist):
    """The original project's setup: uniform(-0.1, 0.1), quadratic loss, x0.999
    per-step decay; a short run on a slice must learn well beyond chance."""
    (x, y), (xt, yt) = mnist
    model = fastnn.Sequential(
        [
            fastnn.Dense(64, activation="relu", kernel_initializer="uniform"),
            fastnn.Dense(10, activation="softmax", kernel_initializer="uniform"),
        ],
        input_dim=784,
        loss="mse",
        backend="numpy",
        seed=0,
        optimizer=fastnn.SGD(
            fastnn.ExponentialDecay(2.0, decay_rate=0.999), momentum=0.9
        ),
    )
    model.fit(x[:10000], y[:10000], epochs=2, batch_size=64, verbose=0)
    assert model.evaluate(xt, yt)["accuracy"] > 0.85
    assert np.isfinite(model.evaluate(xt, yt)["loss"])
