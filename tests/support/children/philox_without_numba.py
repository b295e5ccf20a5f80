"""``fastnn._philox`` (the NumPy version) imports without numba.

Run by ``contract/test_philox.py``; prints how many of a fixed mask's entries are kept.
"""

import sys

sys.modules["numba"] = None  # import numba raises ImportError
from fastnn import _philox  # noqa: E402

print(int(_philox.dropout_keep(1, 2, 3, 4, 5, 6, 2**31).sum()))
