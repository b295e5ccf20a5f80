"""One training epoch on the real MNIST, per backend, dtype and configuration.

``model.fit(x, y, epochs=1, batch_size=B, verbose=0)`` with the data in memory,
after one warm-up epoch (numba compilation and first-call costs excluded). The
benchmark group is ``<config>-<dtype>`` so each table compares the backends,
and the hand-written NumPy MLP (``handwritten.py``, float32) as a yardstick.
Configurations: :data:`fastnn.bench.CONFIGS`.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import handwritten
from benchmarks._suite import (
    BACKENDS,
    CONFIGS,
    DTYPES,
    HANDWRITTEN,
    ROUNDS,
    load_backend_or_skip,
)
from fastnn import bench

CASES = [
    pytest.param(config, dtype, backend, id=f"{config}-{dtype}-{backend}")
    for config in CONFIGS
    for dtype in DTYPES
    for backend in (*BACKENDS, HANDWRITTEN)
    if not (backend == HANDWRITTEN and dtype != "float32")
]


@pytest.mark.parametrize(("config", "dtype", "backend"), CASES)
def test_epoch(benchmark, mnist, record, config, dtype, backend):
    x, y = mnist.train(dtype)
    batch_size = min(bench.CONFIGS[config].batch_size, x.shape[0])
    if backend == HANDWRITTEN:
        state = handwritten.init(bench.CONFIGS[config].sizes, np.dtype(dtype), seed=0)
        rng = np.random.default_rng(0)

        def epoch():
            order = rng.permutation(x.shape[0])  # fastnn's fit shuffles too
            handwritten.train_epoch(
                x,
                y,
                *state,
                order,
                batch_size=batch_size,
                lr=bench.LEARNING_RATE,
                momentum=bench.MOMENTUM,
                wd=bench.WEIGHT_DECAY,
            )
    else:
        load_backend_or_skip(backend)
        model = bench.build_model(config, backend, dtype, seed=0)

        def epoch():
            model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)

    benchmark.group = f"{config}-{dtype}"
    benchmark.pedantic(epoch, warmup_rounds=1, rounds=ROUNDS, iterations=1)
    record(
        backend=backend,
        config=config,
        dtype=dtype,
        n_samples=x.shape[0],
        flops=bench.epoch_flops(config, x.shape[0]),
        batch_size=batch_size,
    )
