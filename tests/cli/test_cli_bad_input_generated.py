"""Generated bad command lines for ``fastnn``, on every backend.

Hundreds of seeded random bad invocations per backend (``--backend``) of
``train`` (including its cluster and resume options), ``evaluate``,
``predict``, ``bench``, ``sweep`` and the bare command: bad option
values, unknown choices and flags, missing, damaged, pickled and wrong-model
files, bad images, batch larger than the data. Each must end with one line
``fastnn: error: ...`` on stderr naming the option (or the file) and the exit
status fastnn.cli documents: 2 for bad usage, 1 for a file that cannot be used --
never a traceback, and nothing trained or written. The cases run in one child
process per backend calling ``fastnn.cli.main``, so a crash of the interpreter
fails the test instead of the test run; a few real ``python -m fastnn`` runs
check the exit status end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys

from support.child import run_child

CASES_PER_BACKEND = 300


def _python_m_fastnn(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastnn", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn: error: "), result.stderr
    assert fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_generated_bad_command_lines(backend_name, tmp_path):
    report = run_child("cli_bad_input", backend_name, CASES_PER_BACKEND, tmp_path)
    print(f"\n{backend_name}: CLI cases per command {report['counts']}")
    assert report["n_failures"] == 0, json.dumps(report["failures"], indent=1)
    assert sum(report["counts"].values()) == CASES_PER_BACKEND >= 200
    assert set(report["counts"]) == {
        "train",
        "evaluate",
        "predict",
        "bench",
        "sweep",
        "global",
    }
    assert report["written"] == [], "a refused command wrote output"
    assert not report["pickle_ran"], "loading a model file ran its pickle"

    # End to end: the exit status and stderr of the real command.
    _assert_one_line_error(
        _python_m_fastnn("train", "--backend", backend_name, "--epochs", "-1"),
        2,
        "argument --epochs",
    )
    missing = tmp_path / "missing.npz"
    _assert_one_line_error(
        _python_m_fastnn("evaluate", missing, "--backend", backend_name),
        1,
        str(missing),
    )


def test_python_m_fastnn_refuses_bad_files_and_options(tmp_path):
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04 truncated")
    _assert_one_line_error(
        _python_m_fastnn("predict", tmp_path / "model.npz", "x.png"),
        1,
        "not a valid fastnn model file",
    )
    _assert_one_line_error(
        _python_m_fastnn("bench", "--backends", "nmba"), 2, "argument --backends"
    )
    _assert_one_line_error(
        _python_m_fastnn("train", "--hidden", "100000000000", "-o", tmp_path / "o"),
        2,
        "argument --hidden",
    )
    assert not (tmp_path / "o").exists()
