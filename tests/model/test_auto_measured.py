"""``backend="auto"`` by measurement (fastnn.autoselect, fastnn.bench.measure):
the measurement scores every backend that loads and is cached for this
machine; ``auto`` follows it only where the cache holds for this machine as
it is now, says why, and warns about a damaged cache instead of trusting it."""

from __future__ import annotations

import json
import math
import stat

import pytest
from support.backends import load_backend_or_skip, skip_without_own_kernels
from support.models import make_model

import fastnn
from fastnn import autoselect, backends
from fastnn.bench import measure
from fastnn.cli import main as cli_main

#: Tiny networks: the measurement's logic, not its figures.
TINY = {"S": ((8,), 16, 4), "L": ((16, 8), 16, 3)}


@pytest.fixture
def auto_file(tmp_path, monkeypatch):
    """The cache file ``auto`` reads, in a fresh folder, for this test only."""
    path = tmp_path / autoselect.AUTO_FILE
    monkeypatch.setattr(
        autoselect, "cache_file", lambda cache_dir=None: path.parent / path.name
    )
    autoselect.forget()
    yield path
    autoselect.forget()


def _loading():
    return [n for n, why in fastnn.available_backends().items() if why is None]


def _record(scores: dict[str, float], **changes) -> dict:
    record = {
        "format": autoselect.FORMAT_VERSION,
        "key": autoselect.machine_key(),
        "when": "2026-01-01 00:00:00",
        "networks": {},
        "scores": scores,
        "choice": min(scores, key=scores.get) if scores else None,
    }
    record.update(changes)
    return record


def _write(path, record) -> None:
    path.write_text(json.dumps(record))
    autoselect.forget()


def test_measure_scores_every_backend_and_auto_follows(auto_file, capsys):
    record = measure.measure_backends(rounds=2, networks=TINY, pause=0.0)
    names = _loading()
    assert set(record["scores"]) == set(names)
    for net in TINY:
        assert set(record["networks"][net]) == set(names)
        assert all(s > 0 for s in record["networks"][net].values())
    # Scores are times over the fastest's: the best is at least 1 and the
    # winner is the lowest; 1.0 exactly when one backend wins every network.
    assert min(record["scores"].values()) >= 1.0 - 1e-12
    assert record["choice"] == min(record["scores"], key=record["scores"].get)
    assert record["key"] == autoselect.machine_key()
    # Written atomically as JSON, readable by all, and followed by auto.
    assert json.loads(auto_file.read_text()) == record
    assert stat.S_IMODE(auto_file.stat().st_mode) == 0o644
    assert backends.resolve_backend_name("auto") == record["choice"]
    assert make_model(backend="auto").backend == record["choice"]
    fastnn.show_backends()
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"auto     -> {record['choice']} (measured on this machine")


def test_auto_takes_the_measured_order(auto_file, monkeypatch):
    names = _loading()
    if len(names) < 2:
        pytest.fail(f"the selection needs two backends that load; have {names}")
    slow_first = names[::-1]  # the opposite of AUTO_ORDER's preference
    scores = {n: 1.0 + i for i, n in enumerate(slow_first)}
    _write(auto_file, _record(scores))
    order, why = backends.auto_order()
    assert order[: len(slow_first)] == tuple(slow_first)
    assert why.startswith("measured on this machine at 2026-01-01 00:00:00")
    assert backends.resolve_backend_name("auto") == slow_first[0]
    # The measured winner unavailable: the next measured one, not AUTO_ORDER.
    monkeypatch.setitem(backends._MODULES, slow_first[0], "fastnn._not_a_module")
    assert backends.resolve_backend_name("auto") == slow_first[1]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda key: key["cpu"].update(model="Another CPU"), id="cpu"),
        pytest.param(lambda key: key["cpu"].update(features=[]), id="features"),
        pytest.param(lambda key: key.update(cpu_count=999), id="cores"),
        pytest.param(
            lambda key: key["versions"].update(fastnn="0.0.0"), id="fastnn-version"
        ),
        pytest.param(lambda key: key["versions"].update(kernels=-1), id="kernels"),
    ],
)
def test_a_measurement_of_another_machine_is_ignored(auto_file, change):
    scores = {n: 1.0 + i for i, n in enumerate(_loading()[::-1])}
    record = _record(scores)
    change(record["key"])
    _write(auto_file, record)
    order, why = backends.auto_order()
    assert order == backends.AUTO_ORDER
    assert why.startswith("measured on another machine or version: ")
    assert "fastnn backends --measure" in why


def test_blas_variables_are_part_of_the_key(auto_file, monkeypatch):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    _write(auto_file, _record({n: 1.0 for n in _loading()}))
    assert backends.auto_order()[1].startswith("measured on this machine")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    autoselect.forget()
    assert backends.auto_order()[1].startswith("measured on another machine")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda: "{not json", id="not-json"),
        pytest.param(lambda: json.dumps([1, 2]), id="not-a-record"),
        pytest.param(
            lambda: json.dumps(_record({"numpy": 1.0}, format=99)), id="format"
        ),
        pytest.param(
            lambda: json.dumps(_record({"fortran": 1.0})), id="unknown-backend"
        ),
        pytest.param(
            lambda: json.dumps(_record({"numpy": 1.5})).replace(
                '"numpy": 1.5', '"numpy": NaN'
            ),
            id="nan",
        ),
        pytest.param(lambda: json.dumps(_record({})), id="no-scores"),
        pytest.param(
            lambda: json.dumps(_record({"numpy": 1.0}, choice="cython")),
            id="bad-choice",
        ),
    ],
)
def test_a_damaged_measurement_warns_and_is_not_trusted(auto_file, content):
    auto_file.write_text(content())  # the key as the machine is now
    autoselect.forget()
    with pytest.warns(RuntimeWarning, match=r"^backend='auto': .*auto-backend\.json"):
        order, _ = backends.auto_order()
    assert order == backends.AUTO_ORDER
    assert backends.resolve_backend_name("auto") in backends.AUTO_ORDER


def test_measure_checks_rounds(auto_file):
    with pytest.raises((TypeError, ValueError), match="^rounds: expected"):
        measure.measure_backends(rounds=0, networks=TINY)
    assert not auto_file.exists()


def test_measure_without_saving_writes_nothing(auto_file):
    record = measure.measure_backends(rounds=1, networks=TINY, pause=0.0, save=False)
    assert not auto_file.exists()
    assert math.isfinite(record["scores"][record["choice"]])


def test_cli_backends_measure(auto_file, monkeypatch, capsys):
    monkeypatch.setattr(measure, "NETWORKS", TINY)
    assert cli_main(["backends", "--measure", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert f"saved to {auto_file}" in out
    record = json.loads(auto_file.read_text())
    assert f"auto     -> {record['choice']} (measured on this machine" in out
    assert cli_main(["backends", "--measure", "--rounds", "0"]) == 2
    err = capsys.readouterr().err
    assert "--rounds: expected a positive integer; received '0'" in err


def test_measure_times_the_cython_gemms_and_auto_follows(auto_file):
    """Where the CPU runs fastnn's own kernels, the measurement also times the
    cython loop's float32 products on them against BLAS's, and the ``auto``
    GEMM policy follows that choice on this machine."""
    cy = load_backend_or_skip("cython")
    skip_without_own_kernels()
    record = measure.measure_backends(rounds=1, networks=TINY, pause=0.0)
    gemm = record["cython_gemm"]
    assert set(gemm) == {"own", "blas", "choice"} and gemm["own"] > 0
    assert gemm["choice"] == min(("own", "blas"), key=gemm.get)
    assert cy.gemm_policy() == "auto"  # restored
    for choice in ("own", "blas"):
        _write(auto_file, {**record, "cython_gemm": {**gemm, "choice": choice}})
        assert cy.own_gemm_pays() == (choice == "own")
        assert "measured on this machine" in cy.describe()
    # Without a measurement: the rule by BLAS kernel, as before.
    auto_file.unlink()
    autoselect.forget()
    assert "measured" not in cy.describe()


@pytest.mark.parametrize(
    "gemm",
    [
        {"own": 1.0, "blas": 2.0, "choice": "fast"},
        {"own": "quick", "blas": 2.0, "choice": "own"},
        {"own": 1.0, "choice": "own"},
        {"own": 1.0, "blas": True, "choice": "blas"},
        ["own"],
    ],
    ids=["choice", "not-a-number", "missing", "bool", "not-a-dict"],
)
def test_a_damaged_gemm_choice_is_not_trusted(auto_file, gemm):
    cy = load_backend_or_skip("cython")
    record = _record({n: 1.0 for n in _loading()})
    record["cython_gemm"] = gemm
    _write(auto_file, record)
    with pytest.warns(RuntimeWarning, match="no valid cython_gemm"):
        assert backends.auto_order()[0] == backends.AUTO_ORDER
    assert autoselect.measured_gemm(backends.BACKEND_NAMES)[0] is None
    assert "measured" not in cy.describe()  # the rule by kernel, no error
