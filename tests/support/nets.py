"""Small seeded nets and data for the step tests (equivalence, threads, mutants).

``make_net`` builds a flat ``params`` buffer with its ``layout`` and decay
``spans``; ``training_data`` the arrays ``run_train_steps`` (``support.contract``)
takes; ``NETS`` and ``SGD_CONFIGS`` the nets and SGD options the fused
``train_steps`` is checked on.
"""

from __future__ import annotations

import numpy as np

from fastnn.activations import Activation
from fastnn.losses import Loss

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
