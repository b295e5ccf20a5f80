"""Reliability: threads, thread limits, memory, numerical stability, no pickle."""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from support.child import run_child

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

    for name, why in fastnn.available_backends().items():
        if why is None:  # load each backend, and with it its BLAS
            fastnn.backends.get_backend(name)
    numba_before = numba.get_num_threads()  # starts numba's pool (OpenMP here)
    if numba.threading_layer() == "omp":
        assert any(p["user_api"] == "openmp" for p in threadpool_info())
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


@pytest.mark.memory
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_training_does_not_grow_memory(backend_name, record_property):
    """Full MNIST, the L network (784-512-512-512-10) at batch 64: after a
    warm-up epoch, three more epochs leave resident memory where the first one
    left it, so nothing is allocated per batch and kept. In a child process, so
    that the peak (VmHWM) is this training's alone."""
    report = run_child("memory_growth", backend_name)
    rss = report["rss_mib"]
    growth = max(rss) - rss[0]
    record_property("peak_rss_mib", report["peak_mib"])
    record_property("rss_growth_mib", growth)
    print(
        f"\n{backend_name}: {report['samples']} samples, RSS after warm-up "
        f"{report['warm_up_mib']:.1f} MiB, after epochs "
        f"{', '.join(f'{r:.1f}' for r in rss)} MiB (growth {growth:.2f} MiB), "
        f"peak {report['peak_mib']:.1f} MiB, {report['seconds']:.1f} s for 4 epochs"
    )
    assert report["samples"] == 60_000
    assert growth < 8, f"resident memory grew by {growth:.1f} MiB over 3 epochs"


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


LOGITS = {
    "+-1e4": lambda rng, dt: 1e4 * rng.choice([-1.0, 1.0], (5, 3)),
    "near max": lambda rng, dt: np.finfo(dt).max * rng.uniform(0.99, 1, (5, 3)),
    "near -max": lambda rng, dt: -np.finfo(dt).max * rng.uniform(0.99, 1, (5, 3)),
}


@pytest.mark.parametrize("logits", list(LOGITS))
def test_extreme_logits_give_finite_loss_and_probabilities(backend_name, dtype, logits):
    # One softmax layer fed one-hot rows: the logits are exactly W's rows.
    model = fastnn.Sequential(
        [fastnn.Dense(3, activation="softmax")],
        input_dim=5,
        backend=backend_name,
        dtype=dtype,
        seed=0,
    )
    Z = LOGITS[logits](np.random.default_rng(0), dtype).astype(dtype)
    model.set_weights([Z, np.zeros(3, dtype)])
    x, y = np.eye(5, dtype=dtype), np.array([0, 1, 2, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = model.predict(x)
        loss = model.evaluate(x, y)["loss"]
        grad_loss, grads = model.loss_and_gradients(x, y)
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert np.isfinite(loss) and np.isfinite(grad_loss), (loss, grad_loss)
    assert all(np.isfinite(g).all() for g in grads)


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
