"""The maths of data-parallel SGD, as plain functions with no cluster in sight.

:mod:`fastnn.distributed` runs these on Dask workers (the ``*_task``
functions) and on the driver (``combine_gradient_sums``, ``apply_step``,
``weighted_average``); the tests call them directly. They are built from the
same pieces as single-machine training: the backend's per-layer kernels
through :mod:`fastnn._compose`, its ``update`` and its ``train_steps``.

Synchronous SGD, one global batch of ``B`` samples split over ``N`` ranks:

* rank ``k`` returns the *sum* over its ``n_k`` samples of the data loss and
  of its gradient (``n_k`` times the slice's mean);
* the driver adds the ranks' sums in rank order (a fixed order: the result
  does not depend on which worker finished first) and divides by ``B``,
  which is the full batch's mean gradient;
* the driver then applies the backend's ``update`` once, which clips, adds
  the L2 term ``weight_decay * W`` once (not once per rank) and updates the
  optimizer's slots and the weights exactly as a single-machine step does.

Local SGD: each rank runs ordinary steps on its slice of each global
batch, starting from the same parameters and optimizer slots; every
``sync_every`` steps the driver replaces the parameters and every slot by
their average weighted by the samples each rank processed. With
``sync_every=1`` and plain SGD the average of the ranks' updates is the
update of the full batch (the update is linear in the gradient; Adam's and
RMSprop's are not), so Local SGD then equals synchronous SGD up to
rounding.
"""

from __future__ import annotations

import numpy as np

from fastnn import _compose
from fastnn.losses import Loss


def split_batch(idx: np.ndarray, parts: int) -> list[np.ndarray]:
    """``idx`` cut into ``parts`` contiguous slices, sizes differing by at most
    one, larger first (as ``np.array_split``); slices may be empty."""
    return np.array_split(idx, parts)


def _targets(labels, Y, idx, loss):
    if loss == Loss.CROSS_ENTROPY:
        return labels[idx], Y
    return labels, Y[idx]


def gradient_sum(kernels, plan, data, idx, params, step=0, row_offset=0):
    """``(loss_sum, grad_sum)`` of the samples ``data.X[idx]``, without L2.

    ``grad_sum`` is a new flat array laid out as ``params``; with an empty
    ``idx`` both are zero. With dropout the masks are those of step ``step``
    for the batch rows from ``row_offset`` on: a rank's slice of a batch gets
    the rows of the masks the whole batch gets on one machine.
    """
    grads = np.zeros_like(params)
    m = idx.shape[0]
    if m == 0:
        return 0.0, grads
    lb, Yb = _targets(data.labels, data.Y, idx, plan.loss)
    value = _compose.data_loss_and_gradients(
        kernels,
        data.X[idx],
        lb,
        Yb,
        params,
        grads,
        plan.layout,
        plan.loss,
        dropout=(plan, step, row_offset) if plan.has_dropout else None,
    )
    grads *= grads.dtype.type(m)
    return float(value) * m, grads


def combine_gradient_sums(results, batch_size: int, out: np.ndarray) -> float:
    """Add the ranks' ``(loss_sum, grad_sum)`` in rank order into ``out`` as
    the batch mean; returns the batch's mean data loss."""
    loss_sum = 0.0
    out[...] = 0
    for value, grads in results:
        loss_sum += value
        out += grads
    out /= out.dtype.type(batch_size)
    return loss_sum / batch_size


def apply_step(kernels, plan, state, learning_rate):
    """One optimizer step from the mean data gradient in ``state.grads`` (L2
    added once, here, by the backend's ``update``); returns the L2 term of the
    loss."""
    sq = kernels.update(plan, state, learning_rate)
    return 0.5 * plan.weight_decay * sq


def weighted_average(arrays, weights, out: np.ndarray) -> None:
    """``out = sum_k weights[k] * arrays[k] / sum(weights)``, summed in rank order."""
    total = float(sum(weights))
    out[...] = 0
    for a, w in zip(arrays, weights, strict=True):
        if w:
            out += out.dtype.type(w / total) * a


# ---------------------------------------------------------------- rank tasks
# These run on a worker. ``spec`` is ``(backend name, TrainingPlan)``; ``data``
# the TrainingData, put on the workers once.


def _kernels(spec):
    from fastnn import backends

    return backends.get_backend(spec[0])


def gradient_task(spec, data, params, idx, step, row_offset):
    """Synchronous SGD, one rank's part of one step."""
    return gradient_sum(_kernels(spec), spec[1], data, idx, params, step, row_offset)


def steps_task(spec, data, state, order, begin, end, rates):
    """Steps ``[begin, end)`` over ``order``: the backend's fused
    ``train_steps``, exactly as ``Sequential.fit`` runs them. Returns
    ``(state, losses, done)``."""
    state = state.copy()
    losses = np.zeros(end - begin, np.float64)
    done = _kernels(spec).train_steps(
        spec[1], data, state, order, begin, end, rates, losses
    )
    return state, losses, done


def local_sgd_task(spec, data, state, slices, rates):
    """Local SGD, one rank: one optimizer step on each of ``slices`` (its part
    of consecutive global batches; an empty slice is skipped, its step
    counted). Returns ``(state, losses, samples, steps_done)`` with ``losses``
    and ``samples`` per step."""
    kernels, plan = _kernels(spec), spec[1]
    state = state.copy()
    losses = np.zeros(len(slices), np.float64)
    samples = np.array([s.shape[0] for s in slices], np.int64)
    plans = {}
    for i, idx in enumerate(slices):
        if idx.shape[0] == 0:
            state.step += 1
            continue
        m = idx.shape[0]
        if m not in plans:
            plans[m] = plan.replace(batch_size=m)
        done = kernels.train_steps(
            plans[m], data, state, idx, 0, 1, rates[i : i + 1], losses[i : i + 1]
        )
        if done == 0:
            return state, losses, samples, i
    return state, losses, samples, len(slices)
