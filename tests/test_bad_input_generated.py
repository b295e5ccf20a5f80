"""Generated bad input at every public entry point, on every backend, run in a
child process so that a crash of the interpreter (a kernel writing out of
bounds) fails the test instead of killing the test run."""

from __future__ import annotations

import textwrap

import pytest
from _child import run_child

CASES_PER_ENTRY_POINT = 200

CHILD = textwrap.dedent(
    """
    import io, json, re, sys, zipfile
    import numpy as np
    import fastnn

    backend, n_cases, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(12345)
    model = fastnn.Sequential(
        [fastnn.Dense(4, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=5, backend=backend, seed=0)
    N = 6
    good_x = rng.random((N, 5))
    good_y = np.arange(N) % 3

    def bad_x():
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

    def bad_y(n):
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

    def expect(fn, names):
        try:
            fn()
        except (ValueError, TypeError) as err:
            msg = str(err)
            # The message starts with the argument's name ("x: expected ...",
            # "weights[2]: ..."), not merely contains it ("expected" has an x).
            if not any(re.match(re.escape(name) + r"(\\[\\d+\\])*: ", msg)
                       for name in names):
                raise AssertionError(f"message does not start with {names}: {msg}")
            return
        raise AssertionError("no error raised")

    counts = {}
    def run(name, fn, names):
        expect(fn, names)
        counts[name] = counts.get(name, 0) + 1

    before = model.params.copy()
    for _ in range(n_cases):
        x = bad_x()
        run("fit-x", lambda: model.fit(x, good_y[: len(x)] if np.ndim(x) else good_y,
                                       verbose=0), ["x", "y"])
        run("evaluate-x", lambda: model.evaluate(x, good_y), ["x", "y"])
        run("predict-x", lambda: model.predict(x), ["x"])
        run("loss_and_gradients-x", lambda: model.loss_and_gradients(x, good_y),
            ["x", "y"])
        y = bad_y(N)
        run("fit-y", lambda: model.fit(good_x, y, verbose=0), ["y"])
        run("evaluate-y", lambda: model.evaluate(good_x, y), ["y"])
        run("loss_and_gradients-y", lambda: model.loss_and_gradients(good_x, y), ["y"])
        k = int(rng.integers(5))
        kwargs = [{"batch_size": int(rng.choice([0, -1, N + 1, 10**6]))},
                  {"epochs": int(rng.integers(-5, 0))},
                  {"batch_size": float(rng.random())},
                  {"validation_data": (bad_x(), good_y)},
                  {"callbacks": [object()]}][k]
        run("fit-args", lambda: model.fit(good_x, good_y, verbose=0, **kwargs),
            ["batch_size", "epochs", "validation_data", "callbacks"])
        w = model.get_weights()
        i = int(rng.integers(len(w)))
        kind = rng.integers(4)
        if kind == 0:
            w[i] = rng.random(tuple(s + 1 for s in w[i].shape))
        elif kind == 1:
            w[i] = w[i].copy(); w[i].flat[0] = np.nan
        elif kind == 2:
            w = w[: int(rng.integers(len(w)))]
        else:
            w[i] = w[i].astype(rng.choice(["complex64", "object"]))
        run("set_weights", lambda: model.set_weights(w), ["weights"])
        raw = bytearray(good_file)
        if rng.integers(2):
            raw = raw[: int(rng.integers(len(raw)))]
        else:
            for _ in range(int(rng.integers(1, 8))):
                raw[int(rng.integers(len(raw)))] ^= int(rng.integers(1, 256))
        path = f"{folder}/bad.npz"
        open(path, "wb").write(bytes(raw))
        try:
            loaded = fastnn.load(path, backend=backend)
        except ValueError as err:
            assert "not a valid fastnn model file" in str(err), err
            counts["load"] = counts.get("load", 0) + 1
        else:  # a flip in zip padding can leave the arrays intact
            assert np.isfinite(loaded.params).all()
            counts["load"] = counts.get("load", 0) + 1
    assert np.array_equal(model.params, before), "bad input changed the weights"
    print(json.dumps(counts))
    """
)


@pytest.mark.slow
def test_generated_bad_input_is_refused_without_crashing(backend_name, tmp_path):
    import fastnn

    model = fastnn.Sequential(
        [fastnn.Dense(4, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=5,
        backend="numpy",
        seed=0,
    )
    model.save(tmp_path / "good.npz")
    child = CHILD.replace("good_file = None", "").replace(
        "counts = {}",
        f"good_file = open({str(tmp_path / 'good.npz')!r}, 'rb').read()\ncounts = {{}}",
    )
    counts = run_child(child, backend_name, CASES_PER_ENTRY_POINT, tmp_path)
    assert len(counts) == 10
    assert all(c >= CASES_PER_ENTRY_POINT for c in counts.values()), counts
