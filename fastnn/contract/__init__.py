"""The backend contract: the types every kernel backend takes, and its shape.

A backend (``fastnn.reference``, the numba and the cython backend) is a module
with six functions, :class:`Backend`. Four are per-layer kernels on plain
arrays (``dense_forward``, ``dense_backward``, ``softmax_cross_entropy``,
``mean_squared_error``); two work on a whole model through three objects:

* :class:`TrainingPlan`, immutable, built once per ``fit``: the layers'
  layout, the loss, the optimizer's kind and hyper-parameters, which spans of
  the parameters decay, the dropout rates and their key, the batch size;
* :class:`TrainingData`, immutable: the inputs and the targets;
* :class:`TrainingState`, mutable: the parameters, every optimizer slot (one
  row of ``slots`` each, laid out as ``params``), a gradient scratch buffer
  and the step counter.

``update(plan, state, learning_rate)`` applies one optimizer step from the
data gradient in ``state.grads``; ``train_steps(plan, data, state, order,
begin, end, learning_rates, losses_out)`` runs steps ``begin .. end - 1`` of an
epoch. ``fastnn.reference`` specifies both; the compiled backends fuse them.

Each type checks itself when it is built (shapes, dtypes, ranges: the
expensive part, once per ``fit``), and exposes read-only arrays, so a backend
call checks only what ties them together (:mod:`fastnn._kernels._checks`)
before any compiled kernel runs.
"""

from fastnn.contract.arrays import FLOAT_DTYPES, TrainingData, TrainingState
from fastnn.contract.backend import FUNCTIONS, Backend
from fastnn.contract.plan import (
    ACT,
    B_OFF,
    BETA_1,
    CLIPNORM,
    EPSILON,
    FLAG,
    MOMENTUM,
    N_HYPER,
    N_IN,
    N_OUT,
    NESTEROV,
    SECOND,
    W_OFF,
    WEIGHT_DECAY,
    OptimizerKind,
    TrainingPlan,
    clip_coefficient,
    slot_names,
    step_scalars,
)

__all__ = [
    "ACT",
    "B_OFF",
    "BETA_1",
    "CLIPNORM",
    "EPSILON",
    "FLAG",
    "FLOAT_DTYPES",
    "FUNCTIONS",
    "MOMENTUM",
    "N_HYPER",
    "N_IN",
    "N_OUT",
    "NESTEROV",
    "SECOND",
    "W_OFF",
    "WEIGHT_DECAY",
    "Backend",
    "OptimizerKind",
    "TrainingData",
    "TrainingPlan",
    "TrainingState",
    "clip_coefficient",
    "slot_names",
    "step_scalars",
]
