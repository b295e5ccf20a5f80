"""Hyperparameter sweeps on a Dask cluster: :func:`sweep` and its records.

Every (configuration, seed) trial trains one model with
:meth:`fastnn.Sequential.fit` on one single-threaded worker
(:func:`run_trial`); a trial that raises is recorded as failed and the others
go on. :class:`SweepResult` holds the records and reports them: a summary per
configuration, the best one, a markdown table, JSON and a chart.
"""

from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np

from fastnn import _validation
from fastnn.distributed.cluster import connect, require_dask


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
