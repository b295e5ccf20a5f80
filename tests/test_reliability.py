"""Reliability: threads, thread limits, memory, numerical stability, no pickle."""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastnn


def _model(backend, hidden=(32,), dtype="float32", seed=0):
    layers = [fastnn.Dense(h, activation="relu") for h in hidden]
    return fastnn.Sequential(
        layers + [fastnn.Dense(10, activation="softmax")],
        input_dim=784,
        backend=backend,
        dtype=dtype,
        seed=seed,
        optimizer=fastnn.SGD(0.05, momentum=0.9),
    )


def test_four_threads_predicting_at_once(backend_name, mnist_small):
    (x, y), (xt, _) = mnist_small
    model = _model(backend_name)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    expected = model.predict(xt)
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = model.predict(xt, batch_size=97)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        np.testing.assert_allclose(results[i], expected, rtol=1e-5, atol=1e-6)


def test_set_num_threads_bounds_every_pool():
    import numba
    from threadpoolctl import threadpool_info

    numba_before = numba.get_num_threads()  # starts numba's pool (OpenMP here)
    before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    with fastnn.set_num_threads(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
        assert numba.get_num_threads() == 1
    after = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    assert after == before
    assert numba.get_num_threads() == numba_before
    with pytest.raises(ValueError, match="n: expected a positive int"):
        fastnn.set_num_threads(0)


def test_results_do_not_depend_on_thread_count(backend_name, mnist_small):
    (x, y), _ = mnist_small
    runs = []
    for n in (1, 2):
        with fastnn.set_num_threads(n):
            model = _model(backend_name, dtype="float64")
            model.fit(x[:1000], y[:1000], epochs=1, batch_size=64, verbose=0)
            runs.append(model.params.copy())
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-10, atol=1e-12)


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_training_does_not_grow_memory(backend_name, mnist):
    (x, y), _ = mnist
    x, y = x[:6000], y[:6000]
    model = _model(backend_name, hidden=(512, 512, 512))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)  # warm up: buffers, JIT
    rss = []
    for _ in range(3):
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        rss.append(_rss_bytes())
    growth = max(rss) - rss[0]
    assert growth < 8 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB"


def test_extreme_weights_give_finite_probabilities(backend_name):
    model = _model(backend_name)
    w = model.get_weights()
    model.set_weights([a * 1e4 for a in w])
    x = np.random.default_rng(0).random((20, 784))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = model.predict(x)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    sig = fastnn.Sequential(
        [fastnn.Dense(4, activation="sigmoid"), fastnn.Dense(3, activation="tanh")],
        input_dim=784,
        loss="mse",
        backend=backend_name,
        seed=0,
    )
    sig.set_weights([a * 1e6 for a in sig.get_weights()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sig.predict(x)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1


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
