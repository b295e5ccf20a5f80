"""Dropout in the model: a Dropout goes between two Dense layers, and it acts
in training only (prediction, evaluation and the gradients are the net's
without it). (The masks themselves: contract/test_philox.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from support.models import OPTIMIZERS, X, Y, build

import fastnn


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
