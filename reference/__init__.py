"""The ``"numpy"`` backend: the reference implementation and the specification.

Installed as ``fastnn.reference``. Every compiled backend implements the same
functions with the same signatures and is tested against these.

Names used in every kernel (and in the compiled backends):

=====  ======================  ==============================================
name   shape                   meaning
=====  ======================  ==============================================
X      (n, n_in)               layer input (the previous layer's output)
W      (n_in, n_out)           weight matrix, C-contiguous view of ``params``
b      (n_out,) or (0,)        bias; an empty array means "no bias"
Z      (n, n_out)              pre-activation ``X @ W + b``
A      (n, n_out)              activation ``f(Z)``
dA     (n, n_out)              gradient of the loss w.r.t. ``A``
dZ     (n, n_out)              gradient w.r.t. ``Z``
dW/db  like W / b              parameter gradients
dX     (n, n_in)               gradient w.r.t. the layer input
=====  ======================  ==============================================

Conventions (the backend contract): all float arrays of one call share one
dtype (float32 or float64) and are C-contiguous; labels are int64 class
indices; ``*_out`` buffers are written, never read; no other argument is
modified unless its docstring says so. Callers (``fastnn``'s public API)
validate shapes and dtypes; kernels assume valid input.

Model-level functions work on one flat parameter buffer ``params`` described by
``layout``, an int64 array of shape (n_layers, 5) whose columns are
``N_IN, N_OUT, W_OFF, B_OFF, ACT`` (``B_OFF = -1``: the layer has no bias).
``decay_spans`` is an int64 (k, 2) array of ``[start, stop)`` ranges of
``params`` that weight decay applies to (the weight matrices).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from fastnn import _compose
from fastnn.activations import Activation

__all__ = [
    "dense_forward",
    "dense_backward",
    "softmax_cross_entropy",
    "mean_squared_error",
    "sgd_update",
    "train_steps",
]

NAME = "numpy"


def _activate(activation: int, A: np.ndarray) -> None:
    """Apply ``activation`` to ``A`` in place."""
    if activation == Activation.RELU:
        np.maximum(A, 0, out=A)
    elif activation == Activation.SIGMOID:
        expit(A, out=A)  # stable for large |Z|, no overflow warning
    elif activation == Activation.TANH:
        np.tanh(A, out=A)
    elif activation == Activation.SOFTMAX:
        A -= A.max(axis=1, keepdims=True)  # subtract the row max for stability
        np.exp(A, out=A)
        A /= A.sum(axis=1, keepdims=True)


def dense_forward(X, W, b, activation, A_out):
    """``A_out = f(X @ W + b)``.

    X (n, n_in), W (n_in, n_out), b (n_out,) or (0,) for no bias,
    activation: an :class:`~fastnn.activations.Activation` code,
    A_out (n, n_out): written. Returns ``A_out``.
    """
    np.matmul(X, W, out=A_out)
    if b.shape[0]:
        A_out += b
    _activate(activation, A_out)
    return A_out


def _activation_grad(dA, A, activation):
    """``dZ`` from ``dA`` and the layer output ``A`` (derivative from the output A)."""
    if activation == Activation.LINEAR:
        return dA
    if activation == Activation.RELU:
        return dA * (A > 0)  # relu'(0) = 0
    if activation == Activation.SIGMOID:
        return dA * (A * (1 - A))
    if activation == Activation.TANH:
        return dA * (1 - A * A)
    # SOFTMAX: Jacobian-vector product per row, dZ = A * (dA - sum(dA * A)).
    return A * (dA - (dA * A).sum(axis=1, keepdims=True))


def dense_backward(dA, X, W, A, activation, dW_out, db_out, dX_out=None):
    """Gradients of one dense layer.

    ``dZ = dA * f'(A)``, ``dW_out = X.T @ dZ``, ``db_out = dZ.sum(0)`` (skipped
    when ``db_out`` is empty) and, only if ``dX_out`` is given,
    ``dX_out = dZ @ W.T``. ``dA``, ``X``, ``W`` and ``A`` are not modified.
    """
    dZ = _activation_grad(dA, A, activation)
    np.matmul(X.T, dZ, out=dW_out)
    if db_out.shape[0]:
        np.sum(dZ, axis=0, out=db_out)
    if dX_out is not None:
        np.matmul(dZ, W.T, out=dX_out)


def softmax_cross_entropy(Z, labels, dZ_out):
    """Mean softmax cross-entropy of logits ``Z`` (n, k) against int ``labels`` (n,).

    ``loss = mean_i(logsumexp(Z_i) - Z_i[y_i])`` with the row max subtracted for
    stability; writes ``dZ_out = (softmax(Z) - onehot(labels)) / n`` and returns
    the loss as a Python float. ``Z`` is not modified.
    """
    n = Z.shape[0]
    rows = np.arange(n)
    shifted = Z - Z.max(axis=1, keepdims=True)
    np.exp(shifted, out=dZ_out)
    sums = dZ_out.sum(axis=1)
    loss = np.mean(np.log(sums, dtype=np.float64) - shifted[rows, labels])
    dZ_out /= sums[:, None]
    dZ_out[rows, labels] -= 1
    dZ_out /= Z.dtype.type(n)
    return float(loss)


def mean_squared_error(A, Y, dA_out):
    """``loss = mean((A - Y)**2)`` over all n*k entries.

    Writes ``dA_out = 2 (A - Y) / (n k)``; returns the loss as a Python float.
    """
    np.subtract(A, Y, out=dA_out)
    loss = float(np.mean(np.square(dA_out, dtype=np.float64)))
    dA_out *= A.dtype.type(2.0 / A.size)
    return loss


def sgd_update(
    params,
    grads,
    velocity,
    learning_rate,
    momentum,
    nesterov,
    weight_decay,
    decay_spans,
):
    """One SGD step over the flat buffers, in place, in PyTorch's convention.

    For every entry, with ``wd = weight_decay`` inside ``decay_spans`` and 0
    elsewhere::

        g = grads + wd * params
        velocity = momentum * velocity + g          (only if momentum != 0)
        step = g + momentum * velocity if nesterov else velocity (g if momentum == 0)
        params -= learning_rate * step

    ``params`` and ``velocity`` are updated; ``grads`` is overwritten with ``g``.
    Returns ``sum(params**2)`` over ``decay_spans`` *before* the update (the
    L2 term's input, so the caller need not read the weights again), or 0.0
    when ``weight_decay == 0``.
    """
    dt = params.dtype.type
    sq = 0.0
    if weight_decay != 0:
        for start, stop in decay_spans:
            w = params[start:stop]
            sq += float(np.dot(w, w))
            grads[start:stop] += dt(weight_decay) * w
    if momentum != 0:
        velocity *= dt(momentum)
        velocity += grads
        if nesterov:
            grads += dt(momentum) * velocity
            step = grads
        else:
            step = velocity
    else:
        step = grads
    params -= dt(learning_rate) * step
    return sq


def train_steps(
    X,
    labels,
    Y,
    order,
    batch_size,
    step_begin,
    step_end,
    params,
    grads,
    velocity,
    layout,
    loss,
    learning_rates,
    momentum,
    nesterov,
    weight_decay,
    decay_spans,
    losses_out,
):
    """Run SGD steps ``step_begin .. step_end - 1`` of one epoch.

    Step ``s`` trains on the samples ``order[s*batch_size : (s+1)*batch_size]``
    (the last batch may be short). ``labels`` (int64, n) is used with the
    cross-entropy loss, ``Y`` (n, k) with mse; the other may be empty.
    ``learning_rates[i]`` is the rate of step ``step_begin + i``.
    ``losses_out[i]`` receives that step's total loss (data loss plus
    ``weight_decay / 2 * sum W**2`` at the weights the step started from).

    A step whose data loss is not finite is not applied: the function returns
    early. Returns the number of steps applied. ``params`` and ``velocity`` are
    updated in place; ``grads`` is scratch.
    """
    import sys

    return _compose.train_steps(
        sys.modules[__name__],
        X,
        labels,
        Y,
        order,
        batch_size,
        step_begin,
        step_end,
        params,
        grads,
        velocity,
        layout,
        loss,
        learning_rates,
        momentum,
        nesterov,
        weight_decay,
        decay_spans,
        losses_out,
    )
