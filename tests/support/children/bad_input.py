"""Generated bad input at every public entry point of a model, in a child process.

Run by ``reliability/test_bad_input_generated.py`` as
``python bad_input.py BACKEND N FOLDER`` (``FOLDER/good.npz``: a valid
5 -> 4 -> 3 model file). ``N`` seeded random
cases per entry point: bad ``x`` and ``y`` for ``fit``, ``evaluate``,
``predict`` and ``loss_and_gradients``, bad ``fit`` options, bad weights for
``set_weights``, and truncated or bit-flipped copies of the model file for
``fastnn.load``. Each must raise ValueError or TypeError whose message starts
with the argument's name (a damaged file: "not a valid fastnn model file"), and
none may change the weights. A crash of the interpreter (a kernel writing out
of bounds) ends this process, not the test run. Prints one JSON line: the
number of cases per entry point.
"""

from __future__ import annotations

import json
import re
import sys
from functools import partial
from pathlib import Path

import numpy as np

import fastnn

N = 6  # rows of the good data


def bad_x(rng):
    """An ``x`` a 5-input model must refuse: wrong shape, empty, non-finite,
    wrong dtype, objects, strings or a scalar."""
    kind = rng.integers(9)
    n = int(rng.integers(1, 9))
    if kind == 0:
        return rng.random((n, int(rng.choice([1, 2, 3, 4, 6, 7, 100]))))
    if kind == 1:
        return rng.random(int(rng.integers(1, 40)))
    if kind == 2:
        return rng.random((n, 5, int(rng.integers(1, 3))))
    if kind == 3:
        return np.zeros((0, 5))
    if kind == 4:
        x = rng.random((n, 5))
        x.flat[rng.integers(x.size)] = rng.choice([np.nan, np.inf, -np.inf])
        return x
    if kind == 5:
        dt = rng.choice(["float16", "int32", "int64", "complex64", "bool"])
        return rng.random((n, 5)).astype(dt)
    if kind == 6:
        return np.array([[object()] * 5] * n, dtype=object)
    if kind == 7:
        return np.full((n, 5), "a")
    return rng.random(())


def bad_y(rng, n):
    """A ``y`` for ``n`` rows of a 3-class model that must be refused: labels
    out of range, wrong length, fractional or non-finite, not one-hot, wrong
    width or rank, strings."""
    kind = rng.integers(7)
    if kind == 0:
        y = rng.integers(0, 3, n)
        y[rng.integers(n)] = rng.choice([-1, 3, 7, 10**9])
        return y
    if kind == 1:
        return rng.integers(0, 3, int(rng.choice([n - 1, n + 1, 0])))
    if kind == 2:
        y = rng.integers(0, 3, n).astype(float)
        y[rng.integers(n)] = rng.choice([0.5, np.nan, np.inf])
        return y
    if kind == 3:
        y = np.eye(3)[rng.integers(0, 3, n)]
        y[rng.integers(n)] = rng.random(3)
        return y
    if kind == 4:
        return np.eye(int(rng.choice([2, 4])))[rng.integers(0, 2, n)]
    if kind == 5:
        return rng.integers(0, 3, (n, 2, 2))
    return np.array(["x"] * n)


def bad_weights(rng, w):
    """``w`` (a model's weights) spoiled: a wrong shape, a NaN, too few
    arrays or a wrong dtype."""
    i = int(rng.integers(len(w)))
    kind = rng.integers(4)
    if kind == 0:
        w[i] = rng.random(tuple(s + 1 for s in w[i].shape))
    elif kind == 1:
        w[i] = w[i].copy()
        w[i].flat[0] = np.nan
    elif kind == 2:
        w = w[: int(rng.integers(len(w)))]
    else:
        w[i] = w[i].astype(rng.choice(["complex64", "object"]))
    return w


def damaged(rng, good_file: bytes) -> bytes:
    """``good_file`` truncated, or with 1-7 bytes flipped."""
    raw = bytearray(good_file)
    if rng.integers(2):
        raw = raw[: int(rng.integers(len(raw)))]
    else:
        for _ in range(int(rng.integers(1, 8))):
            raw[int(rng.integers(len(raw)))] ^= int(rng.integers(1, 256))
    return bytes(raw)


def expect(fn, names):
    """``fn()`` raises ValueError or TypeError naming one of ``names`` first."""
    try:
        fn()
    except (ValueError, TypeError) as err:
        msg = str(err)
        # The message starts with the argument's name ("x: expected ...",
        # "weights[2]: ..."), not merely contains it ("expected" has an x).
        if not any(re.match(re.escape(name) + r"(\[\d+\])*: ", msg) for name in names):
            raise AssertionError(f"message does not start with {names}: {msg}") from err
        return
    raise AssertionError("no error raised")


def main(backend: str, n_cases: int, folder: str) -> dict:
    rng = np.random.default_rng(12345)
    model = fastnn.Sequential(
        [fastnn.Dense(4, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=5,
        backend=backend,
        seed=0,
    )
    good_x = rng.random((N, 5))
    good_y = np.arange(N) % 3
    good_file = Path(folder, "good.npz").read_bytes()
    counts = {}

    def run(name, fn, names):
        expect(fn, names)
        counts[name] = counts.get(name, 0) + 1

    before = model.params.copy()
    for _ in range(n_cases):
        x = bad_x(rng)
        y_for_x = good_y[: len(x)] if np.ndim(x) else good_y
        run("fit-x", partial(model.fit, x, y_for_x, verbose=0), ["x", "y"])
        run("evaluate-x", partial(model.evaluate, x, good_y), ["x", "y"])
        run("predict-x", partial(model.predict, x), ["x"])
        run(
            "loss_and_gradients-x",
            partial(model.loss_and_gradients, x, good_y),
            ["x", "y"],
        )
        y = bad_y(rng, N)
        run("fit-y", partial(model.fit, good_x, y, verbose=0), ["y"])
        run("evaluate-y", partial(model.evaluate, good_x, y), ["y"])
        run("loss_and_gradients-y", partial(model.loss_and_gradients, good_x, y), ["y"])
        k = int(rng.integers(5))
        # Every option is drawn (each draw advances rng), then one is used.
        kwargs = [
            {"batch_size": int(rng.choice([0, -1, N + 1, 10**6]))},
            {"epochs": int(rng.integers(-5, 0))},
            {"batch_size": float(rng.random())},
            {"validation_data": (bad_x(rng), good_y)},
            {"callbacks": [object()]},
        ][k]
        run(
            "fit-args",
            partial(model.fit, good_x, good_y, verbose=0, **kwargs),
            ["batch_size", "epochs", "validation_data", "callbacks"],
        )
        w = bad_weights(rng, model.get_weights())
        run("set_weights", partial(model.set_weights, w), ["weights"])
        path = f"{folder}/bad.npz"
        Path(path).write_bytes(damaged(rng, good_file))
        try:
            loaded = fastnn.load(path, backend=backend)
        except ValueError as err:
            assert "not a valid fastnn model file" in str(err), err
        else:  # a flip in zip padding can leave the arrays intact
            assert np.isfinite(loaded.params).all()
        counts["load"] = counts.get("load", 0) + 1
    assert np.array_equal(model.params, before), "bad input changed the weights"
    return counts


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
