"""The shape of a backend: the six functions every kernel backend module
provides (``fastnn.reference`` documents each)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from fastnn.contract.arrays import TrainingData, TrainingState
from fastnn.contract.plan import TrainingPlan

#: The six functions of a backend module (its ``__all__``), in the reference's order.
FUNCTIONS = (
    "dense_forward",
    "dense_backward",
    "softmax_cross_entropy",
    "mean_squared_error",
    "update",
    "train_steps",
)


class Backend(Protocol):
    """What a backend module provides; ``fastnn.reference`` documents each."""

    NAME: str

    def dense_forward(self, X, W, b, activation, A_out): ...

    def dense_backward(self, dA, X, W, A, activation, dW_out, db_out, dX_out=None): ...

    def softmax_cross_entropy(self, Z, labels, dZ_out) -> float: ...

    def mean_squared_error(self, A, Y, dA_out) -> float: ...

    def update(
        self, plan: TrainingPlan, state: TrainingState, learning_rate: float
    ) -> float: ...

    def train_steps(
        self,
        plan: TrainingPlan,
        data: TrainingData,
        state: TrainingState,
        order: np.ndarray,
        begin: int,
        end: int,
        learning_rates: np.ndarray,
        losses_out: np.ndarray,
    ) -> int: ...
