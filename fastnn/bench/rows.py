"""Benchmark results: the row, the time ratio to numpy, the order of tables.

A ``ratio_to_numpy`` is a *time* ratio: the backend's median epoch time over the
reference (:data:`REFERENCE`, ``numpy``) backend's in the same group, so 0.5
means twice as fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from fastnn.bench.configs import CONFIGS

__all__ = ["ORDER", "REFERENCE", "BenchRow", "grouped", "order_key", "with_ratios"]

#: The reference backend every ratio is taken against.
REFERENCE = "numpy"
#: Row order in the tables: the reference first, the yardstick last.
ORDER = ("numpy", "numba", "cython", "handwritten-numpy")


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


def order_key(backend: str) -> tuple[int, str]:
    """Sort key of a backend: those of :data:`ORDER` first, in that order."""
    return (ORDER.index(backend) if backend in ORDER else len(ORDER), backend)


def with_ratios(rows: list[BenchRow]) -> list[BenchRow]:
    """``rows`` with ``ratio_to_numpy`` filled in from the numpy row of each
    group (None in a group without one)."""
    reference = {r.group: r.median_s for r in rows if r.backend == REFERENCE}
    out = []
    for r in rows:
        ref = reference.get(r.group)
        ratio = r.median_s / ref if ref else None
        out.append(r._replace(ratio_to_numpy=ratio))
    return out


def _group_key(group: str) -> tuple[int, str]:
    config = group.split("-", 1)[0]
    return (list(CONFIGS).index(config) if config in CONFIGS else len(CONFIGS), group)


def grouped(rows: Iterable[BenchRow]) -> dict[str, list[BenchRow]]:
    """``rows`` by group (``config-dtype`` when unnamed), the groups in
    :data:`~fastnn.bench.configs.CONFIGS` order, each in backend order."""
    groups: dict[str, list[BenchRow]] = {}
    for r in rows:
        groups.setdefault(r.group or f"{r.config}-{r.dtype}", []).append(r)
    return {
        g: sorted(groups[g], key=lambda r: order_key(r.backend))
        for g in sorted(groups, key=_group_key)
    }
