"""The fit loop: epochs, seeded shuffling, batching, callbacks and history.

Shuffling happens here, in Python, with the model's ``np.random.Generator``, so
every backend sees the same batches. The steps themselves run in the
backend's ``train_steps`` (the contract of :mod:`fastnn.contract`: one
training plan and one data object per ``fit``, the model's training state),
called in chunks of ``CHUNK_STEPS`` steps: one call
keeps the compiled backends' hot loop in compiled code, and the chunking still
lets progress bars, callbacks and divergence checks see progress.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import NamedTuple

import numpy as np

from fastnn import _validation, contract, inference
from fastnn._kernels._blas_threads import BLAS_AT_ONE_THREAD
from fastnn.callbacks import (
    Callback,
    History,
    ModelCheckpoint,
    TerminateOnNaN,
)
from fastnn.progress import ProgressBar, format_logs

#: SGD steps per backend call. Large enough that per-call overhead vanishes on
#: the compiled backends, small enough for a lively progress bar.
CHUNK_STEPS = 64


def check_callbacks(callbacks) -> list[Callback]:
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            f"callbacks: expected a list of fastnn.Callback; received "
            f"{type(callbacks).__name__}"
        )
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(
                f"callbacks[{i}]: expected a fastnn.Callback; received "
                f"{type(cb).__name__}"
            )
    return list(callbacks)


def _check_validation(model, validation_data):
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(
            "validation_data: expected a tuple (x_val, y_val); received "
            f"{type(validation_data).__name__}"
        )
    xv = inference.features(model, validation_data[0], "validation_data[0]")
    labels, Y = inference.answers(
        model, validation_data[1], xv.shape[0], "validation_data[1]"
    )
    return xv, labels, Y


def fit(
    model,
    x,
    y,
    epochs=1,
    batch_size=None,
    validation_data=None,
    callbacks=None,
    verbose=1,
    shuffle=True,
    resume=None,
):
    """Train ``model`` with mini-batch gradient descent and its optimizer.

    ``epochs`` more epochs are run; with ``resume=path`` the model first takes
    the parameters, optimizer state, RNG state and epoch count saved in that
    checkpoint (optimizer slots included) and then trains until it has
    completed ``epochs`` epochs in all,
    so an interrupted run resumed this way ends bit-identical to an
    uninterrupted one. ``batch_size`` defaults to 32 (or n if smaller); an
    explicit one larger than the data is an error. The last batch of an epoch
    may be short. ``verbose``: 0 silent, 1 progress bar (on a terminal) and one
    line per epoch, 2 one line per epoch. A step whose loss is not finite is
    never applied: training stops with :class:`FloatingPointError`, or quietly with a
    :class:`~fastnn.TerminateOnNaN` callback; the model keeps its last finite
    weights either way.
    """
    checked = check_fit_arguments(
        model, x, y, epochs, batch_size, validation_data, callbacks, verbose, resume
    )
    return run(model, *checked, verbose=verbose, shuffle=shuffle, runner=LocalSteps)


class FitArguments(NamedTuple):
    """``fit``'s arguments, validated (:func:`check_fit_arguments`); the
    fields are :func:`run`'s leading parameters, in order."""

    xs: np.ndarray  #: the inputs, in the model's dtype
    labels: np.ndarray  #: integer classes (cross-entropy), else empty
    Y: np.ndarray  #: targets (mse), else empty
    epochs: int  #: epochs still to run
    batch_size: int
    val: tuple | None  #: checked validation data
    callbacks: list  #: the user's callbacks
    history: History | None  #: the checkpoint's history, with ``resume``


def check_fit_arguments(
    model, x, y, epochs, batch_size, validation_data, callbacks, verbose, resume
) -> FitArguments:
    """Validate ``fit``'s arguments; restore ``resume``'s state into ``model``.

    ``epochs`` in the result is the number still to run, and ``history`` the
    checkpoint's :class:`~fastnn.History` (``None`` without ``resume``), which
    the run continues.
    """
    epochs = _validation.check_positive_int(epochs, "epochs", minimum=0)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1 or 2; received {verbose!r}")
    xs = inference.features(model, x)
    n = xs.shape[0]
    labels, Y = inference.answers(model, y, n)
    if batch_size is None:
        batch_size = min(32, n)
    batch_size = _validation.check_positive_int(batch_size, "batch_size")
    if batch_size > n:
        raise ValueError(
            f"batch_size: expected at most the number of samples ({n}); "
            f"received {batch_size}"
        )
    val = _check_validation(model, validation_data)
    user_callbacks = check_callbacks(callbacks)
    history = None
    if resume is not None:
        model.restore_state(resume)
        history = model.history
        epochs = max(0, epochs - model.epoch)
    return FitArguments(xs, labels, Y, epochs, batch_size, val, user_callbacks, history)


class LocalSteps:
    """Runs steps in this process with the backend's fused ``train_steps``.

    Made once per ``fit`` as ``LocalSteps(model, plan, data)``; the trainer
    calls ``steps(order, s, e, learning_rates, losses_out)`` for each chunk of
    steps ``[s, e)`` of an epoch. It updates ``model.state`` in place (the
    step counter included) and returns the number of steps applied (fewer
    than ``e - s`` when a loss was not finite). :mod:`fastnn.distributed`
    provides the same interface over a cluster.
    """

    #: steps per call.
    chunk_steps = CHUNK_STEPS

    def __init__(self, model, plan, data) -> None:
        self.model, self.plan, self.data = model, plan, data

    def __call__(self, order, s, e, learning_rates, losses_out) -> int:
        return self.model.kernels.train_steps(
            self.plan,
            self.data,
            self.model.state,
            order,
            s,
            e,
            learning_rates,
            losses_out,
        )


def run(
    model,
    xs,
    labels,
    Y,
    epochs,
    batch_size,
    val,
    user_callbacks,
    resumed_history,
    verbose,
    shuffle,
    runner,
):
    """The epoch loop over checked arguments. ``runner(model, plan, data)``
    makes the step runner: :class:`LocalSteps` here, a cluster's in
    :mod:`fastnn.distributed`; everything else is this one loop. The returned
    History continues ``resumed_history`` (a resumed run's epochs so far)."""
    n = xs.shape[0]
    plan = model.training_plan(batch_size)
    data = contract.TrainingData(xs, labels, Y, model.loss, model.n_outputs)
    runner = runner(model, plan, data)

    history = History()
    if resumed_history is not None:
        history.epoch = list(resumed_history.epoch)
        history.history = {k: list(v) for k, v in resumed_history.history.items()}
    cbs: list[Callback] = [history]
    if verbose == 1:
        cbs.append(ProgressBar())
    # Checkpoints last, so that they save what the other callbacks changed at
    # the end of the epoch (a reduced rate, ReduceLROnPlateau's counters).
    cbs += sorted(user_callbacks, key=lambda cb: isinstance(cb, ModelCheckpoint))
    terminate_on_nan = any(isinstance(cb, TerminateOnNaN) for cb in cbs)
    for cb in cbs:
        cb.set_model(model)
    model.history = history

    opt = model.optimizer
    steps = math.ceil(n / batch_size)
    sizes = np.full(steps, batch_size, np.float64)
    sizes[-1] = n - (steps - 1) * batch_size
    losses = np.zeros(steps, np.float64)
    # The state at the start of the current chunk: if a step makes the
    # weights overflow, the next step's loss is not finite and training goes
    # back here.
    saved = model.state.copy()
    first_epoch = model.epoch
    model.stop_training = False
    for cb in cbs:
        cb.on_train_begin(
            {
                "epochs": first_epoch + epochs,
                "steps": steps,
                "resumed": resumed_history is not None,
            }
        )
    for epoch in range(first_epoch, first_epoch + epochs):
        order = (model.shuffle_rng.permutation(n) if shuffle else np.arange(n)).astype(
            np.int64
        )
        for cb in cbs:
            cb.on_epoch_begin(epoch)
        start_time = time.perf_counter()
        s = 0
        while s < steps:
            e = min(steps, s + runner.chunk_steps)
            lrs = opt.learning_rates(model.step, e - s)
            state = model.state
            np.copyto(saved.params, state.params)
            np.copyto(saved.slots, state.slots)
            saved.step = state.step
            done = runner(order, s, e, lrs, losses[s:e])
            running = float(
                np.dot(losses[: s + done], sizes[: s + done])
                / max(sizes[: s + done].sum(), 1)
            )
            if done < e - s:
                if not (
                    np.isfinite(state.params).all() and np.isfinite(state.slots).all()
                ):
                    np.copyto(state.params, saved.params)
                    np.copyto(state.slots, saved.slots)
                    state.step = saved.step
                return _diverged(
                    model, cbs, epoch, s + done, e - s, verbose, terminate_on_nan
                )
            for cb in cbs:
                cb.on_batch_end(e - 1, {"loss": running, "steps": done})
            s = e
        seconds = time.perf_counter() - start_time
        model.epoch += 1
        logs = {"loss": float(np.dot(losses, sizes) / n)}
        with _between_epochs(model):
            if "accuracy" in model.metrics:
                logs["accuracy"] = inference.scores(model, xs, labels, Y)["accuracy"]
            if val is not None:
                scores = inference.scores(model, *val)
                logs["val_loss"] = scores["loss"]
                logs["val_accuracy"] = scores["accuracy"]
        logs["seconds"] = seconds
        logs["samples_per_second"] = n / seconds if seconds > 0 else math.inf
        logs["learning_rate"] = float(opt.learning_rates(model.step, 1)[0])
        for cb in cbs:
            cb.on_epoch_end(epoch, logs)
        if verbose:
            print(format_logs(epoch, first_epoch + epochs, logs), flush=True)
        if model.stop_training:
            break
    for cb in cbs:
        cb.on_train_end()
    return model.history


def _between_epochs(model):
    """Where the scores fit computes between epochs run: with BLAS at one
    thread when the backend split the epoch's steps over a team of threads.
    After a product on several threads OpenBLAS's idle threads spin for about
    0.1 s, and the next epoch's team would share the cores with them: S's
    epoch with validation data took 0.26-0.27 s, 0.20-0.21 s with the scores
    on one BLAS thread (0.18-0.21 s without validation; docs/performance.md).
    """
    last = getattr(model.kernels, "last_train_threads", None)
    if last is not None and last() > 1:
        return BLAS_AT_ONE_THREAD
    return contextlib.nullcontext()


def _diverged(model, cbs, epoch, step, chunk, verbose, terminate_on_nan):
    message = (
        f"training diverged at epoch {epoch + 1}, step {step + 1}: the loss is "
        "not finite. That step was not applied and the model keeps its last "
        f"finite weights (at most {chunk} steps earlier). Lower the "
        "learning rate, check the inputs for extreme values, or add weight "
        "decay."
    )
    for cb in cbs:
        if isinstance(cb, ProgressBar):
            cb.on_epoch_end(epoch)
    if not terminate_on_nan:
        raise FloatingPointError(message)
    model.stop_training = True
    if verbose:
        print(f"TerminateOnNaN: {message}", file=sys.stderr, flush=True)
    for cb in cbs:
        cb.on_train_end()
    return model.history
