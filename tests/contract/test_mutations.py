"""The suite checks itself: deliberately broken training steps must fail the
equivalence comparison the real backends pass (``assert_training_matches``
with the bound of ``support/tolerance.py``), in float32, where the tolerances are
widest.

Each mutant is the reference with one planted bug, standing in for a buggy
compiled kernel: a learning rate 1% too large, weight decay applied to the
biases too, one GEMM operand read transposed (the flat weights read
column-major, the classic wrong BLAS flag), the short last batch of an
epoch dropped while its step is reported done, Adam's bias correction one
step off, and dropout masks drawn under another key. The control: every real
backend passes the same comparison on the same cases.
"""

from __future__ import annotations

import fastnn.reference as ref
import numpy as np
import pytest
from support.backends import load_backend_or_skip
from support.contract import composed, run_train_steps
from support.nets import NETS, SGD_CONFIGS, make_net, training_data
from support.tolerance import assert_training_matches

from fastnn.backends import BACKEND_NAMES
from fastnn.losses import Loss
from fastnn.optimizers import Adam

DTYPE = np.float32


def lr_one_percent_high(plan, data, state, order, s, e, learning_rates, losses):
    return ref.train_steps(plan, data, state, order, s, e, learning_rates * 1.01,
                           losses)  # fmt: skip


def decay_on_biases(plan, *args):
    every = np.array([[0, plan.n_params]], np.int64)  # all of params
    return ref.train_steps(plan.replace(decay_spans=every), *args)


def adam_step_off_by_one(plan, data, state, *args):
    """Adam's bias correction (and the masks) one step ahead."""
    state.step += 1
    try:
        return ref.train_steps(plan, data, state, *args)
    finally:
        state.step -= 1


def masks_of_another_seed(plan, *args):
    return ref.train_steps(plan.replace(seed=plan.seed + 1), *args)


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


def last_short_batch_dropped(plan, data, state, order, s, e, rates, losses):
    n, bs = data.n, plan.batch_size
    last = -(-n // bs)
    if e == last and n % bs:
        done = ref.train_steps(plan, data, state, order, s, e - 1, rates, losses)
        losses[e - 1 - s] = losses[e - 2 - s]  # looks like a step was run
        state.step += 1
        return done + 1
    return ref.train_steps(plan, data, state, order, s, e, rates, losses)


#: Adam at rates that keep runs differing by rounding together (larger
#: steps flip ReLU boundaries; test_equivalence.py says more).
ADAM = {"optimizer": Adam(), "learning_rates": np.linspace(0.01, 0.005, 7)}
#: mutant -> (its training loop, the run that exposes it)
MUTANTS = {
    "lr_x1.01": (lr_one_percent_high, SGD_CONFIGS["momentum_wd"]),
    "decay_on_biases": (decay_on_biases, SGD_CONFIGS["momentum_wd"]),
    "gemm_operand_transposed": (transposed_gemm_operand, SGD_CONFIGS["momentum_wd"]),
    "last_batch_dropped": (last_short_batch_dropped, SGD_CONFIGS["momentum_wd"]),
    "adam_step_off_by_one": (adam_step_off_by_one, ADAM),
    "masks_of_another_seed": (
        masks_of_another_seed,
        {**ADAM, "dropout": [0, 0.3, 0.3]},
    ),
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
    train, kw = MUTANTS[mutant]
    broken = run_train_steps(train, *args, **kw)
    expected = run_train_steps(ref.train_steps, *args, **kw)
    with pytest.raises(AssertionError):
        assert_training_matches(broken, expected, DTYPE, mutant)


@pytest.mark.parametrize("loss", list(Loss), ids=lambda v: v.name.lower())
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_the_real_backends_pass_the_same_comparison(backend, loss):
    kernels = load_backend_or_skip(backend)
    args = _case(loss)
    for _, kw in MUTANTS.values():
        expected = run_train_steps(ref.train_steps, *args, **kw)
        for train in (kernels.train_steps, composed(kernels)):
            got = run_train_steps(train, *args, **kw)
            assert_training_matches(got, expected, DTYPE)


def test_the_mutants_are_not_trivially_broken():
    """Each mutant runs the same number of steps and stays finite: the bugs are
    the silent kind, found only by comparing numbers."""
    args = _case(Loss.CROSS_ENTROPY)
    for name, (train, kw) in MUTANTS.items():
        done, params, velocity, losses = run_train_steps(train, *args, **kw)
        assert done == 7, name
        assert np.isfinite(params).all() and np.isfinite(losses).all(), name
