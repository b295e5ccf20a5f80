"""Benchmark helpers: the configurations, in-process epoch timing, tables, plots.

What the benchmarks measure is what users feel: the wall time of one
``model.fit(x, y, epochs=1)`` on the real MNIST held in memory, after a warm-up
epoch (so numba compilation and first-call costs are excluded; cold start is
measured separately, in ``benchmarks/test_cold_start.py``).

Configurations (ReLU hidden layers, softmax output, cross-entropy,
``SGD(0.05, momentum=0.9, weight_decay=1e-4)``):

====== ===================== ==========
name   layers                batch size
====== ===================== ==========
S      784-128-10            64
L64    784-512-512-512-10    64
L256   784-512-512-512-10    256
====== ===================== ==========

This module is shared by the pytest-benchmark suite (``benchmarks/``), the CI
comparison script (``benchmarks/compare.py``) and ``fastnn bench``; it has no
pytest dependency and imports matplotlib only inside :func:`plot_bars`.

A ``ratio_to_numpy`` is a *time* ratio: the backend's median epoch time over the
reference (``numpy``) backend's in the same group, so 0.5 means twice as fast.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CONFIGS",
    "BenchConfig",
    "BenchRow",
    "build_model",
    "environment_info",
    "epoch_flops",
    "format_table",
    "measure_sgemm_peak",
    "plot_bars",
    "print_table",
    "rows_from_json",
    "run_bench",
]

#: The reference backend every ratio is taken against.
REFERENCE = "numpy"
#: Row order in the tables: the reference first, the yardstick last.
_ORDER = ("numpy", "numba", "cython", "handwritten-numpy")
#: Environment variables recorded (never set) with every result.
RECORDED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")


class BenchConfig(NamedTuple):
    hidden: tuple[int, ...]
    batch_size: int
    input_dim: int = 784
    n_classes: int = 10

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.input_dim, *self.hidden, self.n_classes)


CONFIGS: dict[str, BenchConfig] = {
    "S": BenchConfig(hidden=(128,), batch_size=64),
    "L64": BenchConfig(hidden=(512, 512, 512), batch_size=64),
    "L256": BenchConfig(hidden=(512, 512, 512), batch_size=256),
}
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 1e-4


class BenchRow(NamedTuple):
    """One measured result: ``median_s`` is the median seconds per call (epoch)."""

    backend: str
    config: str
    dtype: str
    median_s: float
    ratio_to_numpy: float | None
    samples_per_second: float | None
    group: str = ""
    n_samples: int | None = None
    smoke: bool = False


def _config(name: str) -> BenchConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(
            f"config: expected one of {', '.join(map(repr, CONFIGS))}; "
            f"received {name!r}"
        ) from None


def build_model(config: str, backend: str, dtype: str = "float32", seed: int = 0):
    """The benchmark model of ``config`` (see the module docstring) on ``backend``."""
    import fastnn

    cfg = _config(config)
    layers = [
        fastnn.Dense(h, activation="relu", kernel_initializer="he_uniform")
        for h in cfg.hidden
    ]
    layers.append(fastnn.Dense(cfg.n_classes, activation="softmax"))
    return fastnn.Sequential(
        layers,
        input_dim=cfg.input_dim,
        loss="cross_entropy",
        optimizer=fastnn.SGD(
            learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
        ),
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


def epoch_flops(config: str, n_samples: int) -> float:
    """Floating-point operations of the matrix products in one training epoch.

    Per sample and layer ``n_in x n_out``: 2 n_in n_out for the forward product,
    as much for ``dW`` and, except on the first layer, for ``dX``.
    """
    sizes = _config(config).sizes
    per_sample = 0
    for layer, (n_in, n_out) in enumerate(pairwise(sizes)):
        per_sample += (4 if layer == 0 else 6) * n_in * n_out
    return float(per_sample) * n_samples


# --------------------------------------------------------------------------- #
# Machine and environment
# --------------------------------------------------------------------------- #


def measure_sgemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` float32 ``n x n`` products (``np.dot``).

    Uses whatever BLAS threads are currently allowed (all, by default). One
    untimed product first warms the BLAS thread pool up.
    """
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.dot(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment_info() -> dict[str, Any]:
    """Versions, BLAS and its threads, recorded environment variables, numba threads.

    JSON-serialisable. Reads the environment; sets nothing. numba is described
    only if it is already loaded (this function does not import it).
    """
    from threadpoolctl import threadpool_info

    import fastnn

    info: dict[str, Any] = {
        "versions": {
            "fastnn": fastnn.__version__,
            "numpy": np.__version__,
            "scipy": _version("scipy"),
            "numba": _version("numba"),
            "python": sys.version.split()[0],
        },
        "threadpools": [
            {
                key: (os.path.basename(value) if key == "filepath" else value)
                for key, value in pool.items()
                if key
                in (
                    "user_api",
                    "internal_api",
                    "version",
                    "num_threads",
                    "threading_layer",
                    "architecture",
                    "filepath",
                )
            }
            for pool in threadpool_info()
        ],
        "env": {name: os.environ.get(name) for name in RECORDED_ENV},
        "cpu_count": os.cpu_count(),
    }
    # numpy and scipy may each bring their own BLAS: record every one loaded.
    info["blas"] = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('filepath')}, "
        f"{p.get('num_threads')} threads)"
        for p in info["threadpools"]
        if p.get("user_api") == "blas"
    ]
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel function has run yet
            layer = None
        info["numba"] = {
            "threading_layer": layer,
            "num_threads": numba.get_num_threads(),
        }
    cython = sys.modules.get("fastnn._kernels.cython_backend")
    if cython is not None:
        # Threads the cython backend's fit splits a step over, per batch size.
        info["cython_train_threads"] = {
            bs: cython.train_threads_for(bs) for bs in (32, 64, 256)
        }
        # The split training step's float32 products: fastnn's AVX2/FMA
        # kernels (True) or BLAS's sgemm.
        info["cython_own_sgemm"] = cython.own_sgemm()
    return info


# --------------------------------------------------------------------------- #
# In-process timing (``fastnn bench``)
# --------------------------------------------------------------------------- #


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
    return sorted(names, key=_order_key)


def _order_key(backend: str) -> tuple[int, str]:
    return (_ORDER.index(backend) if backend in _ORDER else len(_ORDER), backend)


def _with_ratios(rows: list[BenchRow]) -> list[BenchRow]:
    reference = {r.group: r.median_s for r in rows if r.backend == REFERENCE}
    out = []
    for r in rows:
        ref = reference.get(r.group)
        ratio = r.median_s / ref if ref else None
        out.append(r._replace(ratio_to_numpy=ratio))
    return out


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
        _config(name)
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
        batch_size = min(_config(config).batch_size, n)
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
    rows = _with_ratios(rows)
    if output_png is not None:
        plot_bars(rows, output_png)
    return rows


# --------------------------------------------------------------------------- #
# pytest-benchmark JSON
# --------------------------------------------------------------------------- #


def rows_from_json(data: dict[str, Any] | str | os.PathLike) -> list[BenchRow]:
    """Rows from a pytest-benchmark ``--benchmark-json`` file (or its parsed dict).

    Only benchmarks whose ``extra_info`` names a ``backend`` (the fastnn suite's)
    are read; ``samples_per_second`` is ``n_samples / median`` when the
    benchmark recorded ``n_samples``.
    """
    if not isinstance(data, dict):
        with open(data, encoding="utf-8") as f:
            data = json.load(f)
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        backend = info.get("backend")
        if backend is None:
            continue
        median = float(bench["stats"]["median"])
        n = info.get("n_samples")
        rows.append(
            BenchRow(
                backend=backend,
                config=str(info.get("config", "")),
                dtype=str(info.get("dtype", "")),
                median_s=median,
                ratio_to_numpy=None,
                samples_per_second=(n / median if n and median > 0 else None),
                group=bench.get("group") or str(info.get("config", "")),
                n_samples=n,
                smoke=bool(info.get("smoke", False)),
            )
        )
    return _with_ratios(rows)


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #


def _group_key(group: str) -> tuple[int, str]:
    config = group.split("-", 1)[0]
    return (list(CONFIGS).index(config) if config in CONFIGS else len(CONFIGS), group)


def _grouped(rows: Iterable[BenchRow]) -> dict[str, list[BenchRow]]:
    groups: dict[str, list[BenchRow]] = {}
    for r in rows:
        groups.setdefault(r.group or f"{r.config}-{r.dtype}", []).append(r)
    return {
        g: sorted(groups[g], key=lambda r: _order_key(r.backend))
        for g in sorted(groups, key=_group_key)
    }


def format_table(rows: Iterable[BenchRow], cut_by: str | None = None) -> str:
    """A plain-text table per group: backend, median s, time / numpy, samples/s.

    A group measured on part of the training set gets a footnote saying so;
    ``cut_by`` names what cut it there (``"--samples"``,
    ``"FASTNN_BENCH_SAMPLES"``), or None to name nothing.
    """
    lines = []
    for group, members in _grouped(rows).items():
        lines.append(f"== {group}")
        lines.append(
            f"  {'backend':<18} {'median s':>11} {'time/numpy':>11} {'samples/s':>12}"
        )
        for r in members:
            ratio = f"{r.ratio_to_numpy:.3f}" if r.ratio_to_numpy is not None else "-"
            sps = (
                f"{r.samples_per_second:,.0f}"
                if r.samples_per_second is not None
                else "-"
            )
            lines.append(f"  {r.backend:<18} {r.median_s:>11.4g} {ratio:>11} {sps:>12}")
        if any(r.smoke for r in members):
            counts = [r.n_samples for r in members if r.smoke and r.n_samples]
            cut = f"{min(counts)} samples, " if counts else ""
            by = f"{cut_by}: " if cut_by else ""
            lines.append(f"  ({by}{cut}not a real measurement)")
    return "\n".join(lines)


def print_table(rows: Iterable[BenchRow], file=None, cut_by: str | None = None) -> None:
    """Print :func:`format_table` (to stdout by default)."""
    print(format_table(rows, cut_by=cut_by), file=file)


def plot_bars(rows: Iterable[BenchRow], path: str | os.PathLike) -> Path:
    """Bar charts of samples/s, one panel per configuration; written atomically.

    Each panel has its own y axis (S is about ten times faster than L64, so a
    shared axis would flatten L64's bars) and one bar per backend, labelled with
    its speed-up over numpy when numpy was measured too.
    """
    from fastnn import io, plots

    plots.require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"path: the folder {str(path.parent)!r} does not exist; create it first"
        )
    groups = _grouped(r for r in rows if r.samples_per_second is not None)
    if not groups:
        raise ValueError(
            "rows: expected at least one result with samples_per_second; received none"
        )
    backends = sorted({r.backend for m in groups.values() for r in m}, key=_order_key)
    colors = {b: f"C{i}" for i, b in enumerate(backends)}
    most = max(len(m) for m in groups.values())
    # Long backend names side by side would overlap: slant them.
    slant = most * max(len(b) for b in backends) > 24
    panel = max(2.6, 0.6 * most + 1.2)
    # At least 4.6 inches: the title's longest line must fit.
    width = max(4.6, panel * len(groups))
    fig = Figure(figsize=(width, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (group, members) in zip(axes, groups.items(), strict=True):
        names = [r.backend for r in members]
        bars = ax.bar(
            range(len(members)),
            [r.samples_per_second for r in members],
            0.7,
            color=[colors[b] for b in names],
        )
        ax.bar_label(
            bars,
            labels=[
                f"{1 / r.ratio_to_numpy:.1f}x" if r.ratio_to_numpy else ""
                for r in members
            ],
            fontsize=8,
            padding=2,
        )
        ax.margins(y=0.12)  # room above the tallest bar for its label
        pad = max(0.0, (3 - len(members)) / 2)  # one bar: not a full-width block
        ax.set_xlim(-0.6 - pad, len(members) - 0.4 + pad)
        ax.set_xticks(
            range(len(members)),
            names,
            rotation=30 if slant else 0,
            ha="right" if slant else "center",
            rotation_mode="anchor",
        )
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_ylabel("training samples / s")
        ax.set_title(group, fontsize=10)
    title = "fastnn: one MNIST epoch per backend (higher is better)"
    if any(r.ratio_to_numpy for m in groups.values() for r in m):
        title += "\nspeed-up over numpy above the bars"
    smoke = [r.n_samples for m in groups.values() for r in m if r.smoke]
    if smoke:
        cut = f"{min(n for n in smoke if n)} samples: " if any(smoke) else ""
        title += f"\n({cut}not a real measurement)"
    fig.suptitle(title, fontsize=10)
    io.atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path
