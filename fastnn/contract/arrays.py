"""The arrays a backend trains on and updates: :class:`TrainingData` (inputs
and targets, read-only) and :class:`TrainingState` (parameters, optimizer
slots, gradient buffer, step), each checked once when built."""

from __future__ import annotations

import numpy as np

from fastnn.losses import Loss

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def read_only(a: np.ndarray) -> np.ndarray:
    """A view of ``a`` that cannot be written through."""
    view = a.view()
    view.flags.writeable = False
    return view


def int_array(name, a, shape_tail) -> np.ndarray:
    """``a`` as a C-contiguous int64 array of shape ``(k, *shape_tail)``."""
    a = np.asarray(a)
    if a.size == 0:
        return np.zeros((0, *shape_tail), np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array; received {a.dtype}")
    if a.ndim != 1 + len(shape_tail) or a.shape[1:] != shape_tail:
        expected = "(k, " + ", ".join(map(str, shape_tail)) + ")"
        raise ValueError(f"{name}: expected shape {expected}; received {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int64)


class TrainingData:
    """The training inputs ``X`` (n, n_in) and targets, checked, read-only.

    With the cross-entropy loss ``labels`` holds int64 class indices in
    ``[0, k)`` and ``Y`` is empty (0, k); with mse ``Y`` (n, k) holds the
    targets (of ``X``'s dtype) and ``labels`` is empty. ``k`` is the output
    width, ``n_in`` the input width.
    """

    __slots__ = ("X", "labels", "Y", "loss")

    def __init__(self, X, labels, Y, loss, k: int) -> None:
        if not isinstance(X, np.ndarray) or X.dtype not in FLOAT_DTYPES or X.ndim != 2:
            raise TypeError(
                "X: expected a 2-d float32 or float64 array; received "
                f"{getattr(X, 'dtype', type(X).__name__)} "
                f"{getattr(X, 'shape', '')}"
            )
        n = X.shape[0]
        loss = int(Loss(int(loss)))
        if loss == Loss.CROSS_ENTROPY:
            labels = np.asarray(labels)
            if labels.dtype.kind not in "iu" or labels.shape != (n,):
                raise ValueError(
                    f"labels: expected {n} integer class indices; received "
                    f"{labels.dtype} {labels.shape}"
                )
            if n and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(
                    f"labels: expected class indices in [0, {k}); received values "
                    f"in [{labels.min()}, {labels.max()}]"
                )
            labels = np.ascontiguousarray(labels, np.int64)
            Y = np.empty((0, k), X.dtype)
        else:
            if not isinstance(Y, np.ndarray) or Y.dtype != X.dtype or Y.shape != (n, k):
                raise ValueError(
                    f"Y: expected a {X.dtype} array of shape {(n, k)}; received "
                    f"{getattr(Y, 'dtype', type(Y).__name__)} "
                    f"{getattr(Y, 'shape', '')}"
                )
            labels = np.empty(0, np.int64)
        object.__setattr__(self, "X", read_only(np.ascontiguousarray(X)))
        object.__setattr__(self, "labels", read_only(labels))
        object.__setattr__(self, "Y", read_only(np.ascontiguousarray(Y)))
        object.__setattr__(self, "loss", loss)

    def __setattr__(self, name, value):
        raise AttributeError(f"TrainingData is immutable; cannot set {name!r}")

    def __reduce__(self):
        return (TrainingData, (self.X, self.labels, self.Y, self.loss, self.Y.shape[1]))

    @property
    def n(self) -> int:
        return self.X.shape[0]


class TrainingState:
    """Parameters, optimizer slots, gradient scratch and the step counter.

    ``params`` (P,), ``grads`` (P,) and ``slots`` (S, P) are C-contiguous,
    writable and of one float dtype; backends update them in place (the
    arrays themselves are never replaced). ``step`` counts the optimizer steps
    applied so far: Adam's bias correction and the dropout masks read it, and
    ``update`` and ``train_steps`` advance it.
    """

    __slots__ = ("_params", "_grads", "_slots", "step")

    def __init__(self, params, slots, step: int = 0, grads=None) -> None:
        if not isinstance(params, np.ndarray) or params.dtype not in FLOAT_DTYPES:
            raise TypeError(
                "params: expected a float32 or float64 array; received "
                f"{getattr(params, 'dtype', type(params).__name__)}"
            )
        if grads is None:
            grads = np.zeros_like(params)
        for name, a, ndim in (
            ("params", params, 1),
            ("grads", grads, 1),
            ("slots", slots, 2),
        ):
            if (
                not isinstance(a, np.ndarray)
                or a.dtype != params.dtype
                or a.ndim != ndim
            ):
                raise ValueError(
                    f"{name}: expected a {ndim}-d {params.dtype} array; received "
                    f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}"
                )
            if not (a.flags.c_contiguous and a.flags.writeable):
                raise ValueError(f"{name}: expected a C-contiguous writable array")
        if grads.shape != params.shape or slots.shape[1:] != params.shape:
            raise ValueError(
                f"grads, slots: expected shapes {params.shape} and (S, "
                f"{params.shape[0]}); received {grads.shape} and {slots.shape}"
            )
        self._params, self._grads, self._slots = params, grads, slots
        self.step = int(step)

    params = property(lambda self: self._params, doc="(P,) the parameters")
    grads = property(lambda self: self._grads, doc="(P,) gradient scratch")
    slots = property(lambda self: self._slots, doc="(S, P) optimizer slots")

    @property
    def dtype(self) -> np.dtype:
        return self._params.dtype

    def __reduce__(self):
        return (_unpickled_state, (self.params, self.slots, self.step))

    def copy(self) -> TrainingState:
        return TrainingState(self.params.copy(), self.slots.copy(), self.step)


def _unpickled_state(params, slots, step) -> TrainingState:
    """A state from pickled arrays, copied where they came back read-only
    (joblib hands large arrays over as read-only memory maps)."""
    params, slots = (np.require(a, requirements=["C", "W"]) for a in (params, slots))
    return TrainingState(params, slots, step)
