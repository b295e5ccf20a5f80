"""fastnn._machine: the CPU facts the kernel choices depend on."""

from __future__ import annotations

import pytest

from fastnn import _machine

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu avx2 fma avx512f
"""
XEON = ZEN4.replace("AuthenticAMD", "GenuineIntel").replace(": 25", ": 6")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ZEN4, ("AuthenticAMD", 25)),
        (XEON, ("GenuineIntel", 6)),
        ("vendor_id\t: AuthenticAMD\n", ("AuthenticAMD", None)),  # no family
        ("vendor_id\t: X\ncpu family\t: ?\n", ("X", None)),  # not a number
        ("", (None, None)),
    ],
)
def test_vendor_and_family_are_read_from_cpuinfo(tmp_path, text, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(text, encoding="utf-8")
    assert _machine.cpu_vendor_family(str(path)) == expected


def test_no_cpuinfo_reads_as_unknown(tmp_path):
    assert _machine.cpu_vendor_family(str(tmp_path / "absent")) == (None, None)


@pytest.mark.parametrize(
    ("cpu", "half_width"),
    [
        (("AuthenticAMD", 25), True),  # Zen 4 (Zen 3 has no AVX-512 to run)
        (("AuthenticAMD", 26), False),  # Zen 5: full-width AVX-512
        (("GenuineIntel", 6), False),
        ((None, None), False),
    ],
)
def test_avx512_on_256_bit_units_is_amd_family_25(monkeypatch, cpu, half_width):
    monkeypatch.setattr(_machine, "cpu_vendor_family", lambda: cpu)
    assert _machine.avx512_on_256_bit_units() is half_width


def test_benchmark_environment_records_the_cpu_family_and_each_gemm():
    """Every benchmark result carries what the GEMM choice turns on (the
    CPU's vendor and family) and what each loaded backend trains on."""
    import json

    from support.backends import load_backend_or_skip

    from fastnn.bench import environment_info

    numba_backend = load_backend_or_skip("numba")
    cython_backend = load_backend_or_skip("cython")
    info = json.loads(json.dumps(environment_info()))  # JSON as recorded
    assert info["cpu_vendor_family"] == list(_machine.cpu_vendor_family())
    assert info["numba_gemm"] == numba_backend.describe()
    assert info["cython_gemm"] == cython_backend.describe()
    assert info["numba_gemm"].startswith("float32 GEMM in fit: ")
