"""Model API: reproducibility, learning in the model's dtype, weights in
Keras's order, and divergence (the last finite weights kept). (Saving,
loading, checkpoints and resuming: persistence/; backend selection:
test_backend_selection.py; callbacks: test_callbacks.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from support.models import make_model, small_data

import fastnn


@pytest.fixture
def data():
    return small_data()


def test_same_seed_bit_identical_and_other_seed_differs(backend_name, dtype, data):
    x, y = data
    runs = []
    for seed in (7, 7, 8):
        model = make_model(backend_name, dtype, seed)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        runs.append(np.concatenate([w.ravel() for w in model.get_weights()]))
    assert runs[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_training_learns_and_keeps_dtype(backend_name, dtype, data):
    x, y = data
    model = make_model(backend_name, dtype)
    before = model.evaluate(x, y)
    history = model.fit(
        x, y, epochs=20, batch_size=16, verbose=0, validation_data=(x[:50], y[:50])
    )
    after = model.evaluate(x, y)
    assert after["loss"] < before["loss"] / 2
    assert after["accuracy"] > 0.9
    assert len(history.history["val_accuracy"]) == 20
    assert model.predict(x).dtype == np.dtype(dtype)
    assert all(w.dtype == np.dtype(dtype) for w in model.get_weights())


def test_get_set_weights_keras_order(data):
    model = make_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(5, 16), (16,), (16, 8), (8, 3), (3,)]
    new = [np.full_like(w, 0.01 * i) for i, w in enumerate(weights)]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new, strict=True):
        np.testing.assert_array_equal(got, want)
    weights[0][...] = 99  # get_weights returns copies
    assert model.get_weights()[0][0, 0] == 0
    with pytest.raises(ValueError, match=r"weights\[1\]: expected shape \(16,\)"):
        model.set_weights([new[0], np.zeros(3)] + new[2:])
    with pytest.raises(ValueError, match="weights: expected a list of 5"):
        model.set_weights(new[:2])
    with pytest.raises(ValueError, match=r"weights\[0\].*finite"):
        model.set_weights([np.full((5, 16), np.nan)] + new[1:])
    np.testing.assert_array_equal(model.get_weights()[0], new[0])  # nothing written


def _diverging_model(backend):
    # Linear regression with a far too large step: the weights grow
    # geometrically until the loss overflows.
    return fastnn.Sequential(
        [fastnn.Dense(3, activation="linear")],
        input_dim=5,
        loss="mse",
        optimizer=fastnn.SGD(50.0),
        backend=backend,
        seed=0,
    )


def test_divergence_keeps_last_finite_weights(backend_name, data):
    x, y = data
    model = _diverging_model(backend_name)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(x, y, epochs=50, batch_size=8, verbose=0)
    assert model.weights_are_finite()
    model2 = _diverging_model(backend_name)
    model2.fit(
        x, y, epochs=50, batch_size=8, verbose=0, callbacks=[fastnn.TerminateOnNaN()]
    )
    assert model2.weights_are_finite() and model2.stop_training
    assert model2.epoch < 50


def _nan_learning_rate_at(model, bad_step):
    """Inject a NaN into training: the learning rate of global step
    ``bad_step`` is NaN, so that step's update makes the weights NaN."""
    rates = model.optimizer.learning_rates

    def with_nan(first_step, n_steps):
        lr = np.array(rates(first_step, n_steps), dtype=np.float64)
        lr[np.arange(first_step, first_step + n_steps) == bad_step] = np.nan
        return lr

    model.optimizer.learning_rates = with_nan


def test_injected_nan_stops_training_keeping_finite_weights(
    backend_name, data, tmp_path
):
    x, y = data  # 200 samples at batch 8: 25 steps, one chunk, per epoch
    after_one_epoch = make_model(backend_name)
    after_one_epoch.fit(x, y, epochs=1, batch_size=8, verbose=0)

    model = make_model(backend_name)
    _nan_learning_rate_at(model, 25 + 4)  # the 5th step of epoch 2
    with pytest.raises(FloatingPointError, match="diverged at epoch 2, step 6"):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    # The weights are the last finite ones (the start of the chunk).
    assert model.weights_are_finite() and model.epoch == 1 and model.step == 25
    np.testing.assert_array_equal(model.params, after_one_epoch.params)

    model = make_model(backend_name)
    _nan_learning_rate_at(model, 25 + 4)
    pattern = str(tmp_path / "ckpt-{epoch:02d}.npz")
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        verbose=0,
        callbacks=[fastnn.TerminateOnNaN(), fastnn.ModelCheckpoint(pattern)],
    )
    assert model.stop_training and model.epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-01.npz"]
    saved = fastnn.load(tmp_path / "ckpt-01.npz", backend=backend_name)
    np.testing.assert_array_equal(saved.params, after_one_epoch.params)
