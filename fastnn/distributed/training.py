"""Data-parallel training on a Dask cluster: the strategies and :func:`fit`.

The driver (this process) keeps the model and runs :func:`fastnn.trainer.run`,
the epoch loop of :meth:`fastnn.Sequential.fit`, with a step runner of its own
(:class:`_ClusterSteps`) that sends each step's batch indices and parameters to
the workers and combines what they return: gradient sums (:class:`SyncSGD`) or
parameters and optimizer slots after ``sync_every`` local steps
(:class:`LocalSGD`). The maths the workers run is in :mod:`fastnn._data_parallel`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from fastnn import _data_parallel as dp
from fastnn import _validation, trainer
from fastnn.callbacks import ModelCheckpoint
from fastnn.distributed.cluster import (
    WorkerLostError,
    connect,
    dask_errors,
    require_dask,
)


class SyncSGD:
    """Synchronous data-parallel SGD: every step is the full global batch's
    step, its gradient computed in slices on the workers."""

    def __repr__(self) -> str:
        return "SyncSGD()"


class LocalSGD:
    """Local SGD: ``sync_every`` steps on each worker's slices of the global
    batches, then a sample-weighted average of parameters and optimizer slots (and
    always at the end of an epoch)."""

    def __init__(self, sync_every: int = 8) -> None:
        self.sync_every = _validation.check_positive_int(sync_every, "sync_every")

    def __repr__(self) -> str:
        return f"LocalSGD(sync_every={self.sync_every})"


def _check_strategy(strategy):
    if strategy is None:
        return SyncSGD()
    if not isinstance(strategy, (SyncSGD, LocalSGD)):
        raise TypeError(
            "strategy: expected fastnn.distributed.SyncSGD() or LocalSGD(...); "
            f"received {type(strategy).__name__}"
        )
    return strategy


#: Times a round whose tasks Dask lost (cancelled, worker killed) is submitted
#: again before giving up: a round applies nothing until all its results are
#: in, and each result depends only on its arguments, so a retry is exact.
RETRIES = 2


class _ClusterSteps:
    """The trainer's step runner (see :class:`fastnn.trainer.LocalSteps`) over
    ranks on a Dask cluster."""

    def __init__(self, model, plan, data, client, addresses, strategy, checkpoint):
        self.model, self.client, self.addresses = model, client, addresses
        self.strategy, self.checkpoint = strategy, checkpoint
        self.n, self.plan, self.batch_size = data.n, plan, plan.batch_size
        self.spec = (model.backend, plan)
        self.errors = dask_errors(require_dask())
        # The data goes to every worker once, so a task can run anywhere.
        self.data = client.scatter([data], broadcast=True, hash=False)[0]
        if isinstance(strategy, LocalSGD):
            k = strategy.sync_every
            self.chunk_steps = k * max(1, trainer.CHUNK_STEPS // k)
        else:
            self.chunk_steps = trainer.CHUNK_STEPS

    def _run(self, calls):
        """Results of ``calls``, a list of ``(rank, fn, *args)``, in that order.

        Each task goes to its rank's worker, or any live worker if that one is
        gone. A round Dask loses is submitted again (``RETRIES`` times)."""
        for attempt in range(RETRIES + 1):
            futures = [
                self.client.submit(
                    fn,
                    *args,
                    workers=[self.addresses[rank]],
                    allow_other_workers=True,
                    pure=False,
                )
                for rank, fn, *args in calls
            ]
            try:
                return self.client.gather(futures)
            except self.errors as err:
                if attempt == RETRIES:
                    raise WorkerLostError(self._lost_message(err)) from err
                self.client.wait_for_workers(1, timeout=60)
        raise AssertionError("unreachable")  # pragma: no cover

    def _lost_message(self, err) -> str:
        where = f"epoch {self.model.epoch + 1}, step {self.model.step + 1}"
        if self.checkpoint is not None and Path(self.checkpoint).exists():
            resume = (
                f"The last checkpoint is {str(self.checkpoint)!r}; continue with "
                f"fastnn.distributed.fit(..., resume={str(self.checkpoint)!r})."
            )
        else:
            resume = "No checkpoint was written (pass checkpoint=path)."
        return (
            f"the cluster lost the workers running {where} "
            f"({type(err).__name__}: {err}). {resume}"
        )

    def __call__(self, order, s, e, rates, losses_out) -> int:
        if len(self.addresses) == 1:
            return self._one_rank(order, s, e, rates, losses_out)
        if isinstance(self.strategy, LocalSGD):
            return self._local(order, s, e, rates, losses_out)
        return self._sync(order, s, e, rates, losses_out)

    def _batch(self, order, i):
        bs = self.batch_size
        return order[i * bs : min(self.n, (i + 1) * bs)]

    def _one_rank(self, order, s, e, rates, losses_out) -> int:
        state = self.model.state
        result, losses, done = self._run(
            [(0, dp.steps_task, self.spec, self.data, state, order, s, e, rates)]
        )[0]
        state.params[...] = result.params
        state.slots[...] = result.slots
        state.step = result.step
        losses_out[:done] = losses[:done]
        return int(done)

    def _sync(self, order, s, e, rates, losses_out) -> int:
        model = self.model
        state = model.state
        ranks = len(self.addresses)
        for i in range(s, e):
            idx = self._batch(order, i)
            parts = dp.split_batch(idx, ranks)
            offsets = np.cumsum([0] + [p.shape[0] for p in parts])
            calls = [
                (k, dp.gradient_task, self.spec, self.data, state.params, part,
                 state.step, int(offsets[k]))
                for k, part in enumerate(parts)
                if part.shape[0]
            ]  # fmt: skip
            value = dp.combine_gradient_sums(
                self._run(calls), idx.shape[0], state.grads
            )
            if not math.isfinite(value):
                return i - s
            l2 = dp.apply_step(model.kernels, self.plan, state, rates[i - s])
            losses_out[i - s] = value + l2
        return e - s

    def _local(self, order, s, e, rates, losses_out) -> int:
        state = self.model.state
        ranks = len(self.addresses)
        k_steps = self.strategy.sync_every
        for g in range(s, e, k_steps):
            group = range(g, min(e, g + k_steps))
            slices = [dp.split_batch(self._batch(order, i), ranks) for i in group]
            calls = [
                (k, dp.local_sgd_task, self.spec, self.data, state,
                 [parts[k] for parts in slices], rates[g - s : g - s + len(group)])
                for k in range(ranks)
            ]  # fmt: skip
            results = self._run(calls)
            if min(r[3] for r in results) < len(group):
                return g - s  # a loss was not finite: the group is not applied
            samples = np.array([r[2] for r in results], np.float64)  # (ranks, steps)
            weights = samples.sum(axis=1)
            dp.weighted_average([r[0].params for r in results], weights, state.params)
            for j in range(state.slots.shape[0]):  # every slot, averaged alike
                dp.weighted_average(
                    [r[0].slots[j] for r in results], weights, state.slots[j]
                )
            state.step += len(group)
            losses = np.array([r[1] for r in results])
            losses_out[g - s : g - s + len(group)] = (losses * samples).sum(
                axis=0
            ) / samples.sum(axis=0)
        return e - s


def fit(
    model,
    x,
    y,
    client=None,
    workers=None,
    strategy=None,
    epochs=1,
    batch_size=None,
    validation_data=None,
    callbacks=None,
    verbose=1,
    shuffle=True,
    resume=None,
    checkpoint=None,
):
    """Train ``model`` data-parallel on a Dask cluster; returns its History.

    ``x, y, epochs, batch_size, validation_data, callbacks, verbose, shuffle,
    resume`` are those of :meth:`fastnn.Sequential.fit`; ``batch_size`` is the
    *global* batch, split over the workers. ``client`` and ``workers``: see
    :func:`connect`. ``strategy``: :class:`SyncSGD` (default) or
    :class:`LocalSGD`. ``checkpoint``: a path the driver saves the model to
    (atomically) after every epoch; ``resume=`` that path continues exactly.
    """
    require_dask()
    strategy = _check_strategy(strategy)
    if workers is not None:
        workers = _validation.check_positive_int(workers, "workers")
    user_callbacks = trainer.check_callbacks(callbacks)
    if checkpoint is not None:
        checkpoint = Path(os.fspath(checkpoint))
        if not checkpoint.parent.is_dir():
            raise FileNotFoundError(
                f"checkpoint: the folder {str(checkpoint.parent)!r} does not exist"
            )
        user_callbacks.append(ModelCheckpoint(checkpoint))
    checked = trainer.check_fit_arguments(
        model,
        x,
        y,
        epochs,
        batch_size,
        validation_data,
        user_callbacks,
        verbose,
        resume,
    )
    batch_size = checked.batch_size
    if workers is not None and workers > batch_size:
        raise ValueError(
            f"workers: expected at most batch_size ({batch_size}) workers, one "
            f"sample each at least; received {workers}"
        )
    with connect(client, workers) as (client, addresses):
        if len(addresses) > batch_size:
            raise ValueError(
                f"workers: expected at most batch_size ({batch_size}) workers, "
                f"one sample each at least; the cluster has {len(addresses)}"
            )

        def runner(model, plan, data):
            return _ClusterSteps(
                model, plan, data, client, addresses, strategy, checkpoint
            )

        return trainer.run(
            model, *checked, verbose=verbose, shuffle=shuffle, runner=runner
        )
