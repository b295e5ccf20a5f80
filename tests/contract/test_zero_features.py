"""The input layer's zero-feature skip, on every compiled backend: the
features zero throughout a batch (MNIST's borders) may be left out of the
input layer's products, but training must stay the reference's training,
and a non-finite weight on a skipped feature must still give NaN (0 * inf)."""

from __future__ import annotations

import fastnn.reference as ref
import numpy as np
import pytest
from support.contract import run_train_steps
from support.nets import make_net, sparse_inputs
from support.tolerance import SPLIT_ULPS, assert_training_matches

from fastnn.activations import Activation as A


@pytest.mark.parametrize("n_in,batch_size", [(784, 32), (784, 64), (40, 7)])
def test_training_on_inputs_with_zero_features_matches_the_reference(
    compiled_backend, dtype, n_in, batch_size
):
    X, labels, Y, order = sparse_inputs(
        512, n_in, batch_size, seed=n_in + batch_size, dtype=dtype
    )
    params, layout, spans = make_net([n_in, 64, 10], [A.RELU, A.SOFTMAX], dtype)
    args = (X, labels, Y, order, batch_size, params, layout, 0, spans)
    kw = {"step_end": min(6, -(-512 // batch_size))}
    got = run_train_steps(compiled_backend.train_steps, *args, **kw)
    want = run_train_steps(ref.train_steps, *args, **kw)
    assert got[0] == want[0] == kw["step_end"]
    assert_training_matches(got, want, dtype)


@pytest.mark.parametrize("by_columns", [False, True], ids=["rows", "columns"])
@pytest.mark.parametrize("threads", [2, 3])
def test_the_skip_in_the_split_loops_matches_the_reference(
    compiled_backend, dtype, threads, by_columns, monkeypatch
):
    """The split loops' skip, on the threads' own inputs (the input layer
    split by its inputs) or on the whole batch (by its output columns)."""
    monkeypatch.setattr(compiled_backend, "TRAIN_THREADS", threads)
    monkeypatch.setattr(compiled_backend, "SPLIT_INPUT_BY_COLUMNS", by_columns)
    X, labels, Y, order = sparse_inputs(256, 200, 64, seed=threads, dtype=dtype)
    params, layout, spans = make_net([200, 48, 10], [A.RELU, A.SOFTMAX], dtype)
    args = (X, labels, Y, order, 64, params, layout, 0, spans)
    got = run_train_steps(compiled_backend.train_steps, *args, step_end=4)
    want = run_train_steps(ref.train_steps, *args, step_end=4)
    assert compiled_backend.last_split_by_columns() == by_columns
    assert got[0] == want[0] == 4
    assert_training_matches(got, want, dtype, ulps=SPLIT_ULPS)


def test_inf_on_a_skipped_feature_still_gives_nan(compiled_backend, monkeypatch):
    """An inf weight on a feature zero in every sample: the forward product's
    0 * inf is NaN, so training stops at once, as the reference does (the
    cython loop on one thread and split over two)."""
    X, labels, Y, order = sparse_inputs(64, 40, 32, seed=1)
    params, layout, spans = make_net([40, 16, 10], [A.RELU, A.SOFTMAX], np.float32)
    params[0 * 16 + 3] = np.inf  # W0[0, 3]: feature 0 is zero in every sample
    args = (X, labels, Y, order, 32, params, layout, 0, spans)
    kw = {"step_end": 2, "weight_decay": 0.0}  # decay would make the loss inf
    want = run_train_steps(ref.train_steps, *args, **kw)
    assert want[0] == 0
    split = hasattr(compiled_backend, "TRAIN_THREADS")
    paths = [(1, False), (2, False), (2, True)] if split else [(None, None)]
    for threads, by_columns in paths:
        if split:
            monkeypatch.setattr(compiled_backend, "TRAIN_THREADS", threads)
            monkeypatch.setattr(compiled_backend, "SPLIT_INPUT_BY_COLUMNS", by_columns)
        got = run_train_steps(compiled_backend.train_steps, *args, **kw)
        assert got[0] == 0, (threads, by_columns)
        np.testing.assert_array_equal(got[1], want[1])  # params untouched alike
