"""Model API: reproducibility, persistence, weights, backends and callbacks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from support.callbacks import Scripted

import fastnn
from fastnn import backends


def make_model(backend="numpy", dtype="float32", seed=0, **opt):
    opt = {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 1e-4} | opt
    return fastnn.Sequential(
        [
            fastnn.Dense(16, activation="relu", kernel_initializer="he_uniform"),
            fastnn.Dense(8, activation="tanh", use_bias=False),
            fastnn.Dense(3, activation="softmax"),
        ],
        input_dim=5,
        optimizer=fastnn.SGD(**opt),
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    return x, y


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


def test_save_load_round_trip_and_exact_continuation(tmp_path, backend_name, data):
    x, y = data
    straight = make_model(backend_name)
    straight.fit(x, y, epochs=3, batch_size=32, verbose=0)
    first = make_model(backend_name)
    first.fit(x, y, epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "model.npz"
    first.save(path)
    loaded = fastnn.load(path, backend=backend_name)
    np.testing.assert_array_equal(loaded.predict(x), first.predict(x))
    assert loaded.get_config() == first.get_config()
    loaded.fit(x, y, epochs=2, batch_size=32, verbose=0)
    np.testing.assert_array_equal(loaded.params, straight.params)
    assert loaded.epoch == 3


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


def test_load_refuses_another_format_or_version(tmp_path, data):
    model = make_model()
    good = tmp_path / "good.npz"
    model.save(good)
    with np.load(good, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    for key, value, message in [
        ("format", np.array("keras.Model"), "format is 'keras.Model', expected"),
        ("version", np.array(3, np.int64), "format version 3; this fastnn reads 1"),
    ]:
        bad = tmp_path / f"bad-{key}.npz"
        np.savez(bad, **{**members, key: value})
        with pytest.raises(
            ValueError, match="not a valid fastnn model file: " + message
        ):
            fastnn.load(bad)


def test_loads_version_1_files(tmp_path, data):
    """Files written before the optimizers (version 1: SGD's ``velocity``)
    still load, their velocity as SGD's one slot."""
    import json

    model = make_model()
    x, y = data
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "new.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    config = json.loads(str(members["config"]))
    del config["optimizer"]["class"], config["optimizer"]["clipnorm"]
    old = {k: v for k, v in members.items() if k != "slots"}
    old |= {"version": np.array(1, np.int64), "velocity": members["slots"][0]}
    old["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "v1.npz", **old)
    loaded = fastnn.load(tmp_path / "v1.npz", backend="numpy")
    np.testing.assert_array_equal(loaded.params, model.params)
    np.testing.assert_array_equal(loaded.slots, model.slots)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()


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


def test_backend_selection_and_switching(data, monkeypatch):
    x, _ = data
    model = make_model("numpy")
    assert model.backend == "numpy"
    with pytest.raises(ValueError, match="expected one of 'numpy', 'numba', 'cython'"):
        model.backend = "nmba"
    with pytest.raises(ValueError, match="received 'nmba'"):
        make_model("nmba")
    monkeypatch.setitem(backends._MODULES, "numba", "fastnn._not_a_module")
    with pytest.raises(fastnn.BackendUnavailableError, match="fastnn\\[numba\\]"):
        model.backend = "numba"
    assert model.backend == "numpy"  # a failed switch changes nothing
    with fastnn.use_backend("numpy"):
        assert make_model(backend=None).backend == "numpy"
    monkeypatch.setenv("FASTNN_BACKEND", "numpy")
    assert make_model(backend=None).backend == "numpy"
    report = fastnn.available_backends()
    assert report["numpy"] is None and "fastnn[numba]" in report["numba"]


def test_switch_backend_keeps_predictions(backend_name, data):
    x, y = data
    model = make_model("numpy", dtype="float64")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    expected = model.predict(x)
    model.backend = backend_name
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-12)


def test_early_stopping_restores_best_weights(data):
    x, y = data

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


def test_load_refuses_pickle_and_damage(tmp_path, data):
    x, y = data
    model = make_model()
    path = tmp_path / "m.npz"
    model.save(path)
    raw = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a valid fastnn model file"):
        fastnn.load(tmp_path / "trunc.npz")
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="not a valid fastnn model file"):
        fastnn.load(tmp_path / "flip.npz")
    marker = tmp_path / "pickle-ran"

    class Evil:  # unpickling this would create the marker file
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.npz"
    with np.load(path, allow_pickle=False) as good:
        members = {k: good[k] for k in good.files}
    for name in members:
        np.savez(evil, **(members | {name: np.array([Evil()], dtype=object)}))
        with pytest.raises(ValueError, match="holds Python objects"):
            fastnn.load(evil)
        with pytest.raises(ValueError, match="holds Python objects"):
            model.fit(x, y, epochs=1, verbose=0, resume=evil)
    assert not marker.exists(), "loading ran the file's pickle"
    with zipfile.ZipFile(path) as zf, zipfile.ZipFile(tmp_path / "x.npz", "w") as out:
        for info in zf.infolist():
            if info.filename != "slots.npy":
                out.writestr(info, zf.read(info))
    with pytest.raises(ValueError, match="missing members"):
        fastnn.load(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="not a valid"):
        fastnn.load(tmp_path / "nope.npz")


def test_huge_or_wrong_architecture_file_refused_before_allocating(tmp_path):
    import json
    import tracemalloc

    model = make_model()
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as good:
        members = {k: good[k] for k in good.files}
    config = json.loads(str(members["config"]))
    # A 784-2**21-10 network: 1.7e9 float32 parameters (6.6 GB) claimed by
    # the headers, a few bytes of data behind them.
    config["input_dim"] = 784
    config["layers"][0]["units"] = 2**21
    config["layers"][1]["units"] = 10
    config["layers"] = [config["layers"][0], config["layers"][-1]]
    n_params = 784 * 2**21 + 2**21 + 2**21 * 10 + 10
    huge = tmp_path / "huge.npz"
    with zipfile.ZipFile(huge, "w") as zf:
        for name, value in members.items():
            if name == "config":
                value = np.array(json.dumps(config))
            with zf.open(f"{name}.npy", "w") as f:
                if name in ("params", "slots"):
                    header = {"descr": "<f4", "fortran_order": False}
                    shape = (n_params,) if name == "params" else (1, n_params)
                    np.lib.format.write_array_header_2_0(f, header | {"shape": shape})
                    f.write(b"\0" * 64)
                else:
                    np.lib.format.write_array(f, value, allow_pickle=False)
    wrong = tmp_path / "wrong.npz"  # 5-16-8-3 config, parameters of another net
    other = fastnn.Sequential(
        [fastnn.Dense(7, activation="softmax")], input_dim=5, backend="numpy"
    )
    np.savez(wrong, **(members | {"params": other.params, "slots": other.slots}))
    for bad, why in ((huge, "member 'params' has shape"), (wrong, "has shape")):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=why):
                fastnn.load(bad)
            with pytest.raises(ValueError, match=why):
                model.fit(np.zeros((4, 5)), [0, 1, 2, 0], verbose=0, resume=bad)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, f"{bad.name}: {peak / 2**20:.0f} MiB allocated"


def test_save_writes_a_temporary_file_fsyncs_then_renames(tmp_path, monkeypatch):
    import os

    from fastnn import io

    calls = []
    fsync, replace = os.fsync, os.replace

    def record_fsync(fd):
        calls.append("fsync")
        fsync(fd)

    def record_replace(src, dst):
        calls.append(("replace", Path(src).name.startswith("."), Path(dst).name))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "replace", record_replace)
    target = tmp_path / "m.npz"
    target.write_bytes(b"old")

    def fail_halfway(f):
        f.write(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io.atomic_write(target, fail_halfway)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    assert calls == []
    make_model().save(target)
    # The data reaches the disk before the rename; then the folder entry does.
    assert calls == ["fsync", ("replace", True, "m.npz"), "fsync"]
    assert fastnn.load(target).weights_are_finite()


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
