"""Throughput of data-parallel training on Dask against one process.

Not part of ``pytest --benchmark-only`` (it starts a cluster and takes a few
minutes); run it by hand::

    python benchmarks/distributed_throughput.py [--workers 2] [--samples 12800]
        [--output docs/distributed-measured.md]

For each network it times one epoch (after a warm-up epoch) on real MNIST:
single-process ``Sequential.fit`` with all threads and with one thread, and
``fastnn.distributed.fit`` with SyncSGD and LocalSGD(8) on ``--workers``
single-threaded workers of a LocalCluster. It also measures the scheduler's
round-trip latency (empty tasks) and the time to ship a parameter vector, the
two terms of the model in ``docs/distributed.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import fastnn
from fastnn import distributed as fd
from fastnn.io import atomic_write

CONFIGS = {
    "S (784-128-10, batch 64)": ((128,), 64),
    "L64 (784-512x3-10, batch 64)": ((512, 512, 512), 64),
    "L256 (784-512x3-10, batch 256)": ((512, 512, 512), 256),
    "L1024 (784-512x3-10, batch 1024)": ((512, 512, 512), 1024),
}


def build(hidden, backend):
    layers = [fastnn.Dense(h, activation="relu") for h in hidden]
    layers.append(fastnn.Dense(10, activation="softmax"))
    return fastnn.Sequential(
        layers,
        input_dim=784,
        optimizer=fastnn.SGD(0.05, momentum=0.9),
        backend=backend,
        seed=0,
    )


def epoch_seconds(train, model):
    train(model)  # warm-up: compile, caches, data on the workers
    start = time.perf_counter()
    train(model)
    return time.perf_counter() - start


def _noop(x):
    return 0


def latency(client, addresses, payload, repeats=40):
    """Median seconds of one round of one task per worker carrying ``payload``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        futures = [
            client.submit(_noop, payload, workers=[a], pure=False) for a in addresses
        ]
        client.gather(futures)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=12800)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    (x, y), _ = fastnn.datasets.load_mnist()
    x, y = x[: args.samples], y[: args.samples]
    n = len(x)
    rows = []
    with fd.connect(None, workers=args.workers) as (client, addresses):
        rtt = latency(client, addresses, 0)
        for name in args.configs:
            hidden, batch = CONFIGS[name]
            model = build(hidden, args.backend)
            params = np.zeros(model.n_params, np.float32)
            ship = latency(client, addresses, params)
            row = {"config": name, "params": model.n_params, "ship": ship}

            def local(m, batch=batch):
                m.fit(x, y, epochs=1, batch_size=batch, verbose=0)

            row["local"] = epoch_seconds(local, build(hidden, args.backend))
            with fastnn.set_num_threads(1):
                row["local1"] = epoch_seconds(local, build(hidden, args.backend))
            for key, strategy in (("sync", fd.SyncSGD()), ("local8", fd.LocalSGD(8))):

                def dist(m, batch=batch, strategy=strategy):
                    fd.fit(
                        m, x, y, client=client, strategy=strategy, epochs=1,
                        batch_size=batch, verbose=0,
                    )  # fmt: skip

                row[key] = epoch_seconds(dist, build(hidden, args.backend))
            rows.append(row)
            print(row, flush=True)

    backend = build((8,), args.backend).backend
    lines = [
        f"Measured by `benchmarks/distributed_throughput.py` on {n} MNIST samples, "
        f"backend {backend}, float32, {args.workers} single-threaded Dask "
        f"workers of a LocalCluster on the same machine ({os.cpu_count()} cores, "
        f"{platform.machine()}, Python {sys.version.split()[0]}). Samples/s of "
        "one epoch after a warm-up epoch.",
        "",
        f"Scheduler round trip (one empty task per worker): {1e3 * rtt:.2f} ms.",
        "",
        "| network | params | ship params (ms) | 1 process, all threads | "
        "1 process, 1 thread | SyncSGD | LocalSGD(8) | SyncSGD / 1 process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = {k: n / r[k] for k in ("local", "local1", "sync", "local8")}
        lines.append(
            f"| {r['config']} | {r['params']:,} | {1e3 * r['ship']:.2f} | "
            f"{rate['local']:,.0f} | {rate['local1']:,.0f} | {rate['sync']:,.0f} | "
            f"{rate['local8']:,.0f} | {rate['sync'] / rate['local']:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        atomic_write(Path(args.output), lambda f: f.write(text.encode()))
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
