"""The MNIST arrays: what they must hold, and how they reach the caller.

Whatever the source, :func:`validate` checks the four arrays before use --
shapes, dtypes, pixel range 0..255, and the exact number of images of each
digit (:data:`TRAIN_LABEL_COUNTS`, :data:`TEST_LABEL_COUNTS`) -- and
:func:`convert` hands them out in the dtype and layout the caller asked for
(checked first by :func:`check_dtype`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.datasets.errors import DatasetFormatError

#: Images of each digit 0..9 in the real MNIST training and test sets.
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
N_TRAIN, N_TEST = sum(TRAIN_LABEL_COUNTS), sum(TEST_LABEL_COUNTS)
IMAGE_SHAPE = (28, 28)
#: The four arrays every source provides, in this order.
KEYS = ("x_train", "y_train", "x_test", "y_test")

#: The four arrays by name: uint8 images (n, 28, 28), uint8 or int64 labels (n,).
Arrays = dict[str, np.ndarray]
#: What :func:`fastnn.datasets.load_mnist` returns.
Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def check_dtype(dtype: Any, normalize: bool) -> np.dtype[Any]:
    """``dtype`` as a NumPy dtype, refused (ValueError) unless it can hold the
    images: floating when ``normalize``, else any numeric dtype holding 0..255."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype: expected a NumPy dtype, got {dtype!r}") from err
    if normalize:
        if dt.kind != "f":
            raise ValueError(
                f"dtype: normalize=True scales pixels to [0, 1] and needs a floating "
                f"dtype (e.g. 'float32'), got {dt.name!r}. Fix: pass a float dtype, "
                "or normalize=False to keep the raw 0..255 values."
            )
    elif dt.kind not in "fiu" or (dt.kind in "iu" and np.iinfo(dt).max < 255):
        raise ValueError(
            f"dtype: expected a numeric dtype holding 0..255 (e.g. 'uint8', "
            f"'float32'), got {dt.name!r}"
        )
    return dt


def convert(
    arrays: Arrays, dtype: np.dtype[Any], flatten: bool, normalize: bool
) -> Splits:
    """``(x_train, y_train), (x_test, y_test)``: fresh images of ``dtype``
    (divided by 255 when ``normalize``; rows of 784 pixels when ``flatten``)
    and int64 labels."""

    def images(x: np.ndarray) -> np.ndarray:
        out = x.astype(dtype)  # always a fresh array
        if normalize:
            out /= dtype.type(255)
        return out.reshape(len(x), -1) if flatten else out

    def labels(y: np.ndarray) -> np.ndarray:
        return y.astype(np.int64)

    return (
        (images(arrays["x_train"]), labels(arrays["y_train"])),
        (images(arrays["x_test"]), labels(arrays["y_test"])),
    )


def validate(arrays: Arrays, origin: str) -> None:
    """Raise DatasetFormatError unless ``arrays`` is exactly the real MNIST."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise DatasetFormatError(
            f"{origin}: missing arrays {missing}; expected {list(KEYS)}, "
            f"got {sorted(arrays)}"
        )
    for split, n, counts in (
        ("train", N_TRAIN, TRAIN_LABEL_COUNTS),
        ("test", N_TEST, TEST_LABEL_COUNTS),
    ):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape != (n, *IMAGE_SHAPE):
            raise DatasetFormatError(
                f"{origin}: x_{split}: expected uint8 images of shape "
                f"({n}, 28, 28), got {x.dtype} {x.shape}"
            )
        if y.dtype not in (np.uint8, np.int64) or y.shape != (n,):
            raise DatasetFormatError(
                f"{origin}: y_{split}: expected uint8 or int64 labels of shape "
                f"({n},), got {y.dtype} {y.shape}"
            )
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > 9:
            raise DatasetFormatError(
                f"{origin}: y_{split}: expected labels in 0..9, got {lo}..{hi}"
            )
        got = tuple(int(c) for c in np.bincount(y, minlength=10))
        if got != counts:
            raise DatasetFormatError(
                f"{origin}: y_{split}: expected the MNIST label counts {counts}, "
                f"got {got}"
            )
        lo, hi = int(x.min()), int(x.max())
        if (lo, hi) != (0, 255):
            raise DatasetFormatError(
                f"{origin}: x_{split}: expected pixels spanning 0..255, got {lo}..{hi}"
            )
