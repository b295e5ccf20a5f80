"""Run a test script in a child process, so that a crash of the interpreter (a
kernel writing out of bounds, a segfault) fails the test instead of the run."""

from __future__ import annotations

import json
import subprocess
import sys


def run_child(script: str, *args, timeout: float = 600) -> dict:
    """Run ``python -c script *args``; return the JSON object on its last
    stdout line. A non-zero exit (negative: killed by a signal) fails."""
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"child exited with {result.returncode} (negative: killed by a signal)\n"
        f"{result.stderr[-3000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
