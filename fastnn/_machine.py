"""Facts about this machine that fastnn's choices depend on, read without
importing a backend (so they read the same before and after one loads)."""

from __future__ import annotations

from typing import Any

__all__ = ["cpu_info"]


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
