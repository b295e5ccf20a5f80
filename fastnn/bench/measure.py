"""The measurement behind ``backend="auto"`` (:mod:`fastnn.autoselect`):
every backend that loads trains the same two networks, paired, and the
fastest overall is cached for this machine (``fastnn backends --measure``).

The networks, float32, on MNIST-shaped synthetic data (uniform pixels in a
20x20 centre and the border's 384 features zero, as in MNIST: what matters is
the step's shapes and the zero features the compiled loops skip):

* ``S``: 784-128-10 ReLU, batch 64 (a small network: per-step overhead);
* ``L``: 784-512-512-512-10 ReLU, batch 64 (GEMM-bound).

Each backend trains in its own warm model (compiled and run once first);
then rounds alternate the backends, forwards and backwards (A B C, C B A,
...), one short fit each after a pause, and a backend's time on a
network is its median over the rounds. Its score is the geometric mean over
both networks of its time over the fastest backend's: 1.0 for a backend that
wins both. ``auto`` takes the lowest score.

The pause matters: after a call on several threads, OpenBLAS's idle threads
spin for about 0.1 s before they sleep, and a split training step that starts
meanwhile shares the cores with them (measured: the first 0.1 s of a cython
epoch ran at less than half its speed right after a multithreaded product;
after 0.1 s of pause, at full speed).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np

from fastnn import autoselect, backends
from fastnn._validation import check_positive_int

__all__ = ["NETWORKS", "measure_backends"]

#: The networks measured: name -> (hidden sizes, batch size, steps per fit).
NETWORKS = {"S": ((128,), 64, 400), "L": ((512, 512, 512), 64, 48)}


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    x[:, 4:24, 4:24] = rng.random((n, 20, 20), dtype=np.float32)
    return x.reshape(n, 784), rng.integers(0, 10, n)


def _model(backend: str, hidden, seed: int = 0):
    from fastnn.layers import Dense
    from fastnn.model import Sequential

    layers = [Dense(h, activation="relu") for h in hidden]
    layers.append(Dense(10, activation="softmax"))
    return Sequential(
        layers, input_dim=784, loss="cross_entropy", optimizer="sgd",
        backend=backend, dtype="float32", seed=seed,
    )  # fmt: skip


def measure_backends(
    rounds: int = 5,
    save: bool = True,
    cache_dir=None,
    networks=None,
    pause: float = 0.15,
) -> dict[str, Any]:
    """Measure every backend that loads, as the module docstring says; return
    the record and, unless ``save=False``, cache it for ``auto``.

    The record: ``{"format", "key", "when", "networks": {network: {backend:
    median seconds per fit}}, "scores": {backend: score}, "choice"}``.
    ``networks`` replaces :data:`NETWORKS` (the tests measure tiny ones).
    """
    rounds = check_positive_int(rounds, "rounds")
    networks = NETWORKS if networks is None else networks
    names = [n for n, why in backends.available_backends().items() if why is None]
    seconds: dict[str, dict[str, float]] = {}
    for net, (hidden, batch, steps) in networks.items():
        x, y = _data(batch * steps)
        models = {name: _model(name, hidden) for name in names}
        for model in models.values():  # compile, fault in, warm the caches
            model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                time.sleep(pause)
                start = time.perf_counter()
                models[name].fit(x, y, epochs=1, batch_size=batch, verbose=0)
                times[name].append(time.perf_counter() - start)
        seconds[net] = {name: statistics.median(t) for name, t in times.items()}
    scores = {
        name: math.exp(
            statistics.fmean(
                math.log(s[name] / min(s.values())) for s in seconds.values()
            )
        )
        for name in names
    }
    gemm = _measure_cython_gemm(names, networks, rounds, pause)
    record = {
        "format": autoselect.FORMAT_VERSION,
        "key": autoselect.machine_key(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "networks": seconds,
        "scores": scores,
        "choice": min(scores, key=scores.get),
    }
    if gemm is not None:
        record["cython_gemm"] = gemm
    if save:
        autoselect.save_record(record, cache_dir)
    return record


def _measure_cython_gemm(names, networks, rounds, pause):
    """The cython loop's float32 products on fastnn's own kernels against
    BLAS's, where the CPU can run both: ``{"own": s, "blas": s, "choice"}``
    (seconds: geometric mean over the networks of the median fit), or None.
    Paired as the backends are; the ``auto`` policy then follows the choice
    on this machine (``cython_backend.own_gemm_pays``)."""
    if "cython" not in names:
        return None
    from fastnn._kernels import cython_backend as cy

    policy = cy.gemm_policy()
    try:
        try:
            cy.gemm_policy("own")
        except RuntimeError:  # no AVX2 and FMA: nothing to choose
            return None
        logs: dict[str, list[float]] = {"own": [], "blas": []}
        for hidden, batch, steps in networks.values():
            x, y = _data(batch * steps)
            model = _model("cython", hidden)
            times: dict[str, list[float]] = {"own": [], "blas": []}
            for r in range(rounds + 1):  # round 0 warms each path up
                for choice in ("own", "blas") if r % 2 == 0 else ("blas", "own"):
                    cy.gemm_policy(choice)
                    time.sleep(pause)
                    start = time.perf_counter()
                    model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
                    if r:
                        times[choice].append(time.perf_counter() - start)
            for choice, t in times.items():
                logs[choice].append(math.log(statistics.median(t)))
    finally:
        cy.gemm_policy(policy)
    gemm: dict[str, Any] = {k: math.exp(statistics.fmean(v)) for k, v in logs.items()}
    gemm["choice"] = min(("own", "blas"), key=gemm.get)
    return gemm
