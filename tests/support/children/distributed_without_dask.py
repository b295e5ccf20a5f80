"""fastnn without Dask: ``import fastnn`` and ``fastnn.distributed`` work, and
``distributed.fit`` raises an ImportError that says how to install it.

Run by ``distributed_training/test_distributed.py``; prints the error's message.
"""

import sys

sys.modules["distributed"] = None  # as if Dask were not installed
import fastnn  # noqa: E402, F401
from fastnn import distributed  # noqa: E402

try:
    distributed.fit(None, None, None)
except ImportError as err:
    print(err)
