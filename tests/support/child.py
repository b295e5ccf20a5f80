"""Run a program of ``support/children/`` in a fresh interpreter, so that a
crash of the interpreter (a kernel writing out of bounds, a segfault) fails the
test instead of the run, and import-time effects are the program's own.

A program runs by its path, with this checkout first on ``PYTHONPATH`` (the
``fastnn`` under test, whatever else is installed) unless the caller names
another folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: The repository root: the checkout whose ``fastnn`` the tests import.
ROOT = Path(__file__).resolve().parents[2]
#: The programs run in child processes.
CHILDREN = Path(__file__).resolve().parent / "children"


def child_command(name: str, *args) -> list[str]:
    """``python CHILDREN/name.py *args``, with this interpreter."""
    path = CHILDREN / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"name: expected a program in {CHILDREN}, got {name!r}")
    return [sys.executable, str(path), *map(str, args)]


def child_env(env: dict | None = None, path: str | Path = ROOT) -> dict[str, str]:
    """This process's environment, updated by ``env``, with ``path`` first on
    ``PYTHONPATH``."""
    merged = {**os.environ, **(env or {})}
    rest = merged.get("PYTHONPATH")
    merged["PYTHONPATH"] = os.pathsep.join([str(path), *([rest] if rest else [])])
    return merged


def run_program(
    name: str,
    *args,
    env: dict | None = None,
    path: str | Path = ROOT,
    cwd: str | Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run the program ``name`` with ``args`` (see ``child_env`` for ``env``
    and ``path``); returns the finished process, its output captured as text."""
    return subprocess.run(
        child_command(name, *args),
        env=child_env(env, path),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_program(name: str, *args) -> subprocess.Popen:
    """Start the program ``name`` with ``args``; stdout and stderr piped."""
    return subprocess.Popen(
        child_command(name, *args),
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_child(name: str, *args, timeout: float = 600) -> dict:
    """Run the program ``name`` with ``args``; return the JSON object on its
    last stdout line. A non-zero exit (negative: killed by a signal) fails."""
    result = run_program(name, *args, timeout=timeout)
    assert result.returncode == 0, (
        f"child exited with {result.returncode} (negative: killed by a signal)\n"
        f"{result.stderr[-3000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
