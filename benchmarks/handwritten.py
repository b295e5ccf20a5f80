"""A minimal hand-written NumPy MLP: the yardstick the reference backend is held to.

Same work per step as fastnn's training loop (ReLU hidden layers, softmax
cross-entropy, SGD with momentum and L2 on the weights), written the way a
NumPy user would write it, with no library around it.
"""

from __future__ import annotations

import numpy as np


def train_epoch(
    x, y, Ws, bs, vWs, vbs, order, batch_size=64, lr=0.05, momentum=0.9, wd=1e-4
):
    n = x.shape[0]
    for s in range(0, n, batch_size):
        idx = order[s : s + batch_size]
        A = [x[idx]]
        for W, b in zip(Ws[:-1], bs[:-1], strict=True):
            A.append(np.maximum(A[-1] @ W + b, 0))
        Z = A[-1] @ Ws[-1] + bs[-1]
        Z -= Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        P[np.arange(len(idx)), y[idx]] -= 1
        dZ = P / len(idx)
        for l in range(len(Ws) - 1, -1, -1):
            dW = A[l].T @ dZ + wd * Ws[l]
            db = dZ.sum(axis=0)
            if l:
                dZ = (dZ @ Ws[l].T) * (A[l] > 0)
            vWs[l] *= momentum
            vWs[l] += dW
            vbs[l] *= momentum
            vbs[l] += db
            Ws[l] -= lr * vWs[l]
            bs[l] -= lr * vbs[l]


def init(sizes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    Ws = [
        rng.uniform(-np.sqrt(6 / a), np.sqrt(6 / a), (a, b)).astype(dtype)
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    bs = [np.zeros(b, dtype) for b in sizes[1:]]
    return Ws, bs, [np.zeros_like(w) for w in Ws], [np.zeros_like(b) for b in bs]
