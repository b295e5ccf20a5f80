"""The numba backend where the Cython extensions cannot load: its training
loops still link (the own GEMM's symbol is a stub they never call) and train
on BLAS. Prints a JSON line: whether the own GEMM is available, how many
products ran on it, the losses, the parameters' checksum."""

import json
import sys

sys.modules["fastnn._kernels.cython_backend"] = None  # import fails: no build

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn._kernels import _numba_gemm  # noqa: E402

rng = np.random.default_rng(0)
x = rng.random((300, 40), dtype=np.float32)
y = rng.integers(0, 10, 300)
model = fastnn.Sequential(
    [fastnn.Dense(32, activation="relu"), fastnn.Dense(10, activation="softmax")],
    input_dim=40,
    backend="numba",
    seed=0,
)
history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
print(
    json.dumps(
        {
            "available": _numba_gemm.available(),
            "own_runs": _numba_gemm.own_count(),
            "loss": history.history["loss"],
            "cython": fastnn.available_backends()["cython"],
        }
    )
)
