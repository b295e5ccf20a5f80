"""Layers. A :class:`Dense` layer is a description; its parameters live as views
into the model's one flat parameter buffer (see ``fastnn.reference``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from fastnn import activations

Initializer = Callable[[np.random.Generator, tuple[int, int], np.dtype], np.ndarray]


def _glorot_uniform(rng, shape, dtype):
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def _he_uniform(rng, shape, dtype):
    limit = math.sqrt(6.0 / shape[0])
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def _uniform(rng, shape, dtype):
    """The original project's initialiser: U(-0.1, 0.1)."""
    return rng.uniform(-0.1, 0.1, size=shape).astype(dtype)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": _glorot_uniform,
    "he_uniform": _he_uniform,
    "uniform": _uniform,
}


class Dense:
    """A fully connected layer ``A = activation(X @ W + b)``.

    Parameters
    ----------
    units : int
        Number of outputs (``n_out``).
    activation : {"linear", "relu", "sigmoid", "tanh", "softmax"} or None
        ``None`` means linear. ``softmax`` belongs on the output layer.
    use_bias : bool
        Whether the layer has a bias vector (initialised to zero).
    kernel_initializer : {"glorot_uniform", "he_uniform", "uniform"}
        ``"uniform"`` is the original project's U(-0.1, 0.1). Default: Keras's
        ``"glorot_uniform"``.
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
    ) -> None:
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)):
            raise TypeError(f"units: expected a positive int; received {units!r}")
        if units < 1:
            raise ValueError(f"units: expected a positive int; received {units!r}")
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias: expected a bool; received {use_bias!r}")
        if kernel_initializer not in INITIALIZERS:
            raise ValueError(
                "kernel_initializer: expected one of "
                f"{', '.join(map(repr, INITIALIZERS))}; received {kernel_initializer!r}"
            )
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation.name.lower(),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dense:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Dense({args})"


class Dropout:
    """Inverted dropout on the output of the :class:`Dense` layer before it.

    During ``fit`` each entry is zeroed with probability ``rate`` and the
    others are multiplied by ``1 / (1 - rate)``; ``predict`` and ``evaluate``
    pass values through unchanged. The masks come from a counter-based
    generator keyed by the model's seed, the step and the layer
    (:mod:`fastnn._philox`), so they are the same on every backend and a
    seeded run is reproducible bit for bit. A ``Dropout`` sits between two
    ``Dense`` layers.
    """

    def __init__(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(
            rate, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"rate: expected a number in [0, 1); received {rate!r}")
        if not (math.isfinite(rate) and 0 <= rate < 1):
            raise ValueError(f"rate: expected a number in [0, 1); received {rate!r}")
        self.rate = float(rate)

    def get_config(self) -> dict[str, Any]:
        return {"class": "Dropout", "rate": self.rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dropout:
        return cls(config["rate"])

    def __repr__(self) -> str:
        return f"Dropout(rate={self.rate!r})"


def from_config(config: dict[str, Any]) -> Dense | Dropout:
    """A layer from its ``get_config()`` dict (Dense's has no ``"class"``)."""
    if config.get("class") == "Dropout":
        return Dropout.from_config(config)
    return Dense.from_config(config)
