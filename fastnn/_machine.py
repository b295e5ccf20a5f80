"""Facts about this machine that fastnn's choices depend on, read without
importing a backend (so they read the same before and after one loads)."""

from __future__ import annotations

from typing import Any

__all__ = ["cpu_info", "cpu_vendor_family", "avx512_on_256_bit_units"]


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and the SIMD features the kernels care about
    (Linux's /proc/cpuinfo; elsewhere only ``platform.processor()``)."""
    import platform

    model, flags = platform.processor() or None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in (None, "", "x86_64"):
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f")
    return {"model": model, "features": [f for f in wanted if f in flags]}


def cpu_vendor_family(
    path: str = "/proc/cpuinfo",
) -> tuple[str | None, int | None]:
    """The CPU's vendor (``"AuthenticAMD"``, ``"GenuineIntel"``) and family
    number from Linux's /proc/cpuinfo (``path``); ``None`` for what it does not
    say, both ``None`` where there is no such file."""
    vendor, family = None, None
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id":
                    vendor = value.strip()
                elif key == "cpu family":
                    family = int(value.strip()) if value.strip().isdigit() else None
                if vendor is not None and family is not None:
                    break
    except OSError:
        pass
    return vendor, family


#: AMD's family 25 (0x19: Zen 3 and Zen 4): Zen 4 runs AVX-512 on its 256-bit
#: units, two halves an instruction, so AVX-512 code has no more FMA
#: throughput than AVX2 code there.
_HALF_WIDTH_AVX512 = {("AuthenticAMD", 25)}


def avx512_on_256_bit_units() -> bool:
    """Whether this CPU runs AVX-512 at AVX2's throughput (AMD Zen 4): there
    fastnn's own AVX2 GEMM beat OpenBLAS's AVX-512 (SkylakeX) kernels at the
    training loop's shapes (docs/performance.md)."""
    return cpu_vendor_family() in _HALF_WIDTH_AVX512
