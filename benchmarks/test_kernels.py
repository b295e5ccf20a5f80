"""Per-layer kernels at MNIST shapes, and prediction throughput, per backend.

float32 throughout. Kernels are called the way the training loop calls them
(``fastnn.reference`` documents the contract): the first hidden layer of the L
network (64 x 784 -> 512, ReLU) forward and backward (``dX`` included), the
softmax cross-entropy of a 64 x 10 batch, and one SGD step over the whole L
network's parameters. Each benchmark times ``iterations`` back-to-back calls per
round after a warm-up round. Prediction: ``model.predict`` on the 10,000 test
images, samples/s in ``extra_info``.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from benchmarks._suite import BACKENDS, ROUNDS, load_backend_or_skip
from fastnn import bench
from fastnn.activations import Activation

DTYPE = np.float32
BATCH, N_IN, N_OUT, N_CLASSES = 64, 784, 512, 10
KERNEL_ROUNDS = 10 * ROUNDS
ITERATIONS = 10


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((BATCH, N_IN), dtype=DTYPE)
    limit = np.sqrt(6 / N_IN)
    W = rng.uniform(-limit, limit, (N_IN, N_OUT)).astype(DTYPE)
    b = rng.uniform(-0.1, 0.1, N_OUT).astype(DTYPE)
    A = np.maximum(X @ W + b, 0)
    return {
        "X": X,
        "W": W,
        "b": b,
        "A": A,
        "dA": rng.standard_normal((BATCH, N_OUT), dtype=DTYPE) * DTYPE(0.01),
        "Z": rng.standard_normal((BATCH, N_CLASSES), dtype=DTYPE),
        "labels": rng.integers(0, N_CLASSES, BATCH, dtype=np.int64),
    }


def _kernel_call(kernels, name: str):
    """``(call, rows per call or None, flops per call or None)`` for one kernel."""
    a = _arrays()
    if name == "dense_forward":
        A_out = np.empty((BATCH, N_OUT), DTYPE)

        def call():
            kernels.dense_forward(a["X"], a["W"], a["b"], Activation.RELU, A_out)

        return call, BATCH, 2.0 * BATCH * N_IN * N_OUT
    if name == "dense_backward":
        dW = np.empty((N_IN, N_OUT), DTYPE)
        db = np.empty(N_OUT, DTYPE)
        dX = np.empty((BATCH, N_IN), DTYPE)

        def call():
            kernels.dense_backward(
                a["dA"], a["X"], a["W"], a["A"], Activation.RELU, dW, db, dX
            )

        return call, BATCH, 4.0 * BATCH * N_IN * N_OUT
    if name == "softmax_cross_entropy":
        dZ = np.empty((BATCH, N_CLASSES), DTYPE)

        def call():
            kernels.softmax_cross_entropy(a["Z"], a["labels"], dZ)

        return call, BATCH, None
    if name == "update":
        model = bench.build_model("L64", "numpy", "float32", seed=0)
        rng = np.random.default_rng(1)
        plan = model.training_plan(BATCH)
        state = model.state.copy()
        grads = rng.standard_normal(state.params.size, dtype=DTYPE) * DTYPE(1e-3)

        def call():
            state.grads[...] = grads
            kernels.update(plan, state, bench.LEARNING_RATE)

        return call, None, None
    raise AssertionError(name)


KERNELS = ("dense_forward", "dense_backward", "softmax_cross_entropy", "update")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel(benchmark, record, kernel, backend):
    kernels = load_backend_or_skip(backend)
    call, rows, flops = _kernel_call(kernels, kernel)
    benchmark.group = f"kernel-{kernel}-float32"
    benchmark.pedantic(
        call, warmup_rounds=1, rounds=KERNEL_ROUNDS, iterations=ITERATIONS
    )
    extra = {"shape": f"{BATCH}x{N_IN}x{N_OUT} relu"} if "dense" in kernel else {}
    if kernel == "update":
        extra["n_params"] = bench.build_model("L64", "numpy").n_params
    record(
        backend=backend,
        config=kernel,
        dtype="float32",
        n_samples=rows,
        flops=flops,
        uses_mnist=False,
        iterations=ITERATIONS,
        **extra,
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", ("S", "L64"))
def test_predict(benchmark, mnist, record, config, backend):
    load_backend_or_skip(backend)
    xt, _ = mnist.test("float32")
    model = bench.build_model(config, backend, "float32", seed=0)
    architecture = "-".join(map(str, bench.CONFIGS[config].sizes))
    benchmark.group = f"predict-{architecture}-float32"
    benchmark.pedantic(
        model.predict, args=(xt,), warmup_rounds=1, rounds=ROUNDS, iterations=1
    )
    # the forward products only
    sizes = bench.CONFIGS[config].sizes
    flops = 2.0 * xt.shape[0] * sum(i * o for i, o in pairwise(sizes))
    record(
        backend=backend,
        config=f"predict-{config}",
        dtype="float32",
        n_samples=xt.shape[0],
        flops=flops,
        architecture=architecture,
    )
