"""Time one MNIST epoch, float32, plain SGD with momentum, in fastnn and its
peers, paired against a reference so that the machine's drift cancels.

    python -m benchmarks.peers.run_peers [--pairs 7] [--configs S L64 L256]
        [--reference fastnn-cython] [--peers pytorch jax keras sklearn]
        [--backends numba cython numpy] [--pause 0.5] [--samples 0]
        [--out docs] [--json peers.json]

Every framework (``frameworks.py``) trains the same network on the same real
MNIST arrays with the same hyper-parameters, each in its own persistent
process (``workers.py``), set up once and warmed up by one epoch. Per
configuration, all its workers start together; then, for each pair and each
peer, the reference and the peer train one epoch each, adjacent, in the same
batch order, the first of the two alternating by pair, with a pause after
every epoch (``pairing.py``). The workers end before the next
configuration's start. On these machines an epoch's time drifts by up to 2x
within minutes, so epochs measured in blocks minutes apart are not
comparable; the two epochs of a pair are. Peers that are not installed are
reported as such (install: ``pip install torch==2.13.0 "jax[cpu]"
tensorflow-cpu scikit-learn``). Writes ``OUT/peers.md`` and
``OUT/peers.png`` (``report.py``) and, with ``--json``, every pair's times.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from benchmarks.peers import frameworks, pairing, report, workers
from fastnn import bench

__all__ = ["main", "measure"]


def measure(names, configs, reference, pairs, pause, spawn=workers.Worker, log=print):
    """Pair every framework of ``names`` with ``reference`` (first in
    ``names``) on each of ``configs``; ``spawn(name, config)`` returns a
    started worker (:class:`workers.Worker`). Returns the run that
    ``report.write_report`` takes, less its environment."""
    run = {"reference": reference, "pairs": pairs, "pause": pause,
           "configs": {}, "skipped": {}, "versions": {}}  # fmt: skip
    for config in configs:
        live = {}
        try:
            for name in names:  # all at once: their set-ups overlap
                if name not in run["skipped"]:
                    live[name] = spawn(name, config)
            for name in list(live):
                hello = live[name].start()
                if "skipped" in hello:
                    run["skipped"][name] = hello["skipped"]
                    live.pop(name).close()
                    log(f"{config:5s} {name}: {hello['skipped']}")
                else:
                    run["versions"][name] = hello.get("version")
            if reference not in live:
                raise SystemExit(
                    f"--reference: {reference} could not be measured: "
                    f"{run['skipped'].get(reference)}"
                )
            log(f"{config:5s} ready: {', '.join(live)}")
            peers = {n: w.epoch for n, w in live.items() if n != reference}
            raw = pairing.run_pairs(live[reference].epoch, peers, pairs, pause,
                                    log=log)  # fmt: skip
        finally:
            for worker in live.values():
                worker.close()
        run["configs"][config] = {
            "raw": raw,
            "summary": pairing.summary_rows(raw, reference),
        }
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--configs", nargs="+", default=list(bench.CONFIGS),
                        choices=list(bench.CONFIGS))  # fmt: skip
    parser.add_argument("--peers", nargs="+", default=list(frameworks.PEERS),
                        choices=list(frameworks.PEERS))  # fmt: skip
    parser.add_argument("--backends", nargs="+", default=["numba", "cython", "numpy"])
    parser.add_argument("--reference", default="fastnn-cython")
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds after every epoch"
    )
    parser.add_argument(
        "--samples", type=int, default=0, help="training images (0: all 60,000)"
    )
    parser.add_argument("--out", default="docs")
    parser.add_argument("--json", default=None, help="also write every pair here")
    parser.add_argument(
        "--worker", nargs=2, metavar=("NAME", "CONFIG"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        return workers.worker_main(*args.worker, samples=args.samples)
    if args.pairs < 1:
        parser.error(f"--pairs: expected an int >= 1; received {args.pairs}")
    if args.pause < 0:
        parser.error(f"--pause: expected seconds >= 0; received {args.pause}")
    names = [args.reference] + [
        n
        for n in [f"fastnn-{b}" for b in args.backends] + args.peers
        if n != args.reference
    ]
    if len(names) < 2:
        parser.error("--backends, --peers: expected a framework besides --reference")
    import fastnn
    from fastnn.io import atomic_write

    fastnn.datasets.load_mnist()  # fetch once, before the workers read the cache
    spawn = partial(workers.Worker, samples=args.samples)
    run = measure(
        names, args.configs, args.reference, args.pairs, args.pause, spawn=spawn
    )
    run["samples"] = args.samples or None
    run["environment"] = bench.environment_info()
    report.write_report(run, Path(args.out))
    if args.json:
        text = json.dumps(run, indent=1, default=str) + "\n"
        atomic_write(args.json, lambda f: f.write(text.encode()))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
