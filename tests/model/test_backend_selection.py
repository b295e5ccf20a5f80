"""Backend selection: ``auto`` follows what is measured, says what it picks,
the selection layers (argument, ``use_backend``, environment) nest, the
registry reports every backend, and a live model switches backend keeping
its predictions."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from support.models import make_model, small_data

import fastnn
from fastnn import backends
from fastnn.backends import BACKEND_NAMES

PEERS = Path(__file__).resolve().parents[2] / "docs" / "peers.md"


@pytest.fixture
def data():
    return small_data()


def _measured_seconds() -> dict[str, list[float]]:
    """``{backend: [median seconds per epoch on S, L64, L256]}`` from the
    per-configuration tables of docs/peers.md."""
    rows: dict[str, list[float]] = {}
    for line in PEERS.read_text().splitlines():
        m = re.match(r"\| fastnn-(\w+) [^|]*\| *([0-9.]+) *\|", line)
        if m:
            rows.setdefault(m.group(1), []).append(float(m.group(2)))
    return rows


def test_auto_order_is_the_measured_order():
    """AUTO_ORDER lists the backends by their epoch time over the three
    configurations of the side-by-side run in docs/peers.md, geometric mean
    (the criterion ``fastnn backends --measure`` uses), numba's counted
    JIT_ALLOWANCE times slower for its compilation at first use: when a new
    run reorders them, this fails until AUTO_ORDER (and the README) follow."""
    seconds = _measured_seconds()
    assert set(seconds) == set(backends.BACKEND_NAMES), seconds
    assert all(len(s) == 3 for s in seconds.values()), seconds  # S, L64, L256
    score = {name: math.prod(s) ** (1 / 3) for name, s in seconds.items()}
    score["numba"] *= backends.JIT_ALLOWANCE
    assert tuple(sorted(score, key=score.get)) == backends.AUTO_ORDER, score


def test_auto_takes_the_first_that_loads(monkeypatch):
    report = fastnn.available_backends()
    first = next(name for name in backends.AUTO_ORDER if report[name] is None)
    assert backends.resolve_backend_name("auto") == first
    # With the first one unavailable, auto goes on down the list.
    monkeypatch.setitem(backends._MODULES, first, "fastnn._not_a_module")
    rest = [n for n in backends.AUTO_ORDER if n != first and report[n] is None]
    assert backends.resolve_backend_name("auto") == rest[0]


def test_backends_says_what_auto_picks_and_why(capsys):
    report = fastnn.show_backends()
    printed = capsys.readouterr().out.splitlines()
    lines = [line for line in printed if not line.startswith(" ")]  # details indented
    assert [line.split()[0] for line in lines] == [*backends.BACKEND_NAMES, "auto"]
    details = [line.strip() for line in printed if line.startswith(" ")]
    # which GEMM fit runs on, and why, for each compiled backend that loads
    described = [n for n in ("numba", "cython") if report[n] is None]
    assert details == [backends.get_backend(n).describe() for n in described]
    assert all(line.startswith("float32 GEMM in fit: ") for line in details)
    picked = next(name for name in backends.AUTO_ORDER if report[name] is None)
    assert lines[-1].startswith(
        f"auto     -> {picked} (not measured on this machine: the first that loads of "
    )
    assert lines[-1].endswith("fastnn backends --measure measures it)")
    assert "docs/peers.md" in lines[-1]


def test_selection_layers_nest(monkeypatch):
    monkeypatch.setenv("FASTNN_BACKEND", "numpy")
    assert backends.resolve_backend_name() == "numpy"
    with fastnn.use_backend("cython"):
        assert backends.resolve_backend_name() == "cython"
        with fastnn.use_backend("numba"):
            assert backends.resolve_backend_name() == "numba"
            assert backends.resolve_backend_name("numpy") == "numpy"  # explicit wins
        assert backends.resolve_backend_name() == "cython"
    assert backends.resolve_backend_name() == "numpy"
    monkeypatch.delenv("FASTNN_BACKEND")
    assert backends.resolve_backend_name() == backends.resolve_backend_name("auto")
    with pytest.raises(ValueError, match="^backend: expected one of"):
        fastnn.use_backend("fast").__enter__()


def test_show_backends_reports_each(capsys):
    report = fastnn.show_backends()
    printed = capsys.readouterr().out
    assert set(report) == set(BACKEND_NAMES)
    for name in BACKEND_NAMES:
        assert name in printed


def test_backend_selection_and_switching(data, monkeypatch):
    x, _ = data
    model = make_model("numpy")
    assert model.backend == "numpy"
    with pytest.raises(ValueError, match="expected one of 'numpy', 'numba', 'cython'"):
        model.backend = "nmba"
    with pytest.raises(ValueError, match="received 'nmba'"):
        make_model("nmba")
    monkeypatch.setitem(backends._MODULES, "numba", "fastnn._not_a_module")
    with pytest.raises(fastnn.BackendUnavailableError, match="fastnn\\[numba\\]"):
        model.backend = "numba"
    assert model.backend == "numpy"  # a failed switch changes nothing
    with fastnn.use_backend("numpy"):
        assert make_model(backend=None).backend == "numpy"
    monkeypatch.setenv("FASTNN_BACKEND", "numpy")
    assert make_model(backend=None).backend == "numpy"
    report = fastnn.available_backends()
    assert report["numpy"] is None and "fastnn[numba]" in report["numba"]


def test_switch_backend_keeps_predictions(backend_name, data):
    x, y = data
    model = make_model("numpy", dtype="float64")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    expected = model.predict(x)
    model.backend = backend_name
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-12)
