"""ModelCheckpoint: which epochs it saves (best only, by the monitored value
and mode), its file names, never non-finite weights, the history it keeps,
and the callbacks' state it carries (ReduceLROnPlateau's reduced rate)."""

from __future__ import annotations

import numpy as np
import pytest
from support.callbacks import Scripted
from support.models import X, Y, build, make_model, small_data

import fastnn


@pytest.fixture
def data():
    return small_data()


def _fit_scripted(data, key, values, checkpoint):
    """Fit one epoch per scripted value of ``key``, then ``checkpoint``."""
    x, y = data
    make_model().fit(
        x,
        y,
        epochs=len(values),
        batch_size=32,
        verbose=0,
        validation_data=(x, y),
        callbacks=[Scripted(key, values), checkpoint],
    )


@pytest.mark.parametrize(
    "monitor,mode,values,saved",
    [
        # max (auto for accuracy): rises, stalls, falls, ties, rises
        ("val_accuracy", "auto", [0.5, 0.7, 0.7, 0.6, 0.9], [1, 2, 5]),
        # min (auto for loss): a tie is no improvement
        ("val_loss", "auto", [1.0, 0.8, 0.9, 0.8, 0.3], [1, 2, 5]),
        # an explicit mode wins over the name
        ("val_loss", "max", [1.0, 0.8, 0.9, 1.2, 0.3], [1, 4]),
    ],
)
def test_model_checkpoint_best_only(tmp_path, data, monitor, mode, values, saved):
    pattern = str(tmp_path / "m-{epoch:02d}.npz")
    checkpoint = fastnn.ModelCheckpoint(
        pattern, monitor=monitor, mode=mode, save_best_only=True
    )
    _fit_scripted(data, monitor, values, checkpoint)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"m-{e:02d}.npz" for e in saved]
    # Each file holds the model of its epoch.
    assert [fastnn.load(tmp_path / f).epoch for f in files] == saved


def test_model_checkpoint_file_name_keys(tmp_path, data):
    pattern = str(tmp_path / "ckpt-{epoch:03d}-{val_loss:.2f}.npz")
    _fit_scripted(data, "val_loss", [0.5, 0.25], fastnn.ModelCheckpoint(pattern))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-001-0.50.npz",
        "ckpt-002-0.25.npz",
    ]


def test_model_checkpoint_never_writes_non_finite_weights(tmp_path):
    model = make_model()
    checkpoint = fastnn.ModelCheckpoint(tmp_path / "ckpt.npz")
    checkpoint.set_model(model)
    model.params[3] = np.nan  # as a diverged step would leave them
    with pytest.warns(UserWarning, match="not finite; not saved"):
        checkpoint.on_epoch_end(0, {"loss": float("nan")})
    assert list(tmp_path.iterdir()) == []
    model.params[3] = 0.0
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    assert fastnn.load(tmp_path / "ckpt.npz").weights_are_finite()


def test_checkpoint_history_keeps_only_per_epoch_numbers(tmp_path, data):
    """A history key without a number for every epoch (logged only sometimes,
    or as text) is left out of the saved file, which still loads and
    resumes; a malformed saved history is refused as a damaged file."""
    x, y = data
    model = make_model()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    model.history.history["late"] = [1.0]
    model.history.history["note"] = ["a", "b"]
    ckpt = tmp_path / "ckpt.npz"
    model.save(ckpt)
    history = make_model().fit(x, y, epochs=3, batch_size=32, verbose=0, resume=ckpt)
    assert history.epoch == [0, 1, 2]
    assert "late" not in history.history and "note" not in history.history
    assert len(history.history["loss"]) == 3

    import json

    with np.load(ckpt, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    state = json.loads(str(members["state"]))
    state["history"]["history"]["loss"] = [0.5]  # one value for two epochs
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**members, "state": np.array(json.dumps(state))})
    with pytest.raises(ValueError, match="not a valid fastnn model file: .*history"):
        fastnn.load(bad)


def test_reduce_lr_on_plateau_lowers_the_rate_and_the_checkpoint_keeps_it(tmp_path):
    model = build("adam", rate=0.0)
    cb = fastnn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=1.0)
    history = model.fit(
        X, Y, epochs=3, batch_size=16, verbose=0,
        callbacks=[cb, fastnn.ModelCheckpoint(tmp_path / "c.npz")],
    )  # fmt: skip
    # Epoch 1 sets the best loss; epochs 2 and 3 do not beat it by 1.0 and
    # each halves the rate (logged before the callback acts, as Keras).
    rates = history.history["learning_rate"]
    assert rates == pytest.approx([0.01, 0.01, 0.005])
    assert model.optimizer.learning_rate_scale == 0.25
    assert model.optimizer.learning_rates(model.step, 1)[0] == pytest.approx(0.0025)
    assert fastnn.load(tmp_path / "c.npz").optimizer.learning_rate_scale == 0.25
