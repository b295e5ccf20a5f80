"""Time one MNIST epoch, float32, plain SGD with momentum, in fastnn and its peers.

    python -m benchmarks.peers.run_peers [--rounds 3] [--configs S L64 L256]

Every framework trains the same network (ReLU hidden layers, softmax
cross-entropy) on the same real MNIST arrays in memory, with the same batch
order (a NumPy permutation per epoch), batch size, learning rate 0.05,
momentum 0.9 and L2 1e-4, float32, in one run of this script, one after the
other, each framework in a fresh process of its own (so that no framework's
thread pool is still spinning while another is timed).
A warm-up epoch excludes compilation. Peers that are not installed are
reported as such (install: ``pip install torch==2.13.0 "jax[cpu]"
tensorflow-cpu scikit-learn``). Writes ``docs/peers.md`` and ``docs/peers.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

import fastnn
from fastnn import bench

CONFIGS = {
    "S": ([784, 128, 10], 64),
    "L64": ([784, 512, 512, 512, 10], 64),
    "L256": ([784, 512, 512, 512, 10], 256),
}
LR, MOMENTUM, WD = 0.05, 0.9, 1e-4


def _orders(n, rounds, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(rounds + 1)]


def time_fastnn(backend, sizes, bs, x, y, orders):
    model = bench.build_model({128: "S"}.get(sizes[1], "L64"), backend)
    times = []
    for order in orders:
        xs, ys = x[order], y[order]  # the same order; fastnn shuffles itself
        t = time.perf_counter()
        model.fit(xs, ys, epochs=1, batch_size=bs, verbose=0, shuffle=False)
        times.append(time.perf_counter() - t)
    return times[1:]


def time_torch(sizes, bs, x, y, orders):
    import torch

    torch.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-2], sizes[-1]))
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    times = []
    for order in orders:
        idx = torch.from_numpy(order)
        t = time.perf_counter()
        for s in range(0, len(order), bs):
            b = idx[s : s + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[b]), Y[b])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    return times[1:]


def time_jax(sizes, bs, x, y, orders):
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        lim = np.sqrt(6 / a)
        params.append(
            (
                jax.random.uniform(sub, (a, b), jnp.float32, -lim, lim),
                jnp.zeros(b, jnp.float32),
            )
        )
    vel = jax.tree_util.tree_map(jnp.zeros_like, params)

    def loss_fn(p, xb, yb):
        h = xb
        for W, b in p[:-1]:
            h = jax.nn.relu(h @ W + b)
        z = h @ p[-1][0] + p[-1][1]
        return -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(z.shape[0]), yb])

    def step(carry, batch):
        p, v = carry
        xb, yb = batch
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        g = [(gW + WD * W, gb) for (gW, gb), (W, _) in zip(g, p, strict=True)]
        v = jax.tree_util.tree_map(lambda vv, gg: MOMENTUM * vv + gg, v, g)
        p = jax.tree_util.tree_map(lambda pp, vv: pp - LR * vv, p, v)
        return (p, v), loss

    @jax.jit
    def epoch(p, v, xb, yb):
        (p, v), losses = jax.lax.scan(step, (p, v), (xb, yb))
        return p, v, losses

    n_full = (len(orders[0]) // bs) * bs  # lax.scan needs equal batches
    times = []
    X, Y = jnp.asarray(x), jnp.asarray(y)
    for order in orders:
        o = jnp.asarray(order[:n_full])
        t = time.perf_counter()
        xb = X[o].reshape(-1, bs, x.shape[1])
        yb = Y[o].reshape(-1, bs)
        params, vel, losses = epoch(params, vel, xb, yb)
        losses.block_until_ready()
        times.append(time.perf_counter() - t)
    return times[1:]


def time_keras(sizes, bs, x, y, orders):
    import keras

    model = keras.Sequential(
        [keras.Input((sizes[0],))]
        + [
            keras.layers.Dense(
                s, activation="relu", kernel_regularizer=keras.regularizers.L2(WD / 2)
            )
            for s in sizes[1:-1]
        ]
        + [keras.layers.Dense(sizes[-1])]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(LR, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    times = []
    for order in orders:
        t = time.perf_counter()
        model.fit(x[order], y[order], batch_size=bs, epochs=1, shuffle=False, verbose=0)
        times.append(time.perf_counter() - t)
    return times[1:]


def time_sklearn(sizes, bs, x, y, orders):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(sizes[1:-1]),
        solver="sgd",
        learning_rate_init=LR,
        momentum=MOMENTUM,
        alpha=WD,
        batch_size=bs,
        nesterovs_momentum=False,
        shuffle=False,
        max_iter=1,
    )
    classes = np.arange(10)
    times = []
    for order in orders:
        t = time.perf_counter()
        clf.partial_fit(x[order], y[order], classes=classes)
        times.append(time.perf_counter() - t)
    return times[1:]


PEERS = {
    "pytorch": time_torch,
    "jax": time_jax,
    "keras": time_keras,
    "sklearn": time_sklearn,
}


def _child(name, config, rounds):
    """Time one framework on one config in this (fresh) process; print JSON."""
    (x, y), _ = fastnn.datasets.load_mnist()
    y = y.astype(np.int64)
    orders = _orders(len(x), rounds)
    sizes, bs = CONFIGS[config]
    run = (
        partial(time_fastnn, name.removeprefix("fastnn-"))
        if name.startswith("fastnn-")
        else PEERS[name]
    )
    try:
        print(json.dumps({"times": run(sizes, bs, x, y, orders)}))
    except ImportError as err:
        print(json.dumps({"skipped": f"not installed ({err.name or err})"}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--peers", nargs="+", default=list(PEERS))
    parser.add_argument("--backends", nargs="+", default=["numba", "cython", "numpy"])
    parser.add_argument("--out", default="docs")
    parser.add_argument(
        "--child", nargs=2, metavar=("NAME", "CONFIG"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child, args.rounds)
    fastnn.datasets.load_mnist()  # fetch once, before the children read the cache
    results, skipped = {}, {}
    for config in args.configs:
        names = [f"fastnn-{b}" for b in args.backends] + list(args.peers)
        times = {}
        # There and back (A B C ... C B A): the machine's speed drifts over
        # minutes, and this spreads the drift evenly over the frameworks.
        for name in names + names[::-1]:
            if name in skipped:
                continue
            # A fresh process per framework: no thread pool of one (TensorFlow's,
            # PyTorch's OpenMP, XLA's) left spinning while another is timed.
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.peers.run_peers", "--child", name,
                 config, "--rounds", str(args.rounds)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            report = json.loads(out.strip().splitlines()[-1])
            if "skipped" in report:
                skipped[name] = report["skipped"]
                continue
            times.setdefault(name, []).extend(report["times"])
            print(f"{config:5s} {name:16s} {report['times']}", flush=True)
        results[config] = {n: statistics.median(t) for n, t in times.items()}
    write_report(results, skipped, Path(args.out))


def write_report(results, skipped, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    names = sorted({n for r in results.values() for n in r})
    lines = [
        "# fastnn against its peers: one MNIST epoch, float32, median seconds",
        "",
        "Each framework in a fresh process, timed twice (there and back through the",
        "list), 3 epochs after a warm-up each time: the median of 6 epochs.",
        "",
        "| framework | " + " | ".join(results) + " |",
        "| --- | " + " | ".join("---" for _ in results) + " |",
    ]
    for name in names:
        cells = []
        for r in results.values():
            if name not in r:
                cells.append("n/a")
                continue
            ratio = ""
            if "jax" in r:
                ratio = f" ({r[name] / r['jax']:.2f}x JAX)"
            cells.append(f"{r[name]:.3f}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if skipped:
        lines += [
            "",
            "Not measured: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items())),
        ]
    env = bench.environment_info()
    lines += [
        "",
        "Environment:",
        "",
        "```",
        json.dumps(env, indent=1, default=str),
        "```",
        "",
    ]
    from fastnn import io

    io.atomic_write(out / "peers.md", lambda f: f.write("\n".join(lines).encode()))
    _plot(results, out / "peers.png")
    print(f"wrote {out / 'peers.md'} and {out / 'peers.png'}")


def _plot(results, path):
    from matplotlib.figure import Figure

    from fastnn import io

    fig = Figure(figsize=(9, 4.3), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (config, r) in zip(axes, results.items(), strict=True):
        names = sorted(r, key=r.get)
        ax.barh(
            names,
            [r[n] for n in names],
            color=[
                "tab:green" if n.startswith("fastnn") else "tab:gray" for n in names
            ],
        )
        ax.set_title(config)
        ax.set_xlabel("seconds per epoch")
    fig.suptitle(
        "One MNIST epoch, float32: median seconds, lower is better (fastnn in green)",
        fontsize=10,
    )
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


if __name__ == "__main__":
    main()
