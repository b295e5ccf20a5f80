"""Paired, interleaved epoch timing: the comparison that machine drift can't fake.

    python -m benchmarks.paired --config L64 cython numba
    python -m benchmarks.paired --config L256 cython cython@/path/to/old/checkout

On these shared machines an epoch's time drifts by up to 2x within minutes,
so blocks of epochs measured one contender after the other are not
comparable. Here every contender runs in its own persistent process (warm:
data loaded, model built, one warm-up epoch done), and the driver asks them
for single epochs in an alternating order, A B B A A B ..., with a short pause
between, so that each pair of epochs meets the same machine. The result is
the median of the per-pair time ratios (second contender over the first),
with its quartiles, and each contender's median epoch.

A contender is ``BACKEND`` (this checkout) or ``BACKEND@PATH``: the backend of
the fastnn checkout at PATH (its extensions built in place), to measure a
change before and after; ``+dropout=RATE`` (a Dropout after every hidden
layer) and ``+optimizer=NAME`` (its defaults, its own rate included)
change its model, e.g. ``cython cython+dropout=0.2`` for dropout's cost;
``+gemm=own|blas|auto`` sets the training loop's float32 GEMM
(``gemm_policy`` of ``cython_backend`` or ``numba_backend``).
Every contender trains the same configuration (``fastnn.bench.CONFIGS``),
float32 unless ``--dtype``, on the real MNIST, each epoch on the same data in
a fresh order.

The contender ``floor`` is the compute floor of that epoch, measured the same
way: its process does the epoch's GEMM FLOPs (``fastnn.bench.epoch_flops``)
as whole 2048 x 2048 x 2048 products (``np.dot``, BLAS on all its threads,
the dtype's GEMM) and reports their time scaled to the exact FLOPs. So

    python -m benchmarks.paired --config L64 floor cython

gives the epoch's ratio to the floor, each epoch set against the machine's
large-GEMM rate over the same seconds: a rate taken as the best of a few
short bursts minutes apart would set an average epoch against the machine's
quietest moment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The worker: builds the model, warms it up, then times one epoch per line
#: read from stdin and answers each with a JSON line {"seconds": ...}.
WORKER = r"""
import json, sys, time
import numpy as np
import fastnn
from fastnn import bench

backend, config, dtype = sys.argv[1:4]
samples = int(sys.argv[4])
options = json.loads(sys.argv[5])
(x, y), _ = fastnn.datasets.load_mnist(dtype=dtype)
if samples:
    x, y = x[:samples], y[:samples]
if backend == "floor":  # the epoch's GEMM FLOPs as large BLAS products
    n = 2048
    a, b = np.random.default_rng(0).random((2, n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    flops = bench.epoch_flops(config, x.shape[0])
    count = max(1, round(flops / (2.0 * n**3)))
    np.dot(a, b, out=out)  # BLAS's threads started, caches warm
    print(json.dumps({"ready": np.__file__}), flush=True)
    for line in sys.stdin:
        t = time.perf_counter()
        for _ in range(count):
            np.dot(a, b, out=out)
        seconds = (time.perf_counter() - t) * flops / (count * 2.0 * n**3)
        print(json.dumps({"seconds": seconds}), flush=True)
    sys.exit(0)
model = bench.build_model(config, backend, dtype=dtype)
if "gemm" in options:  # the training loop's float32 GEMM policy
    from fastnn._kernels import cython_backend, numba_backend
    kernels = numba_backend if backend == "numba" else cython_backend
    kernels.gemm_policy(options.pop("gemm"))
if options:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if float(options.get("dropout", 0)) and layer is not model.layers[-1]:
            layers.append(fastnn.Dropout(float(options["dropout"])))
    optimizer = model.optimizer
    if "optimizer" in options:  # at its own default rate
        optimizer = fastnn.optimizers.get(options["optimizer"])
    model = fastnn.Sequential(layers, input_dim=model.input_dim,
                              optimizer=optimizer, backend=backend, dtype=dtype,
                              seed=0)
batch = bench.CONFIGS[config].batch_size
model.fit(x, y, epochs=1, batch_size=batch, verbose=0)  # warm-up
print(json.dumps({"ready": fastnn.__file__}), flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
    print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
"""


def parse_contender(contender: str) -> tuple[str, str, dict]:
    """``BACKEND[@PATH][+KEY=VALUE...]`` -> ``(backend, path, options)``."""
    head, *extras = contender.split("+")
    backend, _, path = head.partition("@")
    options = {}
    for extra in extras:
        key, sep, value = extra.partition("=")
        if not sep or key not in ("dropout", "optimizer", "gemm"):
            raise SystemExit(
                f"contender {contender!r}: expected +dropout=RATE, "
                f"+optimizer=NAME or +gemm=POLICY; received +{extra}"
            )
        options[key] = value
    if backend == "floor" and (path or options):
        raise SystemExit(
            f"contender {contender!r}: floor is the machine's GEMM rate; it takes "
            "no @PATH or +KEY=VALUE"
        )
    return backend, path, options


def _spawn(contender: str, config: str, dtype: str, samples: int):
    backend, path, options = parse_contender(contender)
    env = dict(os.environ)
    root = Path(path).resolve() if path else ROOT
    if not (root / "fastnn" / "__init__.py").is_file():
        raise SystemExit(f"contender {contender!r}: no fastnn checkout at {root}")
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            backend,
            config,
            dtype,
            str(samples),
            json.dumps(options),
        ],  # fmt: skip
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    ready = json.loads(proc.stdout.readline() or "{}")
    if "ready" not in ready:
        raise SystemExit(f"contender {contender!r} failed to start")
    return proc, ready["ready"]


def _epoch(proc) -> float:
    proc.stdin.write("epoch\n")
    proc.stdin.flush()
    return float(json.loads(proc.stdout.readline())["seconds"])


def pair_order(pairs: int) -> list[tuple[int, int]]:
    """A B, B A, A B, ...: which contender runs first in each pair, alternating,
    so neither always runs right after the pause."""
    return [(0, 1) if i % 2 == 0 else (1, 0) for i in range(pairs)]


def summarize(first: list[float], second: list[float]) -> dict:
    """Per-pair ratios ``second / first``: median and quartiles, and each
    contender's median epoch."""
    if len(first) != len(second) or not first:
        raise ValueError(
            "first, second: expected equal, non-empty lists of epoch times; "
            f"received {len(first)} and {len(second)}"
        )
    ratios = sorted(b / a for a, b in zip(first, second, strict=True))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    # Of two ratios the (exclusive) quartiles extrapolate past them, below
    # zero even: keep them within the ratios measured.
    q = [min(max(v, ratios[0]), ratios[-1]) for v in q]
    return {
        "pairs": len(ratios),
        "ratio_median": statistics.median(ratios),
        "ratio_q1": q[0],
        "ratio_q3": q[2],
        "first_median_s": statistics.median(first),
        "second_median_s": statistics.median(second),
    }


def run(contenders, config="L64", dtype="float32", pairs=10, pause=0.5, samples=0):
    """Time ``pairs`` interleaved pairs of epochs of two contenders."""
    procs = [_spawn(c, config, dtype, samples) for c in contenders]
    times = ([], [])
    try:
        for order in pair_order(pairs):
            for i in order:
                times[i].append(_epoch(procs[i][0]))
                time.sleep(pause)
    finally:
        for proc, _ in procs:
            proc.stdin.close()
            proc.wait(timeout=60)
    result = summarize(*times)
    result.update(
        contenders=list(contenders),
        modules=[where for _, where in procs],
        config=config,
        dtype=dtype,
        samples=samples or None,
        epochs=[list(t) for t in times],
        environment={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",)},
    )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("contenders", nargs=2, metavar="BACKEND[@CHECKOUT]")
    parser.add_argument("--config", default="L64", choices=("S", "L64", "L256"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds between epochs"
    )
    parser.add_argument("--samples", type=int, default=0, help="0: all 60,000")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs: expected an int >= 1; received {args.pairs}")
    result = run(
        args.contenders, args.config, args.dtype, args.pairs, args.pause, args.samples
    )
    a, b = args.contenders
    print(
        f"{args.config} {args.dtype}, {result['pairs']} pairs: {b} / {a} = "
        f"{result['ratio_median']:.3f} (quartiles {result['ratio_q1']:.3f}-"
        f"{result['ratio_q3']:.3f}); median epoch {a} "
        f"{result['first_median_s']:.3f} s, {b} {result['second_median_s']:.3f} s"
    )
    if args.json:
        from fastnn.io import atomic_write

        text = json.dumps(result, indent=1) + "\n"
        atomic_write(args.json, lambda f: f.write(text.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
