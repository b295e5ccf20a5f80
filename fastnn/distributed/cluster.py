"""The Dask cluster: importing Dask, connecting, pinning workers, lost workers.

Dask is imported on first use (:func:`require_dask`), never when ``fastnn`` or
``fastnn.distributed`` is imported, so both work without the extra.
:func:`connect` gives the training and the sweeps their workers, each pinned to
one BLAS/OpenMP/numba thread; :func:`dask_errors` are the exceptions with which
Dask reports a task lost with its worker, which the step runner turns into
:class:`WorkerLostError` once its retries are spent.
"""

from __future__ import annotations

import contextlib
import os

from fastnn import _validation

INSTALL = 'pip install "fastnn[distributed]"'


def require_dask():
    """Dask's ``distributed`` module, or ImportError saying how to install it."""
    try:
        import distributed
    except ImportError as err:
        raise ImportError(
            f"fastnn.distributed needs Dask's distributed scheduler: {INSTALL}"
        ) from err
    return distributed


class WorkerLostError(RuntimeError):
    """The cluster could not finish a training step (workers lost for good)."""


def dask_errors(distributed) -> tuple[type[BaseException], ...]:
    """The exceptions with which Dask's ``distributed`` reports lost tasks."""
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
        # (``nthreads`` asks the scheduler each time: ``scheduler_info()``
        # returns a cache that the client's periodic refresh may overwrite,
        # concurrently, with one holding no workers (distributed 2026.8),
        # and a test saw 0 workers in a cluster of 3 that way)
        addresses = sorted(client.nthreads())
        if workers is None:
            workers = len(addresses)
        if workers > len(addresses) or not addresses:
            raise ValueError(
                f"workers: expected at most the {len(addresses)} workers the "
                f"cluster has; received {workers}"
            )
        yield client, addresses[:workers]
