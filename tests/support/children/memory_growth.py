"""Resident memory over full-MNIST epochs: ``python memory_growth.py BACKEND``.

Run by ``reliability/test_memory.py`` in a child process, so that the peak (VmHWM) is
this training's alone. Trains the L network (784-512-512-512-10) at batch 64:
one warm-up epoch (buffers, JIT), then three more, reading VmRSS after each.
Prints one JSON line: samples, RSS after the warm-up and after each epoch, the
peak, and the seconds taken (MiB, from ``/proc/self/status``).
"""

import json
import sys
import time

import fastnn


def status(field):  # kB figures from /proc/self/status, in MiB
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


backend = sys.argv[1]
(x, y), _ = fastnn.datasets.load_mnist()
model = fastnn.Sequential(
    [fastnn.Dense(512, activation="relu") for _ in range(3)]
    + [fastnn.Dense(10, activation="softmax")],
    input_dim=784,
    backend=backend,
    seed=0,
    optimizer=fastnn.SGD(0.05, momentum=0.9),
)
t0 = time.perf_counter()
model.fit(x, y, epochs=1, batch_size=64, verbose=0)  # warm-up: buffers, JIT
warm_up = status("VmRSS")
rss = []
for _ in range(3):
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    rss.append(status("VmRSS"))
print(
    json.dumps(
        {
            "samples": len(x),
            "warm_up_mib": warm_up,
            "rss_mib": rss,
            "peak_mib": status("VmHWM"),
            "seconds": time.perf_counter() - t0,
        }
    )
)
