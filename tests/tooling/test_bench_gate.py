"""The CI speed gate of ``benchmarks/compare.py`` (its ``check_results``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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
    with pytest.raises(SystemExit) as exit_:
        compare.main([str(path), "--numba-over-cython", "0"])
    assert exit_.value.code == 2
    assert "--numba-over-cython: expected a positive ratio; received 0.0" in (
        capsys.readouterr().err
    )


def _cold_start_json(tmp_path, **overheads):
    benchmarks = [
        {
            "group": "cold-start-S-float32",
            "stats": {"median": 1.0},
            "extra_info": {
                "backend": case,
                "config": "cold-start-S",
                "dtype": "float32",
                "startup_overhead_s": seconds,
            },
        }
        for case, seconds in overheads.items()
    ]
    benchmarks.append(
        {"group": "S-float32", "stats": {"median": 0.2}, "extra_info": {}}
    )  # not a cold-start case: no startup_overhead_s
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"benchmarks": benchmarks}), encoding="utf-8")
    return path


def test_startup_overhead_is_read_and_gated(tmp_path, capsys):
    path = _cold_start_json(
        tmp_path, **{"numba-warm-cache": 0.6, "numba-cold-cache": 15.0}
    )
    startup = compare.startup_overheads(path)
    assert startup == {"numba-warm-cache": 0.6, "numba-cold-cache": 15.0}
    # Only the warm cache is held: the cold one compiles by design.
    assert check_results([], (), startup=startup, max_startup_overhead=1.0) == []
    failures = check_results([], (), startup=startup, max_startup_overhead=0.5)
    assert failures == [
        "a fresh process with numba's cache warm added 0.60 s to an epoch, above "
        "0.5 s (a kernel compiled again instead of loaded from the cache?)"
    ]
    assert check_results([], (), startup=startup) == []  # off unless asked
    assert compare.main([str(path), "--max-startup-overhead", "0.5"]) == 1
    assert "startup overhead numba-warm-cache: 0.600 s" in capsys.readouterr().out
    assert compare.main([str(path), "--max-startup-overhead", "2"]) == 0


def test_startup_overhead_gate_needs_the_warm_cache_case(tmp_path):
    startup = compare.startup_overheads(_cold_start_json(tmp_path))
    assert startup == {}
    (failure,) = check_results([], (), startup=startup, max_startup_overhead=1.0)
    assert failure.startswith("no 'numba-warm-cache' cold-start result")


def test_max_startup_overhead_must_be_positive(tmp_path, capsys):
    path = _cold_start_json(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        compare.main([str(path), "--max-startup-overhead", "-1"])
    assert exit_.value.code == 2
    assert (
        "--max-startup-overhead: expected a positive number of seconds; "
        "received -1.0" in capsys.readouterr().err
    )
