"""The numba backend as plain Python (run with ``NUMBA_DISABLE_JIT=1``).

Run by ``kernels/test_numba_specific.py``: the kernels, no longer compiled,
still match the reference (dense layers for every activation, softmax cross-entropy, a
fused ``train_steps`` with Adam and dropout, in float64 and float32). Prints
"pure python ok".
"""

import numpy as np
from numba import config

from fastnn import contract as c
from fastnn import reference as ref
from fastnn._kernels import _numba_kernels as K
from fastnn._kernels import numba_backend as nb
from fastnn.optimizers import Adam

assert config.DISABLE_JIT
assert not hasattr(K.train_steps, "py_func"), "still compiled"
rng = np.random.default_rng(0)
X = rng.standard_normal((5, 4))
W = rng.standard_normal((4, 3))
b = rng.standard_normal(3)
for act in range(5):
    A = nb.dense_forward(X, W, b, act, np.empty((5, 3)))
    A_ref = ref.dense_forward(X, W, b, act, np.empty((5, 3)))
    np.testing.assert_allclose(A, A_ref, rtol=1e-12)
    dA = rng.standard_normal((5, 3))
    out = [np.empty((4, 3)), np.empty(3), np.empty((5, 4))]
    out_ref = [np.empty((4, 3)), np.empty(3), np.empty((5, 4))]
    nb.dense_backward(dA, X, W, A_ref, act, *out)
    ref.dense_backward(dA, X, W, A_ref, act, *out_ref)
    for a, e in zip(out, out_ref, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14)
labels = rng.integers(0, 3, 5)
d, d_ref = np.empty((5, 3)), np.empty((5, 3))
Z = np.ascontiguousarray(X[:, :3])
assert (
    abs(
        nb.softmax_cross_entropy(Z, labels, d)
        - ref.softmax_cross_entropy(Z, labels, d_ref)
    )
    < 1e-12
)
np.testing.assert_allclose(d, d_ref, rtol=1e-12)
layout = np.array([[4, 3, 0, 12, 1], [3, 2, 15, 21, 0]], np.int64)
params = rng.standard_normal(23)
spans = np.array([[0, 12], [15, 21]], np.int64)
opt = Adam(weight_decay=1e-3)
plan = c.TrainingPlan(layout, 23, 0, opt.kind, opt.hyper(), spans, 2, [0.0, 0.5], 3)
data = c.TrainingData(X, labels % 2, None, 0, 2)
results = []
for train in (nb.train_steps, ref.train_steps):
    state = c.TrainingState(params.copy(), np.zeros((2, 23)))
    lo = np.zeros(3)
    done = train(plan, data, state, np.arange(5), 0, 3, np.full(3, 0.01), lo)
    results.append((done, state.params, lo))
assert results[0][0] == results[1][0] == 3
np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10)
np.testing.assert_allclose(results[0][2], results[1][2], rtol=1e-10)
# float32 too: the loops run on BLAS whatever the GEMM policy (the own GEMM
# is called from compiled code only).
results = []
for train in (nb.train_steps, ref.train_steps):
    state = c.TrainingState(params.astype(np.float32), np.zeros((2, 23), np.float32))
    lo = np.zeros(3)
    data = c.TrainingData(X.astype(np.float32), labels % 2, None, 0, 2)
    done = train(plan, data, state, np.arange(5), 0, 3, np.full(3, 0.01), lo)
    results.append((done, state.params, lo))
assert results[0][0] == results[1][0] == 3
np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)
print("pure python ok")
