"""Interrupted training loses nothing: SIGKILL mid-run, resume, bit-identical end."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from support.child import start_program

import fastnn

EPOCHS = 10


def _start(folder: Path):
    return start_program("interrupted_training", folder, EPOCHS)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _kill_at_next_checkpoint(p, folder: Path, mid_write: bool) -> bool:
    """SIGKILL ``p`` as soon as it writes its next checkpoint: while the
    temporary file is there (``mid_write``, when the poll catches it), else
    right after the rename. False when ``p`` finished first. Tied to the
    run's own progress, not to a clock, so it holds on any machine speed."""
    ckpt = folder / "ckpt.npz"
    before = _mtime(ckpt)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        writing = mid_write and any(
            f.name.startswith(".ckpt") for f in folder.iterdir()
        )
        if writing or _mtime(ckpt) != before:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return p.returncode == -signal.SIGKILL
        if p.poll() is not None:
            return False
        time.sleep(0.0005)
    p.kill()
    raise AssertionError("no checkpoint written in 300 s")


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    straight = tmp_path / "straight"
    straight.mkdir()
    p = _start(straight)
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()
    expected = fastnn.load(straight / "final.npz", backend="numpy")

    killed = tmp_path / "killed"
    killed.mkdir()
    kills = 0
    for attempt in range(3 * EPOCHS):
        p = _start(killed)
        if not _kill_at_next_checkpoint(p, killed, mid_write=attempt % 2 == 0):
            break
        kills += 1
        # What is on disk is a complete checkpoint, never half of one; a
        # temporary file the kill interrupted is never read, so remove it.
        for f in killed.iterdir():
            if f.name.startswith("."):
                f.unlink()
        if (killed / "ckpt.npz").exists():
            fastnn.load(killed / "ckpt.npz", backend="numpy")
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()
    resumed = fastnn.load(killed / "final.npz", backend="numpy")
    np.testing.assert_array_equal(resumed.params, expected.params)
    np.testing.assert_array_equal(resumed.slots, expected.slots)
    assert resumed.epoch == EPOCHS
    print(f"\nSIGKILL test: {kills} kills survived, then the run finished")
    # Every kill but those that landed before a first complete checkpoint
    # moved the run on by an epoch: at least half of them land.
    assert kills >= EPOCHS // 2, kills
