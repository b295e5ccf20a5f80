"""``fit(resume=checkpoint)``: a resumed run ends as the uninterrupted one, bit
for bit (history, optimizer slots, ReduceLROnPlateau's counters included); a
checkpoint of another model, dtype, loss or optimizer is refused, the
learning rate may change. (Resuming after SIGKILL: reliability/test_interrupt.py;
from the command line: cli/; on a cluster: distributed_training/.)"""

from __future__ import annotations

import numpy as np
import pytest
from support.models import X, Y, build, make_model, small_data

import fastnn


@pytest.fixture
def data():
    return small_data()


def test_resume_from_checkpoint_matches_uninterrupted(tmp_path, data):
    x, y = data
    straight = make_model()
    straight.fit(x, y, epochs=3, batch_size=32, verbose=0)
    ckpt = tmp_path / "ckpt.npz"
    partial = make_model()
    partial.fit(
        x,
        y,
        epochs=2,
        batch_size=32,
        verbose=0,
        callbacks=[fastnn.ModelCheckpoint(ckpt)],
    )
    resumed = make_model(seed=123)  # a fresh process would start from scratch
    history = resumed.fit(x, y, epochs=3, batch_size=32, verbose=0, resume=ckpt)
    np.testing.assert_array_equal(resumed.params, straight.params)
    # The returned History continues the checkpoint's: every epoch, numbered
    # as in the uninterrupted run, the same values but for the timings.
    assert history.epoch == straight.history.epoch == [0, 1, 2]
    timing = ("seconds", "samples_per_second")
    assert {k: v for k, v in history.history.items() if k not in timing} == {
        k: v for k, v in straight.history.history.items() if k not in timing
    }
    assert len(history.history["loss"]) == 3
    # Resuming a finished run trains nothing and returns its whole history.
    again = make_model(seed=7).fit(
        x, y, epochs=2, batch_size=32, verbose=0, resume=ckpt
    )
    assert again.epoch == [0, 1] and len(again.history["loss"]) == 2
    other = fastnn.Sequential([fastnn.Dense(3, activation="softmax")], input_dim=5)
    with pytest.raises(ValueError, match="^resume: .* holds a different model"):
        other.fit(x, y, epochs=3, verbose=0, resume=ckpt)


def _one_epoch_checkpoint(tmp_path, data):
    x, y = data
    ckpt = tmp_path / "ckpt.npz"
    make_model().fit(
        x,
        y,
        epochs=1,
        batch_size=32,
        verbose=0,
        callbacks=[fastnn.ModelCheckpoint(ckpt)],
    )
    return ckpt


@pytest.mark.parametrize(
    "change,message",
    [
        ({"dtype": "float64"}, r"holds a different model \(dtype is 'float32'"),
        ({"loss": "mse"}, r"holds a different model \(loss is 'cross_entropy'"),
        ({"momentum": 0.5}, r"another optimizer \(momentum is 0.9"),
        ({"nesterov": True}, r"another optimizer \(nesterov is False"),
        ({"weight_decay": 0.0}, r"another optimizer \(weight_decay is 0.0001"),
    ],
)
def test_resume_refuses_another_dtype_loss_or_optimizer(
    tmp_path, data, change, message
):
    x, y = data
    ckpt = _one_epoch_checkpoint(tmp_path, data)
    opt = {
        k: v for k, v in change.items() if k in ("momentum", "nesterov", "weight_decay")
    }
    model = make_model(dtype=change.get("dtype", "float32"), **opt)
    if "loss" in change:
        model = fastnn.Sequential(
            model.layers, input_dim=5, loss="mse", optimizer=model.optimizer
        )
    before = model.params.copy()
    with pytest.raises(ValueError, match="^resume: '.*' .*" + message):
        model.fit(x, y, epochs=2, batch_size=32, verbose=0, resume=ckpt)
    np.testing.assert_array_equal(model.params, before)  # nothing taken


def test_resume_may_change_the_learning_rate(tmp_path, data):
    x, y = data
    ckpt = _one_epoch_checkpoint(tmp_path, data)
    model = make_model(learning_rate=0.01)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, resume=ckpt)
    assert model.epoch == 2 and history.history["learning_rate"][-1] == 0.01


def test_a_new_optimizer_starts_afresh_and_resume_refuses_another(tmp_path):
    model = build("adam")
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "adam.npz")
    assert model.step == 8 and np.abs(model.slots).max() > 0
    model.optimizer = fastnn.Adam(0.1, weight_decay=1e-3)  # same state: kept
    assert model.step == 8 and np.abs(model.slots).max() > 0
    model.optimizer = "rmsprop"
    assert model.step == 0 and model.slots.shape == (1, model.n_params)
    assert not model.slots.any()
    with pytest.raises(ValueError, match="trained with another optimizer"):
        model.fit(X, Y, epochs=2, verbose=0, resume=tmp_path / "adam.npz")


def test_resume_with_reduce_lr_on_plateau_is_bit_identical(tmp_path, backend_name):
    """The checkpoint carries ReduceLROnPlateau's counters and the reduced
    rate (checkpoints are written after the other callbacks act, wherever
    they are listed), so a resumed run reduces when the uninterrupted one
    does and ends with the same bits."""

    def callbacks(path):
        return [
            fastnn.ModelCheckpoint(path),  # listed first on purpose
            fastnn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2,
                                     min_delta=0.3, cooldown=1),
        ]  # fmt: skip

    whole = build("adam", backend_name, rate=0.2)
    history = whole.fit(X, Y, epochs=6, batch_size=16, verbose=0,
                        callbacks=callbacks(tmp_path / "whole.npz"))  # fmt: skip
    rates = history.history["learning_rate"]
    assert len(set(rates)) > 1, rates  # the plateau logic acted

    cut = build("adam", backend_name, rate=0.2)
    cut.fit(X, Y, epochs=3, batch_size=16, verbose=0,
            callbacks=callbacks(tmp_path / "cut.npz"))  # fmt: skip
    resumed = build("adam", backend_name, rate=0.2)
    history = resumed.fit(X, Y, epochs=6, batch_size=16, verbose=0,
                          callbacks=callbacks(tmp_path / "cut.npz"),
                          resume=tmp_path / "cut.npz")  # fmt: skip
    assert history.history["learning_rate"] == rates
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.slots, whole.slots)
    assert resumed.optimizer.learning_rate_scale == whole.optimizer.learning_rate_scale
