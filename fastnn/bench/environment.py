"""What a benchmark result was measured on: versions, BLAS, threads, variables.

:func:`environment_info` reads the environment and sets nothing; it is recorded
with every result of the pytest-benchmark suite (``benchmarks/``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from fastnn._machine import cpu_info, cpu_vendor_family

__all__ = ["RECORDED_ENV", "environment_info"]

#: Environment variables recorded (never set) with every result.
RECORDED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")


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
        "cpu": cpu_info(),
        # AMD family 25 with AVX-512 is Zen 4: the GEMM rule turns on it
        "cpu_vendor_family": list(cpu_vendor_family()),
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
    numba_backend = sys.modules.get("fastnn._kernels.numba_backend")
    if numba_backend is not None:
        # Threads the numba backend's fit splits a step over, per batch size.
        info["numba_train_threads"] = {
            bs: numba_backend.train_threads_for(bs) for bs in (32, 64, 256)
        }
        # The training loops' float32 products: the own kernels or BLAS.
        info["numba_gemm"] = numba_backend.describe()
    cython = sys.modules.get("fastnn._kernels.cython_backend")
    if cython is not None:
        # Threads the cython backend's fit splits a step over, per batch size.
        info["cython_train_threads"] = {
            bs: cython.train_threads_for(bs) for bs in (32, 64, 256)
        }
        # The split training step's float32 products: fastnn's AVX2/FMA
        # kernels (True) or BLAS's sgemm.
        info["cython_own_sgemm"] = cython.own_sgemm()
        info["cython_gemm"] = cython.describe()
    return info
