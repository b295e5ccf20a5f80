"""Model-level passes composed from one backend's per-layer kernels.

``kernels`` is a backend module (the reference, numba or cython) providing
``dense_forward``, ``dense_backward``, ``softmax_cross_entropy``,
``mean_squared_error`` and ``update``. These functions are the composed
path: the reference backend trains with them, and the compiled backends' fused
``train_steps`` are tested against them.

With the cross-entropy loss the output layer is run *linear* and the softmax is
fused into ``softmax_cross_entropy``; with mse the output activation (softmax
included) is applied and differentiated as any other.
"""

from __future__ import annotations

import numpy as np

from fastnn import _philox
from fastnn.activations import Activation
from fastnn.losses import Loss

# Columns of the layout array.
N_IN, N_OUT, W_OFF, B_OFF, ACT = range(5)


def layer_views(params, layout, l):
    """``(W, b)`` of layer ``l`` as views into the flat ``params``."""
    n_in, n_out, w_off, b_off = (int(v) for v in layout[l, :4])
    W = params[w_off : w_off + n_in * n_out].reshape(n_in, n_out)
    b = params[b_off : b_off + n_out] if b_off >= 0 else params[:0]
    return W, b


def _activations(layout, loss, training):
    acts = [int(a) for a in layout[:, ACT]]
    if training and loss == Loss.CROSS_ENTROPY:
        acts[-1] = int(Activation.LINEAR)  # softmax is fused into the loss
    return acts


def allocate(layout, batch_size, dtype):
    """Activation and gradient buffers for batches of up to ``batch_size`` rows."""
    acts = [np.empty((batch_size, int(n)), dtype) for n in layout[:, N_OUT]]
    dacts = [np.empty((batch_size, int(n)), dtype) for n in layout[:, N_OUT]]
    return acts, dacts


def forward(kernels, X, params, layout, out=None, buffers=None):
    """Network output ``f_L(... f_1(X W_1 + b_1) ...)`` for ``X`` (n, n_in)."""
    n = X.shape[0]
    A = X
    n_layers = layout.shape[0]
    for l in range(n_layers):
        W, b = layer_views(params, layout, l)
        if l == n_layers - 1 and out is not None:
            dest = out
        elif buffers is not None:
            dest = buffers[l][:n]
        else:
            dest = np.empty((n, W.shape[1]), X.dtype)
        A = kernels.dense_forward(A, W, b, int(layout[l, ACT]), dest)
    return A


def _drop(plan, step, row_offset, l, values, dtype):
    """Inverted dropout on layer ``l``'s input, in place: kept entries times
    ``1 / (1 - rate)``, dropped ones +0.0 (the masks of :mod:`fastnn._philox`);
    returns the keep mask."""
    m, width = values.shape
    keep = _philox.dropout_keep(
        plan.seed, step, l, row_offset, m, width, int(plan.drop_thresholds[l])
    ).view(bool)
    np.multiply(values, plan.drop_scale(l, dtype), out=values)
    values[~keep] = 0
    return keep


def data_loss_and_gradients(
    kernels, X, labels, Y, params, grads, layout, loss, buffers=None, dropout=None
):
    """Data loss (without L2) of the batch ``X``; writes ``grads`` (flat).

    ``dropout = (plan, step, row_offset)`` applies the plan's dropout with
    the masks of step ``step``, the batch's rows numbered from ``row_offset``
    (a slice of a larger batch keeps the larger batch's masks).
    """
    n = X.shape[0]
    if buffers is None:
        buffers = allocate(layout, n, X.dtype)
    acts_buf, dacts_buf = buffers
    acts = _activations(layout, loss, training=True)
    n_layers = layout.shape[0]
    rates = dropout[0].dropout if dropout is not None else np.zeros(n_layers)
    ins, outs, keeps = [X], [], [None] * n_layers
    for l in range(n_layers):
        W, b = layer_views(params, layout, l)
        out = kernels.dense_forward(ins[l], W, b, acts[l], acts_buf[l][:n])
        outs.append(out)
        if l + 1 < n_layers and rates[l + 1] > 0:
            plan, step, row_offset = dropout
            dropped = out.copy()
            keeps[l + 1] = _drop(plan, step, row_offset, l + 1, dropped, X.dtype)
            ins.append(dropped)
        else:
            ins.append(out)
    dA = dacts_buf[-1][:n]
    if loss == Loss.CROSS_ENTROPY:
        value = kernels.softmax_cross_entropy(outs[-1], labels, dA)
    else:
        value = kernels.mean_squared_error(outs[-1], Y, dA)
    for l in range(n_layers - 1, -1, -1):
        W, b = layer_views(params, layout, l)
        dW, db = layer_views(grads, layout, l)
        dX = dacts_buf[l - 1][:n] if l > 0 else None
        kernels.dense_backward(dA, ins[l], W, outs[l], acts[l], dW, db, dX)
        if keeps[l] is not None:
            np.multiply(dX, dropout[0].drop_scale(l, X.dtype), out=dX)
            dX[~keeps[l]] = 0
        dA = dX
    return value


def add_weight_decay(params, grads, weight_decay, decay_spans):
    """Add ``weight_decay * W`` to the weight gradients; return the L2 loss term."""
    if weight_decay == 0:
        return 0.0
    sq = 0.0
    dt = params.dtype.type
    for start, stop in decay_spans:
        w = params[start:stop]
        sq += float(np.dot(w, w))
        grads[start:stop] += dt(weight_decay) * w
    return 0.5 * weight_decay * sq


def loss_and_gradients(
    kernels, X, labels, Y, params, grads, layout, loss, weight_decay, decay_spans
):
    """Total loss (data + L2) of ``X`` and its exact gradient, written to ``grads``."""
    value = data_loss_and_gradients(kernels, X, labels, Y, params, grads, layout, loss)
    return value + add_weight_decay(params, grads, weight_decay, decay_spans)


def train_steps(
    kernels, plan, data, state, order, begin, end, learning_rates, losses_out
):
    """The composed training loop; same contract as ``reference.train_steps``."""
    X, layout, loss, bs = data.X, plan.layout, plan.loss, plan.batch_size
    n = X.shape[0]
    buffers = allocate(layout, bs, X.dtype)
    Xb_buf = np.empty((bs, X.shape[1]), X.dtype)
    ce = loss == Loss.CROSS_ENTROPY
    drop = plan.has_dropout
    # Divergence is detected explicitly (a non-finite loss stops the loop), so
    # NumPy's overflow warnings on the way there are noise.
    with np.errstate(over="ignore", invalid="ignore"):
        for i, s in enumerate(range(begin, end)):
            idx = order[s * bs : min(n, (s + 1) * bs)]
            m = idx.shape[0]
            Xb = np.take(X, idx, axis=0, out=Xb_buf[:m])
            lb = data.labels[idx] if ce else data.labels
            Yb = data.Y if ce else data.Y[idx]
            value = data_loss_and_gradients(
                kernels,
                Xb,
                lb,
                Yb,
                state.params,
                state.grads,
                layout,
                loss,
                buffers,
                (plan, state.step, 0) if drop else None,
            )
            if not np.isfinite(value):
                return i
            sq = kernels.update(plan, state, learning_rates[i])
            losses_out[i] = value + 0.5 * plan.weight_decay * sq
        return end - begin
