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

The model-level functions, ``update`` and ``train_steps``, take the three
objects of :mod:`fastnn.contract`: a :class:`~fastnn.contract.TrainingPlan`
(layout, loss, optimizer, decay spans, dropout, batch size), the
:class:`~fastnn.contract.TrainingData` and a
:class:`~fastnn.contract.TrainingState` (one flat parameter buffer ``params``,
the optimizer's slots laid out like it, the step counter). ``layout`` is an
int64 array of shape (n_layers, 5) whose columns are ``N_IN, N_OUT, W_OFF,
B_OFF, ACT`` (``B_OFF = -1``: the layer has no bias); ``decay_spans`` an int64
(k, 2) array of ``[start, stop)`` ranges of ``params`` that weight decay
applies to (the weight matrices).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from fastnn import _compose
from fastnn import contract as c
from fastnn.activations import Activation

__all__ = list(c.FUNCTIONS)

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


def update(plan, state, learning_rate):
    """One optimizer step from the data gradient in ``state.grads``, in place.

    In ``torch.optim``'s arithmetic, operation by operation in the array
    dtype (the scalars of :func:`fastnn.contract.step_scalars` aside), with
    ``g = state.grads`` and ``p = state.params``:

    1. ``clipnorm > 0``: ``g *= min(1, clipnorm / (||g|| + 1e-6))`` with the
       global L2 norm of the whole gradient (``clip_grad_norm_``);
    2. weight decay, inside ``plan.decay_spans`` only: coupled (every
       optimizer but AdamW) ``g += wd * p``; AdamW ``p *= 1 - lr * wd``;
    3. the rule, over every entry (``t = state.step + 1``; slots by name):

       * SGD: ``v = momentum * v + g`` (if momentum), ``step = g + momentum
         * v`` (Nesterov) or ``v`` (or ``g``); ``p -= lr * step``;
       * Adam, AdamW: ``m += (1 - beta_1) * (g - m)``, ``v = v * beta_2 +
         (1 - beta_2) * (g * g)``, ``v_max = max(v_max, v)`` (amsgrad),
         ``p -= (lr / (1 - beta_1**t)) * (m / (sqrt(v or v_max) /
         sqrt(1 - beta_2**t) + epsilon))``;
       * RMSprop: ``a = a * rho + (1 - rho) * (g * g)``; centered: ``ga +=
         (1 - rho) * (g - ga)``, ``d = sqrt(a - ga * ga) + epsilon``, else
         ``d = sqrt(a) + epsilon``; momentum: ``buf = buf * momentum + g /
         d``, ``p -= lr * buf``, else ``p -= lr * (g / d)``;
       * Adagrad: ``s += g * g``, ``p -= lr * (g / (sqrt(s) + epsilon))``.

    Adam, AdamW, RMSprop and Adagrad then store every parameter and slot
    below the dtype's smallest normal number in magnitude as zero: their
    normalised steps drive unused weights into the subnormal range, where x86
    arithmetic slows down by two orders of magnitude (``_optim_core.h`` has
    the figures); nothing above 1.2e-38 (float32) changes.

    ``state.step`` advances by one; ``state.grads`` is scratch afterwards.
    Returns the coupled L2 term's input ``sum(p**2)`` over the decay spans
    before the update (0.0 without coupled decay): the loss adds
    ``weight_decay / 2`` times it.
    """
    p, g, slots = state.params, state.grads, state.slots
    dt = p.dtype.type
    h = plan.hyper
    lr, step_size, bc2_sqrt, shrink = c.step_scalars(plan, state.step, [learning_rate])[
        0
    ]
    if h[c.CLIPNORM] > 0:
        g64 = g.astype(np.float64)
        g *= dt(c.clip_coefficient(float(np.dot(g64, g64)), h[c.CLIPNORM]))
    sq = 0.0
    wd = h[c.WEIGHT_DECAY]
    if wd != 0:
        for start, stop in plan.decay_spans:
            w = p[start:stop]
            if plan.coupled_decay:
                sq += float(np.dot(w, w))
                g[start:stop] += dt(wd) * w
            else:
                w *= dt(shrink)
    kind = plan.optimizer
    if kind == c.OptimizerKind.SGD:
        momentum = dt(h[c.MOMENTUM])
        velocity = slots[0]
        if momentum != 0:
            velocity *= momentum
            velocity += g
            if h[c.NESTEROV]:
                g += momentum * velocity
                step = g
            else:
                step = velocity
        else:
            step = g
        p -= dt(lr) * step
    elif kind in (c.OptimizerKind.ADAM, c.OptimizerKind.ADAMW):
        m, v = slots[0], slots[1]
        m += dt(1 - h[c.BETA_1]) * (g - m)
        v *= dt(h[c.SECOND])
        v += dt(1 - h[c.SECOND]) * (g * g)
        if h[c.FLAG]:
            np.maximum(slots[2], v, out=slots[2])
            v = slots[2]
        denom = np.sqrt(v) / dt(bc2_sqrt) + dt(h[c.EPSILON])
        p -= dt(step_size) * (m / denom)
    elif kind == c.OptimizerKind.RMSPROP:
        rho = h[c.SECOND]
        a = slots[0]
        a *= dt(rho)
        a += dt(1 - rho) * (g * g)
        j = 2 if h[c.MOMENTUM] else 1
        if h[c.FLAG]:
            ga = slots[j]
            ga += dt(1 - rho) * (g - ga)
            d = np.sqrt(a - ga * ga)
        else:
            d = np.sqrt(a)
        d += dt(h[c.EPSILON])
        if h[c.MOMENTUM]:
            buf = slots[1]
            buf *= dt(h[c.MOMENTUM])
            buf += g / d
            p -= dt(lr) * buf
        else:
            p -= dt(lr) * (g / d)
    else:  # Adagrad
        s = slots[0]
        s += g * g
        p -= dt(lr) * (g / (np.sqrt(s) + dt(h[c.EPSILON])))
    if kind != c.OptimizerKind.SGD:
        tiny = np.finfo(p.dtype).tiny
        for a in (p, *slots):
            a[np.abs(a) < tiny] = 0
    state.step += 1
    return sq


def train_steps(plan, data, state, order, begin, end, learning_rates, losses_out):
    """Run steps ``begin .. end - 1`` of one epoch; return how many were applied.

    Step ``s`` trains on the samples ``order[s*B : (s+1)*B]`` (``B =
    plan.batch_size``; the last batch may be short): the data loss and its
    gradient with dropout's masks for ``state.step`` (see
    :mod:`fastnn._philox`), then :func:`update` with ``learning_rates[s -
    begin]``. ``losses_out[i]`` receives that step's total loss: the data loss
    plus, with coupled weight decay, ``weight_decay / 2 * sum W**2`` at the
    weights the step started from.

    A step whose data loss is not finite is not applied: the function returns
    early. ``state`` is updated in place (``grads`` is scratch).
    """
    import sys

    return _compose.train_steps(
        sys.modules[__name__],
        plan,
        data,
        state,
        order,
        begin,
        end,
        learning_rates,
        losses_out,
    )
