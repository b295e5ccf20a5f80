"""The maths of data-parallel SGD, as plain functions with no cluster in sight.

:mod:`fastnn.distributed` runs these on Dask workers (the ``*_task``
functions) and on the driver (``combine_gradient_sums``, ``apply_step``,
``weighted_average``); the tests call them directly. They are built from the
same pieces as single-machine training: the backend's per-layer kernels
through :mod:`fastnn._compose`, its ``sgd_update`` and its ``train_steps``.

Synchronous SGD, one global batch of ``B`` samples split over ``N`` ranks:

* rank ``k`` returns the *sum* over its ``n_k`` samples of the data loss and
  of its gradient (``n_k`` times the slice's mean);
* the driver adds the ranks' sums in rank order (a fixed order: the result
  does not depend on which worker finished first) and divides by ``B``,
  which is the full batch's mean gradient;
* the driver then applies ``sgd_update`` once, which adds the L2 term
  ``weight_decay * W`` once (not once per rank) and updates the velocity and
  the weights exactly as a single-machine step does.

Local SGD: each rank runs ordinary SGD steps on its slice of each global
batch, starting from the same parameters and velocity; every ``sync_every``
steps the driver replaces parameters and velocity by their average weighted
by the samples each rank processed. With ``sync_every=1`` and plain SGD the
average of the ranks' updates is the update of the full batch (the update is
linear in the gradient), so Local SGD then equals synchronous SGD up to
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


def gradient_sum(kernels, X, labels, Y, idx, params, layout, loss):
    """``(loss_sum, grad_sum)`` of the samples ``X[idx]``, without L2.

    ``grad_sum`` is a new flat array laid out as ``params``; with an empty
    ``idx`` both are zero.
    """
    grads = np.zeros_like(params)
    m = idx.shape[0]
    if m == 0:
        return 0.0, grads
    lb, Yb = _targets(labels, Y, idx, loss)
    value = _compose.data_loss_and_gradients(
        kernels, X[idx], lb, Yb, params, grads, layout, loss
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


def apply_step(kernels, params, grads, velocity, learning_rate, optimizer, spans):
    """One SGD update from the mean data gradient ``grads`` (L2 added once,
    here, by ``sgd_update``); returns the L2 term of the loss."""
    sq = kernels.sgd_update(
        params,
        grads,
        velocity,
        learning_rate,
        optimizer.momentum,
        optimizer.nesterov,
        optimizer.weight_decay,
        spans,
    )
    return 0.5 * optimizer.weight_decay * sq


def weighted_average(arrays, weights, out: np.ndarray) -> None:
    """``out = sum_k weights[k] * arrays[k] / sum(weights)``, summed in rank order."""
    total = float(sum(weights))
    out[...] = 0
    for a, w in zip(arrays, weights, strict=True):
        if w:
            out += out.dtype.type(w / total) * a


# ---------------------------------------------------------------- rank tasks
# These run on a worker. ``spec`` is ``(backend, layout, loss, momentum,
# nesterov, weight_decay, decay_spans)``; ``data`` is ``(X, labels, Y)``, put
# on the workers once.


def _kernels(spec):
    from fastnn import backends

    return backends.get_backend(spec[0])


def _train_steps(spec, data, params, grads, velocity, order, batch_size, begin, end,
                 rates, losses):  # fmt: skip
    """The backend's fused ``train_steps`` with the run's fixed arguments
    taken from ``spec`` and ``data``."""
    _, layout, loss, momentum, nesterov, weight_decay, spans = spec
    X, labels, Y = data
    return _kernels(spec).train_steps(
        X,
        labels,
        Y,
        order,
        batch_size,
        begin,
        end,
        params,
        grads,
        velocity,
        layout,
        loss,
        rates,
        momentum,
        nesterov,
        weight_decay,
        spans,
        losses,
    )


def gradient_task(spec, data, params, idx):
    """Synchronous SGD, one rank's part of one step."""
    X, labels, Y = data
    return gradient_sum(_kernels(spec), X, labels, Y, idx, params, spec[1], spec[2])


def steps_task(spec, data, params, velocity, order, batch_size, begin, end, rates):
    """Steps ``[begin, end)`` of ordinary SGD over ``order`` in batches of
    ``batch_size``: the backend's fused ``train_steps``, exactly as
    ``Sequential.fit`` runs them. Returns ``(params, velocity, losses, done)``."""
    params, velocity = params.copy(), velocity.copy()
    losses = np.zeros(end - begin, np.float64)
    done = _train_steps(
        spec, data, params, np.empty_like(params), velocity, order, batch_size,
        begin, end, rates, losses,
    )  # fmt: skip
    return params, velocity, losses, done


def local_sgd_task(spec, data, params, velocity, slices, rates):
    """Local SGD, one rank: one SGD step on each of ``slices`` (its part of
    consecutive global batches; an empty slice is skipped). Returns
    ``(params, velocity, losses, samples, steps_done)`` with ``losses`` and
    ``samples`` per step."""
    params, velocity = params.copy(), velocity.copy()
    grads = np.empty_like(params)
    losses = np.zeros(len(slices), np.float64)
    samples = np.array([s.shape[0] for s in slices], np.int64)
    for i, idx in enumerate(slices):
        if idx.shape[0] == 0:
            continue
        done = _train_steps(
            spec, data, params, grads, velocity, idx, idx.shape[0], 0, 1,
            rates[i : i + 1], losses[i : i + 1],
        )  # fmt: skip
        if done == 0:
            return params, velocity, losses, samples, i
    return params, velocity, losses, samples, len(slices)
