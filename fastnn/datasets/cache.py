"""The local dataset cache: where it lives (:func:`get_cache_dir`), and reading
and writing the cached ``mnist.npz``.

One uncompressed NumPy ``.npz`` archive, read with ``allow_pickle=False``:

* ``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,)
* ``x_test``  uint8 (10000, 28, 28), ``y_test``  uint8 (10000,)
* ``format_version`` (int) and ``source`` (str): informational only.

Labels stored as int64 are accepted as well. A cache is validated
(:func:`fastnn.datasets.arrays.validate`) every time it is read, and written
through :func:`fastnn.io.atomic_write` (temporary file in the same folder,
fsync, :func:`os.replace`), so concurrent processes never see half a file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from fastnn.datasets.arrays import KEYS, Arrays, validate
from fastnn.datasets.errors import CacheWarning, describe
from fastnn.datasets.progress import Reporter
from fastnn.io import atomic_write

CACHE_FILENAME = "mnist.npz"
CACHE_FORMAT_VERSION = 1
#: The cache is not secret: readable by all, whatever the umask.
_CACHE_MODE = 0o644


def get_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding fastnn's dataset cache (it may not exist yet).

    ``cache_dir`` if given, else ``$FASTNN_DATA``, else ``$XDG_CACHE_HOME/fastnn``,
    else ``~/.cache/fastnn``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("FASTNN_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fastnn"


def read_cache(cache_file: Path) -> Arrays:
    """Load and validate the cache; FileNotFoundError if absent."""
    if not cache_file.is_file():
        raise FileNotFoundError(cache_file)
    with np.load(cache_file, allow_pickle=False) as z:
        arrays = {k: z[k] for k in KEYS if k in z.files}
    validate(arrays, str(cache_file))
    return arrays


def write_cache(cache_file: Path, arrays: Arrays, origin: str, say: Reporter) -> None:
    """Write the cache atomically; on failure warn and carry on.

    ``origin`` (the source's name) is stored as ``source``. Meant to be called
    straight from :func:`fastnn.datasets.load_mnist`: the warning points at
    its caller.
    """

    def savez(f) -> None:
        np.savez(
            f,
            **{k: arrays[k] for k in KEYS},
            format_version=np.array(CACHE_FORMAT_VERSION),
            source=np.array(origin),
        )

    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, savez, mode=_CACHE_MODE)
        say(f"fastnn: cached MNIST in {cache_file}")
    except OSError as err:
        warnings.warn(
            f"fastnn: could not write the MNIST cache {cache_file} "
            f"({describe(err)}); MNIST will be fetched again next time. Fix: set "
            "FASTNN_DATA (or pass cache_dir=) to a writable folder.",
            CacheWarning,
            stacklevel=3,
        )
