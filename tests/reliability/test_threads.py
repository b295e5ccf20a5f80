"""Threads: a model predicting from four threads at once, every compiled
backend's kernels called from four threads at once, the thread limit
(``set_num_threads``) bounding every pool, and results that do not depend on
the thread count. (The cython backend's own split of a step over threads:
kernels/test_split_threads.py.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from support.models import mnist_model
from support.nets import small_net, train_small_net
from support.tolerance import assert_close

import fastnn
from fastnn import reference as ref


def test_four_threads_predicting_at_once(backend_name, mnist_small):
    (x, y), (xt, _) = mnist_small
    model = mnist_model(backend_name)
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
            model = mnist_model(backend_name, dtype="float64")
            model.fit(x[:1000], y[:1000], epochs=1, batch_size=64, verbose=0)
            runs.append(model.params.copy())
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-10, atol=1e-12)


def test_concurrent_calls_from_threads(compiled_backend):
    """Four Python threads calling a compiled backend's kernels at once (they
    release the GIL) each get the reference's results."""
    net = small_net(np.float64, seed=4)  # X, labels, order, params, layout, spans
    rng = np.random.default_rng(5)
    Xbig = rng.standard_normal((256, 300))
    Wbig = rng.standard_normal((300, 200)) / 20
    b = rng.standard_normal(200)
    expected_A = ref.dense_forward(Xbig, Wbig, b, 2, np.empty((256, 200)))
    expected_train = train_small_net(ref, *net)

    def work(i):
        out = []
        for _ in range(10):
            A = compiled_backend.dense_forward(Xbig, Wbig, b, 2, np.empty((256, 200)))
            out.append((A, train_small_net(compiled_backend, *net)))
        return out

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    for per_thread in results:
        for A, (done, p, losses) in per_thread:
            assert_close(A, expected_A, np.float64)
            assert done == expected_train[0]
            assert_close(p, expected_train[1], np.float64)
            assert_close(losses, expected_train[2], np.float64)
