"""Interrupted training loses nothing: SIGKILL mid-run, resume, bit-identical end."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn

EPOCHS = 10

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    import fastnn

    out, epochs = Path(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12000, 20)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(int) + (x[:, 3] > 1)
    model = fastnn.Sequential(
        [fastnn.Dense(128, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=20, backend="numpy", seed=1,
        optimizer=fastnn.SGD(0.05, momentum=0.9, weight_decay=1e-4))
    ckpt = out / "ckpt.npz"
    resume = ckpt if ckpt.exists() else None
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, resume=resume,
              callbacks=[fastnn.ModelCheckpoint(ckpt)])
    model.save(out / "final.npz")
    """
)


def _start(folder: Path):
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(folder), str(EPOCHS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


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
