"""Small seeded models and their data for the model-level tests (model API,
persistence, optimizers, threads), shared by the folders that split them.

* ``make_model`` and ``small_data``: a 5-16-8-3 net (relu, tanh without bias,
  softmax) trained with SGD, and 200 samples of three classes for it.
* ``build``, ``OPTIMIZERS``, ``X`` and ``Y``: a 6-16-8-3 net with two Dropout
  layers, for any optimizer (one of each kind in ``OPTIMIZERS``), and 120
  samples of three classes for it.
* ``mnist_model``: a 784-32-10 net (relu, softmax) for real MNIST.
"""

from __future__ import annotations

import numpy as np

import fastnn


def make_model(backend="numpy", dtype="float32", seed=0, **opt):
    opt = {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 1e-4} | opt
    return fastnn.Sequential(
        [
            fastnn.Dense(16, activation="relu", kernel_initializer="he_uniform"),
            fastnn.Dense(8, activation="tanh", use_bias=False),
            fastnn.Dense(3, activation="softmax"),
        ],
        input_dim=5,
        optimizer=fastnn.SGD(**opt),
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


def small_data():
    """200 seeded float32 samples of 5 features for ``make_model``, and their
    labels (0, 1 or 2, from the first two features)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    return x, y


OPTIMIZERS = {
    "sgd": lambda: fastnn.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: fastnn.Adam(0.01, weight_decay=1e-3),
    "adamw": lambda: fastnn.AdamW(0.01, amsgrad=True),
    "rmsprop": lambda: fastnn.RMSprop(0.001, momentum=0.5, centered=True),
    "adagrad": lambda: fastnn.Adagrad(0.05, initial_accumulator_value=0.1),
}

RNG = np.random.default_rng(3)
X = RNG.standard_normal((120, 6))
Y = RNG.integers(0, 3, 120)


def build(optimizer="adam", backend="numpy", rate=0.5, dtype="float64", seed=1):
    """The dropout net for ``optimizer`` (a name in ``OPTIMIZERS`` or an
    Optimizer), dropping ``rate`` after the first layer, half that after the
    second."""
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


def mnist_model(backend, hidden=(32,), dtype="float32", seed=0):
    layers = [fastnn.Dense(h, activation="relu") for h in hidden]
    return fastnn.Sequential(
        layers + [fastnn.Dense(10, activation="softmax")],
        input_dim=784,
        backend=backend,
        dtype=dtype,
        seed=seed,
        optimizer=fastnn.SGD(0.05, momentum=0.9),
    )
