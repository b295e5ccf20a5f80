"""The training plan: how every step of one ``fit`` runs (the layers' layout,
the loss, the optimizer's kind and hyper-parameters, the decay spans, dropout),
and the per-step scalars every backend's update multiplies by."""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np

from fastnn.contract.arrays import int_array, read_only
from fastnn.losses import Loss

# Columns of ``TrainingPlan.layout``.
N_IN, N_OUT, W_OFF, B_OFF, ACT = range(5)


class OptimizerKind(IntEnum):
    """The update rule; each follows ``torch.optim`` (see fastnn.optimizers)."""

    SGD = 0
    ADAM = 1
    ADAMW = 2
    RMSPROP = 3
    ADAGRAD = 4


# Entries of ``TrainingPlan.hyper`` (float64). ``SECOND`` is Adam's beta_2 and
# RMSprop's rho; ``FLAG`` is Adam's amsgrad and RMSprop's centered (0 or 1).
MOMENTUM, NESTEROV, WEIGHT_DECAY, BETA_1, SECOND, EPSILON, FLAG, CLIPNORM = range(8)
N_HYPER = 8


def slot_names(kind: int, hyper) -> tuple[str, ...]:
    """The optimizer's slots, in the order of ``TrainingState.slots``' rows."""
    kind = OptimizerKind(kind)
    if kind == OptimizerKind.SGD:
        return ("velocity",)
    if kind in (OptimizerKind.ADAM, OptimizerKind.ADAMW):
        return ("m", "v", "v_max") if hyper[FLAG] else ("m", "v")
    if kind == OptimizerKind.RMSPROP:
        names = ["square_avg"]
        if hyper[MOMENTUM]:
            names.append("momentum_buffer")
        if hyper[FLAG]:
            names.append("grad_avg")
        return tuple(names)
    return ("sum",)


def _layers_tile_params(layout, size):
    """Whether the layers' W and b ranges cover ``params`` exactly once."""
    ranges = [(int(w), int(w + i * o)) for i, o, w, _, _ in layout.tolist()]
    ranges += [(int(b), int(b + o)) for _, o, _, b, _ in layout.tolist() if b >= 0]
    ranges.sort()
    position = 0
    for start, stop in ranges:
        if start != position:
            return False
        position = stop
    return position == size


def _sorted_disjoint(spans):
    """``(spans sorted by start, whether they are disjoint)``."""
    if spans.shape[0] <= 1:
        return np.ascontiguousarray(spans), True
    ordered = np.ascontiguousarray(spans[np.argsort(spans[:, 0], kind="stable")])
    if np.all(ordered[1:, 0] >= ordered[:-1, 1]):
        return ordered, True
    return np.ascontiguousarray(spans), False


def _decay_is_exactly_the_weights(layout, spans, size):
    """Whether the layers tile ``params`` and ``decay_spans`` are exactly their
    weight matrices (what every ``Sequential`` passes)."""
    weights = sorted((int(w), int(w + i * o)) for i, o, w, _, _ in layout.tolist())
    if sorted(map(tuple, spans.tolist())) != weights:
        return False
    return _layers_tile_params(layout, size)


#: TrainingPlan's arguments, in order.
_PLAN_ARGS = (
    "layout",
    "n_params",
    "loss",
    "optimizer",
    "hyper",
    "decay_spans",
    "batch_size",
    "dropout",
    "seed",
)


class TrainingPlan:
    """How every step of one ``fit`` runs; immutable, checked when built.

    Parameters
    ----------
    layout : int array (n_layers, 5)
        Per layer ``N_IN, N_OUT, W_OFF, B_OFF, ACT``: the shapes, the offsets
        of W (row-major ``(n_in, n_out)``) and b in ``params`` (``B_OFF = -1``:
        no bias) and the activation code.
    n_params : int
        The size of ``params``; every W and b lies inside it.
    loss : Loss code
    optimizer : OptimizerKind
    hyper : float array (N_HYPER,)
        The optimizer's hyper-parameters (see the index names above).
    decay_spans : int array (k, 2)
        ``[start, stop)`` ranges of ``params`` that weight decay applies to.
    batch_size : int
        Step ``s`` trains on ``order[s*batch_size : (s+1)*batch_size]``.
    dropout : float array (n_layers,), optional
        ``dropout[l]``: the rate of inverted dropout on the input of layer
        ``l`` during training (0: none; layer 0's input is never dropped).
    seed : int, optional
        The dropout key, ``0 <= seed < 2**64``.
    """

    __slots__ = (
        *_PLAN_ARGS,
        "drop_thresholds",
        "drop_scales",
        "n_slots",
        "sorted_spans",
        "spans_disjoint",
        "layers_tile",
        "decay_is_weights",
    )

    def __init__(
        self,
        layout,
        n_params,
        loss,
        optimizer,
        hyper,
        decay_spans,
        batch_size,
        dropout=None,
        seed=0,
    ) -> None:
        from fastnn._philox import threshold_for

        layout = int_array("layout", layout, (5,))
        n_params = int(n_params)
        if layout.shape[0] == 0:
            raise ValueError("layout: expected at least one layer; received none")
        previous = int(layout[0, N_IN])
        for l, (n_in, n_out, w_off, b_off, act) in enumerate(layout.tolist()):
            if not (
                n_in == previous
                and n_in >= 1
                and n_out >= 1
                and 0 <= w_off <= n_params - n_in * n_out
                and (b_off == -1 or 0 <= b_off <= n_params - n_out)
                and 0 <= act < 5
            ):
                raise ValueError(
                    f"layout: row {l} = {[n_in, n_out, w_off, b_off, act]} is "
                    f"inconsistent (expected N_IN = {previous}, N_OUT >= 1, W and "
                    f"b inside params of size {n_params}, B_OFF = -1 or >= 0, "
                    "ACT in 0..4)"
                )
            previous = n_out
        object.__setattr__(self, "layout", read_only(layout))
        object.__setattr__(self, "n_params", n_params)
        object.__setattr__(self, "loss", int(Loss(int(loss))))
        kind = OptimizerKind(int(optimizer))
        object.__setattr__(self, "optimizer", kind)
        hyper = np.array(hyper, np.float64).reshape(-1)
        if hyper.shape != (N_HYPER,) or not np.all(np.isfinite(hyper)):
            raise ValueError(
                f"hyper: expected {N_HYPER} finite numbers; received {hyper.tolist()}"
            )
        object.__setattr__(self, "hyper", read_only(hyper))
        spans = int_array("decay_spans", decay_spans, (2,))
        if spans.size and (
            spans.min() < 0
            or spans.max() > n_params
            or np.any(spans[:, 0] > spans[:, 1])
        ):
            raise ValueError(
                f"decay_spans: expected [start, stop) ranges inside params (size "
                f"{n_params}); received {spans.tolist()}"
            )
        object.__setattr__(self, "decay_spans", read_only(spans))
        if isinstance(batch_size, bool) or int(batch_size) != batch_size:
            raise TypeError(f"batch_size: expected an int; received {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1; received {batch_size!r}")
        object.__setattr__(self, "batch_size", int(batch_size))
        n_layers = layout.shape[0]
        rates = np.zeros(n_layers) if dropout is None else np.array(dropout, np.float64)
        if rates.shape != (n_layers,) or not np.all((rates >= 0) & (rates < 1)):
            raise ValueError(
                f"dropout: expected {n_layers} rates in [0, 1); received "
                f"{rates.tolist()}"
            )
        if rates[0] != 0:
            raise ValueError(
                f"dropout: the input of layer 0 is never dropped; received rate "
                f"{rates[0]} for it"
            )
        object.__setattr__(self, "dropout", read_only(rates))
        thresholds = np.array([threshold_for(r) for r in rates.tolist()], np.int64)
        object.__setattr__(self, "drop_thresholds", read_only(thresholds))
        if isinstance(seed, bool) or int(seed) != seed or not 0 <= seed < 2**64:
            raise ValueError(f"seed: expected an int in [0, 2**64); received {seed!r}")
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "n_slots", len(slot_names(kind, hyper)))
        # Derived once, for the compiled backends: 1 / (1 - rate) per layer
        # (float64; every backend casts it to its dtype), the decay spans
        # sorted by start (as given if they overlap), whether they are
        # disjoint, whether the layers' W and b tile params, and whether the
        # spans are exactly the weight matrices.
        object.__setattr__(self, "drop_scales", read_only(1.0 / (1.0 - rates)))
        ordered, disjoint = _sorted_disjoint(spans)
        object.__setattr__(self, "sorted_spans", read_only(ordered))
        object.__setattr__(self, "spans_disjoint", disjoint)
        object.__setattr__(self, "layers_tile", _layers_tile_params(layout, n_params))
        object.__setattr__(
            self,
            "decay_is_weights",
            _decay_is_exactly_the_weights(layout, spans, n_params),
        )
        if kind == OptimizerKind.SGD and hyper[NESTEROV] and not hyper[MOMENTUM]:
            raise ValueError("hyper: Nesterov momentum requires momentum > 0")

    def __setattr__(self, name, value):
        raise AttributeError(f"TrainingPlan is immutable; cannot set {name!r}")

    def __reduce__(self):  # rebuilt (and so checked) from its arguments
        return (TrainingPlan, tuple(getattr(self, name) for name in _PLAN_ARGS))

    @property
    def weight_decay(self) -> float:
        return float(self.hyper[WEIGHT_DECAY])

    @property
    def coupled_decay(self) -> bool:
        """Whether weight decay is L2 on the gradient (and in the loss): every
        optimizer but AdamW, whose decay is decoupled."""
        return self.optimizer != OptimizerKind.ADAMW

    @property
    def has_dropout(self) -> bool:
        return bool(np.any(self.dropout > 0))

    def drop_scale(self, l: int, dtype) -> np.floating:
        """Inverted dropout's factor ``1 / (1 - rate)`` on layer ``l``'s input,
        in ``dtype`` (every backend multiplies by this same number)."""
        return np.dtype(dtype).type(self.drop_scales[l])

    def replace(self, **changes) -> TrainingPlan:
        """A copy with some arguments changed (e.g. ``batch_size``)."""
        args = {name: getattr(self, name) for name in _PLAN_ARGS}
        args.update(changes)
        return TrainingPlan(**args)

    def __repr__(self) -> str:
        return (
            f"TrainingPlan(layers={self.layout.shape[0]}, n_params={self.n_params}, "
            f"loss={Loss(self.loss).name}, optimizer={self.optimizer.name}, "
            f"batch_size={self.batch_size}, dropout={self.dropout.tolist()})"
        )


def step_scalars(plan: TrainingPlan, first_step: int, learning_rates) -> np.ndarray:
    """Per-step float64 scalars of the update, ``(n, 4)``: the learning rate,
    Adam's step size ``lr / (1 - beta_1**t)`` (else the rate),
    ``sqrt(1 - beta_2**t)`` (else 1) and AdamW's ``1 - lr * weight_decay``,
    for ``t = first_step + 1 ...``. Computed here, once, so that every
    backend multiplies by the same numbers."""
    lr = np.asarray(learning_rates, np.float64).reshape(-1)
    t = np.arange(first_step + 1, first_step + 1 + lr.shape[0], dtype=np.float64)
    out = np.empty((lr.shape[0], 4), np.float64)
    out[:, 0] = lr
    if plan.optimizer in (OptimizerKind.ADAM, OptimizerKind.ADAMW):
        out[:, 1] = lr / (1.0 - plan.hyper[BETA_1] ** t)
        out[:, 2] = np.sqrt(1.0 - plan.hyper[SECOND] ** t)
    else:
        out[:, 1] = lr
        out[:, 2] = 1.0
    out[:, 3] = 1.0 - lr * plan.hyper[WEIGHT_DECAY]
    return out


def clip_coefficient(sum_squares: float, clipnorm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_``'s factor: ``min(1, clipnorm /
    (norm + 1e-6))`` for the global norm ``sqrt(sum_squares)``."""
    return min(1.0, clipnorm / (math.sqrt(sum_squares) + 1e-6))
