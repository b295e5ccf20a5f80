"""A model's architecture checked and laid out: the layer list, the output
layer against the loss, the flat parameter layout and the weights a user sets.

``Sequential`` calls these when it is built and in ``set_weights``; the layout
they produce is the one :mod:`fastnn.reference` documents (one row
``(n_in, n_out, w_off, b_off, activation)`` per Dense layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastnn import _validation
from fastnn.activations import Activation
from fastnn.layers import Dense, Dropout
from fastnn.losses import Loss


def check_dtype(dtype) -> np.dtype:
    """``dtype`` as float32 or float64, else an error naming ``dtype``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(
            f"dtype: expected 'float32' or 'float64'; received {dtype!r}"
        ) from err
    if dt not in (np.dtype("float32"), np.dtype("float64")):
        raise ValueError(f"dtype: expected 'float32' or 'float64'; received {dtype!r}")
    return dt


def check_layers(layers) -> tuple[list[Dense], tuple[float, ...]]:
    """``(dense_layers, dropout_rates)`` of a list of Dense and Dropout layers;
    ``dropout_rates[l]`` is the rate on Dense layer l's input (0: none)."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(
            f"layers: expected a non-empty list of Dense layers; received {layers!r}"
        )
    rates, dense = [0.0], []
    for i, layer in enumerate(layers):
        if isinstance(layer, Dropout):
            if not dense or i == len(layers) - 1 or rates[-1]:
                raise ValueError(
                    f"layers[{i}]: a Dropout goes between two Dense layers "
                    "(after a Dense, before a Dense, one at a time)"
                )
            rates[-1] = layer.rate
        elif isinstance(layer, Dense):
            dense.append(layer)
            rates.append(0.0)
        else:
            raise TypeError(
                f"layers[{i}]: expected a fastnn.Dense or fastnn.Dropout; "
                f"received {type(layer).__name__}"
            )
    return dense, tuple([0.0] + rates[1:-1])


def check_output(dense_layers: Sequence[Dense], loss: Loss) -> None:
    """Softmax only on the output layer, and cross-entropy only after one."""
    for i, layer in enumerate(dense_layers[:-1]):
        if layer.activation == Activation.SOFTMAX:
            raise ValueError(
                f"layers[{i}]: softmax is only supported on the output layer"
            )
    if loss == Loss.CROSS_ENTROPY:
        if dense_layers[-1].activation != Activation.SOFTMAX:
            raise ValueError(
                "loss: 'cross_entropy' expects a softmax output layer; received "
                f"activation={dense_layers[-1].activation.name.lower()!r} on the "
                "last layer (use Dense(k, activation='softmax'))"
            )
        if dense_layers[-1].units < 2:
            raise ValueError("layers[-1]: cross_entropy needs at least 2 classes")


def layout(
    dense_layers: Sequence[Dense], input_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(layout, decay_spans)``: one layout row per Dense layer and each
    layer's W as a ``[start, stop)`` span of the flat parameters (L2 and weight
    decay touch W only, never b)."""
    rows, spans, off, n_in = [], [], 0, input_dim
    for layer in dense_layers:
        n_out = layer.units
        w_off, off = off, off + n_in * n_out
        spans.append((w_off, off))
        b_off = -1
        if layer.use_bias:
            b_off, off = off, off + n_out
        rows.append((n_in, n_out, w_off, b_off, int(layer.activation)))
        n_in = n_out
    return np.array(rows, dtype=np.int64), np.array(spans, dtype=np.int64)


def n_params(layout: np.ndarray) -> int:
    """Length of the flat parameter buffer that ``layout`` describes."""
    n_in, n_out, w_off, b_off, _ = (int(v) for v in layout[-1])
    return (b_off + n_out) if b_off >= 0 else (w_off + n_in * n_out)


def weight_shapes(dense_layers: Sequence[Dense], input_dim: int) -> list[tuple]:
    """Shapes of ``get_weights()``: ``[(n_in, n_out), (n_out,), ...]`` in Keras's
    order; a layer with ``use_bias=False`` has only its W."""
    shapes, n_in = [], input_dim
    for layer in dense_layers:
        shapes.append((n_in, layer.units))
        if layer.use_bias:
            shapes.append((layer.units,))
        n_in = layer.units
    return shapes


def check_weights(weights, shapes: list[tuple], dtype: np.dtype) -> list[np.ndarray]:
    """``weights`` as finite arrays of ``dtype`` with ``shapes``, every one
    checked before the caller writes any."""
    if not isinstance(weights, (list, tuple)) or len(weights) != len(shapes):
        got = len(weights) if isinstance(weights, (list, tuple)) else type(weights)
        raise ValueError(
            f"weights: expected a list of {len(shapes)} arrays with "
            f"shapes {shapes}; received {got!r}"
        )
    arrays = []
    for i, (w, shape) in enumerate(zip(weights, shapes, strict=True)):
        a = _validation.as_array(w, f"weights[{i}]")
        if a.dtype.kind not in "fiu" or a.dtype == np.float16:
            raise TypeError(
                f"weights[{i}]: expected float32 or float64 values; "
                f"received dtype {a.dtype}"
            )
        if a.shape != shape:
            raise ValueError(
                f"weights[{i}]: expected shape {shape}; received {a.shape}"
            )
        a = a.astype(dtype)
        if not np.isfinite(a).all():
            raise ValueError(
                f"weights[{i}]: expected finite values; received NaN or inf"
            )
        arrays.append(a)
    return arrays
