"""In-process timing of training epochs per backend (``fastnn bench``)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np

from fastnn.bench.configs import CONFIGS, build_model, check_config
from fastnn.bench.report import plot_bars
from fastnn.bench.rows import BenchRow, order_key, with_ratios

__all__ = ["run_bench"]


def _resolve_backends(backends: Sequence[str] | None) -> list[str]:
    from fastnn import backends as registry

    if backends is None:
        names = [n for n, why in registry.available_backends().items() if why is None]
    else:
        if isinstance(backends, str):
            backends = [b for b in backends.split(",") if b.strip()]
        names = []
        for name in backends:
            name = registry.resolve_backend_name(name.strip())
            registry.get_backend(name)  # raises BackendUnavailableError, with the fix
            if name not in names:
                names.append(name)
    return sorted(names, key=order_key)


def run_bench(
    backends: Sequence[str] | None = None,
    configs: Sequence[str] = ("S", "L64"),
    dtype: str = "float32",
    epochs_rounds: int = 3,
    samples: int | None = None,
    output_png: str | os.PathLike | None = None,
    verbose: bool = False,
) -> list[BenchRow]:
    """Time MNIST training epochs in this process; return one row per result.

    For each configuration and backend: build the model, run one warm-up epoch
    (compilation and first-call costs), then ``epochs_rounds`` timed epochs of
    ``model.fit(x, y, epochs=1, batch_size=B, verbose=0)``; the row holds the
    median. ``backends=None`` takes every backend that loads here; a backend
    named explicitly must load (``BackendUnavailableError`` otherwise).
    ``samples`` cuts the training set to its first ``samples`` images (a smoke
    test, not a real measurement). ``output_png`` also writes a bar chart
    (:func:`plot_bars`). ``verbose`` prints one line per result to stderr.
    """
    from fastnn import _validation, datasets

    configs = [configs] if isinstance(configs, str) else list(configs)
    if not configs:
        raise ValueError(
            "configs: expected at least one of "
            f"{', '.join(map(repr, CONFIGS))}; received none"
        )
    for name in configs:
        check_config(name)
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64'; received {dtype!r}")
    epochs_rounds = _validation.check_positive_int(epochs_rounds, "epochs_rounds")
    names = _resolve_backends(backends)
    (x, y), _ = datasets.load_mnist(dtype=dtype, verbose=verbose)
    if samples is not None:
        samples = _validation.check_positive_int(samples, "samples")
        x, y = x[:samples], y[:samples]
    n = x.shape[0]
    smoke = n < datasets.N_TRAIN

    rows = []
    for config in configs:
        batch_size = min(check_config(config).batch_size, n)
        for backend in names:
            model = build_model(config, backend, dtype)
            model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)  # warm-up
            times = []
            for _ in range(epochs_rounds):
                t0 = time.perf_counter()
                model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            rows.append(
                BenchRow(
                    backend,
                    config,
                    dtype,
                    median,
                    None,
                    n / median,
                    group=f"{config}-{dtype}",
                    n_samples=n,
                    smoke=smoke,
                )
            )
            if verbose:
                print(
                    f"{config}-{dtype} {backend}: {median:.3f} s/epoch",
                    file=sys.stderr,
                    flush=True,
                )
    rows = with_ratios(rows)
    if output_png is not None:
        plot_bars(rows, output_png)
    return rows
