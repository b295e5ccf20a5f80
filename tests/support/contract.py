"""Test helpers for the backend contract (``fastnn.contract``).

``CONTRACT`` names its functions. ``run_train_steps`` calls a ``train_steps``
(a backend's, the composed loop, a planted mutant) on copies, from plain
arrays: it builds the plan, the data and the state. ``legacy`` and
``legacy_update`` adapt the flat argument lists of SGD (``X, labels, Y, order,
batch_size, begin, end, params, grads, velocity, layout, loss, rates,
momentum, nesterov, weight_decay, spans, losses``) to the contract, updating
the caller's arrays in place, for tests written in those terms.
"""

from __future__ import annotations

import numpy as np

from fastnn import _compose
from fastnn import contract as c
from fastnn.losses import Loss
from fastnn.optimizers import SGD

#: The contract's functions: the methods of the ``contract.Backend`` Protocol,
#: in the order it declares them (tests hold ``contract.FUNCTIONS`` and every
#: backend's ``__all__`` to this).
CONTRACT = [
    name
    for name, member in vars(c.Backend).items()
    if callable(member) and not name.startswith("_")
]


def sgd_hyper(momentum=0.0, nesterov=False, weight_decay=0.0):
    h = np.zeros(c.N_HYPER)
    h[c.MOMENTUM], h[c.NESTEROV], h[c.WEIGHT_DECAY] = momentum, nesterov, weight_decay
    return h


def make_plan(layout, n_params, loss, spans, batch_size, optimizer=None, *,
              momentum=0.0, nesterov=False, weight_decay=0.0, dropout=None,
              seed=0):  # fmt: skip
    """A plan for ``optimizer`` (an Optimizer; default SGD with the given
    momentum, nesterov and weight decay)."""
    if optimizer is None:
        kind, hyper = c.OptimizerKind.SGD, sgd_hyper(momentum, nesterov, weight_decay)
    else:
        kind, hyper = optimizer.kind, optimizer.hyper()
    return c.TrainingPlan(
        layout, n_params, int(loss), kind, hyper, spans, batch_size, dropout, seed
    )


def make_data(X, labels, Y, loss, layout):
    k = int(np.asarray(layout)[-1, 1])
    return c.TrainingData(X, labels, Y, int(loss), k)


def initial_slots(plan, dtype, optimizer=None):
    if optimizer is not None:
        return optimizer.initial_slots(plan.n_params, dtype)
    return np.zeros((plan.n_slots, plan.n_params), dtype)


def run_train_steps(
    train,
    X,
    labels,
    Y,
    order,
    batch_size,
    params,
    layout,
    loss,
    spans,
    *,
    step_begin=0,
    step_end=None,
    learning_rates=None,
    momentum=0.9,
    nesterov=False,
    weight_decay=1e-3,
    velocity=None,
    optimizer=None,
    dropout=None,
    seed=0,
    first_step=0,
):
    """``train(plan, data, state, order, begin, end, rates, losses)`` on
    copies; returns ``(done, params, slots (flat), losses)``. ``velocity``:
    the slots to start from (flat, as returned); ``first_step``: the state's
    step counter (Adam's bias correction, the dropout masks)."""
    n = X.shape[0]
    if step_end is None:
        step_end = -(-n // batch_size)
    steps = step_end - step_begin
    if learning_rates is None:
        learning_rates = np.linspace(0.1, 0.05, steps)
    plan = make_plan(layout, params.size, loss, spans, batch_size, optimizer,
                     momentum=momentum, nesterov=nesterov,
                     weight_decay=weight_decay, dropout=dropout, seed=seed)  # fmt: skip
    data = make_data(X, labels, Y, loss, layout)
    if velocity is None:
        slots = initial_slots(plan, params.dtype, optimizer)
    else:
        slots = velocity.reshape(plan.n_slots, -1).copy()
    state = c.TrainingState(params.copy(), slots, first_step)
    losses = np.full(steps, -1.0)
    done = train(plan, data, state, order, step_begin, step_end, learning_rates, losses)
    assert state.step == first_step + done, (state.step, first_step, done)
    return done, state.params, state.slots.reshape(-1), losses


def composed(kernels):
    """The composed loop over ``kernels``' per-layer functions."""

    def train(*args):
        return _compose.train_steps(kernels, *args)

    return train


def legacy(train):
    """``train`` (a contract ``train_steps``) called with SGD's flat
    arguments; ``params`` and ``velocity`` are updated in place."""

    def call(X, labels, Y, order, batch_size, begin, end, params, grads, velocity,
             layout, loss, rates, momentum, nesterov, weight_decay, spans,
             losses):  # fmt: skip
        plan = make_plan(layout, params.size, loss, spans, batch_size,
                         momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)  # fmt: skip
        Y = np.asarray(Y) if int(loss) == Loss.MSE else None
        data = make_data(X, labels, Y, loss, layout)
        state = c.TrainingState(params, velocity.reshape(1, -1), 0, grads)
        return train(plan, data, state, order, begin, end, rates, losses)

    return call


def legacy_update(kernels):
    """``kernels.update`` called as SGD's ``sgd_update(params, grads,
    velocity, lr, momentum, nesterov, weight_decay, spans)``, in place."""

    def call(params, grads, velocity, lr, momentum, nesterov, weight_decay, spans):
        size = params.size
        layout = np.array([[1, size, 0, -1, 0]]) if size else np.zeros((0, 5))
        plan = make_plan(layout, size, Loss.MSE, spans, 1, SGD(
            0.1, momentum, bool(nesterov) and momentum > 0, weight_decay))  # fmt: skip
        state = c.TrainingState(params, velocity.reshape(1, -1), 0, grads)
        return kernels.update(plan, state, lr)

    return call
