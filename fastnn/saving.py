"""A saved file's training state into a model: :func:`restore_state` for
``fit(resume=...)`` and :func:`take_state` for ``fastnn.load``.

:mod:`fastnn.io` reads and writes the files and knows nothing of models;
``fastnn.model.load`` builds the model from the file's config and this module
puts the saved state into it, checking that the two agree.
"""

from __future__ import annotations

import os

from fastnn import io, optimizers
from fastnn.callbacks import History


def restore_state(model, path: str | os.PathLike) -> None:
    """Put the state saved in ``path`` into ``model``; see
    :meth:`Sequential.restore_state` for what must match."""
    saved = io.read(path)
    mine = model.get_config()
    for key in ("layers", "input_dim", "loss", "dtype"):
        if saved.config.get(key) != mine[key]:
            raise ValueError(
                f"resume: {str(path)!r} holds a different model ({key} is "
                f"{saved.config.get(key)!r}, this model has {mine[key]!r})"
            )
    try:
        saved_opt = optimizers.get(saved.config.get("optimizer") or {})
    except (TypeError, ValueError) as err:
        raise io.invalid_file(path, f"optimizer: {err}") from err
    theirs, ours = saved_opt.state_config(), model.optimizer.state_config()
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise ValueError(
                f"resume: {str(path)!r} was trained with another optimizer "
                f"({key} is {theirs.get(key)!r}, this model's is "
                f"{ours.get(key)!r}); resume with the optimizer it "
                "was saved with"
            )
    try:
        take_state(model, saved)
    except (KeyError, TypeError, ValueError) as err:
        raise io.invalid_file(path, f"{type(err).__name__}: {err}") from err


def take_state(model, saved: io.SavedModel) -> None:
    """Copy ``saved``'s parameters, slots, counters, learning-rate scale,
    callback states, shuffling RNG and history into ``model``."""
    history = History.from_state(saved.state.get("history"), int(saved.state["epoch"]))
    if saved.slots.shape != model.slots.shape:
        raise ValueError(
            f"slots: expected shape {model.slots.shape} for "
            f"{model.optimizer.slot_names()}; received {saved.slots.shape}"
        )
    model.params[...] = saved.params
    model.slots[...] = saved.slots
    model.epoch = int(saved.state["epoch"])
    model.step = int(saved.state["step"])
    model.optimizer.learning_rate_scale = float(
        saved.state.get("learning_rate_scale", 1.0)
    )
    model.callback_states = dict(saved.state.get("callbacks") or {})
    model.shuffle_rng.bit_generator.state = saved.state["shuffle_rng"]
    model.history = history
