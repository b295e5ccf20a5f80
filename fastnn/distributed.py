"""Data-parallel training and hyperparameter sweeps on a Dask cluster.

Needs the optional extra ``pip install "fastnn[distributed]"`` (Dask's
``distributed``). Without it ``import fastnn`` still works and these functions
raise :class:`ImportError` with that command.

>>> from fastnn import distributed
>>> distributed.fit(model, x, y, workers=2, epochs=5, batch_size=256)  # doctest: +SKIP
>>> distributed.fit(model, x, y, client="tcp://scheduler:8786",
...                 strategy=distributed.LocalSGD(sync_every=8))  # doctest: +SKIP

How it works:

* ``client=None`` starts a :class:`distributed.LocalCluster` of single-threaded
  worker processes on this machine; a :class:`distributed.Client` or a
  scheduler address uses an existing cluster (Slurm, Kubernetes, cloud ...).
  Every worker is pinned to one BLAS/OpenMP/numba thread.
* The training data goes to the workers once. Each step then sends only batch
  indices and parameters; the driver (this process) keeps the model, shuffles,
  runs callbacks and writes checkpoints, with the same epoch loop as
  :meth:`fastnn.Sequential.fit` (:func:`fastnn.trainer.run`).
* :class:`SyncSGD`: each rank returns the gradient sum of its slice of the
  global batch; the driver adds them in rank order, applies L2 once and
  updates. The same global batch gives the same step on any number of workers
  (up to the rounding of the sum), and the order in which workers finish
  never changes a bit. With one worker the worker runs ``Sequential.fit``'s
  own fused steps, bit for bit.
* :class:`LocalSGD`: each rank takes ``sync_every`` steps on its slices, then
  the driver averages parameters and every optimizer slot weighted by
  samples. Fewer round trips, so more throughput when the scheduler's
  latency dominates.
* A task lost with its worker is re-run by Dask on another worker (the data is
  on every worker), with the same result. If the cluster cannot finish a step
  the run stops with :class:`WorkerLostError` naming the last checkpoint, and
  ``fit(..., resume=checkpoint)`` continues exactly.

The maths is in :mod:`fastnn._data_parallel`; ``docs/distributed.md`` models
throughput against workers, batch size and network size.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from fastnn import _data_parallel as dp
from fastnn import _validation, trainer
from fastnn.callbacks import ModelCheckpoint

INSTALL = 'pip install "fastnn[distributed]"'


def require_dask():
    """Dask's ``distributed`` module, or ImportError naming the install command."""
    try:
        import distributed
    except ImportError as err:
        raise ImportError(
            f"fastnn.distributed needs Dask's distributed scheduler: {INSTALL}"
        ) from err
    return distributed


class WorkerLostError(RuntimeError):
    """The cluster could not finish a training step (workers lost for good)."""


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


def _pin_threads_plugin(distributed):
    """A Dask worker plugin: one BLAS/OpenMP/numba thread per worker, also on
    workers that join or restart later."""

    class PinThreads(distributed.WorkerPlugin):
        name = "fastnn-pin-threads"

        def setup(self, worker) -> None:
            from fastnn.threads import set_num_threads

            set_num_threads(1)

    return PinThreads()


@contextlib.contextmanager
def connect(client=None, workers=None):
    """``(client, addresses)`` of ``workers`` single-threaded workers.

    ``client``: ``None`` (start a LocalCluster of ``workers`` processes,
    default one per CPU core, closed on exit), a scheduler address, or a
    :class:`distributed.Client`. ``workers=None`` uses every worker of the
    cluster; more than the cluster has is a ``ValueError``.
    """
    distributed = require_dask()
    if workers is not None:
        workers = _validation.check_positive_int(workers, "workers")
    with contextlib.ExitStack() as stack:
        if client is None:
            n = workers if workers is not None else os.cpu_count() or 1
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        elif isinstance(client, (str, os.PathLike)):
            client = stack.enter_context(distributed.Client(os.fspath(client)))
        elif not isinstance(client, distributed.Client):
            raise TypeError(
                "client: expected None, a scheduler address or a "
                f"distributed.Client; received {type(client).__name__}"
            )
        client.register_plugin(_pin_threads_plugin(distributed))
        addresses = sorted(client.scheduler_info()["workers"])
        if workers is None:
            workers = len(addresses)
        if workers > len(addresses) or not addresses:
            raise ValueError(
                f"workers: expected at most the {len(addresses)} workers the "
                f"cluster has; received {workers}"
            )
        yield client, addresses[:workers]


def _check_strategy(strategy):
    if strategy is None:
        return SyncSGD()
    if not isinstance(strategy, (SyncSGD, LocalSGD)):
        raise TypeError(
            "strategy: expected fastnn.distributed.SyncSGD() or LocalSGD(...); "
            f"received {type(strategy).__name__}"
        )
    return strategy


def _dask_errors(distributed):
    import asyncio
    import concurrent.futures

    return (
        distributed.scheduler.KilledWorker,
        distributed.comm.core.CommClosedError,
        distributed.client.FutureCancelledError,
        concurrent.futures.CancelledError,
        asyncio.CancelledError,
        asyncio.TimeoutError,
        OSError,
    )


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
        self.errors = _dask_errors(require_dask())
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
    user_callbacks = trainer._check_callbacks(callbacks)
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


# ------------------------------------------------------------------ sweeps
def _grid_configs(grid) -> list[dict]:
    if not isinstance(grid, dict) or not grid:
        raise TypeError(
            "grid: expected a non-empty dict of parameter name -> list of "
            f"values; received {grid!r}"
        )
    values = []
    for name, options in grid.items():
        if not isinstance(name, str):
            raise TypeError(f"grid: expected str parameter names; received {name!r}")
        if isinstance(options, (str, bytes)) or not hasattr(options, "__iter__"):
            raise TypeError(
                f"grid[{name!r}]: expected a list of values; received {options!r}"
            )
        options = list(options)
        if not options:
            raise ValueError(
                f"grid[{name!r}]: expected at least one value; received []"
            )
        values.append(options)
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        seeds = [seeds]
    try:
        seeds = list(seeds)
    except TypeError:
        raise TypeError(f"seeds: expected a list of ints; received {seeds!r}") from None
    if not seeds:
        raise ValueError("seeds: expected at least one seed; received []")
    return [_validation.check_positive_int(s, "seeds", minimum=0) for s in seeds]


def run_trial(build_model, data, config, seed, epochs, batch_size):
    """One sweep trial: ``build_model(seed=seed, **config)`` trained on
    ``data = (x, y, validation_data)``; returns its record (never raises)."""
    x, y, validation_data = data
    record = {"seed": seed, **config, "status": "ok", "error": None}
    start = time.perf_counter()
    try:
        from fastnn.model import Sequential

        model = build_model(seed=seed, **config)
        if not isinstance(model, Sequential):
            raise TypeError(
                "build_model: expected it to return a fastnn.Sequential; "
                f"received {type(model).__name__}"
            )
        history = model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            verbose=0,
        )
        for key, values in history.history.items():
            if key not in ("seconds", "samples_per_second", "learning_rate"):
                record[key] = float(values[-1]) if values else None
        record["epochs"] = model.epoch
    except Exception as err:  # noqa: BLE001 - a failing trial is reported, not raised
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
    record["seconds"] = time.perf_counter() - start
    return record


class SweepResult:
    """The records of a :func:`sweep`, one dict per trial, in grid order then
    seed order: the configuration, ``seed``, ``status`` (``"ok"`` or
    ``"failed"``), ``error``, the last epoch's ``loss``/``accuracy`` (and
    ``val_loss``/``val_accuracy`` with validation data), ``epochs``, ``seconds``."""

    def __init__(self, records, params, metric) -> None:
        self.records = records
        self.params = params
        self.metric = metric

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def summary(self) -> list[dict]:
        """Per configuration: mean and standard deviation of ``metric`` over
        its successful seeds, and how many failed."""
        groups: dict[tuple, list] = {}
        for r in self.records:
            key = tuple(_hashable(r[p]) for p in self.params)
            groups.setdefault(key, []).append(r)
        rows = []
        for trials in groups.values():
            ok = [t[self.metric] for t in trials if t["status"] == "ok"]
            ok = [v for v in ok if v is not None]
            rows.append(
                {
                    **{p: trials[0][p] for p in self.params},
                    "mean": float(np.mean(ok)) if ok else None,
                    "std": float(np.std(ok)) if ok else None,
                    "trials": len(trials),
                    "failed": sum(t["status"] != "ok" for t in trials),
                }
            )
        return rows

    def best(self) -> dict | None:
        """The configuration row of :meth:`summary` with the best mean metric."""
        rows = [r for r in self.summary() if r["mean"] is not None]
        if not rows:
            return None
        lower = self.metric.endswith("loss")
        return (min if lower else max)(rows, key=lambda r: r["mean"])

    def to_markdown(self) -> str:
        """A markdown table of every trial.

        Every number of a column has the same decimals: the scores
        :data:`MARKDOWN_DECIMALS`, a parameter as many as its most precise value.
        """
        cols = [*self.params, "seed", "status", "loss", "accuracy"]
        cols += [c for c in ("val_loss", "val_accuracy") if any(c in r for r in self)]
        cols += ["seconds", "error"]
        columns = [
            _column([r.get(c) for r in self.records], MARKDOWN_DECIMALS.get(c))
            for c in cols
        ]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for cells in zip(*columns, strict=True):
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_json(self, path) -> None:
        """Write the records to ``path`` as JSON, atomically."""
        from fastnn.io import atomic_write

        text = json.dumps(self.records, indent=1, default=str)
        atomic_write(path, lambda f: f.write(text.encode()))

    def plot(self, path):
        """A chart of ``metric`` per configuration (one dot per seed, the mean
        as a bar), written to ``path``; returns the path."""
        from fastnn import plots

        return plots.plot_sweep(self, path)


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


#: Decimals of the score columns of :meth:`SweepResult.to_markdown`.
MARKDOWN_DECIMALS = {
    "loss": 4,
    "accuracy": 4,
    "val_loss": 4,
    "val_accuracy": 4,
    "seconds": 1,
}


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


def _decimals(v) -> int:
    """Decimals of ``v``'s shortest exact decimal form (0.05 -> 2, 5e-05 -> 5)."""
    text = np.format_float_positional(float(v), trim="-")
    return len(text.partition(".")[2])


def _column(values, decimals: int | None = None) -> list[str]:
    """The cells of one column, its numbers all with the same decimals.

    A column of ints stays ints; with ``decimals`` None, a column holding
    floats gets as many decimals as its most precise value needs, unless that
    is more than 8 (then each value is written as Python writes it).
    """
    numbers = [v for v in values if _is_number(v) and math.isfinite(v)]
    if decimals is None:
        if all(isinstance(v, (int, np.integer)) for v in numbers):
            return [_cell(v) for v in values]
        decimals = max(_decimals(v) for v in numbers)
        if decimals > 8:
            return [_cell(v) for v in values]
    return [_cell(v, decimals) for v in values]


def _cell(v, decimals: int | None = None) -> str:
    if v is None:
        return ""
    if decimals is not None and _is_number(v):
        return f"{float(v):.{decimals}f}"
    return str(v).replace("|", "/")


def sweep(
    build_model,
    x,
    y,
    grid,
    seeds=(0,),
    client=None,
    workers=None,
    epochs=1,
    batch_size=None,
    validation_data=None,
    metric=None,
):
    """Train one model per (configuration, seed) over a Dask cluster.

    ``build_model(seed=seed, **config)`` must return a compiled-ready
    :class:`fastnn.Sequential`; ``grid`` maps parameter names to lists of
    values and every combination is tried with every seed. Each trial runs
    on one single-threaded worker with ``fit(x, y, epochs, batch_size,
    validation_data)``; a trial that raises is recorded as failed and the
    others go on. ``metric`` (default ``val_accuracy`` with validation data,
    else ``accuracy``) ranks configurations in :meth:`SweepResult.best`.
    Returns a :class:`SweepResult`.
    """
    require_dask()
    if not callable(build_model):
        raise TypeError(
            "build_model: expected a callable (seed=..., **config) -> Sequential; "
            f"received {type(build_model).__name__}"
        )
    configs = _grid_configs(grid)
    seeds = _check_seeds(seeds)
    epochs = _validation.check_positive_int(epochs, "epochs", minimum=0)
    if batch_size is not None:
        batch_size = _validation.check_positive_int(batch_size, "batch_size")
    if metric is None:
        metric = "val_accuracy" if validation_data is not None else "accuracy"
    trials = [(c, s) for c in configs for s in seeds]
    with connect(client, workers) as (client, addresses):
        data = client.scatter([(x, y, validation_data)], broadcast=True, hash=False)[0]
        futures = [
            client.submit(
                run_trial,
                build_model,
                data,
                config,
                seed,
                epochs,
                batch_size,
                workers=addresses,
                pure=False,
            )
            for config, seed in trials
        ]
        require_dask().wait(futures)
        records = []
        for (config, seed), future in zip(trials, futures, strict=True):
            if future.status == "finished":
                record = future.result()
            else:  # the task itself was lost (workers killed): report it
                err = future.exception()
                record = {
                    "seed": seed,
                    **config,
                    "status": "failed",
                    "error": f"{type(err).__name__}: {err}",
                }
            records.append({"trial": len(records), **record})
    return SweepResult(records, list(grid), metric)
