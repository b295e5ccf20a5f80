"""A debug build of ``_dense`` catches an overrun: ``python
cython_debug_bounds.py EXTENSION`` (the built ``_dense`` file).

Run by ``kernels/test_cython_build.py`` in a fresh interpreter, where the release build
is not imported: the extension at ``EXTENSION`` is loaded as
``fastnn._kernels._dense``, says it is a debug build, and an output buffer too
short for its stated shape raises IndexError (reported through
``sys.unraisablehook``) instead of being overrun.
Prints "ok".
"""

import importlib.util
import sys

import numpy as np

spec = importlib.util.spec_from_file_location("fastnn._kernels._dense", sys.argv[1])
dense = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dense)
assert dense.DEBUG_BUILD is True
seen = []
sys.unraisablehook = lambda u: seen.append(u.exc_type)
e = np.empty(0, np.float64)
dense.dense_forward(e, e, e, 0, np.zeros(2), 2, 0, 2)  # 2 x 2 into 2
assert seen == [IndexError], seen
print("ok")
