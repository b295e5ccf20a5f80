"""Memory: full-MNIST training allocates nothing per batch that it keeps, on
every backend (resident memory measured in a child process; marked
``memory``, which the bounds-checked CI run deselects)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.child import run_child


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
