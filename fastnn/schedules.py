"""Learning-rate schedules: the rate of each SGD step as a function of the step.

A schedule maps *global step indices* (0-based, counting optimizer steps, i.e.
batches, since training started; a resumed run continues the count) to learning
rates. Schedules are vectorised: ``schedule(np.arange(s, e))`` returns the
float64 rates of steps ``s .. e-1`` in one call, which is how the trainer asks
for a chunk of steps at a time. Pass one to :class:`fastnn.SGD` as its
``learning_rate``.

The names and formulas follow ``keras.optimizers.schedules`` (Keras 3), with
:class:`StepDecay` as PyTorch's ``StepLR`` counted in steps:

* :class:`ExponentialDecay`: ``lr * decay_rate ** (step / decay_steps)``;
* :class:`StepDecay`: ``lr * gamma ** (step // step_size)``;
* :class:`CosineDecay`: an optional linear warm-up, then a half cosine down to
  ``alpha`` times its starting rate.

Every schedule has ``get_config()``, a JSON-ready dict whose ``"class"`` names
it, and :func:`get` builds a schedule back from such a dict.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from fastnn._validation import check_number, check_positive_int

__all__ = [
    "CosineDecay",
    "ExponentialDecay",
    "LearningRateSchedule",
    "StepDecay",
    "get",
]


def _as_steps(steps) -> np.ndarray:
    return np.asarray(steps, dtype=np.float64)


class LearningRateSchedule:
    """The base of the schedules: a callable from global step indices to rates.

    Subclasses implement ``__call__(steps)``, taking an int array of 0-based
    global step indices and returning a float64 array of the same shape, and
    ``get_config()``, returning a JSON-ready dict with ``"class"`` (the class
    name, as :func:`get` looks it up) and the constructor's arguments.
    """

    def __call__(self, steps: np.ndarray) -> np.ndarray:
        raise NotImplementedError(
            f"{type(self).__name__} does not implement __call__(steps)"
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            f"{type(self).__name__} does not implement get_config()"
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        """The schedule ``get_config()`` describes (its ``"class"`` key, if
        present, is not checked here: :func:`get` dispatches on it)."""
        kwargs = {k: v for k, v in config.items() if k != "class"}
        accepted = [
            p for p in inspect.signature(cls.__init__).parameters if p != "self"
        ]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(
                f"config: unexpected keys {unknown} for {cls.__name__}; "
                f"expected some of {accepted}"
            )
        return cls(**kwargs)

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_config().items() if k != "class"
        )
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)``.

    ``step`` counts SGD steps (batches) from the start of training. The original
    project's schedule is ``ExponentialDecay(lr, decay_rate=0.999)``: x0.999 per
    batch. ``staircase=True`` uses ``step // decay_steps``. ``min_learning_rate``
    sets a floor.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_rate: float = 0.999,
        decay_steps: int = 1,
        staircase: bool = False,
        min_learning_rate: float = 0.0,
    ) -> None:
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, low=0, low_open=True
        )
        self.decay_rate = check_number(
            "decay_rate", decay_rate, low=0, high=1, low_open=True
        )
        if (
            isinstance(decay_steps, bool)
            or not isinstance(decay_steps, (int, np.integer))
            or decay_steps < 1
        ):
            raise ValueError(
                f"decay_steps: expected a positive int; received {decay_steps!r}"
            )
        self.decay_steps = int(decay_steps)
        self.staircase = bool(staircase)
        self.min_learning_rate = check_number(
            "min_learning_rate", min_learning_rate, low=0
        )

    def __call__(self, steps: np.ndarray) -> np.ndarray:
        """Learning rates (float64) for an array of global step indices."""
        p = _as_steps(steps) / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        lr = self.initial_learning_rate * self.decay_rate**p
        return np.maximum(lr, self.min_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {
            "class": "ExponentialDecay",
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps,
            "staircase": self.staircase,
            "min_learning_rate": self.min_learning_rate,
        }


class StepDecay(LearningRateSchedule):
    """``lr(step) = max(initial_learning_rate * gamma ** (step // step_size),
    min_learning_rate)``.

    PyTorch's ``torch.optim.lr_scheduler.StepLR`` counted in SGD steps rather
    than epochs: the rate is multiplied by ``gamma`` every ``step_size`` steps
    (for every ``k`` epochs of ``n`` batches, ``step_size = k * n``).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        step_size: int,
        gamma: float = 0.1,
        min_learning_rate: float = 0.0,
    ) -> None:
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, low=0, low_open=True
        )
        self.step_size = check_positive_int(step_size, "step_size")
        self.gamma = check_number("gamma", gamma, low=0, high=1, low_open=True)
        self.min_learning_rate = check_number(
            "min_learning_rate", min_learning_rate, low=0
        )

    def __call__(self, steps: np.ndarray) -> np.ndarray:
        """Learning rates (float64) for an array of global step indices."""
        drops = np.floor(_as_steps(steps) / self.step_size)
        lr = self.initial_learning_rate * self.gamma**drops
        return np.maximum(lr, self.min_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {
            "class": "StepDecay",
            "initial_learning_rate": self.initial_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
            "min_learning_rate": self.min_learning_rate,
        }


class CosineDecay(LearningRateSchedule):
    """Keras 3's ``CosineDecay``: an optional linear warm-up, then a half cosine.

    Without ``warmup_target`` the rate falls from ``initial_learning_rate`` to
    ``alpha * initial_learning_rate`` over ``decay_steps`` steps::

        s = min(step, decay_steps)
        cosine = 0.5 * (1 + cos(pi * s / decay_steps))
        lr = initial_learning_rate * ((1 - alpha) * cosine + alpha)

    With ``warmup_target`` it first rises linearly from ``initial_learning_rate``
    (step 0) towards ``warmup_target`` (reached at step ``warmup_steps``)::

        lr = initial_learning_rate
             + (warmup_target - initial_learning_rate) * step / warmup_steps

    then decays as above from ``warmup_target`` to ``alpha * warmup_target``
    over the next ``decay_steps`` steps (``s = min(step - warmup_steps,
    decay_steps)``). Steps past the end keep the final rate.

    As in Keras, a warm-up may start from ``initial_learning_rate=0``;
    otherwise rates must be > 0. Unlike Keras, which silently ignores it,
    ``warmup_steps > 0`` without ``warmup_target`` is refused.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        self.initial_learning_rate = check_number(
            "initial_learning_rate",
            initial_learning_rate,
            low=0,
            low_open=warmup_target is None,
        )
        self.decay_steps = check_positive_int(decay_steps, "decay_steps")
        self.alpha = check_number("alpha", alpha, low=0, high=1)
        self.warmup_target = (
            None
            if warmup_target is None
            else check_number("warmup_target", warmup_target, low=0, low_open=True)
        )
        self.warmup_steps = check_positive_int(warmup_steps, "warmup_steps", 0)
        if self.warmup_target is None and self.warmup_steps > 0:
            raise ValueError(
                "warmup_steps: a warm-up needs warmup_target (the rate to warm up "
                f"to); received warmup_steps={self.warmup_steps} with "
                "warmup_target=None"
            )

    def _decayed(self, s: np.ndarray, peak: float) -> np.ndarray:
        cosine = 0.5 * (1.0 + np.cos(np.pi * (s / self.decay_steps)))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, steps: np.ndarray) -> np.ndarray:
        """Learning rates (float64) for an array of global step indices."""
        step = _as_steps(steps)
        if self.warmup_target is None:
            return self._decayed(
                np.minimum(step, self.decay_steps), self.initial_learning_rate
            )
        w = self.warmup_steps
        step = np.minimum(step, self.decay_steps + w)
        decayed = self._decayed(step - w, self.warmup_target)
        if w == 0:
            return decayed
        delta = self.warmup_target - self.initial_learning_rate
        warm = delta * (step / w) + self.initial_learning_rate
        return np.where(step < w, warm, decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "class": "CosineDecay",
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


_SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls for cls in (ExponentialDecay, StepDecay, CosineDecay)
}


def get(config_or_schedule) -> LearningRateSchedule:
    """A schedule from its ``get_config()`` dict, or the schedule itself.

    ``ValueError`` for a dict without ``"class"``, with an unknown class, or
    with keys the class does not take; ``TypeError`` for anything else.
    """
    if isinstance(config_or_schedule, LearningRateSchedule):
        return config_or_schedule
    if not isinstance(config_or_schedule, dict):
        raise TypeError(
            "config_or_schedule: expected a LearningRateSchedule or its config "
            f"dict; received {type(config_or_schedule).__name__}"
        )
    if "class" not in config_or_schedule:
        raise ValueError(
            "config_or_schedule: expected a dict with a 'class' key naming the "
            f"schedule; received keys {sorted(config_or_schedule)}"
        )
    name = config_or_schedule["class"]
    cls = _SCHEDULES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"config_or_schedule: unknown schedule class {name!r}; expected one "
            f"of {sorted(_SCHEDULES)}"
        )
    return cls.from_config(config_or_schedule)
