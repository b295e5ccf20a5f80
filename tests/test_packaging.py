"""The installed package: the reference ships as fastnn.reference, importing
fastnn has no side effects, and the backend registry reports every backend."""

from __future__ import annotations

import inspect
import subprocess
import sys

import fastnn
from fastnn.backends import BACKEND_NAMES

CONTRACT = [
    "dense_forward",
    "dense_backward",
    "softmax_cross_entropy",
    "mean_squared_error",
    "sgd_update",
    "train_steps",
]


def test_reference_is_installed_as_fastnn_reference():
    import fastnn.reference as ref

    for name in CONTRACT:
        assert callable(getattr(ref, name)), name
        assert getattr(ref, name).__doc__, f"{name} must document its formula"
    assert ref.NAME == "numpy"


def test_import_loads_no_backend_and_reads_no_environment():
    code = (
        "import sys, os; os.environ['FASTNN_BACKEND'] = 'bogus'; import fastnn; "
        "bad = [m for m in ('numba', 'fastnn.reference', "
        "'fastnn._kernels.numba_backend', 'fastnn._kernels.cython_backend', "
        "'matplotlib') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_show_backends_reports_each(capsys):
    report = fastnn.show_backends()
    printed = capsys.readouterr().out
    assert set(report) == set(BACKEND_NAMES)
    for name in BACKEND_NAMES:
        assert name in printed


def test_signature_parity_with_reference(compiled_backend):
    import fastnn.reference as ref

    for name in CONTRACT:
        assert inspect.signature(getattr(compiled_backend, name)) == inspect.signature(
            getattr(ref, name)
        ), name
