"""The model file's format: another format or version is refused, version 1
files still load, damaged or pickled files are refused without running
anything (and nothing in the package loads with pickle), and sizes a file
claims are checked before anything is allocated."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support.models import make_model, small_data

import fastnn


@pytest.fixture
def data():
    return small_data()


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


def test_no_pickle_anywhere_in_the_package():
    root = Path(fastnn.__file__).parent
    ref = Path(fastnn.reference.__file__).parent
    pattern = re.compile(
        r"import pickle|allow_pickle\s*=\s*True|torch\.load|"
        r"pickle\.load|np\.load\((?![^)]*allow_pickle=False)"
    )
    offenders = []
    for base in (root, ref):
        for path in list(base.rglob("*.py")) + list(base.rglob("*.pyx")):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.name}:{i}: {line.strip()}")
    assert not offenders, offenders
