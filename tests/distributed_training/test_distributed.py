"""Data-parallel training and sweeps on Dask (fastnn.distributed).

One module-wide LocalCluster of 2 single-threaded worker processes; the
3-worker test starts its own through ``client=None``.
"""

from __future__ import annotations

import os
import signal

import distributed
import numpy as np
import pytest
from support.backends import skip_unless_blas_threads
from support.child import run_program

import fastnn
from fastnn import _compose
from fastnn import _data_parallel as dp
from fastnn import distributed as fd
from fastnn.contract import TrainingData

RNG = np.random.default_rng(7)
X = RNG.random((150, 12))
Y = RNG.integers(0, 4, 150)


def _build(backend="numpy", seed=0, hidden=16, dtype="float64", lr=0.1, wd=1e-3,
           optimizer=None, dropout=0.0):  # fmt: skip
    if optimizer is None:
        optimizer = fastnn.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd)
    return fastnn.Sequential(
        [
            fastnn.Dense(hidden, activation="tanh"),
            *([fastnn.Dropout(dropout)] if dropout else []),
            fastnn.Dense(4, activation="softmax"),
        ],
        input_dim=X.shape[1],
        optimizer=optimizer,
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


# ------------------------------------------------------------- the maths
@pytest.mark.parametrize("ranks", [1, 2, 3, 5, 23])
def test_combined_gradient_sums_equal_the_full_batch_gradient(backend_name, ranks):
    model = _build(backend_name)
    plan = model.training_plan(23)
    data = TrainingData(X, Y, None, model.loss, model.n_outputs)
    idx = np.arange(23, dtype=np.int64) * 3  # 23 samples: every split is uneven
    parts = dp.split_batch(idx, ranks)
    assert sorted({p.shape[0] for p in parts}) in (
        [23 // ranks],
        [23 // ranks, 23 // ranks + 1],
    )
    results = [
        dp.gradient_sum(model.kernels, plan, data, p, model.params) for p in parts
    ]
    combined = np.empty_like(model.params)
    data_loss = dp.combine_gradient_sums(results, idx.shape[0], combined)
    # L2 is added once, by the driver's update (as model.loss_and_gradients does).
    wd = model.optimizer.weight_decay
    l2 = _compose.add_weight_decay(model.params, combined, wd, model.decay_spans)
    loss, expected = model.loss_and_gradients(X[idx], Y[idx])
    got = [a.copy() for a in model.get_weights()]
    for l in range(len(model.dense_layers)):
        W, b = _compose.layer_views(combined, model.layout, l)
        got[2 * l], got[2 * l + 1] = W, b
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    assert abs(data_loss + l2 - loss) <= 1e-12 * abs(loss)


@pytest.mark.parametrize("ranks", [2, 5])
def test_rank_slices_keep_the_whole_batchs_dropout_masks(backend_name, ranks):
    """With dropout, each rank's slice takes the rows of the masks the whole
    batch gets (``row_offset``), so the combined gradient is the batch's."""
    model = _build(backend_name, dropout=0.5)
    plan = model.training_plan(23)
    data = TrainingData(X, Y, None, model.loss, model.n_outputs)
    idx = np.arange(23, dtype=np.int64) * 3
    parts = dp.split_batch(idx, ranks)
    offsets = np.cumsum([0] + [p.shape[0] for p in parts])
    results = [
        dp.gradient_sum(model.kernels, plan, data, p, model.params, 17, int(o))
        for p, o in zip(parts, offsets, strict=False)
    ]
    combined = np.empty_like(model.params)
    data_loss = dp.combine_gradient_sums(results, idx.shape[0], combined)
    whole = np.empty_like(model.params)
    want = _compose.data_loss_and_gradients(
        model.kernels, X[idx], Y[idx], None, model.params, whole, model.layout,
        model.loss, dropout=(plan, 17, 0),
    )  # fmt: skip
    np.testing.assert_allclose(combined, whole, rtol=1e-12, atol=1e-14)
    assert abs(data_loss - want) <= 1e-12 * abs(want)
    other = np.empty_like(model.params)
    _compose.data_loss_and_gradients(
        model.kernels, X[idx], Y[idx], None, model.params, other, model.layout,
        model.loss, dropout=(plan, 18, 0),
    )  # fmt: skip
    assert np.abs(other - whole).max() > 1e-6  # another step, other masks


def test_weighted_average_of_one_rank_is_that_rank():
    a = RNG.standard_normal(50)
    out = np.empty_like(a)
    dp.weighted_average([a], [7], out)
    assert np.array_equal(out, a)
    dp.weighted_average([a, 3 * a], [1, 3], out)
    np.testing.assert_allclose(out, 2.5 * a, rtol=1e-15)


# ------------------------------------------------------ against model.fit
#: Optimizers (and dropout) the cluster runs like fit.
RUNS = {
    "sgd": {},
    "adam_dropout": {"optimizer": fastnn.Adam(0.01, weight_decay=1e-3), "dropout": 0.3},
    "rmsprop": {"optimizer": fastnn.RMSprop(0.001, momentum=0.5, centered=True)},
}


@pytest.mark.parametrize("run", list(RUNS))
def test_one_worker_is_bit_identical_to_fit(client, backend_name, run):
    # Workers run one BLAS/numba thread: pin the driver's fit to one as well,
    # or a multithreaded BLAS (or the cython backend's split step) would sum
    # in another order.
    local = _build(backend_name, **RUNS[run])
    with fastnn.set_num_threads(1):
        local.fit(X, Y, epochs=3, batch_size=32, verbose=0)
    for strategy in (fd.SyncSGD(), fd.LocalSGD(sync_every=4)):
        model = _build(backend_name, **RUNS[run])
        history = fd.fit(
            model,
            X,
            Y,
            client=client,
            workers=1,
            strategy=strategy,
            epochs=3,
            batch_size=32,
            verbose=0,
        )
        assert np.array_equal(model.params, local.params), strategy
        assert np.array_equal(model.slots, local.slots), strategy
        assert history.history["loss"] == local.history.history["loss"]
        assert (model.epoch, model.step) == (local.epoch, local.step)


@pytest.mark.parametrize("run", list(RUNS))
def test_two_workers_sync_sgd_match_fit(client, backend_name, run):
    local = _build(backend_name, **RUNS[run])
    local.fit(X, Y, epochs=3, batch_size=32, verbose=0)
    model = _build(backend_name, **RUNS[run])
    history = fd.fit(
        model, X, Y, client=client, workers=2, epochs=3, batch_size=32, verbose=0
    )
    assert _relative(model.params, local.params) < 1e-10
    assert _relative(model.slots, local.slots) < 1e-9
    assert model.step == local.step
    np.testing.assert_allclose(
        history.history["loss"], local.history.history["loss"], rtol=1e-10
    )
    if run != "sgd":
        return  # an average of Adam's (or RMSprop's) steps is not its step
    # Local SGD that averages after every step is synchronous SGD.
    every_step = _build(backend_name)
    fd.fit(
        every_step,
        X,
        Y,
        client=client,
        workers=2,
        strategy=fd.LocalSGD(sync_every=1),
        epochs=3,
        batch_size=32,
        verbose=0,
    )
    assert _relative(every_step.params, model.params) < 1e-10
    assert _relative(every_step.slots, model.slots) < 1e-10


def test_three_workers_on_a_new_local_cluster_match_fit():
    """``client=None`` starts (and closes) a LocalCluster of 3 workers."""
    reference = {}
    for backend in fastnn.available_backends():
        if fastnn.available_backends()[backend] is None:
            local = _build(backend)
            local.fit(X, Y, epochs=3, batch_size=32, verbose=0)
            reference[backend] = local.params
    assert "numpy" in reference
    models = {b: _build(b) for b in reference}
    with fd.connect(None, workers=3) as (c, addresses):
        assert len(addresses) == 3
        for model in models.values():
            fd.fit(model, X, Y, client=c, epochs=3, batch_size=32, verbose=0)
    for backend, model in models.items():
        assert _relative(model.params, reference[backend]) < 1e-10, backend


class _Delay(distributed.WorkerPlugin):
    """Slows one worker's tasks down, so that ranks finish in a chosen order."""

    name = "test-delay"

    def __init__(self, slow_address):
        self.slow = slow_address

    def transition(self, key, start, finish, **kwargs):
        import time

        if finish == "executing" and self.worker.address == self.slow:
            time.sleep(0.01)

    def setup(self, worker):
        self.worker = worker


def test_runs_are_bit_identical_whatever_order_workers_finish(client):
    workers = sorted(client.nthreads())  # (see fastnn.distributed.cluster)
    params = []
    for slow in workers:
        client.register_plugin(_Delay(slow))
        model = _build("numpy")
        fd.fit(model, X, Y, client=client, epochs=2, batch_size=40, verbose=0)
        params.append(model.params)
        client.unregister_worker_plugin("test-delay")
    assert np.array_equal(params[0], params[1])


def test_local_sgd_every_8_steps_is_within_2_points_of_fit(client, mnist):
    (x, y), (xt, yt) = mnist
    x, y = x[:12000], y[:12000]

    def build():
        return fastnn.Sequential(
            [
                fastnn.Dense(64, activation="relu"),
                fastnn.Dense(10, activation="softmax"),
            ],
            input_dim=784,
            optimizer=fastnn.SGD(0.05, momentum=0.9),
            backend="numpy",
            seed=3,
        )

    local = build()
    local.fit(x, y, epochs=2, batch_size=64, verbose=0)
    model = build()
    fd.fit(
        model,
        x,
        y,
        client=client,
        strategy=fd.LocalSGD(sync_every=8),
        epochs=2,
        batch_size=64,
        verbose=0,
    )
    single = local.evaluate(xt, yt)["accuracy"]
    parallel = model.evaluate(xt, yt)["accuracy"]
    assert single > 0.9
    assert parallel >= single - 0.02, (parallel, single)


# ----------------------------------------------------------- failures
class _KillAWorker(fastnn.Callback):
    def __init__(self, client, at_step):
        self.client, self.at_step, self.killed = client, at_step, False

    def on_batch_end(self, batch, logs=None):
        if not self.killed and self.model.step >= self.at_step:
            pids = self.client.run(os.getpid)
            os.kill(sorted(pids.values())[-1], signal.SIGKILL)
            self.killed = True


def test_a_killed_worker_completes_the_same_or_resumes_exactly(client, tmp_path):
    x = np.concatenate([X] * 4)
    y = np.concatenate([Y] * 4)
    expected = _build("numpy")
    fd.fit(expected, x, y, client=client, epochs=2, batch_size=8, verbose=0)

    model = _build("numpy")
    # 600 samples at batch 8: 75 steps an epoch. Kill in the second epoch,
    # after the first epoch's checkpoint: a resume must start from it.
    killer = _KillAWorker(client, at_step=75 + 11)
    checkpoint = tmp_path / "ckpt.npz"
    outcome = "completed through Dask"
    try:
        fd.fit(
            model,
            x,
            y,
            client=client,
            epochs=2,
            batch_size=8,
            verbose=0,
            callbacks=[killer],
            checkpoint=checkpoint,
        )
    except fd.WorkerLostError as err:  # Dask could not recover: resume exactly
        outcome = "WorkerLostError, resumed"
        assert str(checkpoint) in str(err)
        from fastnn import io

        assert io.read_state(checkpoint)["epoch"] == 1  # not a retrain from 0
        client.wait_for_workers(2, timeout=60)
        model = _build("numpy", seed=99)  # everything must come from the file
        history = fd.fit(
            model, x, y, client=client, epochs=2, batch_size=8, verbose=0,
            resume=checkpoint,
        )  # fmt: skip
        assert history.epoch == [0, 1]
    assert killer.killed
    print(f"\nworker killed at step {killer.at_step}: {outcome}")
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed one
    assert np.array_equal(model.params, expected.params)


def test_resume_from_a_driver_checkpoint_is_exact(client, tmp_path):
    expected = _build("numpy")
    fd.fit(expected, X, Y, client=client, epochs=3, batch_size=16, verbose=0)
    checkpoint = tmp_path / "ckpt.npz"
    first = _build("numpy")
    fd.fit(
        first,
        X,
        Y,
        client=client,
        epochs=1,
        batch_size=16,
        verbose=0,
        checkpoint=checkpoint,
    )
    resumed = _build("numpy", seed=99)  # different init: everything comes from the file
    history = fd.fit(
        resumed,
        X,
        Y,
        client=client,
        epochs=3,
        batch_size=16,
        verbose=0,
        resume=checkpoint,
    )
    assert resumed.epoch == 3
    assert np.array_equal(resumed.params, expected.params)
    assert history.epoch == [0, 1, 2]
    timing = ("seconds", "samples_per_second")
    assert {k: v for k, v in history.history.items() if k not in timing} == {
        k: v for k, v in expected.history.history.items() if k not in timing
    }


def test_too_many_workers_is_a_value_error(client):
    client.wait_for_workers(2, timeout=60)
    model = _build("numpy")
    with pytest.raises(ValueError, match=r"workers: expected at most the 2 workers"):
        fd.fit(model, X, Y, client=client, workers=3, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"workers: expected at most batch_size \(2\)"):
        fd.fit(model, X, Y, client=client, workers=3, batch_size=2, verbose=0)
    with pytest.raises(ValueError, match=r"at most batch_size \(1\).*cluster has 2"):
        fd.fit(model, X, Y, client=client, batch_size=1, verbose=0)
    with pytest.raises(TypeError, match="strategy: expected"):
        fd.fit(model, X, Y, client=client, strategy="sync", verbose=0)
    with pytest.raises(ValueError, match="sync_every: expected an int >= 1"):
        fd.LocalSGD(sync_every=0)
    with pytest.raises(TypeError, match="client: expected None, a scheduler address"):
        fd.fit(model, X, Y, client=3, verbose=0)
    assert model.step == 0


# --------------------------------------------------------------- sweeps
def _sweep_model(seed, lr, hidden, backend="numpy"):
    if lr > 1:
        raise ValueError("lr: this trial is meant to fail")
    return _build(backend, seed=seed, hidden=hidden, lr=lr)


def test_sweep_equals_a_sequential_loop(client, tmp_path):
    grid = {"lr": [0.05, 0.2, 5.0], "hidden": [8, 16]}
    result = fd.sweep(
        _sweep_model,
        X,
        Y,
        grid=grid,
        seeds=[0, 1],
        client=client,
        epochs=2,
        batch_size=16,
        validation_data=(X[:50], Y[:50]),
    )
    assert len(result) == 12
    failed = [r for r in result if r["status"] == "failed"]
    assert len(failed) == 4 and all(r["lr"] == 5.0 for r in failed)
    assert all("meant to fail" in r["error"] for r in failed)
    with fastnn.set_num_threads(1):
        for record in result:
            if record["lr"] == 5.0:
                continue
            model = _sweep_model(record["seed"], record["lr"], record["hidden"])
            h = model.fit(
                X,
                Y,
                epochs=2,
                batch_size=16,
                validation_data=(X[:50], Y[:50]),
                verbose=0,
            )
            assert record["loss"] == h.history["loss"][-1]
            assert record["val_accuracy"] == h.history["val_accuracy"][-1]
    best = result.best()
    assert best["lr"] in (0.05, 0.2) and best["trials"] == 2
    assert "| lr | hidden | seed | status |" in result.to_markdown()
    result.to_json(tmp_path / "sweep.json")
    png = result.plot(tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _markdown_rows(result):
    lines = result.to_markdown().splitlines()[2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_sweep_markdown_has_fixed_decimals_per_column():
    """0.808 next to 0.8171 reads as 0.8080 and 0.8171."""
    records = [
        {"lr": 0.1, "hidden": 8, "seed": 0, "status": "ok", "loss": 0.25,
         "accuracy": 0.9, "val_loss": 0.3, "val_accuracy": 0.808, "seconds": 2.0},
        {"lr": 0.05, "hidden": 16, "seed": 1, "status": "ok", "loss": 0.1234567,
         "accuracy": 0.95, "val_loss": 0.27, "val_accuracy": 0.8171,
         "seconds": 11.04},
        {"lr": 1e-12, "hidden": 16, "seed": 0, "status": "failed",
         "error": "ValueError: a | b"},
    ]  # fmt: skip
    rows = _markdown_rows(fd.SweepResult(records, ["lr", "hidden"], "val_accuracy"))
    assert rows == [
        ["0.1", "8", "0", "ok", "0.2500", "0.9000", "0.3000", "0.8080", "2.0", ""],
        ["0.05", "16", "1", "ok", "0.1235", "0.9500", "0.2700", "0.8171", "11.0", ""],
        ["1e-12", "16", "0", "failed", "", "", "", "", "", "ValueError: a / b"],
    ]
    # A float parameter gets the decimals of its most precise value (up to 8;
    # 1e-12 above needs more, so that column is written as Python writes it).
    rows = _markdown_rows(fd.SweepResult(records[:2], ["lr", "hidden"], "val_accuracy"))
    assert [row[0] for row in rows] == ["0.10", "0.05"]


def test_sweep_json_reads_back_as_the_records(tmp_path):
    records = [
        {"lr": 0.1, "hidden": [8, 4], "seed": 0, "status": "ok", "error": None,
         "loss": 0.25, "val_accuracy": 0.808, "epochs": 2, "seconds": 2.0},
        {"lr": 5.0, "hidden": [16], "seed": 1, "status": "failed",
         "error": "FloatingPointError: training diverged", "seconds": 0.5},
    ]  # fmt: skip
    path = tmp_path / "sweep.json"
    fd.SweepResult(records, ["lr", "hidden"], "val_accuracy").to_json(path)
    import json

    assert json.loads(path.read_text()) == records
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_sweep_rejects_bad_arguments(client):
    with pytest.raises(TypeError, match="build_model: expected a callable"):
        fd.sweep(3, X, Y, grid={"lr": [0.1]}, client=client)
    with pytest.raises(TypeError, match="grid: expected a non-empty dict"):
        fd.sweep(_sweep_model, X, Y, grid={}, client=client)
    with pytest.raises(ValueError, match=r"grid\['lr'\]: expected at least one value"):
        fd.sweep(_sweep_model, X, Y, grid={"lr": []}, client=client)
    with pytest.raises(ValueError, match="seeds: expected at least one seed"):
        fd.sweep(_sweep_model, X, Y, grid={"lr": [0.1]}, seeds=[], client=client)


def test_without_dask_fastnn_imports_and_distributed_says_how_to_install():
    run = run_program("distributed_without_dask")
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert 'pip install "fastnn[distributed]"' in out


# ------------------------------------------------------------------ CLI
def test_cli_train_and_sweep_on_the_cluster(client, tmp_path, capsys):
    from fastnn import cli

    address = client.scheduler.address
    status = cli.main(
        ["train", "--scheduler", address, "--strategy", "local", "--sync-every", "4",
         "--limit", "1200", "--hidden", "32", "--epochs", "1", "--backend", "numpy",
         "--no-plots", "-q", "-o", str(tmp_path / "train")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    assert "test accuracy:" in out
    assert fastnn.load(tmp_path / "train" / "model.npz").epoch == 1

    status = cli.main(
        ["sweep", "--scheduler", address, "--limit", "1500", "--hidden", "16", "32",
         "--learning-rate", "0.05", "0.1", "--seeds", "0", "1", "--epochs", "1",
         "--backend", "numpy", "-o", str(tmp_path / "sweep")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.count("| ok |") == 8
    assert "best: learning_rate=" in out
    for name in ("sweep.md", "sweep.json", "sweep.png"):
        assert (tmp_path / "sweep" / name).stat().st_size > 0


def test_cli_rejects_more_workers_than_the_batch(tmp_path, capsys):
    from fastnn import cli

    status = cli.main(
        ["train", "--workers", "9", "--batch-size", "8", "-o", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "--workers" in err and "--batch-size" in err


def _thread_limits():
    from threadpoolctl import threadpool_info

    return sorted({pool["num_threads"] for pool in threadpool_info()})


def _two_threads():
    from threadpoolctl import threadpool_limits

    threadpool_limits(2)
    return _thread_limits()


def test_every_worker_is_pinned_to_one_thread(client):
    skip_unless_blas_threads(2)
    # Dask's nanny starts workers with OMP/OPENBLAS_NUM_THREADS=1; undo that
    # first, so the test sees fastnn's own pinning at work.
    assert all(v == [2] for v in client.run(_two_threads).values())
    with fd.connect(client) as (c, addresses):
        assert len(addresses) == 2
        limits = c.run(_thread_limits)
    assert set(limits) == set(addresses)
    assert all(v == [1] for v in limits.values()), limits
