"""What the estimators' parameters mean in fastnn: each one checked, the solver
as a fastnn optimizer (``alpha`` as its weight decay) and the network as a
:class:`~fastnn.Sequential` initialised as scikit-learn's."""

from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.utils import check_random_state

from fastnn.layers import Dense, Dropout
from fastnn.model import Sequential
from fastnn.optimizers import OPTIMIZERS

#: scikit-learn's activation names -> fastnn's.
ACTIVATIONS = {
    "identity": "linear",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
}
SOLVERS = tuple(OPTIMIZERS)
LEARNING_RATES = ("constant", "invscaling", "adaptive")


def check(name, value, ok, expected):
    """Raise ``ValueError`` naming the parameter unless ``ok``."""
    if not ok:
        raise ValueError(f"{name}: expected {expected}; received {value!r}")


def number(name, value, low, high=math.inf, low_open=False, high_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    lo = ("(" if low_open else "[") + f"{low}, "
    hi = f"{high}" + (")" if high_open else "]")
    check(name, value, ok, f"a number in {lo}{hi}")


def integer(name, value, low):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    check(name, value, ok and value >= low, f"an int >= {low}")


def check_params(est) -> tuple[int, ...]:
    """Check every parameter of the estimator ``est``; returns its hidden sizes."""
    hidden = est.hidden_layer_sizes
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        hidden = tuple(hidden)
    except TypeError:
        hidden = None
    check(
        "hidden_layer_sizes", est.hidden_layer_sizes,
        hidden is not None and all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0
            for h in hidden
        ),
        "a sequence of positive ints",
    )  # fmt: skip
    check("activation", est.activation, est.activation in ACTIVATIONS,
           f"one of {sorted(ACTIVATIONS)}")  # fmt: skip
    check("solver", est.solver, est.solver in SOLVERS,
           f"one of {list(SOLVERS)} ('lbfgs' is not offered)")  # fmt: skip
    check("learning_rate", est.learning_rate,
           est.learning_rate in LEARNING_RATES,
           f"one of {list(LEARNING_RATES)}")  # fmt: skip
    number("alpha", est.alpha, 0)
    number("learning_rate_init", est.learning_rate_init, 0, low_open=True)
    number("power_t", est.power_t, 0)
    integer("max_iter", est.max_iter, 1)
    number("tol", est.tol, 0)
    number("momentum", est.momentum, 0, 1)
    number("validation_fraction", est.validation_fraction, 0, 1, True, True)
    number("beta_1", est.beta_1, 0, 1, high_open=True)
    number("beta_2", est.beta_2, 0, 1, high_open=True)
    number("epsilon", est.epsilon, 0, low_open=True)
    integer("n_iter_no_change", est.n_iter_no_change, 1)
    number("dropout", est.dropout, 0, 1, high_open=True)
    check("dtype", est.dtype, est.dtype in (None, "float32", "float64",
           np.float32, np.float64), "None, 'float32' or 'float64'")  # fmt: skip
    if est.batch_size != "auto":
        integer("batch_size", est.batch_size, 1)
    return hidden


def optimizer(est, batch_size: int):
    """The solver with scikit-learn's alpha as fastnn's weight decay."""
    scale = 2.0 if est._loss == "mse" else 1.0  # see the module docstring
    weight_decay = scale * est.alpha / batch_size
    cls = OPTIMIZERS[est.solver]
    if est.solver == "sgd":
        return cls(
            est.learning_rate_init / scale,
            momentum=est.momentum,
            nesterov=bool(est.nesterovs_momentum and est.momentum > 0),
            weight_decay=weight_decay,
        )
    if est.solver in ("adam", "adamw"):
        return cls(
            est.learning_rate_init,
            beta_1=est.beta_1,
            beta_2=est.beta_2,
            epsilon=est.epsilon,
            weight_decay=weight_decay,
        )
    if est.solver == "rmsprop":
        return cls(est.learning_rate_init, epsilon=est.epsilon,
                   weight_decay=weight_decay)  # fmt: skip
    return cls(est.learning_rate_init, weight_decay=weight_decay)


def build_model(est, hidden, n_features, n_outputs, dtype, batch_size) -> Sequential:
    """The estimator's network as a fastnn model, initialised as scikit-learn's."""
    layers = []
    for units in hidden:
        layers.append(Dense(units, activation=ACTIVATIONS[est.activation]))
        if est.dropout:
            layers.append(Dropout(est.dropout))
    output = "softmax" if est._loss == "cross_entropy" else "linear"
    layers.append(Dense(n_outputs, activation=output))
    rng = check_random_state(est.random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    model = Sequential(
        layers,
        input_dim=n_features,
        loss=est._loss,
        optimizer=optimizer(est, batch_size),
        backend=est.backend,
        dtype=dtype,
        seed=seed,
    )
    # scikit-learn's initialisation: weights and biases uniform in
    # +-sqrt(factor / (fan_in + fan_out)), factor 2 for logistic, else 6.
    factor = 2.0 if est.activation == "logistic" else 6.0
    weights = []
    for W in model.get_weights()[0::2]:
        bound = math.sqrt(factor / (W.shape[0] + W.shape[1]))
        weights.append(rng.uniform(-bound, bound, W.shape))
        weights.append(rng.uniform(-bound, bound, W.shape[1]))
    model.set_weights(weights)
    return model
