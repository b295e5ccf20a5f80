"""Callbacks and initialisation: the behaviours users rely on that no other
test pins down (EarlyStopping's options and its best weights, the order of the
hooks, ``seed=None``, initialiser ranges). (ModelCheckpoint:
persistence/test_checkpoints.py; ReduceLROnPlateau: test_schedules.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.callbacks import Scripted
from support.models import make_model, small_data

import fastnn


def _model(seed=0, **kw):
    return fastnn.Sequential(
        [fastnn.Dense(8, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=5,
        backend="numpy",
        seed=seed,
        **kw,
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    return x, rng.integers(0, 3, 64)


def _epochs_run(data, values, **early):
    x, y = data
    model = _model()
    stop = fastnn.EarlyStopping(**early)
    history = model.fit(
        x, y, epochs=len(values), batch_size=16, verbose=0,
        callbacks=[Scripted(early.get("monitor", "val_loss"), values), stop],
    )  # fmt: skip
    return len(history.epoch), stop


@pytest.mark.parametrize(
    "values,early,epochs",
    [
        # patience=0: the first epoch without improvement stops
        ([1.0, 0.9, 0.95, 0.5, 0.4], {"patience": 0}, 3),
        # patience=2: two epochs without improvement in a row stop
        ([1.0, 0.9, 0.95, 0.92, 0.5], {"patience": 2}, 4),
        ([1.0, 0.9, 0.95, 0.8, 0.85, 0.7], {"patience": 2}, 6),
        # min_delta: improvements of less than 0.05 do not count
        ([1.0, 0.97, 0.93, 0.5], {"patience": 1, "min_delta": 0.05}, 2),
        ([1.0, 0.94, 0.88, 0.5], {"patience": 1, "min_delta": 0.05}, 4),
        # mode: "max" for a loss is obeyed; "auto" on an accuracy is max
        ([1.0, 0.9, 0.8], {"patience": 0, "mode": "max"}, 2),
        ([0.5, 0.6, 0.55, 0.7], {"patience": 0, "monitor": "val_accuracy"}, 3),
        ([0.5, 0.4, 0.6], {"patience": 0, "monitor": "val_accuracy"}, 2),
    ],
)
def test_early_stopping(data, values, early, epochs):
    ran, stop = _epochs_run(data, values, **early)
    assert ran == epochs
    assert (stop.stopped_epoch is not None) == (epochs < len(values))


def test_early_stopping_refuses_bad_options():
    with pytest.raises(ValueError, match="^patience: expected an int >= 0"):
        fastnn.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="^mode: expected 'auto', 'min' or 'max'"):
        fastnn.EarlyStopping(mode="up")


def test_early_stopping_restores_best_weights():
    x, y = small_data()  # make_model's data

    class Scripted(fastnn.Callback):
        values = [1.0, 0.5, 0.7, 0.8, 0.9, 0.95]

        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = self.values[epoch]
            if epoch == 1:
                self.best = self.model.get_weights()

    scripted = Scripted()
    stop = fastnn.EarlyStopping(
        monitor="val_loss", patience=2, restore_best_weights=True
    )
    model = make_model()
    history = model.fit(
        x, y, epochs=6, batch_size=32, verbose=0, callbacks=[scripted, stop]
    )
    assert len(history.epoch) == 4  # best at epoch 1, then 3 worse epochs > patience
    for got, best in zip(model.get_weights(), scripted.best, strict=True):
        np.testing.assert_array_equal(got, best)


def test_callback_hooks_run_in_order(data):
    x, y = data
    calls = []

    class Recorder(fastnn.Callback):
        def on_train_begin(self, logs=None):
            calls.append(("train_begin", logs["epochs"], logs["steps"]))

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(("epoch_begin", epoch))

        def on_batch_end(self, step, logs=None):
            calls.append(("batch_end", step, logs["steps"]))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            calls.append(("train_end",))

    recorder = Recorder()
    _model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[recorder])
    keys = sorted(["loss", "seconds", "samples_per_second", "learning_rate"])
    # 64 samples at batch 16: 4 steps, one chunk (CHUNK_STEPS = 64) an epoch.
    assert calls == [
        ("train_begin", 2, 4),
        ("epoch_begin", 0),
        ("batch_end", 3, 4),
        ("epoch_end", 0, keys),
        ("epoch_begin", 1),
        ("batch_end", 3, 4),
        ("epoch_end", 1, keys),
        ("train_end",),
    ]
    assert recorder.model is not None


def test_seed_none_draws_a_seed_and_records_it(data):
    x, y = data
    a, b = _model(seed=None), _model(seed=None)
    assert isinstance(a.seed, int) and a.seed != b.seed
    assert not np.array_equal(a.params, b.params)
    # The recorded seed reproduces the model exactly.
    again = _model(seed=a.seed)
    np.testing.assert_array_equal(again.params, a.params)
    a.fit(x, y, epochs=1, batch_size=16, verbose=0)
    again.fit(x, y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(again.params, a.params)


@pytest.mark.parametrize(
    "name,limit",
    [
        ("glorot_uniform", lambda n_in, n_out: math.sqrt(6 / (n_in + n_out))),
        ("he_uniform", lambda n_in, n_out: math.sqrt(6 / n_in)),
        ("uniform", lambda n_in, n_out: 0.1),
    ],
)
def test_initialisers_fill_their_range(name, limit):
    """U(-limit, limit): nothing outside, the edges reached, mean and variance
    of a uniform (limit^2 / 3), biases zero."""
    n_in, n_out = 300, 200
    model = fastnn.Sequential(
        [fastnn.Dense(n_out, kernel_initializer=name)],
        input_dim=n_in,
        loss="mse",
        seed=3,
    )
    W, b = model.get_weights()
    lim = limit(n_in, n_out)
    assert np.abs(W).max() <= lim
    assert np.abs(W).max() > 0.999 * lim
    assert abs(W.mean()) < 0.01 * lim
    assert W.var() == pytest.approx(lim**2 / 3, rel=0.02)
    assert not b.any()
