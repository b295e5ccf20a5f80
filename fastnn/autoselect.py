"""``backend="auto"`` by measurement: the backend measured fastest on this
machine, cached per machine and version.

:func:`fastnn.bench.measure.measure_backends` (``fastnn backends --measure``)
trains the same two networks with every backend that loads, paired, and
scores each by its time over the fastest's (see there).

The result is written (atomically, as JSON) to ``auto-backend.json`` in
fastnn's cache folder (:func:`fastnn.datasets.get_cache_dir`) with the key it
holds for: the CPU's model and SIMD features, its core count, the versions of
fastnn, its kernels, NumPy, SciPy and numba, and the environment variables
that change BLAS's kernels or threads. :func:`measured_choice` returns the
cached pick only where the key matches this machine as it is now; anywhere
else ``auto`` keeps its fixed order (:data:`fastnn.backends.AUTO_ORDER`).
Where the CPU runs fastnn's own float32 kernels, the measurement also times
the cython loop on them against BLAS's sgemm, and the loop's ``auto`` GEMM
policy follows that choice on this machine (:func:`measured_gemm`); without
it the policy goes by BLAS's kernels (``cython_backend.own_gemm_pays``).
``auto`` never measures on its own: a model's constructor stays instant.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

import numpy as np

__all__ = [
    "AUTO_FILE",
    "machine_key",
    "measured_choice",
    "measured_gemm",
    "read_record",
]

#: The cache file's name, in fastnn's cache folder.
AUTO_FILE = "auto-backend.json"
#: Version of the file's layout.
FORMAT_VERSION = 1
#: Environment variables that change BLAS's kernels or thread counts.
KEY_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")

#: The cython loop's float32 GEMMs a measurement may choose between.
GEMM_CHOICES = ("own", "blas")

_memo: dict[Any, Any] = {}


def cache_file(cache_dir=None):
    from fastnn.datasets.cache import get_cache_dir

    return get_cache_dir(cache_dir) / AUTO_FILE


def machine_key() -> dict[str, Any]:
    """What a measurement holds for: CPU, cores, versions, BLAS variables.

    Read without importing a backend, so that it is the same before and
    after one is loaded."""
    from importlib import metadata

    from fastnn._machine import cpu_info

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    import fastnn

    return {
        "cpu": cpu_info(),
        "cpu_count": os.cpu_count(),
        "versions": {
            "fastnn": fastnn.__version__,
            "kernels": _kernel_api_version(),
            "numpy": np.__version__,
            "scipy": version("scipy"),
            "numba": version("numba"),
        },
        "env": {name: os.environ.get(name) for name in KEY_ENV},
    }


def _kernel_api_version() -> int:
    """The compiled kernels' interface version, read from the source of the
    backend module (importing it would load its extensions)."""
    from pathlib import Path

    source = Path(__file__).parent / "_kernels" / "cython_backend.py"
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("KERNEL_API_VERSION ="):
            return int(line.split("=")[1])
    raise RuntimeError(f"no KERNEL_API_VERSION in {source}")  # pragma: no cover


def read_record(names, cache_dir=None) -> tuple[dict[str, Any] | None, str, bool]:
    """``(record, why, damaged)``: the cached measurement if it holds for this
    machine as it is now and scores only backends among ``names``, else
    ``None``, the reason and whether the file is damaged (not merely absent
    or made elsewhere)."""
    path = cache_file(cache_dir)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "not measured on this machine", False
    except (OSError, ValueError) as err:
        return None, f"{path} is unreadable ({err})", True
    if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION:
        return None, f"{path} is not a measurement this fastnn reads", True
    if record.get("key") != machine_key():
        return None, "measured on another machine or version", False
    scores = record.get("scores")
    ok = (
        isinstance(scores, dict)
        and scores
        and all(name in names and _finite_number(v) for name, v in scores.items())
        and record.get("choice") in scores
    )
    if not ok:
        return None, f"{path} holds no valid scores", True
    gemm = record.get("cython_gemm")
    if gemm is not None and not (
        isinstance(gemm, dict)
        and gemm.get("choice") in GEMM_CHOICES
        and all(_finite_number(gemm.get(k)) for k in GEMM_CHOICES)
    ):
        return None, f"{path} holds no valid cython_gemm", True
    return record, f"measured on this machine at {record.get('when')}", False


def _finite_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _read_once(names, cache_dir) -> tuple[str, dict[str, Any] | None, str]:
    """``(path, record, why)``: :func:`read_record`, read once per process and
    cache folder for every reader (:func:`forget` reads it again); a damaged
    file warns, once."""
    path = str(cache_file(cache_dir))
    if path not in _memo:
        record, why, damaged = read_record(names, cache_dir)
        if damaged:
            warnings.warn(f"backend='auto': {why}; using the fixed order",
                          RuntimeWarning, stacklevel=4)  # fmt: skip
        _memo[path] = (record, why)
    return (path, *_memo[path])


def measured_choice(names, cache_dir=None) -> tuple[list[str] | None, str]:
    """``(backends fastest first, why)`` from the cached measurement of the
    backends ``names``, or ``(None, why not)``."""
    path, record, why = _read_once(names, cache_dir)
    if record is None:
        return None, why
    if ("order", path) not in _memo:
        scores = record["scores"]
        order = sorted(scores, key=scores.get)
        detail = ", ".join(f"{n} {scores[n]:.2f}" for n in order)
        _memo["order", path] = (
            order,
            f"{why}; time over the fastest's, geometric mean over an S "
            f"and an L network: {detail}",
        )
    return _memo["order", path]


def measured_gemm(names, cache_dir=None) -> tuple[str | None, str]:
    """``(choice, why)``: the cython loop's float32 GEMM (``"own"`` or
    ``"blas"``) measured faster on this machine, or ``(None, why not)``:
    no measurement holds for this machine, or it did not time the two (the
    CPU cannot run fastnn's own kernels)."""
    path, record, why = _read_once(names, cache_dir)
    gemm = None if record is None else record.get("cython_gemm")
    if gemm is None:
        return None, why if record is None else "not measured"
    if ("gemm", path) not in _memo:
        times = ", ".join(f"{k} {gemm[k]:.3f} s" for k in GEMM_CHOICES)
        _memo["gemm", path] = (gemm["choice"], f"{why}: {times}")
    return _memo["gemm", path]


def forget() -> None:
    """Drop what was read of the cache (a new measurement was saved)."""
    _memo.clear()


def save_record(record: dict[str, Any], cache_dir=None) -> None:
    """Write a measurement to the cache, atomically, readable by all."""
    from fastnn.io import atomic_write

    path = cache_file(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()), mode=0o644)
    forget()
