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

The package, one concern a module:

* :mod:`~fastnn.distributed.cluster`: importing Dask (:func:`require_dask`),
  :func:`connect`, pinning the workers' threads, the errors of lost workers.
* :mod:`~fastnn.distributed.training`: :class:`SyncSGD`, :class:`LocalSGD`,
  the cluster's step runner and :func:`fit`.
* :mod:`~fastnn.distributed.sweeps`: :func:`sweep`, its trials and
  :class:`SweepResult`.

The maths is in :mod:`fastnn._data_parallel`; ``docs/distributed.md`` models
throughput against workers, batch size and network size. No submodule imports
Dask at import time.
"""

from fastnn.distributed.cluster import (
    INSTALL,
    WorkerLostError,
    connect,
    require_dask,
)
from fastnn.distributed.sweeps import (
    MARKDOWN_DECIMALS,
    SweepResult,
    run_trial,
    sweep,
)
from fastnn.distributed.training import RETRIES, LocalSGD, SyncSGD, fit

__all__ = [
    "INSTALL",
    "MARKDOWN_DECIMALS",
    "RETRIES",
    "LocalSGD",
    "SweepResult",
    "SyncSGD",
    "WorkerLostError",
    "connect",
    "fit",
    "require_dask",
    "run_trial",
    "sweep",
]
