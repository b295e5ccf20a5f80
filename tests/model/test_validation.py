"""Bad input at the public entry points gives an error naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn


@pytest.fixture
def model(backend_name):
    return fastnn.Sequential(
        [fastnn.Dense(4, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=5,
        backend=backend_name,
        seed=0,
    )


GOOD_X = np.zeros((6, 5), np.float32)
GOOD_Y = np.array([0, 1, 2, 0, 1, 2])

BAD_X = [
    (np.zeros((6, 4)), ValueError, "x: expected 5 features"),
    (np.zeros(30), ValueError, "x: expected a 2-D array"),
    (np.zeros((6, 5, 1)), ValueError, "x: expected a 2-D array"),
    (np.zeros((0, 5)), ValueError, "x: expected at least one sample"),
    (np.full((6, 5), np.nan), ValueError, "x: expected finite values"),
    (np.full((6, 5), np.inf), ValueError, "x: expected finite values"),
    (np.zeros((6, 5), np.float16), TypeError, "x: expected float32, float64 or uint8"),
    (np.zeros((6, 5), np.int64), TypeError, "x: expected float32, float64 or uint8"),
    (np.zeros((6, 5), np.complex128), TypeError, "x: expected float32"),
    (np.zeros((6, 5), object), TypeError, "x: expected float32"),
    ("abc", TypeError, "x: expected float32"),
]
BAD_Y = [
    (np.array([0, 1, 2, 0, 1, 3]), ValueError, r"y: expected class labels in \[0, 2\]"),
    (np.array([0, 1, 2, 0, 1, -1]), ValueError, "y: expected class labels"),
    (np.array([0, 1, 2, 0, 1]), ValueError, "y: expected 6 labels"),
    (np.array([0, 1, 2, 0, 1, 0.5]), ValueError, "y: expected integral"),
    (np.array([0, 1, 2, 0, 1, np.nan]), ValueError, "y: expected integral"),
    (np.full((6, 3), 0.5), ValueError, "y: expected one-hot rows"),
    (np.eye(4)[:6], ValueError, "y: expected one-hot rows of shape"),
    (np.zeros((6, 1, 1)), ValueError, "y: expected labels of shape"),
    (np.array(["a"] * 6), TypeError, "y: expected integer class labels"),
]


@pytest.mark.parametrize("x,exc,match", BAD_X)
def test_bad_x_everywhere(model, x, exc, match):
    with pytest.raises(exc, match=match):
        model.fit(x, GOOD_Y, verbose=0)
    with pytest.raises(exc, match=match):
        model.evaluate(x, GOOD_Y)
    with pytest.raises(exc, match=match):
        model.predict(x)
    with pytest.raises(exc, match=match):
        model.loss_and_gradients(x, GOOD_Y)


@pytest.mark.parametrize("y,exc,match", BAD_Y)
def test_bad_y_everywhere(model, y, exc, match):
    before = model.params.copy()
    with pytest.raises(exc, match=match):
        model.fit(GOOD_X, y, verbose=0)
    with pytest.raises(exc, match=match):
        model.evaluate(GOOD_X, y)
    with pytest.raises(exc, match=match):
        model.loss_and_gradients(GOOD_X, y)
    np.testing.assert_array_equal(model.params, before)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"batch_size": 0}, ValueError, "batch_size: expected an int >= 1"),
        ({"batch_size": -3}, ValueError, "batch_size"),
        ({"batch_size": 7}, ValueError, "batch_size: expected at most the number"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"epochs": -1}, ValueError, "epochs: expected an int >= 0"),
        ({"verbose": 5}, ValueError, "verbose"),
        ({"callbacks": "nope"}, TypeError, "callbacks"),
        ({"callbacks": [object()]}, TypeError, r"callbacks\[0\]"),
        (
            {"validation_data": (GOOD_X[:, :2], GOOD_Y)},
            ValueError,
            r"validation_data\[0\]",
        ),
        (
            {"validation_data": (GOOD_X, GOOD_Y[:3])},
            ValueError,
            r"validation_data\[1\]",
        ),
        ({"validation_data": GOOD_X}, ValueError, "validation_data"),
    ],
)
def test_bad_fit_arguments(model, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        model.fit(GOOD_X, GOOD_Y, **kwargs)


def test_zero_epochs_trains_nothing(model):
    before = model.params.copy()
    history = model.fit(GOOD_X, GOOD_Y, epochs=0, verbose=0)
    assert history.history == {}
    np.testing.assert_array_equal(model.params, before)


def _unusual_variants(x, y, folder):
    """``x`` (float64) and ``y`` as Fortran-ordered, strided, read-only,
    memory-mapped (np.memmap and np.load(mmap_mode="r")) arrays and lists."""
    readonly_x, readonly_y = x.copy(), y.copy()
    readonly_x.flags.writeable = False
    readonly_y.flags.writeable = False
    memmap_x = np.memmap(folder / "x.bin", np.float64, "w+", shape=x.shape)
    memmap_x[...] = x
    memmap_x.flush()
    memmap_y = np.memmap(folder / "y.bin", y.dtype, "w+", shape=y.shape)
    memmap_y[...] = y
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    return {
        "fortran": (np.asfortranarray(x), y),
        "strided": (np.repeat(x, 2, axis=1)[:, ::2], np.repeat(y, 2)[::2]),
        "read-only": (readonly_x, readonly_y),
        "np.memmap": (
            np.memmap(folder / "x.bin", np.float64, "r", shape=x.shape),
            memmap_y,
        ),
        "np.load mmap": (
            np.load(folder / "x.npy", mmap_mode="r"),
            np.load(folder / "y.npy", mmap_mode="r"),
        ),
        "list": (x.tolist(), y.tolist()),
    }


def test_unusual_but_valid_inputs_match_contiguous(model, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((6, 5))
    reference = model.predict(np.ascontiguousarray(x, np.float32))
    start = model.get_weights()
    shuffle_state = model.shuffle_rng.bit_generator.state
    slots = model.slots.copy()
    expected = model.fit(x.astype(np.float32), GOOD_Y, batch_size=2, verbose=0)
    trained = model.params.copy()
    model.set_weights(start)
    for name, (xv, yv) in _unusual_variants(x, GOOD_Y, tmp_path).items():
        copies = (np.array(xv, copy=True), np.array(yv, copy=True))
        np.testing.assert_array_equal(model.predict(xv), reference, err_msg=name)
        model.set_weights(start)
        model.slots[...] = slots
        model.epoch = model.step = 0
        model.shuffle_rng.bit_generator.state = shuffle_state
        history = model.fit(xv, yv, batch_size=2, verbose=0)
        np.testing.assert_array_equal(model.params, trained, err_msg=name)
        assert history.history["loss"] == expected.history["loss"], name
        assert model.evaluate(xv, yv) == model.evaluate(x, GOOD_Y), name
        model.set_weights(start)
        # The caller's arrays are left exactly as they were.
        np.testing.assert_array_equal(np.asarray(xv), copies[0], err_msg=name)
        np.testing.assert_array_equal(np.asarray(yv), copies[1], err_msg=name)
    images = (x * 255).astype(np.uint8)
    before = images.copy()
    np.testing.assert_array_equal(
        model.predict(images), model.predict(images.astype(np.float32))
    )
    np.testing.assert_array_equal(images, before)
    one_hot = np.eye(3)[GOOD_Y]
    assert model.evaluate(x, one_hot) == model.evaluate(x, GOOD_Y)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"layers": []}, ValueError, "layers"),
        ({"layers": ["dense"]}, TypeError, r"layers\[0\]"),
        ({"input_dim": 0}, ValueError, "input_dim"),
        ({"loss": "hinge"}, ValueError, "loss: expected one of"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"optimizer": 0.1}, TypeError, "optimizer"),
        ({"optimizer": "sgdd"}, ValueError, "optimizer"),
        ({"seed": -1}, ValueError, "seed"),
        (
            {"layers": [fastnn.Dense(3, activation="relu")]},
            ValueError,
            "softmax output",
        ),
    ],
)
def test_bad_model_arguments(kwargs, exc, match):
    args = {
        "layers": [fastnn.Dense(3, activation="softmax")],
        "input_dim": 5,
        "backend": "numpy",
    } | kwargs
    with pytest.raises(exc, match=match):
        fastnn.Sequential(**args)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"units": 0}, ValueError, "units"),
        ({"units": 2.0}, TypeError, "units"),
        ({"units": 2, "activation": "gelu"}, ValueError, "activation: expected one of"),
        ({"units": 2, "kernel_initializer": "zeros"}, ValueError, "kernel_initializer"),
    ],
)
def test_bad_layer_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastnn.Dense(**kwargs)
