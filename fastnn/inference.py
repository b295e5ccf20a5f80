"""Inference over a model's checked inputs: the inputs checked once, predictions
in chunks, the loss and accuracy.

``Sequential.predict``/``evaluate`` check their arguments and call these; the
trainer checks ``x``, ``y`` and ``validation_data`` once per ``fit`` with
:func:`features` and :func:`answers` and scores every epoch with :func:`scores`.
"""

from __future__ import annotations

import numpy as np

from fastnn import _compose, _validation
from fastnn.losses import Loss

#: Rows predicted at once: bounds the activations' memory, not the result.
CHUNK = 8192


def features(model, x, name: str = "x") -> np.ndarray:
    """``x`` as a C-contiguous ``(n, input_dim)`` array of the model's dtype."""
    return _validation.check_features(x, name, model.input_dim, model.dtype)


def answers(model, y, n: int, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """``(labels int64 (n,), Y (n, k))`` for the model's loss; the one the loss
    does not use is empty."""
    if model.loss == Loss.CROSS_ENTROPY:
        labels = _validation.check_labels(y, name, n, model.n_outputs)
        return labels, np.zeros((0, 0), model.dtype)
    Y = _validation.check_targets(y, name, n, model.n_outputs, model.dtype)
    return np.zeros(0, np.int64), Y


def predict(model, x: np.ndarray, batch_size: int = CHUNK) -> np.ndarray:
    """Output-layer activations of checked ``x``, ``batch_size`` rows at a time."""
    out = np.empty((x.shape[0], model.n_outputs), model.dtype)
    buffers, _ = _compose.allocate(
        model.layout, min(batch_size, x.shape[0]), model.dtype
    )
    for start in range(0, x.shape[0], batch_size):
        stop = min(start + batch_size, x.shape[0])
        _compose.forward(
            model.kernels,
            x[start:stop],
            model.params,
            model.layout,
            out=out[start:stop],
            buffers=buffers,
        )
    return out


def scores(model, x, labels, Y, batch_size: int = CHUNK) -> dict[str, float]:
    """``{"loss", "accuracy"}`` of checked ``(x, labels, Y)``: the total loss
    (:mod:`fastnn.losses`, L2 included) and the fraction classified right."""
    P = predict(model, x, batch_size)
    n = x.shape[0]
    if model.loss == Loss.CROSS_ENTROPY:
        p = P[np.arange(n), labels].astype(np.float64)
        tiny = np.finfo(model.dtype).tiny
        data_loss = float(-np.mean(np.log(np.maximum(p, tiny))))
        correct = P.argmax(axis=1) == labels
    else:
        data_loss = float(np.mean(np.square(P - Y, dtype=np.float64)))
        correct = P.argmax(axis=1) == Y.argmax(axis=1)
    return {
        "loss": data_loss + model.l2_penalty(),
        "accuracy": float(np.mean(correct)),
    }
