"""Cold start: a fresh process imports fastnn, builds the S model, trains an epoch.

What a user waits for the first time a script runs: interpreter start, ``import
fastnn``, loading the backend (numba, the Cython extensions), loading MNIST from
its local cache, and a first epoch that includes any compilation. Each case is
one ``subprocess`` run timed once (``rounds=1``); the child measures its own
phases and prints them as JSON, recorded in ``extra_info``.

The child then trains a second epoch, in the same process and so on the same
machine state, and reports ``startup_overhead_s``: import, backend load and
first epoch, less that later epoch. That is what a fresh process adds to an
epoch; loading MNIST is left out (it is the same for every backend and varied
0.1-0.9 s between runs on the CI machines). ``compare.py
--max-startup-overhead`` gates it for numba with a warm cache.

numba is measured twice against one ``NUMBA_CACHE_DIR``: first empty (cold
cache: every kernel is compiled) and then again (warm cache: kernels are loaded
from disk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks._suite import SAMPLES, load_backend_or_skip

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import fastnn
t_import = time.perf_counter()
from fastnn import bench, datasets
backend, samples = sys.argv[1], int(sys.argv[2])
(x, y), _ = datasets.load_mnist(verbose=False)
if samples:
    x, y = x[:samples], y[:samples]
t_data = time.perf_counter()
model = bench.build_model("S", backend, "float32", seed=0)
t_build = time.perf_counter()
batch_size = min(64, x.shape[0])
model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
t_epoch = time.perf_counter()
model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
later_epoch_s = time.perf_counter() - t_epoch
total_without_data_s = (t_epoch - t0) - (t_data - t_import)
print(json.dumps({
    "import_s": t_import - t0,
    "load_data_s": t_data - t_import,
    "build_model_s": t_build - t_data,
    "first_epoch_s": t_epoch - t_build,
    "total_s": t_epoch - t0,
    "total_without_data_s": total_without_data_s,
    "later_epoch_s": later_epoch_s,
    "startup_overhead_s": total_without_data_s - later_epoch_s,
    "child_backend": model.backend,
    "n_train": int(x.shape[0]),
}))
"""
TIMEOUT_S = 1800
_numba_cache: dict[str, str] = {}  # the folder the cold-cache run filled


def _run_child(backend: str, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, backend, str(SAMPLES or 0)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"the cold-start child ({backend}) failed with exit code "
            f"{proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("backend", "cache"),
    [
        pytest.param("numba", "cold", id="numba-cold-cache"),
        pytest.param("numba", "warm", id="numba-warm-cache"),
        pytest.param("cython", None, id="cython"),
        pytest.param("numpy", None, id="numpy"),
    ],
)
def test_cold_start(benchmark, record, tmp_path_factory, backend, cache):
    load_backend_or_skip(backend)
    env = dict(os.environ)
    if cache == "cold":
        folder = str(tmp_path_factory.mktemp("numba-cache"))
        _numba_cache["folder"] = folder
        env["NUMBA_CACHE_DIR"] = folder
    elif cache == "warm":
        folder = _numba_cache.get("folder")
        env["NUMBA_CACHE_DIR"] = folder or str(tmp_path_factory.mktemp("numba-cache"))
        if folder is None:  # the cold-cache case did not run: fill the cache first
            _run_child(backend, env)
    benchmark.group = "cold-start-S-float32"
    child = benchmark.pedantic(
        _run_child, args=(backend, env), rounds=1, warmup_rounds=0, iterations=1
    )
    name = f"{backend}-{cache}-cache" if cache else backend
    record(
        backend=name, config="cold-start-S", dtype="float32", numba_cache=cache, **child
    )
