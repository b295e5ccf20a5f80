"""One framework's persistent worker process, and the driver's handle on it.

The worker (``python -m benchmarks.peers.run_peers --worker NAME CONFIG``)
loads MNIST, sets its framework up once (``frameworks.setup``), trains one
warm-up epoch (compilation, first-call costs) and then times one epoch per
request, the model and optimizer state carrying over, until its stdin ends.
Between requests it blocks on stdin, so an idle worker takes no CPU time.

The protocol, one JSON object a line:

* worker to driver, once: ``{"ready": NAME, "version": VERSION}``, or
  ``{"skipped": "not installed (MODULE)"}`` (then it exits);
* driver to worker: ``{"seed": SEED}``; the worker answers
  ``{"seconds": T}``, the time of one epoch in the batch order
  ``epoch_order(SEED, n)``: the same seed gives every framework the same
  order.

Only protocol lines reach the driver: the worker's stdout (file descriptor
1) is pointed at its stderr, so that whatever a framework prints cannot
interleave with them, and the driver keeps a worker's stderr in a temporary
file, quoted when the worker fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.peers import frameworks

__all__ = ["WARMUP_SEED", "Worker", "epoch_order", "serve", "worker_main"]

ROOT = Path(__file__).resolve().parents[2]
#: The warm-up epoch's order; the driver's seeds start above it.
WARMUP_SEED = 0


def epoch_order(seed: int, n: int) -> np.ndarray:
    """The batch order of the epoch requested with ``seed``: a permutation of n."""
    return np.random.default_rng(seed).permutation(n)


def _send(replies, message: dict) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def serve(name, config, x, y, requests, replies, setup=frameworks.setup) -> None:
    """The worker's side of the protocol on the line streams ``requests`` and
    ``replies``; ``setup`` as :func:`frameworks.setup`."""
    try:
        epoch = setup(name, config, x, y)
    except ImportError as err:
        _send(replies, {"skipped": f"not installed ({err.name or err})"})
        return
    epoch(epoch_order(WARMUP_SEED, len(x)))
    _send(replies, {"ready": name, "version": frameworks.version(name)})
    for line in requests:
        seed = int(json.loads(line)["seed"])
        _send(replies, {"seconds": epoch(epoch_order(seed, len(x)))})


def worker_main(name: str, config: str, samples: int = 0) -> None:
    """``--worker NAME CONFIG``: serve on stdin and the real stdout, on the
    first ``samples`` training images (0: all 60,000)."""
    import fastnn

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed from here on goes to stderr
    (x, y), _ = fastnn.datasets.load_mnist()
    if samples:
        x, y = x[:samples], y[:samples]
    serve(name, config, x, y.astype(np.int64), sys.stdin, replies)


class Worker:
    """The driver's handle on one worker: started at construction, then
    :meth:`start` (its first line), :meth:`epoch` per request, :meth:`close`."""

    def __init__(self, name: str, config: str, samples: int = 0):
        self.name, self.config = name, config
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.peers.run_peers",
             "--worker", name, config, "--samples", str(samples)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, env=env, cwd=ROOT,
        )  # fmt: skip

    def _receive(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(timeout=60)
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(
                f"{self.name} on {self.config}: its worker exited with code "
                f"{self._proc.returncode} instead of answering; its stderr "
                f"ends:\n{tail}"
            )
        return json.loads(line)

    def start(self) -> dict:
        """The worker's first line: ``{"ready": ...}`` or ``{"skipped": ...}``
        (after which the worker has exited)."""
        return self._receive()

    def epoch(self, seed: int) -> float:
        """Seconds of one epoch in the order of ``seed``."""
        self._proc.stdin.write(json.dumps({"seed": seed}) + "\n")
        self._proc.stdin.flush()
        return float(self._receive()["seconds"])

    def close(self) -> None:
        """End the worker (end of its stdin) and wait for it."""
        try:
            self._proc.stdin.close()
        except BrokenPipeError:  # it has exited already
            pass
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()
