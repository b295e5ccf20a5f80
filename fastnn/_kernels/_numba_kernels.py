"""Numba kernels of the ``"numba"`` backend; the contract is ``fastnn.reference``.

Design
------
* **GEMMs go to BLAS or to fastnn's own kernels.** A product is
  ``np.dot(a, b, out)``, which numba lowers to one ``?gemm`` call (scipy's
  BLAS) when ``a``, ``b`` and ``out`` have one dtype and a static ``C`` or
  ``F`` layout. Transposes are free: ``X.T`` of a C array is typed ``F`` and
  becomes a BLAS transpose flag, never a copy (an ``A``-layout operand would
  be copied; none is used here). The training loops' products go through
  ``_numba_gemm``'s ``gemm_nn``/``gemm_tn``/``gemm_nt``, which run float32
  products on fastnn's own AVX2 kernels (the cython backend's ``_sgemm.h``,
  called by symbol) when the wrapper passes a work space, BLAS otherwise.
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
* **The step split over threads** (``train_steps_split``): a team of Python
  threads, each on its rows of every W and their columns of the layer
  inputs (or, with ``col0``, on its columns of the input layer), meeting at
  barriers (``_numba_team``); ``train_steps_split``'s docstring says how. Loops
  that index ``c0 + j`` take a slice view of the row first: numba's
  negative-index wrap on an index not known to be positive stays in the
  loop, which LLVM vectorizes as a gather (``_column_sums``).
  ``parallel=True`` is not used: the fused passes are small, memory-bound
  tiles where starting a parallel region per pass costs more than it saves,
  and serial kernels stay re-entrant under ``nogil``.
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
from fastnn._kernels._numba_gemm import gemm_nn, gemm_nt, gemm_tn
from fastnn._kernels._numba_philox import dropout_keep_span
from fastnn._kernels._numba_team import barrier
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
    return _softmax_cross_entropy_rows(Z, labels, dZ_out, Z.shape[0]) / Z.shape[0]


@njit(**_JIT_ORDERED)
def _softmax_cross_entropy_rows(Z, labels, dZ_out, batch):
    """The loss summed over the rows of ``Z`` (float64) and its gradient, of
    the mean over a batch of ``batch`` rows that these are some of (a
    training thread's share)."""
    n, k = Z.shape
    one = Z.dtype.type(1)
    dn = Z.dtype.type(batch)
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
    return total


@njit(**_JIT)
def mean_squared_error(A, Y, dA_out):
    """Same contract as ``fastnn.reference.mean_squared_error`` (float64 sum)."""
    n, k = A.shape
    return _squared_error_rows(A, Y, dA_out, n) / (n * k)


@njit(**_JIT)
def _squared_error_rows(A, Y, dA_out, batch):
    """The squared error summed over the rows of ``A`` (float64) and the
    gradient of its mean over a batch of ``batch`` rows (these are some)."""
    n, k = A.shape
    scale = A.dtype.type(2.0 / (batch * k))
    total = 0.0
    for i in range(n):
        for j in range(k):
            d = A[i, j] - Y[i, j]
            d64 = np.float64(d)
            total += d64 * d64
            dA_out[i, j] = d * scale
    return total


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
    gemm_work,
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
    thread, as the gathers do). ``gemm_work`` (bytes; empty: BLAS) is the
    work space of fastnn's own float32 GEMM, which the products then run on
    (``_numba_gemm``; the wrapper decides: where it beats BLAS and each
    product runs on one thread).
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
                gemm_nn(Xc, Wc, A, gemm_work)
            else:
                gemm_nn(A_prev, W, A, gemm_work)
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
                gemm_tn(Xc, dZ, dWc, gemm_work)
                _scatter_rows(dWc, cols, n_cols, dW)
            else:
                gemm_tn(X_in, dZ, dW, gemm_work)
            if l > 0:
                W = params[w_off : w_off + n_in * n_out].reshape(n_in, n_out)
                dX = dX_flat[: m * n_in].reshape(m, n_in)
                gemm_nt(dZ, W, dX, gemm_work)
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


# --------------------------------------------------------------------------- #
# The training loop split over a team of threads
# --------------------------------------------------------------------------- #
@njit(**_JIT)
def _part(n, t, T):
    """Where thread ``t``'s share of ``n`` (of ``T`` threads) starts."""
    return (n * t) // T


@njit(**_JIT)
def _column_sums(P, t_count, m, n_out, c0, c1, out):
    """``out[r, j] = sum over t of P[t, r, c0 + j]``, in thread order: the
    shares of a layer's product added on this thread's columns."""
    # (each row through a slice view: an index like ``c0 + j``, not known to
    # be positive, keeps numba's negative-index wrap in the loop, which LLVM
    # then vectorizes as a gather: the batch's gather this way was 13% of
    # the 100-256-5 split step's samples)
    for r in range(m):
        src = P[0, r, c0:c1]
        for j in range(c1 - c0):
            out[r, j] = src[j]
    for t in range(1, t_count):
        for r in range(m):
            src = P[t, r, c0:c1]
            for j in range(c1 - c0):
                out[r, j] = out[r, j] + src[j]


@njit(**_JIT)
def _row_sums(P, t_count, q0, q1, out):
    """``out[r] = sum over t of P[t, q0 + r]`` (whole rows), in thread order."""
    for r in range(q1 - q0):
        src = P[0, q0 + r]
        for j in range(P.shape[2]):
            out[r, j] = src[j]
    for t in range(1, t_count):
        for r in range(q1 - q0):
            src = P[t, q0 + r]
            for j in range(P.shape[2]):
                out[r, j] = out[r, j] + src[j]


@njit(**_JIT)
def _bias_column_sums(dZ, c0, c1, db):
    """``db[j] = dZ[:, c0 + j].sum()``, row after row (the output layer's db on
    this thread's columns)."""
    zero = dZ.dtype.type(0)
    for j in range(c1 - c0):
        db[j] = zero
    for r in range(dZ.shape[0]):
        src = dZ[r, c0:c1]  # (a view: see _column_sums)
        for j in range(c1 - c0):
            db[j] = db[j] + src[j]


@njit(**_JIT)
def train_steps_split(
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
    dropout_thresholds,
    dropout_scales,
    seed,
    losses_out,
    skip_zero_features,
    col0,
    tid,
    T,
    sync,
    shares,
    dZ_all,
    keep_all,
    parts,
    Wp,
    Gp,
    Sp,
    gemm_work,
):
    """``train_steps`` split over ``T`` threads, this one ``tid`` (the wrapper
    starts them; each calls this with the same arguments).

    The cython backend's split (``_train.pyx``), in numba: thread t owns rows
    ``i0 .. i1`` (``_part``) of every W, a contiguous range of ``params``,
    and the matching columns of the layer inputs; W never leaves its core.
    Per step:

    * forward, layer by layer: its input columns times its rows of W, a share
      of the product (into ``shares[l][t]``) | barrier | its columns of the
      output: the shares added in thread order, the bias, the activation, the
      next layer's dropout; they are the next layer's input columns, kept in
      this thread's own block (no copy). The output layer's shares are added
      by rows instead (the softmax needs whole rows): its rows of the logits,
      the loss and dZ into the shared ``dZ_all`` | barrier; the loss parts
      are added in thread order, and every thread stops alike on a
      non-finite loss, before any update.
    * backward, last layer first, the whole dZ of the layer shared: its rows
      of dW (its input columns' transpose times dZ) and its input columns of
      dX (dZ times its rows of W, before they change), then the update of its
      rows of W and columns of b while they are in cache; dX's dropout and
      the activation's derivative on its columns give the layer below its
      columns of dZ (and of db), copied into the shared dZ | barrier.

    dW and dX entries are the same dot products as one thread's (the split
    never cuts their sum); the forward products are summed in T shares and
    db row after row, so results agree with one thread to rounding, and are
    the same from run to run for one T. With clipping the updates wait for
    the whole gradient's norm (its squares' parts added in thread order |
    barrier). Needs the decay on the weights only and no hidden softmax (the
    wrapper sees to it).

    ``col0``: the input layer is split by its output columns instead (each
    thread the whole batch times its columns of W, then their bias and
    activation; its dW columns from its dZ columns), which are the rows of
    the next layer's W it owns: that layer's product needs no sum of shares
    and its dZ never leaves the thread, two barriers a step fewer. Each thread
    reads the whole batch: it pays where the input is narrow next to the
    layer's output (make_classification's 100-256-5). Its columns of W, dW
    and the optimizer's slots are private contiguous blocks ``Wp``, ``Gp``,
    ``Sp`` for the call (``private_columns`` copies them in and back): its
    products and update run on whole contiguous arrays (on strided columns
    of ``params`` the update, one call per row, took 17-19% of each thread's
    step on 100-256-5 by the cycle counter). Not with dropout on the input,
    nor on one layer (the wrapper sees to it).

    ``gemm_work``: this thread's work space for fastnn's own float32 GEMM
    (empty: BLAS), as in ``train_steps``.
    """
    n = X.shape[0]
    n_layers = layout.shape[0]
    ce = loss == CROSS_ENTROPY
    coupled = kind != K_ADAMW and h[H_WEIGHT_DECAY] != 0.0
    clip = h[H_CLIPNORM] > 0.0  # the update waits for the whole gradient
    rows = min(batch_size, n)  # the largest batch (the wrapper's buffers)
    k_out = layout[n_layers - 1, N_OUT]
    zero = params.dtype.type(0)
    empty = params[:0]

    # Offsets of each layer's shares, dZ, masks and of this thread's blocks.
    s_off = np.zeros(n_layers + 1, np.int64)
    z_off = np.zeros(n_layers + 1, np.int64)
    k_off = np.zeros(n_layers + 1, np.int64)
    b_off_ = np.zeros(n_layers + 1, np.int64)  # this thread's output blocks
    d_off = np.zeros(n_layers + 1, np.int64)  # its dropped input blocks
    widest = 1
    for l in range(n_layers):
        n_in = layout[l, N_IN]
        n_out = layout[l, N_OUT]
        s_off[l + 1] = s_off[l] + T * rows * n_out
        z_off[l + 1] = z_off[l] + rows * n_out
        k_off[l + 1] = k_off[l] + (rows * n_in if dropout_thresholds[l] > 0 else 0)
        share_out = _part(n_out, tid + 1, T) - _part(n_out, tid, T)
        share_in = _part(n_in, tid + 1, T) - _part(n_in, tid, T)
        b_off_[l + 1] = b_off_[l] + rows * share_out
        d_off[l + 1] = d_off[l] + (rows * share_in if dropout_thresholds[l] > 0 else 0)
        widest = max(widest, share_in, share_out)
    blocks = np.empty(b_off_[n_layers], X.dtype)
    dropped = np.empty(d_off[n_layers], X.dtype)
    n_in0 = layout[0, N_IN]
    n_out0 = layout[0, N_OUT]
    x0 = _part(n_in0, tid, T)
    share0 = _part(n_in0, tid + 1, T) - x0
    w_cols = n_out0  # the input layer's W: this thread's rows, or columns
    if col0:
        x0, share0 = 0, n_in0
        w_cols = _part(n_out0, tid + 1, T) - _part(n_out0, tid, T)
    Xb_flat = np.empty(rows * share0, X.dtype)
    tile_a = np.empty(rows * widest, X.dtype)
    tile_b = np.empty(rows * widest, X.dtype)
    dZ0_flat = tile_b  # col0: the input layer's dZ columns (tile_a or tile_b)
    q_rows = -(-rows // T)  # the most loss rows a thread takes
    Zq_flat = np.empty(q_rows * k_out, X.dtype)
    dAq_flat = np.empty(q_rows * k_out, X.dtype)
    lb_buf = np.empty(q_rows if ce else 0, np.int64)
    Yq_flat = np.empty(0 if ce else q_rows * k_out, X.dtype)
    # The input layer's zero-feature skip, on this thread's input columns.
    peak = np.empty(share0, X.dtype)
    cols = np.empty(share0, np.int64)
    Xc_flat = np.empty(rows * share0, X.dtype)
    Wc_flat = np.empty(share0 * w_cols, X.dtype)
    n_cols = -1

    # With col0 the input layer's W, dW and slots of this thread, flat.
    Wv = Wp.ravel()
    Gv = Gp.ravel()
    Sv = Sp.reshape(Sp.shape[0], Wv.shape[0])

    for i in range(step_end - step_begin):
        start = (step_begin + i) * batch_size
        m = min(n, start + batch_size) - start
        q0 = _part(m, tid, T)
        q1 = _part(m, tid + 1, T)
        step = first_step + i
        sc = scalars[i]

        # Gather this thread's input columns of the batch rows, and the
        # targets of its loss rows.
        Xb = Xb_flat[: m * share0].reshape(m, share0)
        for r in range(m):
            x_row = X[order[start + r], x0 : x0 + share0]  # (see _column_sums)
            for j in range(share0):
                Xb[r, j] = x_row[j]
        if ce:
            for r in range(q1 - q0):
                lb_buf[r] = labels[order[start + q0 + r]]
        else:
            Yq = Yq_flat[: (q1 - q0) * k_out].reshape(q1 - q0, k_out)
            for r in range(q1 - q0):
                src = order[start + q0 + r]
                for c in range(k_out):
                    Yq[r, c] = Y[src, c]

        # Forward.
        X_in = Xb
        value = 0.0
        for l in range(n_layers):
            n_in = layout[l, N_IN]
            n_out = layout[l, N_OUT]
            w_off = layout[l, W_OFF]
            b_off = layout[l, B_OFF]
            act = layout[l, ACT]
            last = l == n_layers - 1
            if ce and last:
                act = LINEAR
            by_cols = l == 0 and col0
            c0 = _part(n_out, tid, T)
            c1 = _part(n_out, tid + 1, T)
            i0 = _part(n_in, tid, T)
            i1 = _part(n_in, tid + 1, T)
            if dropout_thresholds[l] > 0:  # (never with by_cols)
                keep = keep_all[k_off[l] : k_off[l] + m * n_in].reshape(m, n_in)
                dropout_keep_span(np.uint64(seed), step, l, 0, m, n_in, i0, i1,
                                  dropout_thresholds[l], keep)  # fmt: skip
                D = dropped[d_off[l] : d_off[l] + m * (i1 - i0)].reshape(m, i1 - i0)
                scale = dropout_scales[l]
                for r in range(m):
                    kept = keep[r, i0:i1]  # (see _column_sums)
                    for j in range(i1 - i0):
                        D[r, j] = X_in[r, j] * scale if kept[j] else zero
                X_in = D
            P = shares[s_off[l] : s_off[l] + T * m * n_out].reshape(T, m, n_out)
            if by_cols:
                # The whole batch times this thread's columns of W: its
                # columns of the output, whole sums, no barrier.
                W_in = Wp
                out = blocks[b_off_[0] : b_off_[0] + m * (c1 - c0)].reshape(m, c1 - c0)
                has_inputs = c1 > c0
            else:  # its input columns times its rows of W: its share
                W_in = params[w_off + i0 * n_out : w_off + i1 * n_out].reshape(
                    i1 - i0, n_out
                )
                out = P[tid]
                has_inputs = i1 > i0
            if l == 0:
                n_cols = -1
                if skip_zero_features and has_inputs:
                    n_cols = _nonzero_columns(X_in, W_in, peak, cols)
            if l == 0 and n_cols > 0:
                w = W_in.shape[1]
                Xc = Xc_flat[: m * n_cols].reshape(m, n_cols)
                Wc = Wc_flat[: n_cols * w].reshape(n_cols, w)
                _gather_columns(X_in, W_in, cols, n_cols, Xc, Wc)
                gemm_nn(Xc, Wc, out, gemm_work)
            elif has_inputs:
                gemm_nn(X_in, W_in, out, gemm_work)
            else:  # no inputs here: an empty sum
                out[:, :] = zero
            if not by_cols and barrier(sync, T) < 0:
                return i
            if not last:
                A = blocks[b_off_[l] : b_off_[l] + m * (c1 - c0)].reshape(m, c1 - c0)
                if not by_cols:
                    _column_sums(P, T, m, n_out, c0, c1, A)
                b = params[b_off + c0 : b_off + c1] if b_off >= 0 else empty
                bias_activation(A, b, act)
                X_in = A
            else:
                # This thread's rows of the output, the loss and its dZ.
                Zq = Zq_flat[: (q1 - q0) * n_out].reshape(q1 - q0, n_out)
                _row_sums(P, T, q0, q1, Zq)
                b = params[b_off : b_off + n_out] if b_off >= 0 else empty
                bias_activation(Zq, b, act)
                dZ = dZ_all[z_off[l] : z_off[l] + m * n_out].reshape(m, n_out)
                dZq = dZ[q0:q1]
                if ce:
                    value = _softmax_cross_entropy_rows(Zq, lb_buf[: q1 - q0],
                                                        dZq, m)  # fmt: skip
                elif act == LINEAR:
                    value = _squared_error_rows(Zq, Yq, dZq, m)
                else:
                    dAq = dAq_flat[: (q1 - q0) * n_out].reshape(q1 - q0, n_out)
                    value = _squared_error_rows(Zq, Yq, dAq, m)
                    activation_grad(dAq, Zq, act, dZq, empty)  # db: by columns, below
        parts[tid, 0] = value
        if barrier(sync, T) < 0:
            return i
        value = 0.0
        for t in range(T):  # in thread order: the same sum in every thread
            value += parts[t, 0]
        value = value / (m if ce else m * k_out)
        if not math.isfinite(value):
            return i

        # Backward, last layer first; each thread's rows of W updated as soon
        # as its gradient is done.
        sq = 0.0
        for l in range(n_layers - 1, -1, -1):
            n_in = layout[l, N_IN]
            n_out = layout[l, N_OUT]
            w_off = layout[l, W_OFF]
            b_off = layout[l, B_OFF]
            i0 = _part(n_in, tid, T)
            i1 = _part(n_in, tid + 1, T)
            c0 = _part(n_out, tid, T)
            c1 = _part(n_out, tid + 1, T)
            if l == 0 and col0:
                # dW's columns c0 .. c1: the batch's transpose times this
                # thread's dZ columns (kept from the layer above).
                if c1 > c0:
                    dZo = dZ0_flat[: m * (c1 - c0)].reshape(m, c1 - c0)
                    if n_cols > 0 and _all_finite(dZo):
                        Xc = Xc_flat[: m * n_cols].reshape(m, n_cols)
                        dWc = Wc_flat[: n_cols * (c1 - c0)].reshape(n_cols, c1 - c0)
                        gemm_tn(Xc, dZo, dWc, gemm_work)
                        _scatter_rows(dWc, cols, n_cols, Gp)
                    else:
                        gemm_tn(Xb, dZo, Gp, gemm_work)
            else:
                dZ = dZ_all[z_off[l] : z_off[l] + m * n_out].reshape(m, n_out)
                if l == n_layers - 1 and b_off >= 0:
                    _bias_column_sums(dZ, c0, c1, grads[b_off + c0 : b_off + c1])
                if l == 0:
                    X_in = Xb
                else:  # the layer below's output columns i0 .. i1, this thread's
                    lp = l - 1
                    X_in = blocks[b_off_[lp] : b_off_[lp] + m * (i1 - i0)].reshape(
                        m, i1 - i0
                    )
                if dropout_thresholds[l] > 0:
                    X_in = dropped[d_off[l] : d_off[l] + m * (i1 - i0)].reshape(
                        m, i1 - i0
                    )
                W_rows = params[w_off + i0 * n_out : w_off + i1 * n_out].reshape(
                    i1 - i0, n_out
                )
                dW = grads[w_off + i0 * n_out : w_off + i1 * n_out].reshape(
                    i1 - i0, n_out
                )
                if l > 0 and i1 > i0:  # dX on its input columns, with the old W
                    dX = tile_a[: m * (i1 - i0)].reshape(m, i1 - i0)
                    gemm_nt(dZ, W_rows, dX, gemm_work)
                if l == 0 and n_cols > 0 and _all_finite(dZ):
                    Xc = Xc_flat[: m * n_cols].reshape(m, n_cols)
                    dWc = Wc_flat[: n_cols * n_out].reshape(n_cols, n_out)
                    gemm_tn(Xc, dZ, dWc, gemm_work)
                    _scatter_rows(dWc, cols, n_cols, dW)
                elif i1 > i0:
                    gemm_tn(X_in, dZ, dW, gemm_work)
            if not clip:  # its share of W and columns of b, while in cache
                Pw, Gw, Sw, w_lo, w_hi, b_lo, b_hi = _share(
                    params, grads, slots, Wv, Gv, Sv, layout, l, tid, T, col0
                )
                sq += _update_share(Pw, Gw, Sw, w_lo, w_hi, params, grads, slots,
                                    b_lo, b_hi, kind, h, sc, coupled)  # fmt: skip
            if l == 0:
                break
            # The layer below: its dZ (and db) on this thread's columns.
            lp = l - 1
            if i1 > i0:
                dX = tile_a[: m * (i1 - i0)].reshape(m, i1 - i0)
                if dropout_thresholds[l] > 0:
                    keep = keep_all[k_off[l] : k_off[l] + m * n_in].reshape(m, n_in)
                    scale = dropout_scales[l]
                    for r in range(m):
                        kept = keep[r, i0:i1]  # (see _column_sums)
                        for j in range(i1 - i0):
                            dX[r, j] = dX[r, j] * scale if kept[j] else zero
                A = blocks[b_off_[lp] : b_off_[lp] + m * (i1 - i0)].reshape(m, i1 - i0)
                bp = layout[lp, B_OFF]
                db = grads[bp + i0 : bp + i1] if bp >= 0 else empty
                act = layout[lp, ACT]
                dZb = dX
                if act != LINEAR:
                    dZb = tile_b[: m * (i1 - i0)].reshape(m, i1 - i0)
                activation_grad(dX, A, act, dZb, db)
                if lp == 0 and col0:  # stays with this thread: no barrier
                    dZ0_flat = tile_a if act == LINEAR else tile_b
                    continue
                dZp = dZ_all[z_off[lp] : z_off[lp] + m * n_in].reshape(m, n_in)
                for r in range(m):
                    dst = dZp[r, i0:i1]  # (see _column_sums)
                    for j in range(i1 - i0):
                        dst[j] = dZb[r, j]
            elif lp == 0 and col0:
                continue
            if barrier(sync, T) < 0:
                return i
        if clip:
            # clip_grad_norm_ over the whole gradient: its squares' parts
            # added in thread order, then each thread's share scaled alike.
            gsq = 0.0
            for l in range(n_layers):
                Pw, Gw, Sw, w_lo, w_hi, b_lo, b_hi = _share(
                    params, grads, slots, Wv, Gv, Sv, layout, l, tid, T, col0
                )
                gsq += _sum_squares(Gw[w_lo:w_hi]) + _sum_squares(grads[b_lo:b_hi])
            parts[tid, 2] = gsq
            if barrier(sync, T) < 0:
                return i
            gsq = 0.0
            for t in range(T):
                gsq += parts[t, 2]
            coef = h[H_CLIPNORM] / (math.sqrt(gsq) + 1e-6)
            c = grads.dtype.type(coef)
            for l in range(n_layers):
                Pw, Gw, Sw, w_lo, w_hi, b_lo, b_hi = _share(
                    params, grads, slots, Wv, Gv, Sv, layout, l, tid, T, col0
                )
                if coef < 1.0:
                    for t in range(w_lo, w_hi):
                        Gw[t] = Gw[t] * c
                    for t in range(b_lo, b_hi):
                        grads[t] = grads[t] * c
                sq += _update_share(Pw, Gw, Sw, w_lo, w_hi, params, grads, slots,
                                    b_lo, b_hi, kind, h, sc, coupled)  # fmt: skip
        if coupled:
            parts[tid, 1] = sq
            if barrier(sync, T) < 0:
                return i
            sq = 0.0
            for t in range(T):
                sq += parts[t, 1]
        if tid == 0:
            losses_out[i] = value + 0.5 * h[H_WEIGHT_DECAY] * sq
    return step_end - step_begin


@njit(**_JIT)
def _own_ranges(layout, l, tid, T):
    """This thread's ranges of ``params`` in layer ``l``: its rows of W and its
    columns of b (``b_lo == b_hi`` without a bias)."""
    n_in = layout[l, N_IN]
    n_out = layout[l, N_OUT]
    w_off = layout[l, W_OFF]
    b_off = layout[l, B_OFF]
    w_lo = w_off + _part(n_in, tid, T) * n_out
    w_hi = w_off + _part(n_in, tid + 1, T) * n_out
    b_lo = b_hi = 0
    if b_off >= 0:
        b_lo = b_off + _part(n_out, tid, T)
        b_hi = b_off + _part(n_out, tid + 1, T)
    return w_lo, w_hi, b_lo, b_hi


@njit(**_JIT)
def _share(params, grads, slots, Wv, Gv, Sv, layout, l, tid, T, col0):
    """This thread's share of layer ``l`` as ``(P, G, S, w_lo, w_hi, b_lo,
    b_hi)``: its W is ``P[w_lo:w_hi]`` (gradient ``G``, slots ``S``), its
    rows of the layer's W in ``params``, or with ``col0`` and ``l == 0`` its
    private columns ``Wv``; its columns of b are ``params[b_lo:b_hi]``."""
    w_lo, w_hi, b_lo, b_hi = _own_ranges(layout, l, tid, T)
    if l == 0 and col0:
        return Wv, Gv, Sv, 0, Wv.shape[0], b_lo, b_hi
    return params, grads, slots, w_lo, w_hi, b_lo, b_hi


@njit(**_JIT_EXACT)
def _update_share(P, G, S, w_lo, w_hi, params, grads, slots, b_lo, b_hi, kind, h,
                  sc, coupled):  # fmt: skip
    """The update of a thread's share (``_share``): W with the decay, then b;
    returns the coupled L2 term's sum of squares of its W. One call of
    ``_step_range`` for both, in a loop: each call site inlines every
    optimizer, and the split loop's compilation grew by 4 s with more."""
    sq = 0.0
    if coupled:
        sq = _sum_squares(P[w_lo:w_hi])
    for part in range(2):
        if part == 0:
            p, g, s, lo, hi = P, G, S, w_lo, w_hi
        else:
            p, g, s, lo, hi = params, grads, slots, b_lo, b_hi
        if hi > lo:
            _step_range(p, g, s, lo, hi, kind, h, sc, part == 0)
    return sq


@njit(**_JIT)
def _column_block(flat, w_off, n_in, n_out, c0, c1, block, store):
    """Columns ``c0 .. c1`` of the (n_in, n_out) matrix at ``flat[w_off]``
    copied into the contiguous ``block`` (n_in, c1 - c0), or back (``store``)."""
    W = flat[w_off : w_off + n_in * n_out].reshape(n_in, n_out)
    for r in range(n_in):
        row = W[r, c0:c1]  # (a view: see _column_sums)
        if store:
            for j in range(c1 - c0):
                row[j] = block[r, j]
        else:
            for j in range(c1 - c0):
                block[r, j] = row[j]


@njit(**_JIT)
def private_columns(params, grads, slots, layout, tid, T, Wp, Gp, Sp, store):
    """Thread ``tid``'s columns of the input layer's W, gradient and optimizer
    slots copied into its private contiguous blocks (``train_steps_split``'s
    ``col0``), or back (``store``). (The wrapper calls it before and after the
    loop: the loop wrapped in a second compiled function to do it took the
    first fit's compilation from 14 to 24 s.)"""
    n_in = layout[0, N_IN]
    n_out = layout[0, N_OUT]
    w_off = layout[0, W_OFF]
    c0 = _part(n_out, tid, T)
    c1 = _part(n_out, tid + 1, T)
    _column_block(params, w_off, n_in, n_out, c0, c1, Wp, store)
    _column_block(grads, w_off, n_in, n_out, c0, c1, Gp, store)
    for k in range(slots.shape[0]):
        _column_block(slots[k], w_off, n_in, n_out, c0, c1, Sp[k], store)
