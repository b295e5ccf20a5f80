"""Saving and loading a model: a loaded model predicts as the saved one and
continues its training bit for bit, with every optimizer's slots and the
dropout layers; the file is written to a temporary name, synced, then
renamed. (What a file may hold: test_file_format.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.models import OPTIMIZERS, X, Y, build, make_model, small_data

import fastnn


@pytest.fixture
def data():
    return small_data()


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


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_save_load_keeps_dropout_optimizer_and_slots(optimizer, tmp_path, backend_name):
    model = build(optimizer, backend_name)
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz", backend=backend_name)
    assert [type(layer) for layer in loaded.layers] == [
        type(layer) for layer in model.layers
    ]
    assert loaded.dropout_rates == model.dropout_rates
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_array_equal(loaded.slots, model.slots)
    assert loaded.step == model.step
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    loaded.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(loaded.params, model.params)  # bit for bit
    np.testing.assert_array_equal(loaded.slots, model.slots)


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
