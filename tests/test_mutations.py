"""The suite checks itself: deliberately broken training steps must fail the
equivalence comparison the real backends pass (``assert_training_matches``
with the bound of ``_tolerance.py``), in float32, where the tolerances are
widest.

Each mutant is the reference with one planted bug, standing in for a buggy
compiled kernel: a learning rate 1% too large, weight decay applied to the
biases too, one GEMM operand read transposed (the flat weights read
column-major, the classic wrong BLAS flag), and the short last batch of an
epoch dropped while its step is reported done. The control: every real
backend passes the same comparison on the same cases.
"""

from __future__ import annotations

import fastnn.reference as ref
import numpy as np
import pytest
from conftest import load_backend_or_skip
from test_equivalence import (
    NETS,
    SGD_CONFIGS,
    assert_training_matches,
    composed,
    make_net,
    run_train_steps,
    training_data,
)

from fastnn.backends import BACKEND_NAMES
from fastnn.losses import Loss

DTYPE = np.float32


def lr_one_percent_high(X, labels, Y, order, bs, s, e, p, g, v, layout, loss,
                        learning_rates, *rest):  # fmt: skip
    return ref.train_steps(X, labels, Y, order, bs, s, e, p, g, v, layout, loss,
                           learning_rates * 1.01, *rest)  # fmt: skip


def decay_on_biases(*args):
    *head, spans, losses = args
    every = np.array([[0, args[7].shape[0]]], np.int64)  # all of params
    return ref.train_steps(*head, every, losses)


class _TransposedForward:
    """The reference's per-layer kernels, but the first layer's weights are
    read as if stored column-major (same shape, wrong elements)."""

    def __getattr__(self, name):
        return getattr(ref, name)

    @staticmethod
    def dense_forward(X, W, b, activation, out):
        if W.shape[0] == NETS[Loss.CROSS_ENTROPY][0][0]:  # the input layer
            W = np.ascontiguousarray(W.reshape(-1).reshape(W.shape[::-1]).T)
        return ref.dense_forward(X, W, b, activation, out)


transposed_gemm_operand = composed(_TransposedForward())


def last_short_batch_dropped(X, labels, Y, order, bs, s, e, *rest):
    n = X.shape[0]
    last = -(-n // bs)
    if e == last and n % bs:
        done = ref.train_steps(X, labels, Y, order, bs, s, e - 1, *rest)
        losses = rest[-1]
        losses[e - 1 - s] = losses[e - 2 - s]  # looks like a step was run
        return done + 1
    return ref.train_steps(X, labels, Y, order, bs, s, e, *rest)


MUTANTS = {
    "lr_x1.01": lr_one_percent_high,
    "decay_on_biases": decay_on_biases,
    "gemm_operand_transposed": transposed_gemm_operand,
    "last_batch_dropped": last_short_batch_dropped,
}


def _case(loss):
    X, labels, Y, order = training_data(DTYPE)  # 50 samples: a last batch of 2
    sizes, acts = NETS[loss]
    params, layout, spans = make_net(sizes, acts, DTYPE, True)
    return (X, labels, Y, order, 8, params, layout, loss, spans)


@pytest.mark.parametrize("loss", list(Loss), ids=lambda v: v.name.lower())
@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_each_planted_bug_is_caught(mutant, loss):
    args = _case(loss)
    kw = SGD_CONFIGS["momentum_wd"]
    broken = run_train_steps(MUTANTS[mutant], *args, **kw)
    expected = run_train_steps(ref.train_steps, *args, **kw)
    with pytest.raises(AssertionError):
        assert_training_matches(broken, expected, DTYPE, mutant)


@pytest.mark.parametrize("loss", list(Loss), ids=lambda v: v.name.lower())
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_the_real_backends_pass_the_same_comparison(backend, loss):
    kernels = load_backend_or_skip(backend)
    args = _case(loss)
    kw = SGD_CONFIGS["momentum_wd"]
    expected = run_train_steps(ref.train_steps, *args, **kw)
    for train in (kernels.train_steps, composed(kernels)):
        assert_training_matches(run_train_steps(train, *args, **kw), expected, DTYPE)


def test_the_mutants_are_not_trivially_broken():
    """Each mutant runs the same number of steps and stays finite: the bugs are
    the silent kind, found only by comparing numbers."""
    args = _case(Loss.CROSS_ENTROPY)
    kw = SGD_CONFIGS["momentum_wd"]
    for name, train in MUTANTS.items():
        done, params, velocity, losses = run_train_steps(train, *args, **kw)
        assert done == 7, name
        assert np.isfinite(params).all() and np.isfinite(losses).all(), name
