"""Training callbacks, in Keras's shape.

The trainer calls, in order: ``on_train_begin(logs)``, then per epoch
``on_epoch_begin(epoch, logs)``, ``on_batch_end(step, logs)`` after every chunk
of SGD steps the backend ran (``logs["steps"]`` says how many; the compiled
backends run many steps per call), ``on_epoch_end(epoch, logs)``, and finally
``on_train_end(logs)``. Setting ``model.stop_training = True`` ends training after
the current epoch.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np


class Callback:
    model: Any = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_end(self, step, logs=None): ...


class History(Callback):
    """Records every epoch's logs: ``history.history["val_accuracy"]`` etc.

    What each key measures:

    * ``loss``: the mean of the epoch's batch losses (L2 term included), each
      taken before its step's update, as Keras reports it: the weights move
      during the epoch, so early on it reads above ``val_loss``;
    * ``accuracy`` (with ``metrics=("accuracy",)``), ``val_loss``,
      ``val_accuracy``: evaluated on all the data with the weights at the end
      of the epoch;
    * ``seconds``, ``samples_per_second``: the epoch's training time (the
      evaluations excluded); ``learning_rate``: the rate for the next step.

    ``history.epoch`` holds the 0-based epoch numbers; after
    ``fit(resume=...)`` it covers the checkpoint's epochs too.
    """

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def to_state(self) -> dict:
        """JSON-ready lists for a model file (:mod:`fastnn.io`): the keys with
        a number for every epoch (a value logged only sometimes, or as
        something else, is left out)."""
        logs = {}
        for key, values in self.history.items():
            if len(values) == len(self.epoch) and all(
                isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                for v in values
            ):
                logs[str(key)] = [float(v) for v in values]
        return {"epoch": [int(e) for e in self.epoch], "history": logs}

    @classmethod
    def from_state(cls, state: dict | None, completed_epochs: int) -> History:
        """The inverse of :meth:`to_state`, checked against the number of
        ``completed_epochs``; an empty History for ``None`` (files written
        before histories were saved). ``ValueError`` when malformed."""
        history = cls()
        if state is None:
            return history
        epochs, logs = state["epoch"], state["history"]
        if not isinstance(epochs, list) or not all(
            isinstance(e, int) and 0 <= e < completed_epochs for e in epochs
        ):
            raise ValueError("history.epoch is not a list of completed epoch numbers")
        if not isinstance(logs, dict) or not all(
            isinstance(v, list)
            and len(v) == len(epochs)
            and all(isinstance(x, (int, float)) for x in v)
            for v in logs.values()
        ):
            raise ValueError(
                "history.history is not a dict of lists, one value an epoch"
            )
        history.epoch = list(epochs)
        history.history = {str(k): [float(x) for x in v] for k, v in logs.items()}
        return history


def _monitor_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max'; received {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` the model ends with the weights of the best
    epoch seen.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if patience < 0:
            raise ValueError(f"patience: expected an int >= 0; received {patience!r}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.mode = _monitor_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = None
        self.stopped_epoch = None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"EarlyStopping: monitor {self.monitor!r} is not in the logs "
                f"({sorted(logs or {})}); nothing to do",
                stacklevel=2,
            )
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (atomically) at the end of each epoch.

    ``filepath`` may contain ``{epoch}`` (1-based) and any log key, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``. With ``save_best_only`` a file is
    written only when ``monitor`` improves. A model whose weights are not finite
    is never written.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ) -> None:
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = _monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(
                    f"ModelCheckpoint: monitor {self.monitor!r} is not in "
                    "the logs; saving every epoch",
                    stacklevel=2,
                )
            elif (value < self.best) if self.mode == "min" else (value > self.best):
                self.best = value
            else:
                return
        if not self.model.weights_are_finite():
            warnings.warn(
                "ModelCheckpoint: weights are not finite; not saved", stacklevel=2
            )
            return
        self.model.save(self.filepath.format(epoch=epoch + 1, **logs))


class TerminateOnNaN(Callback):
    """Stop training at the first step whose loss is NaN or inf.

    The trainer stops *before* applying that step, so the model keeps the last
    finite weights. Without this callback a non-finite loss raises
    ``FloatingPointError``.
    """


class ReduceLROnPlateau(Callback):
    """Scale the learning rate down by ``factor`` when ``monitor`` stops improving.

    Keras's ``ReduceLROnPlateau``, same arguments and bookkeeping: an epoch
    improves when ``current < best - min_delta`` (mode ``"min"``) or
    ``current > best + min_delta`` (``"max"``; ``"auto"`` is ``"max"`` for a
    monitor containing ``"acc"``). After ``patience`` epochs in a row without
    improvement the rate becomes ``max(lr * factor, min_lr)``, then ``cooldown``
    epochs pass before epochs without improvement count again.

    ``lr`` is the effective rate the trainer reports as ``logs["learning_rate"]``.
    The callback multiplies the optimizer's ``learning_rate_scale`` by
    ``new_lr / lr``, so a schedule keeps its shape, scaled down. Where the rate
    is already at ``min_lr`` nothing changes (and, as in Keras, no cooldown
    starts). An unknown ``monitor`` warns once per training and does nothing.

    ``get_state()``/``set_state()`` carry the counters and the best value (a
    JSON-ready dict) across a checkpoint: a state set before ``fit`` survives
    that fit's ``on_train_begin``, which otherwise starts afresh.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        from fastnn._validation import check_number, check_positive_int

        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a str; received {monitor!r}")
        self.monitor = monitor
        self.factor = check_number(
            "factor", factor, low=0, high=1, low_open=True, high_open=True
        )
        self.patience = check_positive_int(patience, "patience", 0)
        self.verbose = check_positive_int(verbose, "verbose", 0)
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = check_number("min_delta", min_delta, low=0)
        self.cooldown = check_positive_int(cooldown, "cooldown", 0)
        self.min_lr = check_number("min_lr", min_lr, low=0)
        self._restored = False
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.cooldown_counter = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self._warned = False

    def _improved(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if not hasattr(optimizer, "learning_rate_scale"):
            raise TypeError(
                "ReduceLROnPlateau: expected the model's optimizer to have a "
                f"learning_rate_scale attribute; received {optimizer!r}"
            )
        saved = getattr(self.model, "callback_states", {}).get(self._key)
        if self._restored:
            self._restored = False
            self._warned = False
        elif (logs or {}).get("resumed") and saved is not None:
            self.set_state(saved)  # a resumed fit continues the counters
            self._restored = False
        else:
            self._reset()

    @property
    def _key(self) -> str:
        return f"ReduceLROnPlateau:{self.monitor}"

    def on_epoch_end(self, epoch, logs=None):
        self._on_epoch_end(epoch, logs)
        states = getattr(self.model, "callback_states", None)
        if states is not None:  # checkpoints carry it (see the trainer)
            states[self._key] = self.get_state()

    def _on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"ReduceLROnPlateau: monitor {self.monitor!r} is not in the "
                    f"logs ({sorted(logs)}); nothing to do",
                    stacklevel=2,
                )
            return
        current = float(current)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        if "learning_rate" not in logs:
            raise KeyError(
                "ReduceLROnPlateau: expected the current rate as "
                f"logs['learning_rate']; received keys {sorted(logs)}"
            )
        old_lr = float(logs["learning_rate"])
        # At the floor already (to rounding: the rate is a schedule's times a
        # product of ratios), nothing changes, and no cooldown starts.
        if old_lr <= self.min_lr or math.isclose(old_lr, self.min_lr, rel_tol=1e-9):
            return
        new_lr = max(old_lr * self.factor, self.min_lr)
        optimizer = self.model.optimizer
        optimizer.learning_rate_scale = float(optimizer.learning_rate_scale) * (
            new_lr / old_lr
        )
        if self.verbose > 0:
            print(
                f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                f"to {new_lr:.6g}.",
                flush=True,
            )
        self.cooldown_counter = self.cooldown
        self.wait = 0

    def get_state(self) -> dict:
        """``{"wait", "cooldown_counter", "best"}``, JSON-ready; ``best`` is
        ``None`` until a value has been seen (it is ±inf then)."""
        best = float(self.best)
        return {
            "wait": int(self.wait),
            "cooldown_counter": int(self.cooldown_counter),
            "best": best if math.isfinite(best) else None,
        }

    def set_state(self, state: dict) -> None:
        """The inverse of :meth:`get_state`; ``ValueError`` when malformed.
        The next ``on_train_begin`` keeps this state instead of resetting."""
        from fastnn._validation import check_number

        if not isinstance(state, dict) or set(state) != {
            "wait",
            "cooldown_counter",
            "best",
        }:
            raise ValueError(
                "state: expected a dict with keys 'wait', 'cooldown_counter' and "
                f"'best'; received {state!r}"
            )
        counters = {}
        for key in ("wait", "cooldown_counter"):
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"state[{key!r}]: expected an int >= 0; received {value!r}"
                )
            counters[key] = value
        best = state["best"]
        if best is None:
            best = math.inf if self.mode == "min" else -math.inf
        else:
            try:
                best = check_number("state['best']", best)
            except TypeError as err:
                raise ValueError(str(err)) from None
        self.wait = counters["wait"]
        self.cooldown_counter = counters["cooldown_counter"]
        self.best = best
        self._restored = True
