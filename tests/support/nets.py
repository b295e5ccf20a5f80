"""Small seeded nets and data for the step tests (equivalence, threads, mutants).

``make_net`` builds a flat ``params`` buffer with its ``layout`` and decay
``spans``; ``training_data`` the arrays ``run_train_steps`` (``support.contract``)
takes; ``NETS`` and ``SGD_CONFIGS`` the nets and SGD options the fused
``train_steps`` is checked on; ``SPLIT_NETS`` nets the cython loop can split.
``small_net`` and ``train_small_net``: a 6-5-3 net trained a few SGD steps
through the flat argument list (``support.contract.legacy``).
"""

from __future__ import annotations

import numpy as np

from fastnn.activations import Activation
from fastnn.losses import Loss
from support.contract import legacy

#: (sizes, activations) per loss. CE runs its softmax output linear (fused into
#: the loss); mse differentiates a softmax output through its JVP.
NETS = {
    Loss.CROSS_ENTROPY: (
        [13, 11, 7, 4],
        [Activation.RELU, Activation.TANH, Activation.SOFTMAX],
    ),
    Loss.MSE: (
        [13, 11, 7, 4],
        [Activation.SIGMOID, Activation.RELU, Activation.SOFTMAX],
    ),
}
#: A net the cython backend can split with either loss (no layer softmax).
SPLIT_NETS = {
    Loss.CROSS_ENTROPY: NETS[Loss.CROSS_ENTROPY],
    Loss.MSE: (
        [13, 11, 7, 4],
        [Activation.SIGMOID, Activation.RELU, Activation.SIGMOID],
    ),
}
SGD_CONFIGS = {
    "plain": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "plain_wd": {"momentum": 0.0, "nesterov": False, "weight_decay": 1e-3},
    "momentum": {"momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
    "nesterov": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.0},
    "momentum_wd": {"momentum": 0.9, "nesterov": False, "weight_decay": 1e-3},
    "nesterov_wd": {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
}


def make_net(sizes, activations, dtype, bias=True, seed=0):
    """A flat ``params`` buffer, its ``layout`` and ``decay_spans`` (He-normal W)."""
    rng = np.random.default_rng(seed)
    rows, spans, chunks, off = [], [], [], 0
    for n_in, n_out, act in zip(sizes[:-1], sizes[1:], activations, strict=True):
        w_off = off
        chunks.append(rng.standard_normal(n_in * n_out) * np.sqrt(2.0 / n_in))
        off += n_in * n_out
        spans.append((w_off, off))
        b_off = -1
        if bias:
            b_off = off
            chunks.append(0.1 * rng.standard_normal(n_out))
            off += n_out
        rows.append((n_in, n_out, w_off, b_off, int(act)))
    params = np.concatenate(chunks).astype(dtype)
    return params, np.array(rows, np.int64), np.array(spans, np.int64)


def training_data(dtype, n=50, n_in=13, k=4, seed=1):
    """Seeded data for ``run_train_steps``: ``(X, labels, Y, order)``, ``n``
    samples of ``n_in`` features, ``k`` classes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    labels = rng.integers(0, k, n)
    Y = rng.random((n, k)).astype(dtype)
    order = rng.permutation(n)
    return X, labels, Y, order


def small_net(dtype, seed=0):
    """A 6-5-3 net (relu, softmax), its data and training arguments."""
    rng = np.random.default_rng(seed)
    layout = np.array([[6, 5, 0, 30, 1], [5, 3, 35, 50, 4]], np.int64)
    params = (0.5 * rng.standard_normal(53)).astype(dtype)
    spans = np.array([[0, 30], [35, 50]], np.int64)
    X = rng.standard_normal((20, 6)).astype(dtype)
    labels = rng.integers(0, 3, 20)
    return X, labels, rng.permutation(20), params, layout, spans


def train_small_net(backend, X, labels, order, params, layout, spans, steps=3):
    """``steps`` fused SGD steps (batch 7, nesterov momentum 0.9, decay 1e-3)
    of ``backend`` on copies; returns (steps done, params, losses)."""
    params = params.copy()
    grads, velocity = np.zeros_like(params), np.zeros_like(params)
    losses = np.zeros(steps)
    done = legacy(backend.train_steps)(
        X,
        labels,
        np.empty((0, 3)),
        order,
        7,
        0,
        steps,
        params,
        grads,
        velocity,
        layout,
        int(Loss.CROSS_ENTROPY),
        np.full(steps, 0.1),
        0.9,
        True,
        1e-3,
        spans,
        losses,
    )
    return done, params, losses


def sparse_inputs(n, n_in, batch_size, seed, dtype=np.float32):
    """MNIST-like inputs in order: a border of features zero in every sample,
    others zero in most, and the first half of the features zero throughout
    the second batch only (a thread's whole share; and weight-gradient rows
    skipped in one step after being computed in the step before)."""
    X, labels, Y, order = training_data(dtype, n=n, n_in=n_in, k=10, seed=seed)
    rng = np.random.default_rng(seed)
    X[:, : n_in // 8] = 0
    X[:, -(n_in // 8) :] = 0
    X[rng.random(X.shape) < 0.6] = 0
    X[batch_size : 2 * batch_size, : n_in // 2] = 0
    return X, labels, Y, np.arange(n)
