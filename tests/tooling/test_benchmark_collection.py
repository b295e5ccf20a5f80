"""Which tests a run collects: ``--benchmark-only`` runs the benchmarks alone,
a plain run everything else (the conftest hooks of tests/ and benchmarks/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def collect(*args: str) -> tuple[list[str], str]:
    """Node ids and summary line of ``pytest --co -q ARGS`` run in the repository."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return [line for line in lines if "::" in line], lines[-1]


@pytest.mark.parametrize("paths", [[], ["tests"], ["benchmarks"]], ids=str)
def test_benchmark_only_deselects_the_tests(paths):
    """Deselected, not skipped one by one: no ``SKIPPED ... non-benchmark`` lines."""
    pytest.importorskip("pytest_benchmark")
    ids, summary = collect("--benchmark-only", *paths)
    assert all(i.startswith("benchmarks/") for i in ids), ids[:5]
    if paths == ["tests"]:
        assert not ids and "deselected" in summary, summary
    else:
        assert ids, summary
    if paths != ["benchmarks"]:
        assert "deselected" in summary, summary


def test_plain_run_deselects_the_benchmarks():
    ids, summary = collect()
    assert ids and not [i for i in ids if i.startswith("benchmarks/")]
    assert any(i.startswith("tests/model/test_plots.py::") for i in ids)
    assert "deselected" in summary, summary
