"""``Sequential``: the model users build, train, evaluate, save and load."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastnn import (
    _compose,
    _validation,
    architecture,
    backends,
    contract,
    inference,
    losses,
    optimizers,
)
from fastnn.callbacks import History
from fastnn.layers import INITIALIZERS, Dense
from fastnn.layers import from_config as layer_from_config
from fastnn.optimizers import Optimizer


class Sequential:
    """A stack of :class:`~fastnn.Dense` layers (with :class:`~fastnn.Dropout`
    between them) trained by mini-batch gradient descent.

    Parameters
    ----------
    layers : sequence of Dense and Dropout
    input_dim : int
        Number of input features (784 for flattened MNIST).
    loss : {"cross_entropy", "mse"}
        ``cross_entropy`` needs a softmax output layer. Exact formulas, L2
        included: :mod:`fastnn.losses`.
    optimizer : Optimizer or str, optional
        :class:`~fastnn.SGD`, :class:`~fastnn.Adam`, :class:`~fastnn.AdamW`,
        :class:`~fastnn.RMSprop`, :class:`~fastnn.Adagrad` or one's name
        (its defaults). Default ``SGD(learning_rate=0.01)``. Assigning
        another optimizer later resets the optimizer's state (its slots and
        step count).
    backend : {"numpy", "numba", "cython", "auto"}, optional
        Kernel backend; can be changed later with ``model.backend = ...``.
        Default: the enclosing ``fastnn.use_backend`` block, ``FASTNN_BACKEND``,
        else ``"auto"``.
    dtype : {"float32", "float64"}
        Parameter and computation dtype, kept end to end.
    seed : int, optional
        Seeds initialisation, shuffling (``np.random.Generator``) and the
        dropout masks: the same
        seed gives bit-identical training on the same backend. ``None`` draws
        one, available as ``model.seed``.
    metrics : sequence of str
        ``("accuracy",)`` adds the training-set accuracy (at the end-of-epoch
        weights, one extra forward pass) to the epoch logs. Validation accuracy
        is always reported when ``validation_data`` is given.
    """

    def __init__(
        self,
        layers: Sequence[Dense],
        input_dim: int,
        loss: str = "cross_entropy",
        optimizer: Optimizer | str | None = None,
        backend: str | None = None,
        dtype: str = "float32",
        seed: int | None = None,
        metrics: Sequence[str] = (),
    ) -> None:
        #: the Dense layers, one per row of ``layout``; ``dropout_rates[l]``: the
        #: dropout rate on the input of Dense layer l
        self.dense_layers, self.dropout_rates = architecture.check_layers(layers)
        self.layers = list(layers)
        self.input_dim = _validation.check_positive_int(input_dim, "input_dim")
        self.loss = losses.get(loss)
        architecture.check_output(self.dense_layers, self.loss)
        self._optimizer = optimizers.get("sgd" if optimizer is None else optimizer)
        self.dtype = architecture.check_dtype(dtype)
        for m in metrics:
            if m != "accuracy":
                raise ValueError(f"metrics: expected 'accuracy'; received {m!r}")
        self.metrics = tuple(metrics)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.seed = _validation.check_positive_int(seed, "seed", minimum=0)
        self.backend = backend  # resolves and loads; raises if unknown/unavailable
        self._build()
        self.stop_training = False

    # ----------------------------------------------------------- structure
    def _build(self) -> None:
        self.layout, self.decay_spans = architecture.layout(
            self.dense_layers, self.input_dim
        )
        off = architecture.n_params(self.layout)
        params = np.zeros(off, self.dtype)
        self.state = contract.TrainingState(
            params, self._optimizer.initial_slots(off, self.dtype)
        )
        init_seq, shuffle_seq = np.random.SeedSequence(self.seed).spawn(2)
        init_rng = np.random.Generator(np.random.PCG64(init_seq))
        self.shuffle_rng = np.random.Generator(np.random.PCG64(shuffle_seq))
        for l, layer in enumerate(self.dense_layers):
            W, _ = _compose.layer_views(self.params, self.layout, l)
            init = INITIALIZERS[layer.kernel_initializer]
            W[...] = init(init_rng, W.shape, self.dtype)
        self.epoch = 0  # completed epochs
        #: callbacks' states a checkpoint carries (ReduceLROnPlateau's counters)
        self.callback_states: dict[str, Any] = {}
        self.history: History | None = None  # the latest fit's (or a checkpoint's)

    @property
    def params(self) -> np.ndarray:
        """The flat parameter buffer (W and b of every layer are views into it)."""
        return self.state.params

    @property
    def slots(self) -> np.ndarray:
        """The optimizer's slots, one row per name of ``optimizer.slot_names()``."""
        return self.state.slots

    @property
    def step(self) -> int:
        """Optimizer steps applied (drives schedules, Adam's bias correction and
        the dropout masks)."""
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = int(value)

    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer) -> None:
        optimizer = optimizers.get(optimizer)
        if optimizer.state_config() != self._optimizer.state_config():
            # The saved slots mean nothing to another optimizer: start afresh.
            self.state = contract.TrainingState(
                self.params, optimizer.initial_slots(self.n_params, self.dtype)
            )
        self._optimizer = optimizer

    @property
    def dropout_seed(self) -> int:
        """The dropout masks' key, drawn from ``seed``."""
        return int(
            np.random.SeedSequence(self.seed, spawn_key=(2,)).generate_state(
                1, np.uint64
            )[0]
        )

    def training_plan(self, batch_size: int) -> contract.TrainingPlan:
        """The :class:`~fastnn.contract.TrainingPlan` of a ``fit`` at ``batch_size``."""
        opt = self._optimizer
        return contract.TrainingPlan(
            self.layout,
            self.n_params,
            self.loss,
            opt.kind,
            opt.hyper(),
            self.decay_spans,
            batch_size,
            self.dropout_rates,
            self.dropout_seed,
        )

    @property
    def n_outputs(self) -> int:
        return self.dense_layers[-1].units

    @property
    def n_params(self) -> int:
        return int(self.params.size)

    @property
    def backend(self) -> str:
        """The backend's name; assign a name to switch a live model's backend."""
        return self._backend_name

    @backend.setter
    def backend(self, name: str | None) -> None:
        resolved = backends.resolve_backend_name(name)
        self._kernels = backends.get_backend(resolved)
        self._backend_name = resolved

    def __getstate__(self) -> dict[str, Any]:
        """For pickle (joblib's workers): everything but the backend module,
        which is found again by name. fastnn's own files never hold a pickle
        (:meth:`save`)."""
        state = self.__dict__.copy()
        del state["_kernels"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._kernels = backends.get_backend(self._backend_name)

    @property
    def kernels(self):
        """The backend module (see ``fastnn.reference`` for the contract)."""
        return self._kernels

    def get_config(self) -> dict[str, Any]:
        return {
            "layers": [layer.get_config() for layer in self.layers],
            "input_dim": self.input_dim,
            "loss": losses.name(self.loss),
            "optimizer": self._optimizer.get_config(),
            "dtype": self.dtype.name,
            "seed": self.seed,
            "metrics": list(self.metrics),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], backend: str | None = None):
        return cls(
            [layer_from_config(c) for c in config["layers"]],
            input_dim=config["input_dim"],
            loss=config["loss"],
            optimizer=optimizers.get(config["optimizer"]),
            backend=backend,
            dtype=config["dtype"],
            seed=config["seed"],
            metrics=config.get("metrics", ()),
        )

    def summary(self) -> str:
        lines = [f"Sequential (backend={self.backend}, dtype={self.dtype.name})"]
        n_in = self.input_dim
        for i, layer in enumerate(self.dense_layers):
            if self.dropout_rates[i]:
                lines.append(f"  dropout: rate {self.dropout_rates[i]}")
            n = n_in * layer.units + (layer.units if layer.use_bias else 0)
            lines.append(
                f"  dense_{i}: {n_in} -> {layer.units} "
                f"{layer.activation.name.lower():8s} {n:>10,d} params"
            )
            n_in = layer.units
        lines.append(f"  optimizer: {self._optimizer!r}")
        lines.append(f"  total: {self.n_params:,d} parameters")
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = "-".join(
            str(s) for s in [self.input_dim] + [ly.units for ly in self.dense_layers]
        )
        return (
            f"<fastnn.Sequential {sizes} backend={self.backend} "
            f"dtype={self.dtype.name}>"
        )

    # ----------------------------------------------------------- weights
    def get_weights(self) -> list[np.ndarray]:
        """Copies ``[W1 (n_in, n_out), b1, W2, b2, ...]`` in Keras's order.

        A layer with ``use_bias=False`` contributes only its W.
        """
        out = []
        for l, layer in enumerate(self.dense_layers):
            W, b = _compose.layer_views(self.params, self.layout, l)
            out.append(W.copy())
            if layer.use_bias:
                out.append(b.copy())
        return out

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set the parameters from a list shaped as :meth:`get_weights` returns.

        Everything is checked before anything is written.
        """
        shapes = architecture.weight_shapes(self.dense_layers, self.input_dim)
        arrays = architecture.check_weights(weights, shapes, self.dtype)
        it = iter(arrays)
        for l, layer in enumerate(self.dense_layers):
            W, b = _compose.layer_views(self.params, self.layout, l)
            W[...] = next(it)
            if layer.use_bias:
                b[...] = next(it)

    def weights_are_finite(self) -> bool:
        return bool(np.isfinite(self.params).all())

    # ----------------------------------------------------------- inference
    def predict(self, x, batch_size: int = inference.CHUNK) -> np.ndarray:
        """Output-layer activations (class probabilities for softmax), (n, k)."""
        batch_size = _validation.check_positive_int(batch_size, "batch_size")
        return inference.predict(self, inference.features(self, x), batch_size)

    def predict_classes(self, x, batch_size: int = inference.CHUNK) -> np.ndarray:
        return self.predict(x, batch_size).argmax(axis=1)

    def l2_penalty(self) -> float:
        """``weight_decay / 2 * sum_l ||W_l||^2`` at the current weights (0 for
        AdamW, whose decay is decoupled: not part of the loss)."""
        wd = self._optimizer.weight_decay
        if wd == 0 or self._optimizer.kind == contract.OptimizerKind.ADAMW:
            return 0.0
        sq = sum(
            float(np.dot(self.params[s:e], self.params[s:e]))
            for s, e in self.decay_spans
        )
        return 0.5 * wd * sq

    def evaluate(self, x, y, batch_size: int = inference.CHUNK) -> dict[str, float]:
        """``{"loss": total loss (L2 included), "accuracy": fraction correct}``.

        The loss is the documented total loss (:mod:`fastnn.losses`) over all of
        ``x`` at once; with cross-entropy it is computed from the predicted
        probabilities, floored at the dtype's smallest normal number.
        """
        batch_size = _validation.check_positive_int(batch_size, "batch_size")
        x = inference.features(self, x)
        labels, Y = inference.answers(self, y, x.shape[0])
        return inference.scores(self, x, labels, Y, batch_size)

    def loss_and_gradients(self, x, y) -> tuple[float, list[np.ndarray]]:
        """The total loss of ``(x, y)`` as one batch and its exact gradient.

        Returns ``(loss, [dW1, db1, dW2, db2, ...])`` ordered as
        :meth:`get_weights`; the gradient includes ``weight_decay * W``
        (except with AdamW: decoupled decay is not part of the loss). Dropout
        is not applied (as in ``evaluate``).
        """
        x = inference.features(self, x)
        labels, Y = inference.answers(self, y, x.shape[0])
        grads = np.zeros_like(self.params)
        value = _compose.loss_and_gradients(
            self._kernels,
            x,
            labels,
            Y,
            self.params,
            grads,
            self.layout,
            self.loss,
            self.dtype.type(
                0.0
                if self._optimizer.kind == contract.OptimizerKind.ADAMW
                else self._optimizer.weight_decay
            ),
            self.decay_spans,
        )
        out = []
        for l, layer in enumerate(self.dense_layers):
            dW, db = _compose.layer_views(grads, self.layout, l)
            out.append(dW.copy())
            if layer.use_bias:
                out.append(db.copy())
        return value, out

    # ----------------------------------------------------------- training
    def fit(
        self,
        x,
        y,
        epochs: int = 1,
        batch_size: int | None = None,
        validation_data=None,
        callbacks=None,
        verbose: int = 1,
        shuffle: bool = True,
        resume=None,
    ):
        """Train for ``epochs`` more epochs; returns a :class:`~fastnn.History`.

        See :func:`fastnn.trainer.fit` for the details.
        """
        from fastnn import trainer

        return trainer.fit(
            self,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=shuffle,
            resume=resume,
        )

    # ----------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the model to one ``.npz`` file, atomically (see :mod:`fastnn.io`)."""
        from fastnn import io

        io.save(self, path)

    def restore_state(self, path: str | os.PathLike) -> None:
        """Take the parameters and training state saved in ``path`` (a
        checkpoint of this model), its training history (``self.history``)
        included: what ``fit(resume=path)`` starts from.

        The file must hold the same architecture, loss and dtype, trained with
        the same optimizer and hyper-parameters (its saved slots mean nothing
        to another); the learning rate, its schedule and ``clipnorm`` may
        differ, to train further at another rate.
        """
        from fastnn import saving

        saving.restore_state(self, path)

    def to_onnx(self, path: str | os.PathLike):
        """Write the model as an ONNX graph of its predictions, atomically;
        returns the path (see :mod:`fastnn.export`; needs ``fastnn[onnx]``)."""
        from fastnn import export

        return export.to_onnx(self, path)


def load(path: str | os.PathLike, backend: str | None = None) -> Sequential:
    """Load a model written by :meth:`Sequential.save` (``fastnn.load``).

    Predictions of the loaded model equal the saved model's bit for bit on the
    same backend; training continues exactly where it stopped.
    """
    from fastnn import io, saving

    saved = io.read(path)
    try:
        model = Sequential.from_config(saved.config, backend=backend)
        saving.take_state(model, saved)
    except (KeyError, TypeError, ValueError) as err:
        raise io.invalid_file(path, f"{type(err).__name__}: {err}") from err
    return model
