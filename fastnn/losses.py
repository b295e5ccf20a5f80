"""Loss codes and their exact formulas.

For a batch of ``n`` samples with ``k`` outputs, parameters ``W_l`` (weight
matrices) and ``b_l`` (biases), and ``weight_decay = lam``, the *total* loss that
:meth:`fastnn.Sequential.loss_and_gradients` returns, that training minimises and
that ``fit`` reports is::

    cross_entropy:  L = -(1/n) * sum_i log softmax(z_i)[y_i]  +  lam/2 * sum_l ||W_l||^2
    mse:            L =  (1/(n*k)) * sum_ij (a_ij - t_ij)^2  +  lam/2 * sum_l ||W_l||^2

``z_i`` are the logits of the output layer (before softmax), ``a_i`` the output
layer's activations and ``t_i`` the targets (one-hot rows when integer labels
are given). Biases are never decayed. ``mse`` is the original project's
quadratic loss in the Keras/PyTorch ``reduction="mean"`` convention (mean over
samples and outputs).
"""

from __future__ import annotations

from enum import IntEnum


class Loss(IntEnum):
    CROSS_ENTROPY = 0
    MSE = 1


_NAMES = {
    "cross_entropy": Loss.CROSS_ENTROPY,
    "categorical_crossentropy": Loss.CROSS_ENTROPY,
    "sparse_categorical_crossentropy": Loss.CROSS_ENTROPY,
    "mse": Loss.MSE,
    "mean_squared_error": Loss.MSE,
    "quadratic": Loss.MSE,
}


def get(loss: str | Loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss.lower() in _NAMES:
        return _NAMES[loss.lower()]
    valid = ", ".join(repr(n) for n in _NAMES)
    raise ValueError(f"loss: expected one of {valid}; received {loss!r}")


def name(loss: Loss) -> str:
    return "cross_entropy" if loss == Loss.CROSS_ENTROPY else "mse"
