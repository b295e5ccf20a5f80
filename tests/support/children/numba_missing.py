"""fastnn without numba: ``import`` of the numba backend raises ImportError
naming numba, and ``get_backend("numba")`` says how to install it.

Run by ``kernels/test_numba_specific.py``; blocks every ``numba`` import before
importing fastnn. Prints "clear error ok".
"""

import sys


class Block:
    """A finder that refuses numba and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == "numba" or name.startswith("numba."):
            raise ImportError("No module named 'numba'")


sys.meta_path.insert(0, Block())
try:
    import fastnn._kernels.numba_backend  # noqa: F401
except ImportError as err:
    assert "numba" in str(err), err
else:
    raise SystemExit("imported without numba")
from fastnn.backends import BackendUnavailableError, get_backend  # noqa: E402

try:
    get_backend("numba")
except BackendUnavailableError as err:
    assert 'pip install "fastnn[numba]"' in str(err), err
    print("clear error ok")
