"""Optimizers: SGD, Adam, AdamW, RMSprop and Adagrad.

Hyper-parameter names follow Keras; the arithmetic follows ``torch.optim``
exactly (``fastnn.reference.update`` spells it out), so the same numbers give
the same trajectory. Every optimizer takes:

* ``learning_rate``: a positive number or a schedule from
  :mod:`fastnn.schedules` (indexed by the optimizer step);
* ``weight_decay``: on the weight matrices only, never on biases. Coupled
  (L2: ``weight_decay * W`` is added to the gradient and ``weight_decay / 2 *
  sum W**2`` to the reported loss) for every optimizer but :class:`AdamW`,
  whose decay is decoupled (``W *= 1 - lr * weight_decay`` before the step,
  and nothing in the loss);
* ``clipnorm``: if given, the gradient is scaled to a global L2 norm of at
  most ``clipnorm`` before the optimizer sees it
  (``torch.nn.utils.clip_grad_norm_``).

An optimizer is a description: its state (the slots: SGD's velocity, Adam's
moments, ...) lives in the model's :class:`~fastnn.contract.TrainingState`,
where the backends update it, and is saved with the model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fastnn import contract as c
from fastnn._validation import check_number as _number
from fastnn.schedules import ExponentialDecay, LearningRateSchedule
from fastnn.schedules import get as _get_schedule

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Adagrad",
    "ExponentialDecay",
    "Optimizer",
    "RMSprop",
]


def _flag(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool; received {value!r}")
    return bool(value)


class Optimizer:
    """What every optimizer shares: the learning rate (or schedule), weight
    decay, ``clipnorm`` and ``learning_rate_scale``, a factor on the rate
    that :class:`~fastnn.callbacks.ReduceLROnPlateau` lowers."""

    kind: ClassVar[c.OptimizerKind]
    #: the hyper-parameters besides learning_rate, clipnorm, in config order
    _names: ClassVar[tuple[str, ...]]

    def __init__(self, learning_rate, weight_decay, clipnorm) -> None:
        if isinstance(learning_rate, LearningRateSchedule):
            self.learning_rate = learning_rate
        else:
            self.learning_rate = _number(
                "learning_rate", learning_rate, low=0, low_open=True
            )
        self.weight_decay = _number("weight_decay", weight_decay, low=0)
        if clipnorm is not None:
            clipnorm = _number("clipnorm", clipnorm, low=0, low_open=True)
        self.clipnorm = clipnorm
        self.learning_rate_scale = 1.0

    def learning_rates(self, first_step: int, n_steps: int) -> np.ndarray:
        """The learning rate of each optimizer step ``first_step .. +n-1``."""
        lr = self.learning_rate
        if isinstance(lr, LearningRateSchedule):
            rates = lr(np.arange(first_step, first_step + n_steps))
        else:
            rates = np.full(n_steps, lr)
        if self.learning_rate_scale != 1.0:
            rates = rates * self.learning_rate_scale
        return rates

    def hyper(self) -> np.ndarray:
        """The hyper-parameters as :class:`~fastnn.contract.TrainingPlan` takes them."""
        h = np.zeros(c.N_HYPER)
        h[c.WEIGHT_DECAY] = self.weight_decay
        h[c.CLIPNORM] = self.clipnorm or 0.0
        self._fill(h)
        return h

    def _fill(self, h: np.ndarray) -> None:
        raise NotImplementedError

    def slot_names(self) -> tuple[str, ...]:
        return c.slot_names(self.kind, self.hyper())

    def initial_slots(self, n_params: int, dtype) -> np.ndarray:
        """Fresh slots, ``(len(slot_names()), n_params)``."""
        return np.zeros((len(self.slot_names()), n_params), dtype)

    def get_config(self) -> dict[str, Any]:
        lr = self.learning_rate
        config: dict[str, Any] = {
            "class": type(self).__name__,
            "learning_rate": lr.get_config() if hasattr(lr, "get_config") else lr,
        }
        for name in self._names:
            config[name] = getattr(self, name)
        config["clipnorm"] = self.clipnorm
        return config

    def state_config(self) -> dict[str, Any]:
        """What must match for saved slots to mean the same to this optimizer."""
        config = self.get_config()
        del config["learning_rate"], config["clipnorm"]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return get(config) if cls is Optimizer else cls(**_args(config))

    def __repr__(self) -> str:
        config = self.get_config()
        del config["class"]
        return (
            f"{type(self).__name__}("
            + ", ".join(f"{k}={v!r}" for k, v in config.items())
            + ")"
        )


def _args(config: dict[str, Any]) -> dict[str, Any]:
    args = dict(config)
    args.pop("class", None)
    lr = args.get("learning_rate")
    if isinstance(lr, dict):
        args["learning_rate"] = _get_schedule(lr)
    return args


class SGD(Optimizer):
    """Mini-batch SGD with momentum and Nesterov momentum (``torch.optim.SGD``,
    dampening 0): ``v = momentum * v + g``, ``W -= lr * (g + momentum * v)``
    with Nesterov, else ``W -= lr * v``."""

    kind = c.OptimizerKind.SGD
    _names = ("momentum", "nesterov", "weight_decay")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.momentum = _number("momentum", momentum, low=0, high=1, high_open=True)
        self.nesterov = _flag("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "nesterov: Nesterov momentum requires momentum > 0; "
                "received momentum=0.0"
            )

    def _fill(self, h):
        h[c.MOMENTUM] = self.momentum
        h[c.NESTEROV] = self.nesterov


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``): L2 ``weight_decay`` added to the gradient,
    bias-corrected moments, ``epsilon`` added to ``sqrt(v_hat)``; ``amsgrad``
    uses the running maximum of ``v``."""

    kind = c.OptimizerKind.ADAM
    _names = ("beta_1", "beta_2", "epsilon", "weight_decay", "amsgrad")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.beta_1 = _number("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = _number("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = _number("epsilon", epsilon, low=0, low_open=True)
        self.amsgrad = _flag("amsgrad", amsgrad)

    def _fill(self, h):
        h[c.BETA_1], h[c.SECOND] = self.beta_1, self.beta_2
        h[c.EPSILON], h[c.FLAG] = self.epsilon, self.amsgrad


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``): ``W *= 1 - lr
    * weight_decay`` before the Adam step; the decay is not in the loss."""

    kind = c.OptimizerKind.ADAMW

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, weight_decay, amsgrad, clipnorm
        )


class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop`` with ``alpha = rho``): optional
    momentum and ``centered`` (divide by the estimated variance)."""

    kind = c.OptimizerKind.RMSPROP
    _names = ("rho", "momentum", "epsilon", "centered", "weight_decay")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.01,
        rho: float = 0.99,
        momentum: float = 0.0,
        epsilon: float = 1e-8,
        centered: bool = False,
        weight_decay: float = 0.0,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.rho = _number("rho", rho, low=0, high=1, high_open=True)
        self.momentum = _number("momentum", momentum, low=0, high=1, high_open=True)
        self.epsilon = _number("epsilon", epsilon, low=0, low_open=True)
        self.centered = _flag("centered", centered)

    def _fill(self, h):
        h[c.SECOND], h[c.MOMENTUM] = self.rho, self.momentum
        h[c.EPSILON], h[c.FLAG] = self.epsilon, self.centered


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``, no rate decay): the accumulator
    starts at ``initial_accumulator_value``."""

    kind = c.OptimizerKind.ADAGRAD
    _names = ("initial_accumulator_value", "epsilon", "weight_decay")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.01,
        initial_accumulator_value: float = 0.0,
        epsilon: float = 1e-10,
        weight_decay: float = 0.0,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.initial_accumulator_value = _number(
            "initial_accumulator_value", initial_accumulator_value, low=0
        )
        self.epsilon = _number("epsilon", epsilon, low=0, low_open=True)

    def _fill(self, h):
        h[c.EPSILON] = self.epsilon

    def initial_slots(self, n_params, dtype):
        return np.full((1, n_params), self.initial_accumulator_value, dtype)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def get(identifier) -> Optimizer:
    """An optimizer from an instance, a name (``"adam"``: its defaults) or a
    config dict (``get_config()``'s; one without ``"class"`` is SGD's, as
    fastnn wrote them before there were others)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in OPTIMIZERS:
            raise ValueError(
                f"optimizer: expected one of {', '.join(map(repr, OPTIMIZERS))}; "
                f"received {identifier!r}"
            )
        return OPTIMIZERS[key]()
    if isinstance(identifier, dict):
        name = str(identifier.get("class", "SGD")).lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer: unknown class {identifier.get('class')!r}")
        return OPTIMIZERS[name](**_args(identifier))
    raise TypeError(
        "optimizer: expected a fastnn optimizer (SGD, Adam, AdamW, RMSprop, "
        f"Adagrad) or its name; received {type(identifier).__name__}"
    )
