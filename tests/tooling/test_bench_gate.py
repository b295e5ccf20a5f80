"""The CI speed gate of ``benchmarks/compare.py`` (its ``check_results``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from fastnn.bench import BenchRow, format_table

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"
_spec = importlib.util.spec_from_file_location("fastnn_benchmarks_compare", _PATH)
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)
check_results = compare.check_results


def test_the_gate_is_not_in_the_installed_package():
    import fastnn.bench

    assert not hasattr(fastnn.bench, "check_results")
    assert not hasattr(fastnn.bench, "rows_from_json")
    assert compare.GATE_GROUPS == ("S-float32", "L64-float32")


def _rows(numba_s, cython_s, numpy_s=1.0):
    rows = []
    for group in ("S-float32", "L64-float32"):
        for backend, t in (
            ("numpy", numpy_s),
            ("numba", numba_s),
            ("cython", cython_s),
        ):
            rows.append(
                BenchRow(
                    backend,
                    group.split("-")[0],
                    "float32",
                    t,
                    t / numpy_s,
                    60000 / t,
                    group,
                )
            )
    return rows


def test_rows_from_json_reads_the_suite_results_with_ratios(tmp_path):
    def result(median, **info):
        return {
            "group": "S-float32",
            "stats": {"median": median},
            "extra_info": {"config": "S", "dtype": "float32", **info},
        }

    benchmarks = [
        result(2.0, backend="numpy", n_samples=1000),
        result(0.5, backend="numba", n_samples=1000, smoke=True),
        result(1.0),  # not a fastnn benchmark: no backend named
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"benchmarks": benchmarks}), encoding="utf-8")
    numpy_row, numba_row = compare.rows_from_json(path)
    assert (numpy_row.backend, numpy_row.ratio_to_numpy) == ("numpy", 1.0)
    assert (numba_row.backend, numba_row.ratio_to_numpy) == ("numba", 0.25)
    assert numba_row.samples_per_second == 2000.0 and numba_row.smoke
    assert compare.rows_from_json({"benchmarks": benchmarks}) == [numpy_row, numba_row]


def test_gate_passes_faster_backends_and_fails_slower_ones():
    assert check_results(_rows(0.5, 0.7), ("numba", "cython"), True) == []
    failures = check_results(_rows(0.5, 1.05), ("numba", "cython"), True)
    assert len(failures) == 2 and all("cython is slower" in f for f in failures)


def test_noise_allowance_and_missing_backends():
    assert check_results(_rows(0.5, 1.05), (), True, noise=0.1) == []
    assert len(check_results(_rows(0.5, 1.2), (), True, noise=0.1)) == 2
    rows = [r for r in _rows(0.5, 0.7) if r.backend != "cython"]
    failures = check_results(rows, ("numba", "cython"), True)
    assert failures and all("'cython' has no result" in f for f in failures)


def test_table_footnote_names_what_cut_the_samples():
    rows = [r._replace(smoke=True, n_samples=2000) for r in _rows(0.5, 0.7)]
    plain = format_table(rows)
    assert plain.count("  (2000 samples, not a real measurement)") == 2
    assert "FASTNN_BENCH_SAMPLES" not in plain and "--samples" not in plain
    named = format_table(rows, cut_by="FASTNN_BENCH_SAMPLES")
    assert "  (FASTNN_BENCH_SAMPLES: 2000 samples, not a real measurement)" in named
    assert "not a real measurement" not in format_table(_rows(0.5, 0.7))


def test_numba_is_held_level_with_cython():
    assert check_results(_rows(0.65, 0.5), (), numba_over_cython=1.3) == []
    failures = check_results(_rows(0.66, 0.5), (), numba_over_cython=1.3)
    assert len(failures) == 2
    assert all("numba takes 1.32x cython's time" in f for f in failures)
    assert check_results(_rows(0.66, 0.5), ()) == []  # off unless asked
    rows = [r for r in _rows(0.9, 0.5) if r.backend != "cython"]
    assert check_results(rows, (), numba_over_cython=1.3) == []  # nothing to hold


def test_numba_over_cython_must_be_a_positive_ratio(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"benchmarks": []}), encoding="utf-8")
    try:
        compare.main([str(path), "--numba-over-cython", "0"])
    except SystemExit as exit_:
        assert exit_.code == 2
    else:  # pragma: no cover
        raise AssertionError("--numba-over-cython 0 was accepted")
    assert "--numba-over-cython: expected a positive ratio; received 0.0" in (
        capsys.readouterr().err
    )
