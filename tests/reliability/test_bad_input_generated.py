"""Generated bad input at every public entry point, on every backend, run in a
child process so that a crash of the interpreter (a kernel writing out of
bounds) fails the test instead of killing the test run. The cases are generated
and checked in ``support/children/bad_input.py``."""

from __future__ import annotations

import pytest
from support.child import run_child

CASES_PER_ENTRY_POINT = 200


@pytest.mark.slow
def test_generated_bad_input_is_refused_without_crashing(backend_name, tmp_path):
    import fastnn

    model = fastnn.Sequential(
        [fastnn.Dense(4, activation="relu"), fastnn.Dense(3, activation="softmax")],
        input_dim=5,
        backend="numpy",
        seed=0,
    )
    model.save(tmp_path / "good.npz")
    counts = run_child("bad_input", backend_name, CASES_PER_ENTRY_POINT, tmp_path)
    assert len(counts) == 10
    assert all(c >= CASES_PER_ENTRY_POINT for c in counts.values()), counts
