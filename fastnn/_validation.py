"""Input checks shared by every public entry point.

Everything a user passes is checked and converted here, once, before any
compiled kernel runs (numba and Cython kernels do not bounds-check). Every error
names the argument, what was expected and what was received.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

_FLOAT_KINDS = (np.dtype("float32"), np.dtype("float64"))


def _describe(a: np.ndarray) -> str:
    return f"an array of shape {a.shape} and dtype {a.dtype}"


def as_array(value, name: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(
            f"{name}: expected an array-like of numbers; received "
            f"{type(value).__name__}"
            f" that NumPy cannot convert ({err})"
        ) from err


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}; received {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}; received {value!r}")
    return int(value)


def check_features(x, name: str, n_features: int, dtype: np.dtype) -> np.ndarray:
    """``x`` as a C-contiguous (n, n_features) array of ``dtype``; never a view
    the caller could see modified (kernels never write into it anyway)."""
    a = as_array(x, name)
    ok_dtype = a.dtype in _FLOAT_KINDS or a.dtype == np.uint8
    if not ok_dtype:
        raise TypeError(
            f"{name}: expected float32, float64 or uint8 values; received "
            f"{_describe(a)}"
        )
    if a.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array of shape (n_samples, {n_features}); "
            f"received {_describe(a)}"
        )
    if a.shape[0] == 0:
        raise ValueError(
            f"{name}: expected at least one sample; received {_describe(a)}"
        )
    if a.shape[1] != n_features:
        raise ValueError(
            f"{name}: expected {n_features} features per sample (the model's "
            f"input_dim); received {_describe(a)}"
        )
    out = np.ascontiguousarray(a, dtype=dtype)
    if a.dtype != np.uint8 and not all_finite(out):
        raise ValueError(f"{name}: expected finite values; received NaN or inf")
    return out


def all_finite(a: np.ndarray) -> bool:
    """True when ``a`` holds no NaN or inf: min and max propagate both, in two
    passes without the temporary a boolean mask would need."""
    return bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def check_labels(y, name: str, n_samples: int, n_classes: int) -> np.ndarray:
    """Integer class labels (n,) or one-hot rows (n, n_classes) -> int64 (n,)."""
    a = as_array(y, name)
    if a.dtype.kind not in "iuf" and a.dtype != np.bool_:
        raise TypeError(
            f"{name}: expected integer class labels or one-hot rows; received "
            f"{_describe(a)}"
        )
    if a.ndim == 2:
        if a.shape != (n_samples, n_classes):
            raise ValueError(
                f"{name}: expected one-hot rows of shape ({n_samples}, {n_classes}) "
                f"or labels of shape ({n_samples},); received {_describe(a)}"
            )
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"{name}: expected finite values; received NaN or inf")
        if not (np.isin(a, (0, 1)).all() and (a.sum(axis=1) == 1).all()):
            raise ValueError(
                f"{name}: expected one-hot rows (0/1 values, exactly one 1 per row)"
            )
        return np.ascontiguousarray(a.argmax(axis=1), dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(
            f"{name}: expected labels of shape ({n_samples},) or one-hot rows of "
            f"shape ({n_samples}, {n_classes}); received {_describe(a)}"
        )
    if a.shape[0] != n_samples:
        raise ValueError(
            f"{name}: expected {n_samples} labels, one per sample of x; received "
            f"{a.shape[0]}"
        )
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or not (a == np.round(a)).all():
            raise ValueError(
                f"{name}: expected integral class labels; received "
                "non-integral, NaN or inf values"
            )
    if a.size and (a.min() < 0 or a.max() >= n_classes):
        raise ValueError(
            f"{name}: expected class labels in [0, {n_classes - 1}]; received values "
            f"from {a.min()} to {a.max()}"
        )
    return np.ascontiguousarray(a, dtype=np.int64)


def check_targets(
    y, name: str, n_samples: int, n_outputs: int, dtype: np.dtype
) -> np.ndarray:
    """Targets for mse: float rows (n, n_outputs), or integer labels -> one-hot."""
    a = as_array(y, name)
    if a.ndim == 1 and a.dtype.kind in "iu":
        labels = check_labels(a, name, n_samples, n_outputs)
        out = np.zeros((n_samples, n_outputs), dtype)
        out[np.arange(n_samples), labels] = 1
        return out
    if a.dtype not in _FLOAT_KINDS and a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected float targets; received {_describe(a)}")
    if a.ndim != 2 or a.shape != (n_samples, n_outputs):
        raise ValueError(
            f"{name}: expected targets of shape ({n_samples}, {n_outputs}) or integer "
            f"labels of shape ({n_samples},); received {_describe(a)}"
        )
    out = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: expected finite values; received NaN or inf")
    return out


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float within the bounds (open or closed), else
    ``TypeError`` (not a number) or ``ValueError`` (out of range), naming
    ``name``, what was expected and what was received."""
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.floating, np.integer)
    ):
        raise TypeError(f"{name}: expected a number; received {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else ("> " if low_open else ">= ") + str(low)
        hi = "" if high is None else ("< " if high_open else "<= ") + str(high)
        rng = " and ".join(s for s in (lo, hi) if s)
        raise ValueError(f"{name}: expected a finite number {rng}; received {value!r}")
    return value
