"""Compiled kernel backends (numba and Cython). Imported lazily by fastnn.backends."""
