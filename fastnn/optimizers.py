"""Stochastic gradient descent and learning-rate schedules.

``SGD`` follows PyTorch's ``torch.optim.SGD`` (dampening 0): with
``g = dL/dW + weight_decay * W`` (weights only, never biases),
``v = momentum * v + g``, ``step = g + momentum * v`` if ``nesterov`` else ``v``,
``W -= learning_rate * step``. ``weight_decay = lam`` is the gradient of the L2
term ``lam / 2 * sum W**2``, which the reported loss includes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.floating, np.integer)
    ):
        raise TypeError(f"{name}: expected a number; received {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else ("> " if low_open else ">= ") + str(low)
        hi = "" if high is None else ("< " if high_open else "<= ") + str(high)
        rng = " and ".join(s for s in (lo, hi) if s)
        raise ValueError(f"{name}: expected a finite number {rng}; received {value!r}")
    return value


class ExponentialDecay:
    """``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)``.

    ``step`` counts SGD steps (batches) from the start of training. The original
    project's schedule is ``ExponentialDecay(lr, decay_rate=0.999)``: x0.999 per
    batch. ``staircase=True`` uses ``step // decay_steps``. ``min_learning_rate``
    sets a floor.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_rate: float = 0.999,
        decay_steps: int = 1,
        staircase: bool = False,
        min_learning_rate: float = 0.0,
    ) -> None:
        self.initial_learning_rate = _check_number(
            "initial_learning_rate", initial_learning_rate, low=0, low_open=True
        )
        self.decay_rate = _check_number(
            "decay_rate", decay_rate, low=0, high=1, low_open=True
        )
        if (
            isinstance(decay_steps, bool)
            or not isinstance(decay_steps, (int, np.integer))
            or decay_steps < 1
        ):
            raise ValueError(
                f"decay_steps: expected a positive int; received {decay_steps!r}"
            )
        self.decay_steps = int(decay_steps)
        self.staircase = bool(staircase)
        self.min_learning_rate = _check_number(
            "min_learning_rate", min_learning_rate, low=0
        )

    def __call__(self, steps: np.ndarray) -> np.ndarray:
        """Learning rates (float64) for an array of global step indices."""
        p = np.asarray(steps, dtype=np.float64) / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        lr = self.initial_learning_rate * self.decay_rate**p
        return np.maximum(lr, self.min_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {
            "class": "ExponentialDecay",
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps,
            "staircase": self.staircase,
            "min_learning_rate": self.min_learning_rate,
        }


class SGD:
    """Mini-batch SGD with momentum, Nesterov momentum and L2 weight decay.

    ``learning_rate`` is a positive number or a schedule such as
    :class:`ExponentialDecay`.
    """

    def __init__(
        self,
        learning_rate: float | ExponentialDecay = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if isinstance(learning_rate, ExponentialDecay):
            self.learning_rate = learning_rate
        else:
            self.learning_rate = _check_number(
                "learning_rate", learning_rate, low=0, low_open=True
            )
        self.momentum = _check_number(
            "momentum", momentum, low=0, high=1, high_open=True
        )
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected a bool; received {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError(
                "nesterov: Nesterov momentum requires momentum > 0; "
                "received momentum=0.0"
            )
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_number("weight_decay", weight_decay, low=0)

    def learning_rates(self, first_step: int, n_steps: int) -> np.ndarray:
        """The learning rate of each global step ``first_step .. first_step+n-1``."""
        if isinstance(self.learning_rate, ExponentialDecay):
            return self.learning_rate(np.arange(first_step, first_step + n_steps))
        return np.full(n_steps, self.learning_rate)

    def get_config(self) -> dict[str, Any]:
        lr = self.learning_rate
        return {
            "learning_rate": lr.get_config() if hasattr(lr, "get_config") else lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SGD:
        config = dict(config)
        lr = config.pop("learning_rate")
        if isinstance(lr, dict):
            lr = dict(lr)
            kind = lr.pop("class")
            if kind != "ExponentialDecay":
                raise ValueError(f"learning_rate: unknown schedule {kind!r}")
            lr = ExponentialDecay(**lr)
        return cls(learning_rate=lr, **config)

    def __repr__(self) -> str:
        return (
            "SGD(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"
        )
