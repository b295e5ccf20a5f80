"""ONNX export: the graph runs in onnxruntime and predicts what fastnn does."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import fastnn
from fastnn import cli, export
from fastnn.activations import Activation


def _require(name):
    """The module, or a skip; under CI (where ``[test]`` installs both) a
    missing one fails the run, as an unbuilt backend does."""
    try:
        return __import__(name)
    except ImportError as err:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required under CI ([test] installs it): {err}")
        pytest.skip(f"{name} is not installed: {err}")


@pytest.fixture
def ort():
    _require("onnx")
    return _require("onnxruntime")


def _run(ort, path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("input", "output")
    assert inp.shape[0] == out.shape[0] == "batch"  # dynamic batch
    return session.run(None, {"input": x})[0]


#: Bound for float32: predictions are outputs of a few dot products and an
#: activation; onnxruntime's MLAS and BLAS sum in other orders. Measured:
#: at most 6e-8 here on probabilities.
ATOL = {"float32": 1e-5, "float64": 1e-12}

HIDDEN = ["relu", "sigmoid", "tanh", "linear"]
OUTPUT = ["softmax", "sigmoid", "tanh", "relu", "linear"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("output", OUTPUT)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_every_activation_round_trips(ort, tmp_path, hidden, output, bias, dtype):
    model = fastnn.Sequential(
        [
            fastnn.Dense(11, activation=hidden, use_bias=bias),
            fastnn.Dense(6, activation=hidden, use_bias=not bias),
            fastnn.Dense(4, activation=output, use_bias=bias),
        ],
        input_dim=9,
        loss="cross_entropy" if output == "softmax" else "mse",
        dtype=dtype,
        seed=3,
    )
    if bias:  # non-zero biases, so a dropped bias would show
        weights = model.get_weights()
        model.set_weights([w + 0.1 if w.ndim == 1 else w for w in weights])
    path = model.to_onnx(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    for n in (1, 7, 64):
        x = rng.normal(scale=2.0, size=(n, 9)).astype(dtype)
        got = _run(ort, path, x)
        assert got.dtype == np.dtype(dtype) and got.shape == (n, 4)
        np.testing.assert_allclose(
            got, model.predict(x), rtol=ATOL[dtype], atol=ATOL[dtype]
        )


@pytest.mark.slow
def test_a_trained_mnist_model_round_trips(ort, tmp_path, mnist_small):
    (x, y), (xt, _) = mnist_small
    model = fastnn.Sequential(
        [
            fastnn.Dense(64, activation="relu", kernel_initializer="he_uniform"),
            fastnn.Dense(32, activation="tanh"),
            fastnn.Dense(10, activation="softmax"),
        ],
        input_dim=784,
        seed=0,
        optimizer=fastnn.SGD(0.05, momentum=0.9),
    )
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    path = tmp_path / "mnist.onnx"
    code = cli.main(["export", str(tmp_path / "saved.npz"), str(path)])
    assert code == 1  # no such model yet: one error line, no traceback
    model.save(tmp_path / "saved.npz")
    assert cli.main(["export", str(tmp_path / "saved.npz"), str(path)]) == 0
    got = _run(ort, path, xt)
    want = model.predict(xt)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def test_the_graph_is_checked_standard_and_carries_the_config(ort, tmp_path):
    import json

    import onnx

    model = fastnn.Sequential(
        [fastnn.Dense(5, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=4,
        seed=0,
    )
    path = model.to_onnx(tmp_path / "m.onnx")
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert [o.domain for o in loaded.opset_import] == [""]
    assert [n.op_type for n in loaded.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]
    props = {p.key: p.value for p in loaded.metadata_props}
    assert json.loads(props["fastnn.config"]) == model.get_config()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_export_refuses_bad_input(ort, tmp_path):
    model = fastnn.Sequential([fastnn.Dense(3, activation="softmax")], input_dim=4)
    with pytest.raises(FileNotFoundError, match="^path: the folder"):
        model.to_onnx(tmp_path / "no" / "m.onnx")
    with pytest.raises(IsADirectoryError, match="^path: .* is a folder"):
        model.to_onnx(tmp_path)
    with pytest.raises(TypeError, match="^model: expected a fastnn.Sequential"):
        export.to_onnx(object(), tmp_path / "m.onnx")
    model.params[0] = np.nan
    with pytest.raises(ValueError, match="^model: its weights are not all finite"):
        model.to_onnx(tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_without_onnx_the_error_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    model = fastnn.Sequential([fastnn.Dense(3, activation="softmax")], input_dim=4)
    with pytest.raises(ImportError, match=r'pip install "fastnn\[onnx\]"'):
        model.to_onnx(tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_every_activation_has_an_onnx_operator():
    assert set(export._ACTIVATION_OPS) | {Activation.LINEAR} == set(Activation)
