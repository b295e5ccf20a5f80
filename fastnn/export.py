"""ONNX export: a trained :class:`~fastnn.Sequential` as a standard ONNX graph.

The graph computes what :meth:`~fastnn.Sequential.predict` computes, in the
model's own dtype (float32 or float64), for any number of rows:

    input (batch, n_in) -> [Gemm(x, W, b) | MatMul(x, W)] -> activation -> ... -> output

Each dense layer is one ``Gemm`` (``MatMul`` without a bias) followed by its
activation (``Relu``, ``Sigmoid``, ``Tanh``, ``Softmax`` over the last axis; a
linear layer adds no node). Only standard operators of the default domain at
opset 17, which every ONNX runtime of the last years runs; the weights are
initializers, stored in the file. The model's configuration (JSON) is kept in
the graph's metadata under ``fastnn.config``. ``onnx.checker`` validates the
graph before the file is written, atomically.

Needs the ``onnx`` package: ``pip install "fastnn[onnx]"`` (which brings
``onnxruntime`` too, to run the exported file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fastnn import _compose
from fastnn.activations import Activation

__all__ = ["OPSET", "to_onnx"]

#: The ONNX opset the graph declares.
OPSET = 17
#: Input and output names of the graph.
INPUT, OUTPUT = "input", "output"
_ACTIVATION_OPS = {
    Activation.RELU: "Relu",
    Activation.SIGMOID: "Sigmoid",
    Activation.TANH: "Tanh",
    Activation.SOFTMAX: "Softmax",
}


def _require_onnx():
    try:
        import onnx
    except ImportError as err:
        raise ImportError(
            f"to_onnx needs the onnx package, which failed to import ({err}). "
            'To fix: pip install "fastnn[onnx]"'
        ) from err
    return onnx


def _graph(model, onnx):
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if model.dtype == np.float32 else TensorProto.DOUBLE
    nodes, initializers = [], []
    x = INPUT
    last = len(model.dense_layers) - 1
    for l, layer in enumerate(model.dense_layers):
        W, b = _compose.layer_views(model.params, model.layout, l)
        initializers.append(numpy_helper.from_array(np.array(W), f"dense_{l}.W"))
        op = _ACTIVATION_OPS.get(layer.activation)
        z = OUTPUT if (l == last and op is None) else f"dense_{l}.z"
        if layer.use_bias:
            initializers.append(numpy_helper.from_array(np.array(b), f"dense_{l}.b"))
            nodes.append(
                helper.make_node(
                    "Gemm", [x, f"dense_{l}.W", f"dense_{l}.b"], [z], name=f"dense_{l}"
                )
            )
        else:
            nodes.append(
                helper.make_node("MatMul", [x, f"dense_{l}.W"], [z], name=f"dense_{l}")
            )
        x = z
        if op is not None:
            a = OUTPUT if l == last else f"dense_{l}.a"
            attrs = {"axis": -1} if op == "Softmax" else {}
            nodes.append(
                helper.make_node(op, [x], [a], name=f"dense_{l}.{op.lower()}", **attrs)
            )
            x = a
    graph = helper.make_graph(
        nodes,
        "fastnn.Sequential",
        [helper.make_tensor_value_info(INPUT, elem, ["batch", model.input_dim])],
        [helper.make_tensor_value_info(OUTPUT, elem, ["batch", model.n_outputs])],
        initializer=initializers,
    )
    from fastnn import __version__

    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fastnn",
        producer_version=__version__,
        doc_string=repr(model),
    )
    # The IR version of the opset, not the newest onnx knows: older runtimes
    # refuse files of an IR version they do not know.
    onnx_model.ir_version = 8
    helper.set_model_props(
        onnx_model, {"fastnn.config": json.dumps(model.get_config())}
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def to_onnx(model, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` (conventionally ``*.onnx``) as an ONNX
    graph computing its predictions; returns the path.

    The graph's input ``"input"`` is ``(batch, input_dim)`` and its output
    ``"output"`` ``(batch, n_outputs)``, both in the model's dtype; the batch
    dimension is dynamic. ``ImportError`` (with the install command) without
    the ``onnx`` package; ``ValueError`` for weights that are not finite.
    """
    from fastnn import io

    # Duck-typed (this module does not import fastnn.model, which imports it).
    if not all(hasattr(model, a) for a in ("layers", "params", "layout", "get_config")):
        raise TypeError(
            f"model: expected a fastnn.Sequential; received {type(model).__name__}"
        )
    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a folder; expected a file")
    if not model.weights_are_finite():
        raise ValueError("model: its weights are not all finite; nothing exported")
    onnx = _require_onnx()
    data = _graph(model, onnx).SerializeToString()
    io.atomic_write(path, lambda f: f.write(data))
    return path
