"""Numba kernels of the ``"numba"`` backend; the contract is ``fastnn.reference``.

Design
------
* **GEMMs go to BLAS.** Every matrix product is ``np.dot(a, b, out)``, which
  numba lowers to one ``?gemm`` call (scipy's BLAS) when ``a``, ``b`` and
  ``out`` have one dtype and a static ``C`` or ``F`` layout. Transposes are
  free: ``X.T`` of a C array is typed ``F`` and becomes a BLAS transpose flag,
  never a copy (an ``A``-layout operand would be copied; none is used here).
* **Everything elementwise is fused around the GEMM**, one pass per tile:
  forward = ``gemm`` then bias + activation in one pass over ``A``;
  backward = activation derivative (from the output ``A``) + bias-gradient
  column sums in one pass, then the two ``gemm`` calls;
  softmax cross-entropy = loss and gradient in one pass per row (the row max
  subtracted for stability); each optimizer = weight decay + its rule in one
  pass over a range of the flat buffers (the L2 sum of squares of each
  decayed span is a separate, cache-hot pass just before: mixed into the
  update loop its float64 reduction stopped LLVM from vectorizing, 4x
  slower).
* **The input layer skips the features zero throughout a batch** (MNIST's
  borders: 37% of the 784 pixels at batch 64) where BLAS runs at one thread:
  those columns of the batch and rows of W are gathered for a smaller
  product, and dW's rows for them are zero. The terms left out are exact
  zeros while the skipped weights and dZ are finite, which is checked (else
  the whole product runs: 0 * inf is NaN, as in the reference).
* **train_steps** runs many steps in compiled code: per step it gathers the
  batch rows into a preallocated buffer, runs forward (with dropout's masks
  from the counter-based generator of ``_numba_philox``), loss, backward and
  the update. All scratch is allocated once per call as flat 1-D buffers; a
  layer's tile is ``flat[:m * k].reshape(m, k)`` (C-contiguous for any batch
  length ``m``, so the short last batch needs no special case).
* **Overwritten buffers**: ``A_out``, ``dW_out``, ``db_out``, ``dX_out``,
  ``dZ_out``, ``dA_out`` (written, never read); ``update`` updates
  ``params`` and ``slots`` and leaves ``grads`` as scratch.
  Inside ``train_steps`` the backward pass alternates two scratch tiles
  (``dA`` in one, ``dZ`` in the other, then ``dX`` back into the first): an
  in-place ``dZ`` would defeat LLVM's alias check and run scalar. The caller's
  ``X``, ``labels``, ``Y``, ``order`` are only read; ``grads`` is scratch.
* **No parallel=True.** The GEMMs, which are nearly all the work, already run on
  BLAS's threads; the fused passes are small, memory-bound tiles where starting
  a parallel region per pass costs more than it saves. Serial kernels are also
  re-entrant under ``nogil`` (thread-safe without a numba threading layer) and
  give results independent of the thread count.
* **error_model="numpy"**: a division by zero gives inf or NaN as in NumPy,
  never a raised ``ZeroDivisionError``; numba's default check on every ``/``
  stops LLVM from vectorizing the loops that divide (the adaptive optimizers,
  sigmoid, softmax). No kernel divides by zero on valid input (the
  denominators are ``sqrt(v) + eps``, ``1 + exp(-x)``, a row sum >= 1).
* **fastmath** = ``FASTMATH`` below: no ``nnan``/``ninf``, so NaN and Inf
  propagate and are detected (the early stop on a non-finite loss); the
  softmax cross-entropy drops ``reassoc`` (see ``_JIT_ORDERED``).
* **float32 stays float32**: constants are cast with ``X.dtype.type``; only the
  scalar losses and the L2 sum of squares are accumulated in float64 (as the
  reference does for the losses).
* Everything also runs undecorated (``NUMBA_DISABLE_JIT=1``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastnn import contract as _c
from fastnn._kernels._numba_philox import dropout_keep_span
from fastnn.activations import Activation
from fastnn.losses import Loss

#: One fastmath flag set for every kernel. It keeps NaN/Inf semantics (no
#: ``nnan``/``ninf``), so non-finite values propagate and can be detected.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
#: IEEE division (x / 0 is inf or NaN, as in NumPy and the reference) instead of
#: numba's default ``error_model="python"``, whose zero-division check on every
#: ``/`` keeps LLVM from vectorizing a loop that divides: Adam's update ran
#: scalar, 3.4x slower (0.65 against 0.19 ms for 203,530 float32 entries).
_ERRORS = "numpy"
_JIT = {"cache": True, "nogil": True, "fastmath": set(FASTMATH), "error_model": _ERRORS}
# The softmax cross-entropy opts out of ``reassoc``: with it LLVM rewrites
# ``log(s) - (z_y - max)`` so that the row-max shift no longer protects it, and
# float64 logits near the float max give an infinite loss (found by the tests).
_JIT_ORDERED = {
    "cache": True,
    "nogil": True,
    "fastmath": set(FASTMATH - {"reassoc"}),
    "error_model": _ERRORS,
}

# Plain ints: numba freezes module globals as compile-time constants.
LINEAR = int(Activation.LINEAR)
RELU = int(Activation.RELU)
SIGMOID = int(Activation.SIGMOID)
TANH = int(Activation.TANH)
SOFTMAX = int(Activation.SOFTMAX)
CROSS_ENTROPY = int(Loss.CROSS_ENTROPY)
# Columns of the layout array (as in fastnn._compose).
N_IN, N_OUT, W_OFF, B_OFF, ACT = range(5)
# Optimizer kinds and hyper-parameter entries (as fastnn.contract).
K_SGD, K_ADAM, K_ADAMW, K_RMSPROP, K_ADAGRAD = (int(k) for k in _c.OptimizerKind)
H_MOMENTUM, H_NESTEROV, H_WEIGHT_DECAY = _c.MOMENTUM, _c.NESTEROV, _c.WEIGHT_DECAY
H_BETA_1, H_SECOND, H_EPSILON, H_FLAG = _c.BETA_1, _c.SECOND, _c.EPSILON, _c.FLAG
H_CLIPNORM = _c.CLIPNORM


# --------------------------------------------------------------------------- #
# Per-layer building blocks
# --------------------------------------------------------------------------- #
@njit(**_JIT)
def bias_activation(A, b, activation):
    """``A = f(A + b)`` in place (``b`` empty: no bias); one pass over ``A``.

    The bias test is loop-invariant (LLVM unswitches it); the relu is a select,
    not a conditional store, so the loop vectorizes.
    """
    n, k = A.shape
    has_bias = b.shape[0] > 0
    zero = A.dtype.type(0)
    one = A.dtype.type(1)
    if activation == LINEAR:
        if has_bias:
            for i in range(n):
                for j in range(k):
                    A[i, j] += b[j]
    elif activation == RELU:
        for i in range(n):
            for j in range(k):
                z = A[i, j] + b[j] if has_bias else A[i, j]
                A[i, j] = zero if z < zero else z  # NaN stays NaN, as np.maximum
    elif activation == SIGMOID:
        for i in range(n):
            for j in range(k):
                z = A[i, j] + b[j] if has_bias else A[i, j]
                if z >= zero:  # the stable branch for each sign, as expit
                    A[i, j] = one / (one + math.exp(-z))
                else:
                    e = math.exp(z)
                    A[i, j] = e / (one + e)
    elif activation == TANH:
        for i in range(n):
            for j in range(k):
                z = A[i, j] + b[j] if has_bias else A[i, j]
                A[i, j] = math.tanh(z)
    elif activation == SOFTMAX:
        for i in range(n):
            if has_bias:
                for j in range(k):
                    A[i, j] += b[j]
            m = A[i, 0]  # subtract the row max for stability
            for j in range(1, k):
                if A[i, j] > m:
                    m = A[i, j]
            s = zero
            for j in range(k):
                e = math.exp(A[i, j] - m)
                A[i, j] = e
                s += e
            for j in range(k):
                A[i, j] /= s


@njit(**_JIT)
def activation_grad(dA, A, activation, dZ, db):
    """``dZ = dA * f'(A)`` (derivative from the output A) and ``db = dZ.sum(0)``.

    One pass. ``dZ`` must not overlap ``dA`` (an in-place loop defeats LLVM's
    runtime alias check and runs scalar), except for LINEAR, where ``dZ`` is
    not written (it equals ``dA``). ``db`` empty: no bias.
    """
    n, k = dA.shape
    has_bias = db.shape[0] > 0
    zero = dA.dtype.type(0)
    one = dA.dtype.type(1)
    if has_bias:
        for j in range(k):
            db[j] = zero
    if activation == LINEAR:
        if has_bias:
            for i in range(n):
                for j in range(k):
                    db[j] += dA[i, j]
        return
    for i in range(n):
        if activation == SOFTMAX:
            # Jacobian-vector product per row: dZ = A * (dA - sum(dA * A)).
            s = zero
            for j in range(k):
                s += dA[i, j] * A[i, j]
            for j in range(k):
                dZ[i, j] = A[i, j] * (dA[i, j] - s)
            if has_bias:
                for j in range(k):
                    db[j] += dZ[i, j]
        elif activation == RELU:
            for j in range(k):  # relu'(0) = 0; dA * 0 keeps NaN as the reference
                d = dA[i, j] if A[i, j] > zero else dA[i, j] * zero
                dZ[i, j] = d
                if has_bias:
                    db[j] += d
        elif activation == SIGMOID:
            for j in range(k):
                a = A[i, j]
                d = dA[i, j] * (a * (one - a))
                dZ[i, j] = d
                if has_bias:
                    db[j] += d
        else:  # TANH
            for j in range(k):
                a = A[i, j]
                d = dA[i, j] * (one - a * a)
                dZ[i, j] = d
                if has_bias:
                    db[j] += d


@njit(**_JIT)
def dense_forward(X, W, b, activation, A_out):
    """Same contract as ``fastnn.reference.dense_forward``."""
    if A_out.size == 0:
        return A_out
    np.dot(X, W, A_out)
    bias_activation(A_out, b, activation)
    return A_out


@njit(**_JIT)
def dense_backward(dA, X, W, A, activation, dW_out, db_out, dX_out, want_dX):
    """Same contract as ``fastnn.reference.dense_backward``.

    ``dX_out`` is written only if ``want_dX`` (else it may be a dummy array).
    ``dA`` is not modified: ``dZ`` goes to a temporary (none for LINEAR).
    """
    if activation == LINEAR:
        dZ = dA
        activation_grad(dA, A, activation, dZ, db_out)
    else:
        dZ = np.empty_like(dA)
        activation_grad(dA, A, activation, dZ, db_out)
    if dW_out.size > 0:
        if dA.shape[0] == 0:
            dW_out[:] = dW_out.dtype.type(0)
        else:
            np.dot(X.T, dZ, dW_out)  # X.T: F layout -> a BLAS transpose flag
    if want_dX and dX_out.size > 0:
        if dA.shape[1] == 0:
            dX_out[:] = dX_out.dtype.type(0)
        else:
            np.dot(dZ, W.T, dX_out)


@njit(**_JIT_ORDERED)
def softmax_cross_entropy(Z, labels, dZ_out):
    """Same contract as ``fastnn.reference.softmax_cross_entropy``.

    One pass per row; the loss is accumulated in float64 as the reference does.
    """
    n, k = Z.shape
    one = Z.dtype.type(1)
    dn = Z.dtype.type(n)
    total = 0.0
    for i in range(n):
        m = Z[i, 0]  # subtract the row max for stability
        for j in range(1, k):
            if Z[i, j] > m:
                m = Z[i, j]
        s = Z.dtype.type(0)
        for j in range(k):
            e = math.exp(Z[i, j] - m)
            dZ_out[i, j] = e
            s += e
        y = labels[i]
        shifted_y = Z[i, y] - m
        total += math.log(np.float64(s)) - np.float64(shifted_y)
        for j in range(k):
            dZ_out[i, j] = dZ_out[i, j] / s
        dZ_out[i, y] -= one
        for j in range(k):
            dZ_out[i, j] = dZ_out[i, j] / dn
    return total / n


@njit(**_JIT)
def mean_squared_error(A, Y, dA_out):
    """Same contract as ``fastnn.reference.mean_squared_error`` (float64 sum)."""
    n, k = A.shape
    scale = A.dtype.type(2.0 / (n * k))
    total = 0.0
    for i in range(n):
        for j in range(k):
            d = A[i, j] - Y[i, j]
            d64 = np.float64(d)
            total += d64 * d64
            dA_out[i, j] = d * scale
    return total / (n * k)


# --------------------------------------------------------------------------- #
# SGD over the flat buffers
# --------------------------------------------------------------------------- #
@njit(**_JIT)
def _sum_squares(w):
    """``sum(w**2)`` accumulated in float64 (its own pass: it vectorizes better)."""
    sq = 0.0
    for t in range(w.shape[0]):
        w64 = np.float64(w[t])
        sq += w64 * w64
    return sq


@njit(**_JIT)
def _update_layer(params, grads, velocity, lr, momentum, nesterov, wd, decay):
    """The fused SGD step on a slice of the buffers (decay if ``decay``,
    momentum, Nesterov, the update) in one pass; scalars in the params dtype.
    ``grads`` is only read: skipping the write of ``g`` back into the
    (scratch) gradient saves one of six memory streams. The callers pass
    slices so the loop starts at 0: LLVM vectorizes that form.
    """
    zero = params.dtype.type(0)
    if momentum == zero:
        for t in range(params.shape[0]):
            w = params[t]
            g = grads[t]
            if decay:
                g = g + wd * w
            params[t] = w - lr * g
    else:
        for t in range(params.shape[0]):
            w = params[t]
            g = grads[t]
            if decay:
                g = g + wd * w
            v = momentum * velocity[t] + g
            velocity[t] = v
            if nesterov:
                params[t] = w - lr * (g + momentum * v)
            else:
                params[t] = w - lr * v


# --------------------------------------------------------------------------- #
# Adam, AdamW, RMSprop, Adagrad
# --------------------------------------------------------------------------- #
# Without fastmath: each entry takes the reference's operations in its order,
# so these updates equal the reference's bit for bit (SGD keeps its fused,
# fastmath loop above, tested to the suite's tolerance).
_JIT_EXACT = {"cache": True, "nogil": True, "error_model": _ERRORS}


@njit(**_JIT_EXACT)
def _tiny(p):
    """The smallest normal number of ``p``'s dtype: the updates below store
    smaller magnitudes as zero (subnormals slow x86 arithmetic down by two
    orders of magnitude; ``_optim_core.h`` says more)."""
    if p.itemsize == 4:
        return p.dtype.type(1.1754943508222875e-38)
    return p.dtype.type(2.2250738585072014e-308)


@njit(**_JIT_EXACT)
def _adam(p, g, m, v, v_max, amsgrad, decay, coupled, wd, shrink, one_minus_b1,
          b2, one_minus_b2, step_size, bc2_sqrt, eps):  # fmt: skip
    tiny, zero = _tiny(p), p.dtype.type(0)
    for t in range(p.shape[0]):
        w = p[t]
        gt = g[t]
        if decay:
            if coupled:
                gt = gt + wd * w
            else:
                w = w * shrink
        mt = m[t] + one_minus_b1 * (gt - m[t])
        m[t] = mt if not abs(mt) < tiny else zero
        vt = v[t] * b2 + one_minus_b2 * (gt * gt)
        v[t] = vt if not abs(vt) < tiny else zero
        if amsgrad:
            vm = v_max[t]
            if vt > vm or vt != vt:  # np.maximum: NaN wins
                vm = vt
            v_max[t] = vm if not abs(vm) < tiny else zero
            vt = vm
        w = w - step_size * (mt / (math.sqrt(vt) / bc2_sqrt + eps))
        p[t] = w if not abs(w) < tiny else zero


@njit(**_JIT_EXACT)
def _rmsprop(p, g, a, buf, ga, has_momentum, centered, decay, wd, rho,
             one_minus_rho, momentum, eps, lr):  # fmt: skip
    tiny, zero = _tiny(p), p.dtype.type(0)
    for t in range(p.shape[0]):
        w = p[t]
        gt = g[t]
        if decay:
            gt = gt + wd * w
        at = a[t] * rho + one_minus_rho * (gt * gt)
        a[t] = at if not abs(at) < tiny else zero
        if centered:
            gat = ga[t] + one_minus_rho * (gt - ga[t])
            ga[t] = gat if not abs(gat) < tiny else zero
            d = math.sqrt(at - gat * gat)
        else:
            d = math.sqrt(at)
        d = d + eps
        if has_momentum:
            b = buf[t] * momentum + gt / d
            buf[t] = b if not abs(b) < tiny else zero
            w = w - lr * b
        else:
            w = w - lr * (gt / d)
        p[t] = w if not abs(w) < tiny else zero


@njit(**_JIT_EXACT)
def _adagrad(p, g, acc, decay, wd, eps, lr):
    tiny, zero = _tiny(p), p.dtype.type(0)
    for t in range(p.shape[0]):
        w = p[t]
        gt = g[t]
        if decay:
            gt = gt + wd * w
        st = acc[t] + gt * gt
        acc[t] = st if not abs(st) < tiny else zero
        w = w - lr * (gt / (math.sqrt(st) + eps))
        p[t] = w if not abs(w) < tiny else zero


@njit(**_JIT_EXACT)
def _step_range(params, grads, slots, lo, hi, kind, h, sc, decay):
    """The optimizer on entries ``[lo, hi)``; ``decay``: they are weights.

    ``h`` is the plan's hyper-parameters, ``sc`` this step's scalars
    (``contract.step_scalars``); ``grads`` is only read.
    """
    dt = params.dtype.type
    p = params[lo:hi]
    g = grads[lo:hi]
    wd = dt(h[H_WEIGHT_DECAY])
    decay = decay and h[H_WEIGHT_DECAY] != 0.0
    if kind == K_SGD:
        _update_layer(p, g, slots[0, lo:hi], dt(sc[0]), dt(h[H_MOMENTUM]),
                      h[H_NESTEROV] != 0.0, wd, decay)  # fmt: skip
    elif kind == K_ADAM or kind == K_ADAMW:
        amsgrad = h[H_FLAG] != 0.0
        v_max = slots[2, lo:hi] if amsgrad else slots[1, lo:hi]
        _adam(p, g, slots[0, lo:hi], slots[1, lo:hi], v_max, amsgrad, decay,
              kind == K_ADAM, wd, dt(sc[3]), dt(1.0 - h[H_BETA_1]),
              dt(h[H_SECOND]), dt(1.0 - h[H_SECOND]), dt(sc[1]), dt(sc[2]),
              dt(h[H_EPSILON]))  # fmt: skip
    elif kind == K_RMSPROP:
        has_momentum = h[H_MOMENTUM] != 0.0
        j = 2 if has_momentum else 1
        centered = h[H_FLAG] != 0.0
        buf = slots[1, lo:hi] if has_momentum else slots[0, lo:hi]
        ga = slots[j, lo:hi] if centered else slots[0, lo:hi]
        _rmsprop(p, g, slots[0, lo:hi], buf, ga, has_momentum, centered, decay,
                 wd, dt(h[H_SECOND]), dt(1.0 - h[H_SECOND]), dt(h[H_MOMENTUM]),
                 dt(h[H_EPSILON]), dt(sc[0]))  # fmt: skip
    else:
        _adagrad(p, g, slots[0, lo:hi], decay, wd, dt(h[H_EPSILON]), dt(sc[0]))


@njit(**_JIT)
def _clip(grads, clipnorm):
    """``clip_grad_norm_``: scale ``grads`` to a global norm of at most ``clipnorm``."""
    coef = clipnorm / (math.sqrt(_sum_squares(grads)) + 1e-6)
    if coef < 1.0:
        c = grads.dtype.type(coef)
        for t in range(grads.shape[0]):
            grads[t] = grads[t] * c


@njit(**_JIT_EXACT)
def update(params, grads, slots, kind, h, sc, decay_spans):
    """Same contract as ``fastnn.reference.update`` (bar the step counter, which
    the wrapper advances); returns the coupled L2 term's sum of squares."""
    if h[H_CLIPNORM] > 0.0:
        _clip(grads, h[H_CLIPNORM])
    sq = 0.0
    wd = params.dtype.type(h[H_WEIGHT_DECAY])
    if h[H_WEIGHT_DECAY] != 0.0:
        shrink = params.dtype.type(sc[3])
        for s in range(decay_spans.shape[0]):
            for t in range(decay_spans[s, 0], decay_spans[s, 1]):
                w = params[t]
                if kind == K_ADAMW:
                    params[t] = w * shrink
                else:
                    w64 = np.float64(w)
                    sq += w64 * w64
                    grads[t] = grads[t] + wd * w
    _step_range(params, grads, slots, 0, params.shape[0], kind, h, sc, False)
    return sq


# --------------------------------------------------------------------------- #
# The input layer's zero-feature skip
# --------------------------------------------------------------------------- #
@njit(**_JIT)
def _nonzero_columns(X, W, peak, cols):
    """Put into ``cols`` the columns of ``X`` (m, n_in) not zero throughout,
    ascending, then the others; return how many are not zero, or -1 where
    skipping does not pay (fewer than an eighth skipped) or is not exact (a
    skipped feature's row of ``W`` not finite: 0 * inf is NaN in the whole
    product, as in the reference). ``peak``: (n_in,) scratch, each column's
    largest magnitude (one vectorized pass; X is finite, checked before)."""
    m, n_in = X.shape
    for c in range(n_in):
        peak[c] = abs(X[0, c])
    for r in range(1, m):
        for c in range(n_in):
            peak[c] = max(peak[c], abs(X[r, c]))
    k = 0
    for c in range(n_in):
        k += peak[c] != 0
    if k == 0 or 8 * k > 7 * n_in:
        return -1
    j, z = 0, k
    finite = True
    for c in range(n_in):
        if peak[c] != 0:
            cols[j] = c
            j += 1
        else:
            cols[z] = c
            z += 1
            finite = finite and _row_finite(W, c)
    return k if finite else -1


@njit(**_JIT)
def _row_finite(W, c):
    """No NaN or inf in row ``c`` of ``W`` (one vectorized pass: the compare
    is false for NaN, and fastmath here keeps NaN and inf, see FASTMATH)."""
    big = np.finfo(W.dtype).max
    n_bad = 0
    for o in range(W.shape[1]):
        n_bad += not (abs(W[c, o]) <= big)
    return n_bad == 0


@njit(**_JIT)
def _all_finite(A):
    """No NaN or inf in ``A`` (a skipped feature's zero times an infinite dZ
    is NaN in the whole product, as in the reference)."""
    big = np.finfo(A.dtype).max
    n_bad = 0
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            n_bad += not (abs(A[r, c]) <= big)
    return n_bad == 0


@njit(**_JIT)
def _gather_columns(X, W, cols, k, Xc, Wc):
    """``Xc = X[:, cols[:k]]`` and ``Wc = W[cols[:k]]``: the input layer's
    product over the features not zero throughout the batch."""
    n_out = W.shape[1]
    for r in range(X.shape[0]):
        for j in range(k):
            Xc[r, j] = X[r, cols[j]]
    for j in range(k):
        src = cols[j]
        for o in range(n_out):
            Wc[j, o] = W[src, o]


@njit(**_JIT)
def _scatter_rows(dWc, cols, k, dW):
    """``dW[cols[:k]] = dWc`` and the other rows (features zero throughout the
    batch) zero."""
    zero = dW.dtype.type(0)
    n_out = dW.shape[1]
    for j in range(k):
        dst = cols[j]
        for o in range(n_out):
            dW[dst, o] = dWc[j, o]
    for j in range(k, dW.shape[0]):
        dst = cols[j]
        for o in range(n_out):
            dW[dst, o] = zero


# --------------------------------------------------------------------------- #
# The fused multi-step training loop
# --------------------------------------------------------------------------- #
@njit(**_JIT)
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
    slots,
    first_step,
    layout,
    loss,
    kind,
    h,
    scalars,
    decay_spans,
    dropout_thresholds,
    dropout_scales,
    seed,
    losses_out,
    per_layer_update,
    skip_zero_features,
):
    """Same contract as ``fastnn.reference.train_steps``, the plan unpacked.

    ``labels`` is int64 (n,) or empty, ``Y`` is 2-D (n, k) or (0, k) when
    unused; ``scalars`` holds each step's ``contract.step_scalars``;
    ``dropout_scales`` is of the params dtype; ``first_step`` is the state's
    step counter (the caller advances it). ``per_layer_update`` (the wrapper
    decides: the layers tile ``params``, ``decay_spans`` are exactly the weight
    matrices and there is no clipping, which needs the whole gradient)
    updates each layer as soon as its backward GEMMs are done, while its W
    and dW are still in cache, instead of one ``update`` pass at the end.
    ``skip_zero_features`` lets the input layer's products skip the features
    zero throughout a batch (the wrapper decides: where BLAS runs at one
    thread, as the gathers do).
    """
    n = X.shape[0]
    n_layers = layout.shape[0]
    ce = loss == CROSS_ENTROPY
    coupled = kind != K_ADAMW and h[H_WEIGHT_DECAY] != 0.0

    # Scratch, allocated once: activations of every layer (flat, one segment per
    # layer), two gradient tiles (dA/dX and dZ alternate between them: never
    # in place, so the loops vectorize), the gathered batch rows and targets;
    # with dropout, each dropped layer input and its mask.
    a_off = np.empty(n_layers + 1, np.int64)
    d_off = np.zeros(n_layers + 1, np.int64)
    a_off[0] = 0
    widest = 1
    for l in range(n_layers):
        a_off[l + 1] = a_off[l] + batch_size * layout[l, N_OUT]
        widest = max(widest, layout[l, N_OUT])
        d_off[l + 1] = d_off[l]
        if dropout_thresholds[l] > 0:
            d_off[l + 1] += batch_size * layout[l, N_IN]
    acts = np.empty(a_off[n_layers], X.dtype)
    dropped = np.empty(d_off[n_layers], X.dtype)
    keeps = np.empty(d_off[n_layers], np.uint8)
    grad_a = np.empty(batch_size * widest, X.dtype)
    grad_b = np.empty(batch_size * widest, X.dtype)
    n_in0 = X.shape[1]
    Xb_flat = np.empty(batch_size * n_in0, X.dtype)
    # The input layer's zero-feature skip: the features not zero throughout
    # a batch (MNIST's borders: about 37% of its 784 pixels skipped at batch
    # 64, 29% at 256) gathered, with their rows of W, for smaller products;
    # Wc's buffer then takes the gathered dW.
    peak = np.empty(n_in0, X.dtype)
    cols = np.empty(n_in0, np.int64)
    Xc_flat = np.empty(batch_size * n_in0, X.dtype)
    Wc_flat = np.empty(n_in0 * layout[0, N_OUT], X.dtype)
    n_cols = -1
    k_out = layout[n_layers - 1, N_OUT]
    lb_buf = np.empty(batch_size if ce else 0, np.int64)
    Yb_flat = np.empty(0 if ce else batch_size * k_out, X.dtype)
    Yb_flat0 = Yb_flat[:0].reshape(0, k_out)
    empty = params[:0]
    zero = params.dtype.type(0)

    for i in range(step_end - step_begin):
        start = (step_begin + i) * batch_size
        stop = min(n, start + batch_size)
        m = stop - start
        step = first_step + i

        # Gather the batch rows (and their targets) into the scratch.
        Xb = Xb_flat[: m * n_in0].reshape(m, n_in0)
        for r in range(m):
            src = order[start + r]
            for c in range(n_in0):
                Xb[r, c] = X[src, c]
        lb = lb_buf[:m] if ce else lb_buf
        Yb = Yb_flat[: m * k_out].reshape(m, k_out) if not ce else Yb_flat0
        if ce:
            for r in range(m):
                lb[r] = labels[order[start + r]]
        else:
            for r in range(m):
                src = order[start + r]
                for c in range(k_out):
                    Yb[r, c] = Y[src, c]

        # Forward; with cross-entropy the output layer is linear (the softmax
        # is fused into the loss). A dropped layer input goes to its own tile.
        A_prev = Xb
        for l in range(n_layers):
            n_in = layout[l, N_IN]
            n_out = layout[l, N_OUT]
            w_off = layout[l, W_OFF]
            b_off = layout[l, B_OFF]
            act = layout[l, ACT]
            if ce and l == n_layers - 1:
                act = LINEAR
            if dropout_thresholds[l] > 0:
                keep = keeps[d_off[l] : d_off[l] + m * n_in].reshape(m, n_in)
                D = dropped[d_off[l] : d_off[l] + m * n_in].reshape(m, n_in)
                dropout_keep_span(np.uint64(seed), step, l, 0, m, n_in, 0, n_in,
                                  dropout_thresholds[l], keep)  # fmt: skip
                scale = dropout_scales[l]
                for r in range(m):
                    for c in range(n_in):
                        D[r, c] = A_prev[r, c] * scale if keep[r, c] else zero
                A_prev = D
            W = params[w_off : w_off + n_in * n_out].reshape(n_in, n_out)
            b = params[b_off : b_off + n_out] if b_off >= 0 else empty
            A = acts[a_off[l] : a_off[l] + m * n_out].reshape(m, n_out)
            if l == 0 and skip_zero_features:
                n_cols = _nonzero_columns(A_prev, W, peak, cols)
            if l == 0 and n_cols > 0:
                Xc = Xc_flat[: m * n_cols].reshape(m, n_cols)
                Wc = Wc_flat[: n_cols * n_out].reshape(n_cols, n_out)
                _gather_columns(A_prev, W, cols, n_cols, Xc, Wc)
                np.dot(Xc, Wc, A)
            else:
                np.dot(A_prev, W, A)
            bias_activation(A, b, act)
            A_prev = A

        dA = grad_a[: m * k_out].reshape(m, k_out)
        if ce:
            value = softmax_cross_entropy(A_prev, lb, dA)
        else:
            value = mean_squared_error(A_prev, Yb, dA)
        if not math.isfinite(value):
            return i

        # Backward: dZ = dA * f'(A) into the other gradient tile (LINEAR: dZ is
        # dA), then dW = X.T @ dZ and dX = dZ @ W.T into a tile dZ does not use.
        in_a = True  # dA lives in grad_a
        sc = scalars[i]
        sq = 0.0
        for l in range(n_layers - 1, -1, -1):
            n_in = layout[l, N_IN]
            n_out = layout[l, N_OUT]
            w_off = layout[l, W_OFF]
            b_off = layout[l, B_OFF]
            act = layout[l, ACT]
            if ce and l == n_layers - 1:
                act = LINEAR
            A = acts[a_off[l] : a_off[l] + m * n_out].reshape(m, n_out)
            if dropout_thresholds[l] > 0:
                X_in = dropped[d_off[l] : d_off[l] + m * n_in].reshape(m, n_in)
            elif l > 0:
                X_in = acts[a_off[l - 1] : a_off[l - 1] + m * n_in].reshape(m, n_in)
            else:
                X_in = Xb
            db = grads[b_off : b_off + n_out] if b_off >= 0 else empty
            cur = grad_a if in_a else grad_b
            other = grad_b if in_a else grad_a
            if act == LINEAR:
                dZ = dA
                activation_grad(dA, A, act, dZ, db)
                dX_flat = other
                in_a = not in_a
            else:
                dZ = other[: m * n_out].reshape(m, n_out)
                activation_grad(dA, A, act, dZ, db)
                dX_flat = cur
            dW = grads[w_off : w_off + n_in * n_out].reshape(n_in, n_out)
            if l == 0 and n_cols > 0 and _all_finite(dZ):
                # (the forward pass left X[:, cols] in Xc; W's rows are free)
                Xc = Xc_flat[: m * n_cols].reshape(m, n_cols)
                dWc = Wc_flat[: n_cols * n_out].reshape(n_cols, n_out)
                np.dot(Xc.T, dZ, dWc)
                _scatter_rows(dWc, cols, n_cols, dW)
            else:
                np.dot(X_in.T, dZ, dW)  # X_in.T: F layout -> a BLAS transpose flag
            if l > 0:
                W = params[w_off : w_off + n_in * n_out].reshape(n_in, n_out)
                dX = dX_flat[: m * n_in].reshape(m, n_in)
                np.dot(dZ, W.T, dX)
                if dropout_thresholds[l] > 0:
                    keep = keeps[d_off[l] : d_off[l] + m * n_in].reshape(m, n_in)
                    scale = dropout_scales[l]
                    for r in range(m):
                        for c in range(n_in):
                            dX[r, c] = dX[r, c] * scale if keep[r, c] else zero
                dA = dX
            if per_layer_update:  # this layer's W is not read again this step
                w_end = w_off + n_in * n_out
                if coupled:
                    sq += _sum_squares(params[w_off:w_end])
                _step_range(params, grads, slots, w_off, w_end, kind, h, sc, True)
                if b_off >= 0:
                    _step_range(params, grads, slots, b_off, b_off + n_out, kind,
                                h, sc, False)  # fmt: skip

        if not per_layer_update:
            sq = update(params, grads, slots, kind, h, sc, decay_spans)
        losses_out[i] = value + 0.5 * h[H_WEIGHT_DECAY] * sq
    return step_end - step_begin
