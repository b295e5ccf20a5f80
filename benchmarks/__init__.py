"""fastnn's benchmark suite (run with ``pytest benchmarks --benchmark-only``).

A package so that its ``conftest`` is imported as ``benchmarks.conftest`` and
never shadows ``tests/conftest.py`` (both would otherwise be the module
``conftest``).
"""
